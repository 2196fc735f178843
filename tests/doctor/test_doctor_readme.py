"""The README's doctor output and "what has been run where" table, and the JSON schema document,
are generated from the committed doctor JSON files and the code: these tests keep them equal, so
none of them can drift from what was measured."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results" / "doctor"


def block(text: str, name: str) -> tuple[str, str]:
    """(argument after the begin marker, text between the markers)."""
    m = re.search(rf"<!-- {name}:begin ?(.*?) -->\n(.*?)\n<!-- {name}:end -->", text, re.S)
    assert m, f"no {name} block"
    return m.group(1).strip(), m.group(2)


def committed():
    files = sorted(RESULTS.glob("*.json"))
    assert files, "no committed doctor JSON under bench/results/doctor/"
    return files


def test_the_run_where_table_is_the_generators_output():
    from srgan_fast.doctor.table import load, markdown

    _, table = block((REPO / "README.md").read_text(), "doctor-table")
    assert table == markdown(load(committed())), \
        "regenerate: python -m srgan_fast.doctor --table bench/results/doctor/*.json"


def test_the_readme_output_is_the_committed_runs_table():
    from srgan_fast.doctor.report import text
    from srgan_fast.doctor.table import load

    name, shown = block((REPO / "README.md").read_text(), "doctor-output")
    (doc,) = load([REPO / name])
    assert doc["device"]["kind"] == "cpu" and doc["exit_status"] == 0
    assert shown == "```\n" + text(doc) + "\n```", f"regenerate: python -m srgan_fast.doctor --show {name}"


def test_the_cpu_run_covers_every_cpu_backend_and_precision():
    from srgan_fast.doctor.table import load
    from srgan_fast.engines import BACKENDS
    from srgan_fast.precision import PRECISIONS

    cpu = [d for d in load(committed()) if d["device"]["kind"] == "cpu" and not d["settings"]["quick"]]
    assert cpu, "no full CPU run committed"
    rows = cpu[-1]["rows"]
    assert {r["backend"] for r in rows} == set(BACKENDS)
    for backend in ("torch", "triton", "openvino", "onnxruntime"):
        asked = {r["asked"] for r in rows if r["backend"] == backend}
        # the newest full run includes the default, auto (a choice, not one of PRECISIONS)
        assert asked >= {"auto", "fp32", "fp16", "bf16", "int8"}, (backend, asked)
        assert asked <= set(PRECISIONS) | {"auto", None}, (backend, asked)


def test_the_schema_document_is_the_codes():
    from srgan_fast.doctor.report import schema_markdown

    _, doc = block((RESULTS / "README.md").read_text(), "doctor-schema")
    assert doc == schema_markdown(), "regenerate: python -m srgan_fast.doctor --schema"


def test_every_committed_run_has_only_documented_fields():
    import json

    from srgan_fast.doctor.report import DOCUMENTED, flatten

    for path in committed():
        text = path.read_text()
        assert "Infinity" not in text and "NaN" not in text, f"{path.name}: not strict JSON"
        fields = flatten(json.loads(text))
        assert fields <= DOCUMENTED, f"{path.name}: undocumented {sorted(fields - DOCUMENTED)}"
