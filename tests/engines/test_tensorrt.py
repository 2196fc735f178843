"""TensorRT engines: strongly typed builds from the fp32/fp16/Q-DQ graphs, both runtimes.

Everything past the first two tests needs an NVIDIA GPU and tensorrt: they skip, with the reason,
unless ``trt.Builder(trt.Logger())`` can actually be created.
"""
import json

import pytest
import torch

from conftest import has_module


def _builder_reason():
    if not has_module("tensorrt"):
        return "tensorrt is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    try:
        import tensorrt as trt

        if trt.Builder(trt.Logger()) is None:
            return "trt.Builder could not be created"
    except Exception as e:  # noqa: BLE001 - any failure means: no TensorRT here
        return f"trt.Builder could not be created ({e.__class__.__name__}: {e})"
    return None


SKIP = _builder_reason()
needs_trt = pytest.mark.skipif(SKIP is not None, reason=f"TensorRT unavailable: {SKIP}")
SHAPES = "1x1x1:1x24x32:2x64x64"


def test_modules_import_without_tensorrt():
    import srgan_fast.engines.tensorrt_builder as builder
    import srgan_fast.engines.tensorrt_engine as te
    import srgan_fast.engines.tensorrt_pycuda as pycuda_runner

    assert callable(builder.build_engine) and callable(te.from_artifact) and te.TensorRTEngine.name == "tensorrt"
    assert callable(pycuda_runner.PycudaRunner) and callable(pycuda_runner.check_sidecar)


@pytest.mark.skipif(SKIP is None, reason="TensorRT is available here")
def test_without_tensorrt_or_gpu_the_error_is_one_line(tmp_path):
    from srgan_fast import engines
    from srgan_fast.errors import SrganError

    with pytest.raises(SrganError) as info:
        engines.open_engine("tensorrt", "fp16", weights=tmp_path / "w.safetensors", out=tmp_path)
    assert "\n" not in str(info.value) and ("tensorrt" in str(info.value).lower() or "GPU" in str(info.value))


@pytest.fixture(scope="module")
def trt_env(tmp_path_factory):
    if SKIP is not None:
        pytest.skip(f"TensorRT unavailable: {SKIP}")
    from srgan_fast.checkpoints import save_generator
    from srgan_fast.model import Generator

    root = tmp_path_factory.mktemp("trt")
    torch.manual_seed(4)
    save_generator(Generator(num_blocks=2).eval(), root / "w.safetensors", dtype=torch.float32)
    return {"w": root / "w.safetensors", "cache": root / "cache"}


_engines = {}


def _open(env, precision):
    from srgan_fast import engines

    if precision not in _engines:
        _engines[precision] = engines.open_engine("tensorrt", precision, weights=env["w"], out=env["cache"],
                                                  shapes=SHAPES, log=lambda m: None)
    return _engines[precision]


@needs_trt
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "int8"])
@pytest.mark.parametrize("shape", [(1, 3, 17, 23), (2, 3, 64, 64), (1, 3, 1, 1)], ids=lambda s: "x".join(map(str, s)))
def test_tensorrt_matches_reference(trt_env, precision, shape):
    from srgan_fast.checkpoints import load_generator
    from srgan_fast.parity import assert_close

    engine = _open(trt_env, precision)
    want = {"fp32": "fp32", "fp16": "fp16", "bf16": "fp16", "int8": "int8"}[precision]
    assert engine.precision == want and engine.requested_precision == precision
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    out = engine(x)
    assert out.device.type == "cuda" and out.dtype == torch.float32
    g = load_generator(trt_env["w"])
    with torch.inference_mode():
        assert_close(out, g(x), engine.precision)


@needs_trt
@pytest.mark.gpu
def test_sidecar_profile_timing_cache_and_shape_limits(trt_env):
    engine = _open(trt_env, "fp16")
    sc = engine.sidecar
    assert sc["tensorrt"]["strongly_typed"] and sc["tensorrt"]["profile"]["max"] == [2, 3, 64, 64]
    assert sc["fp16_safety"]["parity"]["ok"]
    assert (trt_env["cache"] / "tensorrt-timing.cache").stat().st_size > 0
    assert engine.shapes.max_hw == (64, 64) and engine.shapes.max_batch == 2
    with pytest.raises(ValueError):
        engine(torch.rand(1, 3, 65, 8))


