"""Layers point one way: stages import only the stages below them, no import cycle anywhere,
runtime engines never import the build, nothing imports bench.

import-linter (grimp) does not see ``srgan_fast.engines`` / ``srgan_fast.kernels``: setup.py maps
them from the top-level ``engines/`` and ``kernels/`` folders, and grimp walks only the package's
own folder. So this builds the graph itself from the source, with setup.py's ``package_dir``
mapping, counting every import (module level and inside functions, relative or absolute, and
``importlib.import_module("literal")``). An import of ``a.b.c`` is an edge to ``a.b.c``: Python
runs ``a.b/__init__`` too, but only its module-level imports, which are edges of their own.
"""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def package_roots() -> dict[str, Path]:
    """{package: folder} from setup.py's package_dir, plus the bench suite."""
    tree = ast.parse((REPO / "setup.py").read_text())
    mapping = next(kw.value for node in ast.walk(tree) if isinstance(node, ast.Call)
                   for kw in node.keywords if kw.arg == "package_dir")
    roots = {pkg: REPO / folder for pkg, folder in ast.literal_eval(mapping).items()}
    roots["bench"] = REPO / "bench"
    return roots


def module_files(roots: dict[str, Path]) -> dict[str, Path]:
    """{dotted module name: file}; a mapped sub-package's folder is named by its mapping only."""
    mapped = set(roots.values())
    modules = {}
    for pkg, folder in roots.items():
        for f in sorted(folder.rglob("*.py")):
            rel = f.relative_to(folder)
            if any((folder / Path(*rel.parts[:i])) in mapped for i in range(1, len(rel.parts))):
                continue  # inside another mapped root (none today; keeps the mapping authoritative)
            parts = [*pkg.split("."), *rel.with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            elif parts[-1] in ("conftest",) or parts[-1].startswith("test_"):
                continue  # pytest files (bench/test_*.py) are not part of the import layers
            modules[".".join(parts)] = f
    return modules


def _resolve(name: str, modules) -> str | None:
    """The module ``name`` refers to: itself, or its nearest ancestor that is one of ours."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in modules:
            return ".".join(parts[:i])
    return None


def imports_of(module: str, path: Path, modules) -> set[str]:
    is_pkg = path.name == "__init__.py"
    here = module if is_pkg else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # ``from pkg import sub`` imports the submodule when there is one, else names of pkg.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            targets = [node.args[0].value]
        out.update(t for t in (_resolve(t, modules) for t in targets) if t and t != module)
    return out


def build_graph() -> dict[str, set[str]]:
    modules = module_files(package_roots())
    return {m: imports_of(m, f, modules) for m, f in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _edges_into(graph, sources, prefix):
    return sorted((m, t) for m in sources for t in graph[m] if t == prefix or t.startswith(prefix + "."))


# The stages of srgan_fast (one package each) and what each may import besides itself. "core" is
# the top-level modules (records and policies: model, checkpoints, artifact, precision, ...).
# "commands" are the entry points (upscale, the `python -m` aliases, every cli/__main__, serve,
# doctor): they may import any stage. bench may import anything; nothing imports bench.
STAGE_ALLOWS = {
    "core": set(),
    "kernels": set(),
    "engines": {"core", "kernels"},
    "image": {"core"},
    "eval": {"core", "image", "engines"},
    "build": {"core", "image", "eval", "engines"},
    "video": {"core", "image"},
    "jobs": {"core", "image", "engines", "build", "video"},
    "train": {"core", "image", "eval"},
}
COMMANDS = {"srgan_fast.upscale", "srgan_fast.evaluate", "srgan_fast.quality", "srgan_fast.interpolate"}
# Known edges up the stack, each for a reason: the engines facade builds a missing artifact on
# demand (inside open_engine, never at import time: checked below), and a package's __init__
# re-exports its own command (``from srgan_fast.video import main``).
EXCEPTIONS = {("srgan_fast.engines", "srgan_fast.build.pipeline"),
              ("srgan_fast.build", "srgan_fast.build.cli"), ("srgan_fast.video", "srgan_fast.video.cli")}


def stage_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "bench":
        return "bench"
    if module in COMMANDS or parts[-1] in ("cli", "__main__") or parts[1:2] in (["serve"], ["doctor"]):
        return "commands"
    if parts[1:2] and parts[1] in STAGE_ALLOWS:
        return parts[1]
    return "core"


def stage_violations(graph) -> list[str]:
    out = []
    for m in sorted(graph):
        s = stage_of(m)
        for t in sorted(graph[m]):
            ts = stage_of(t)
            if ts == "bench" and s != "bench":
                out.append(f"{m} imports {t}: nothing imports bench")
            elif s in STAGE_ALLOWS and ts != s and ts not in STAGE_ALLOWS[s] and (m, t) not in EXCEPTIONS:
                allowed = ", ".join(sorted(STAGE_ALLOWS[s])) or "nothing else"
                out.append(f"{m} ({s}) imports {t} ({ts}); {s} may import {allowed}")
    return out


@pytest.fixture(scope="module")
def graph():
    g = build_graph()
    assert {"srgan_fast.engines.openvino_engine", "srgan_fast.kernels", "srgan_fast.build.pipeline"} <= set(g), \
        "the package_dir mapping was not applied"
    return g


def test_no_import_cycles(graph):
    cycles = find_cycles(graph)
    assert not cycles, "import cycles (each line one strongly connected set of modules):\n" + \
        "\n".join(" <-> ".join(c) for c in cycles)


def test_stages_import_only_the_stages_below_them(graph):
    """e.g. image never imports train or eval, engines never the build, nothing imports bench."""
    assert {stage_of(m) for m in graph} >= set(STAGE_ALLOWS) | {"commands", "bench"}
    bad = stage_violations(graph)
    assert not bad, "imports against the stage contracts:\n" + "\n".join(bad)


def test_the_stage_check_can_fail(graph):
    """Each kind of violation is reported: an image module importing eval, an engine importing
    the build, a stage importing bench."""
    g = {m: set(t) for m, t in graph.items()}
    g["srgan_fast.image.job"].add("srgan_fast.eval.metrics")
    g["srgan_fast.engines.openvino_engine"].add("srgan_fast.build.pipeline")
    g["srgan_fast.train.trainer"].add("bench.runner")
    bad = stage_violations(g)
    assert any(v.startswith("srgan_fast.image.job (image) imports srgan_fast.eval.metrics (eval)") for v in bad)
    assert any(v.startswith("srgan_fast.engines.openvino_engine (engines) imports srgan_fast.build") for v in bad)
    assert "srgan_fast.train.trainer imports bench.runner: nothing imports bench" in bad


def test_runtime_engines_never_import_the_build(graph):
    """Backends read the artifact record; only the facade may call the build, inside a function."""
    engines = [m for m in graph if m.startswith("srgan_fast.engines.")]
    assert not _edges_into(graph, engines, "srgan_fast.build")
    assert not _edges_into(graph, ["srgan_fast.artifact", "srgan_fast.precision", "srgan_fast.eval.datasets"],
                           "srgan_fast.build")
    facade = (REPO / "engines" / "__init__.py").read_text()
    top_level = [n for n in ast.parse(facade).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all("build" not in (getattr(n, "module", None) or "") for n in top_level)


def test_foundations_import_nothing_above_them(graph):
    """model, errors, signals, atomic and digest sit at the bottom: they import only each other."""
    bottom = {"srgan_fast.model", "srgan_fast.errors", "srgan_fast.signals", "srgan_fast.atomic", "srgan_fast.digest"}
    for m in bottom:
        assert graph[m] <= bottom, f"{m} imports {sorted(graph[m] - bottom)}"
    # The artifact record and the policies sit just above: no engines, no build, no CLIs.
    middle = {"srgan_fast.artifact", "srgan_fast.precision", "srgan_fast.hardware", "srgan_fast", *bottom}
    for m in ("srgan_fast.artifact", "srgan_fast.precision", "srgan_fast.hardware"):
        assert graph[m] <= middle, f"{m} imports {sorted(graph[m] - middle)}"


def test_the_checker_finds_cycles():
    """The cycle test can fail: a synthetic two-module loop and a self-import are reported."""
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert find_cycles(g) == [["a", "b", "c"], ["e"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_function_level_and_relative_imports_are_edges(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from . import high\n")
    (pkg / "high.py").write_text("from .low import f\n")
    modules = {"pkg": pkg / "__init__.py", "pkg.low": pkg / "low.py", "pkg.high": pkg / "high.py"}
    g = {m: imports_of(m, f, modules) for m, f in modules.items()}
    assert g["pkg.low"] == {"pkg.high"} and g["pkg.high"] == {"pkg.low"}
    assert find_cycles(g) == [["pkg.high", "pkg.low"]]
