"""TensorRT build hook: a strongly typed engine from an fp32, fp16 or Q/DQ INT8 ONNX graph.

``trt.Builder`` -> network created with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``
(required on 10.x, the only mode on 11.x, where the weak-typing FP16/INT8 builder flags and the
implicit INT8 calibrators are gone) -> ``OnnxParser.parse_from_file`` (every parser error is
reported) -> one optimization profile (min/opt/max) -> a timing cache file shared by builds ->
``build_serialized_network``. Precision therefore lives in the graph: the fp16 ONNX (Casts at the
fp32 boundary, overflow-prone layers kept fp32) or the Q/DQ ONNX (explicit quantization). fp32
builds disable TF32. Called by ``srgan_fast.build``; nothing here runs an engine.
"""
from __future__ import annotations

from pathlib import Path

import torch

from srgan_fast.atomic import write_bytes
from srgan_fast.errors import SrganError

from .tensorrt_common import import_tensorrt, make_logger


def _parser_error(err) -> str:
    """One parser error as text: node index/name/op where known, then the description."""
    parts = []
    for attr in ("node", "node_name", "node_operator"):
        fn = getattr(err, attr, None)
        try:
            value = fn() if callable(fn) else None
        except Exception:  # noqa: BLE001 - older bindings lack some accessors
            value = None
        if value not in (None, "", -1):
            parts.append(f"{attr.replace('_', ' ')} {value}")
    desc = err.desc() if hasattr(err, "desc") else str(err)
    code = err.code() if hasattr(err, "code") else ""
    return f"[{', '.join(parts) or 'graph'}] {code}: {desc}"


def _timing_cache(config, path, log):
    """The shared timing cache, read from ``path``; a damaged file starts a fresh one (said)."""
    path = Path(path)
    blob = path.read_bytes() if path.is_file() else b""
    try:
        cache = config.create_timing_cache(blob)
    except Exception:  # noqa: BLE001 - a damaged cache file must not stop the build
        cache = None
    if cache is None and blob:
        log(f"  tensorrt: timing cache {path} is unreadable, starting a new one")
        cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, False)
    return cache


def build_engine(onnx_path, engine_path, shapes, timing_cache=None, device: str = "cuda:0",
                 allow_tf32: bool = False, workspace_bytes: int | None = None, log=print) -> dict:
    """Build a strongly typed engine from ``onnx_path`` and write it to ``engine_path``.

    ``shapes``: an ``artifact.ShapeProfile`` (min/opt/max NxHxW). ``allow_tf32`` False keeps
    fp32 layers exact fp32 (TF32 convolutions would miss the fp32 tolerance of 1e-4). Returns what
    the sidecar records about the build. Raises SrganError listing every parser error, or the
    builder's errors.
    """
    trt = import_tensorrt()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    with torch.cuda.device(torch.device(device).index or 0):
        logger = make_logger(trt, echo=log)
        builder = trt.Builder(logger)
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = [_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
            raise SrganError(f"TensorRT cannot parse {onnx_path.name} ({len(errors)} errors): " + " | ".join(errors))
        config = builder.create_builder_config()
        if not allow_tf32 and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)
        if workspace_bytes:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
        profile = builder.create_optimization_profile()
        inp = network.get_input(0)
        lo, opt, hi = ((n, 3, h, w) for n, h, w in (shapes.min, shapes.opt, shapes.max))
        profile.set_shape(inp.name, lo, opt, hi)
        config.add_optimization_profile(profile)
        cache = _timing_cache(config, timing_cache, log) if timing_cache is not None else None
        log(f"  tensorrt {trt.__version__}: building strongly typed engine, profile "
            f"{'x'.join(map(str, lo))} / {'x'.join(map(str, opt))} / {'x'.join(map(str, hi))}")
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            detail = " | ".join(logger.errors[-5:]) or "no error message from TensorRT"
            raise SrganError(f"TensorRT could not build an engine from {onnx_path.name}: {detail}")
        write_bytes(engine_path, bytes(serialized))
        if cache is not None:
            write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
        io = {t.name: str(t.dtype) for t in [network.get_input(i) for i in range(network.num_inputs)]
              + [network.get_output(i) for i in range(network.num_outputs)]}
    return {"version": trt.__version__, "strongly_typed": True, "graph": onnx_path.name,
            "profile": {"min": list(lo), "opt": list(opt), "max": list(hi)},
            "timing_cache": str(timing_cache) if timing_cache else None, "io_dtypes": io,
            "tf32": allow_tf32, "layers": network.num_layers}