@needs_trt
@pytest.mark.gpu
def test_parser_errors_are_all_reported(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from srgan_fast.artifact import parse_shapes
    from srgan_fast.engines.tensorrt_builder import build_engine
    from srgan_fast.errors import SrganError

    x = helper.make_tensor_value_info("lr", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("sr", TensorProto.FLOAT, ["n", 3, "h", "w"])
    node = helper.make_node("NoSuchOp", ["lr"], ["sr"], name="bogus_node", domain="example.unknown")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("example.unknown", 1)])
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(SrganError, match="cannot parse") as info:
        build_engine(tmp_path / "bad.onnx", tmp_path / "bad.engine", parse_shapes("8x8"), log=lambda m: None)
    assert "NoSuchOp" in str(info.value) or "bogus_node" in str(info.value)
    assert not (tmp_path / "bad.engine").exists()


@needs_trt
@pytest.mark.gpu
def test_pycuda_runner_matches_torch_runtime_and_checks_sidecar(trt_env, tmp_path):
    pytest.importorskip("pycuda.driver", reason="pycuda is not installed")
    import shutil

    from srgan_fast.engines.tensorrt_pycuda import PycudaRunner
    from srgan_fast.errors import SrganError
    from srgan_fast.parity import assert_close

    engine = _open(trt_env, "fp16")
    x = torch.rand(1, 3, 20, 28)
    runner = PycudaRunner(engine.path)
    try:
        out = torch.from_numpy(runner(x.numpy()))
    finally:
        runner.close()
    assert_close(out, engine(x).cpu(), "fp32", atol=1e-3)  # same engine, two runtimes
    copy = tmp_path / "model.engine"
    shutil.copyfile(engine.path, copy)
    from srgan_fast.artifact import seal

    sc = json.loads(json.dumps(engine.sidecar))
    sc["libraries"]["tensorrt"] = "0.0.1"
    (tmp_path / "model.engine.json").write_text(json.dumps(seal(sc)))
    with pytest.raises(SrganError, match="rebuild"):
        PycudaRunner(copy)


# ---------------------------------------------------------------------------------------------
# TensorRT 11 API names, checked without TensorRT (issue 13). The real bindings wheel cannot be
# imported here (its libraries are download stubs on PyPI), but the names it exports can be read
# from it: tests/data/tensorrt11_names.txt holds them (with provenance in its header); set
# SRGAN_FAST_TRT_WHEEL to a downloaded wheel to check that list against the wheel itself.
# ---------------------------------------------------------------------------------------------
import ast  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

NAMES_FILE = Path(__file__).parents[1] / "data" / "tensorrt11_names.txt"
TRT_SOURCES = sorted((Path(__file__).resolve().parents[2] / "engines").glob("tensorrt_*.py"))
# Variables that hold TensorRT objects in engines/tensorrt_*.py (bare or as self.<name>).
TRT_OBJECTS = {"builder", "network", "parser", "config", "profile", "runtime", "engine", "context", "cache",
               "inp", "t", "err"}
# Enums whose members are checked against their own run (anchor member -> enum name).
ENUM_ANCHORS = {"TF32": "BuilderFlag", "STRONGLY_TYPED": "NetworkDefinitionCreationFlag",
                "WORKSPACE": "MemoryPoolType"}
_IDENT = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_UPPER = re.compile(r"[A-Z][A-Z0-9_]*")


