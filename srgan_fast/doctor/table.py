"""The README's "what has been run where" table, generated from committed doctor JSON files
(``python -m srgan_fast.doctor --table bench/results/doctor/*.json``): one line per run and
backend, so it says only what a doctor run on that device found, never what someone typed.
"""
from __future__ import annotations

import json
from pathlib import Path

from srgan_fast.errors import SrganError

from .report import SCHEMA, SCHEMA_VERSION

HEADER = ("| date | device | backend | passed: asked→runs (frames/s) | failed | not run here (why) |\n"
          "|---|---|---|---|---|---|")


def load(paths) -> list[dict]:
    """The doctor documents in ``paths``, oldest first; anything else is refused in one line."""
    docs = []
    for path in map(Path, paths):
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SrganError(f"{path}: cannot read a doctor JSON file ({e.__class__.__name__}: {e})") from None
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise SrganError(f"{path}: not a srgan_fast doctor JSON file")
        if doc.get("schema_version") != SCHEMA_VERSION:
            raise SrganError(f"{path}: doctor schema {doc.get('schema_version')}, this reads {SCHEMA_VERSION}")
        docs.append(doc)
    return sorted(docs, key=lambda d: (d["created"], d["device"]["name"]))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _device(doc: dict) -> str:
    d, s = doc["device"], doc["settings"]
    n, h, w = s["speed_size"]
    where = f"{d['threads']} threads" if d["kind"] == "cpu" else f"CUDA {doc['versions']['cuda']}, driver " \
                                                                  f"{doc['versions']['driver'] or '?'}"
    return f"{d['name']} ({d['kind']}, {where}); speed at {n}x{h}x{w}" + (", --quick" if s["quick"] else "")


def _passed(row: dict, size: list) -> str:
    speed = row.get("speed") or {}
    fps = speed.get("frames_per_s")
    runs = row["asked"] if row["runs"] == row["asked"] else f"{row['asked']}→{row['runs']}"
    at = f" at {speed['size'][1]}x{speed['size'][2]}" if speed.get("size") and speed["size"] != size else ""
    return runs + (f" ({fps:.3g}{at})" if fps else "")


def markdown(docs: list[dict]) -> str:
    lines = [HEADER]
    for doc in docs:
        backends = list(dict.fromkeys(r["backend"] for r in doc["rows"]))
        for backend in backends:
            rows = [r for r in doc["rows"] if r["backend"] == backend]
            passed = ", ".join(_passed(r, doc["settings"]["speed_size"]) for r in rows if r["status"] == "ok") or "–"
            failed = ", ".join(f"{r['asked']}: {r['reason']}" for r in rows if r["status"] == "FAIL") or "–"
            skipped = "; ".join(f"{r['asked'] + ': ' if r['asked'] else ''}{r['reason']}"
                                for r in rows if r["status"] == "skip") or "–"
            lines.append("| " + " | ".join(_cell(c) for c in (doc["created"][:10], _device(doc), backend, passed,
                                                                 failed, skipped)) + " |")
    return "\n".join(lines)