def extract_names(wheel) -> dict[str, list[str]]:
    """{section: names} read from a tensorrt bindings wheel with zipfile (nothing is imported)."""
    z = zipfile.ZipFile(wheel)
    so = next(n for n in z.namelist() if re.search(r"/tensorrt[^/]*\.so$", n))
    strings = [s.decode() for s in z.read(so).split(b"\0") if _IDENT.fullmatch(s)]
    init = ast.parse(z.read(so.rsplit("/", 1)[0] + "/__init__.py"))
    module = {n.name for n in init.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    module |= {t.id for n in init.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    sections = {"strings": sorted({s for s in strings if not s.startswith("_")}), "module": sorted(module)}
    for anchor, enum in ENUM_ANCHORS.items():
        i = strings.index(anchor)
        lo, hi = i, i
        while lo > 0 and _UPPER.fullmatch(strings[lo - 1]):
            lo -= 1
        while hi + 1 < len(strings) and _UPPER.fullmatch(strings[hi + 1]):
            hi += 1
        sections[f"enum {enum}"] = strings[lo:hi + 1]
    return sections


def write_names(wheel, path=NAMES_FILE) -> None:
    import hashlib

    sections = extract_names(wheel)
    head = ["# TensorRT Python API names, for tests/test_tensorrt.py (checked without TensorRT).",
            f"# Source: {Path(wheel).name} from PyPI, sha256 {hashlib.sha256(Path(wheel).read_bytes()).hexdigest()},",
            "#   read with Python's zipfile; only these names are kept.",
            "# [strings]: every NUL-terminated identifier in the bindings' tensorrt*.so not starting with '_'",
            "#   (the linker merges string tails: a name may be stored only as the tail of a longer one).",
            "# [module]: names defined at the top of the wheel's tensorrt_bindings/__init__.py.",
            "# [enum X]: the run of consecutive upper-case strings around X's anchor member, in the binary's",
            "#   order (pybind11 enum values; a neighbouring enum's values can share the run).",
            "# Regenerate: python tests/test_tensorrt.py --write-names WHEEL"]
    body = [line for name, items in sections.items() for line in (f"[{name}]", *items)]
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(head + body) + "\n")


def load_names(path=NAMES_FILE) -> dict[str, list[str]]:
    sections, current = {}, None
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line:
            continue
        if line.startswith("["):
            current = sections.setdefault(line[1:-1], [])
        else:
            current.append(line)
    return sections


def _chain(node) -> list[str] | None:
    """['BuilderFlag', 'TF32'] for trt.BuilderFlag.TF32; [obj, 'attr'] for builder.attr."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "trt":
        return parts[::-1]
    if isinstance(node, ast.Name) and node.id in TRT_OBJECTS and parts:
        return [node.id, parts[-1]]
    if (isinstance(node, ast.Name) and node.id == "self" and len(parts) >= 2 and parts[-1] in TRT_OBJECTS):
        return [parts[-1], parts[-2]]
    return None


def used_names(sources) -> set[tuple[str, ...]]:
    """Every trt.X[.Y] chain and every attribute of a TensorRT object the sources use."""
    found = set()
    for path in sources:
        for node in ast.walk(ast.parse(Path(path).read_text())):
            chain = _chain(node) if isinstance(node, ast.Attribute) else None
            if chain:
                found.add(tuple(chain))
    return found


def missing_names(used, sections) -> list[str]:
    strings, module = sections["strings"], set(sections["module"])
    known = set(strings) | module

    def exists(name):  # whole string, or a merged tail of one
        return name in known or any(s.endswith(name) for s in strings)

    missing = set()
    for chain in sorted(used):
        head, rest = (chain[0], chain[1:]) if chain[0] in TRT_OBJECTS else (None, chain)
        for i, name in enumerate(rest):
            if i and rest[i - 1] in module:
                break  # below a pure-Python name of the package (__version__.split): not the bindings
            if name.startswith("__") and (head or i):
                continue  # Python protocol names (__init__), not API
            if head is None and i == 1 and f"enum {rest[0]}" in sections:
                ok = name in sections[f"enum {rest[0]}"]
            else:
                ok = exists(name)
            if not ok:
                missing.add(".".join(([head] if head else ["trt"]) + list(rest[:i + 1])))
    return sorted(missing)


def _names_or_skip():
    if not NAMES_FILE.is_file():
        pytest.skip(f"{NAMES_FILE} is missing (regenerate it from the tensorrt-cu13-bindings wheel)")
    return load_names()


def test_every_tensorrt_name_the_code_uses_exists_in_tensorrt_11():
    """Builder, runtimes and pycuda runner against TensorRT 11.4's exported names (no GPU needed):
    catches the weak-typing BuilderFlag members and implicit INT8 calibrators TensorRT 11 removed."""
    sections = _names_or_skip()
    used = used_names(TRT_SOURCES)
    assert ("NetworkDefinitionCreationFlag", "STRONGLY_TYPED") in used and ("context", "execute_async_v3") in used
    assert len(used) > 40, sorted(used)
    assert missing_names(used, sections) == []


def test_the_name_check_catches_removed_tensorrt_api(tmp_path):
    sections = _names_or_skip()
    code = tmp_path / "old.py"
    code.write_text("def build(trt, config, builder):\n"
                    "    config.set_flag(trt.BuilderFlag.FP16)\n"
                    "    config.set_flag(trt.BuilderFlag.INT8)\n"
                    "    config.int8_calibrator = trt.IInt8EntropyCalibrator2()\n"
                    "    builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))\n"
                    "    config.set_flag(trt.BuilderFlag.TF32)\n")
    assert missing_names(used_names([code]), sections) == [
        "config.int8_calibrator", "trt.BuilderFlag.FP16", "trt.BuilderFlag.INT8", "trt.IInt8EntropyCalibrator2",
        "trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH"]


@pytest.mark.skipif(not os.environ.get("SRGAN_FAST_TRT_WHEEL"), reason="set SRGAN_FAST_TRT_WHEEL to a "
                    "tensorrt-cu13-bindings wheel to check the committed name list against it")
def test_committed_names_match_the_wheel():
    assert extract_names(os.environ["SRGAN_FAST_TRT_WHEEL"]) == load_names()


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "--write-names":
        sys.exit("usage: python tests/test_tensorrt.py --write-names WHEEL")
    write_names(sys.argv[2])
