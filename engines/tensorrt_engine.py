"""TensorRT on NVIDIA GPUs: strongly typed engines from the fp32, fp16 or Q/DQ INT8 ONNX graph.

Written against the TensorRT 10.12+ / 11 Python API:
- build: ``trt.Builder`` -> network created with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``
  (required on 10.x, the only mode on 11.x, where the weak-typing FP16/INT8 builder flags are
  gone) -> ``OnnxParser.parse_from_file`` (every parser error is reported) -> one optimization
  profile (min/opt/max) -> a timing cache file shared by builds -> ``build_serialized_network``.
  Precision therefore lives in the graph: the fp16 ONNX (Casts at the fp32 boundary, overflow-
  prone layers kept fp32) or the Q/DQ ONNX (explicit quantization). fp32 builds disable TF32.
- run (``TensorRTEngine``): the tensor-address API (``set_input_shape``, ``set_tensor_address``,
  ``execute_async_v3``) on torch-allocated CUDA buffers and a torch CUDA stream.
- run without torch (``PycudaRunner``): numpy in and out through pycuda, for deployment boxes
  that only have tensorrt, pycuda and numpy. This file also works on its own there:
  ``python tensorrt_engine.py model.engine input.npy output.npy``.

None of this has run on this project's CPU-only machines; the tests run wherever a
``trt.Builder`` can be created and skip elsewhere with the reason.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

try:  # torch and the package are optional: the pycuda runner below works without either
    import torch

    from srgan_fast.errors import SrganError

    from .base import Engine, ShapeRange
except ImportError:  # pragma: no cover - exercised on torch-free deployment boxes
    torch = None
    Engine = object
    ShapeRange = None

    class SrganError(Exception):
        pass


def _trt():
    try:
        import tensorrt
    except ImportError:
        raise SrganError("tensorrt is not installed: pip install 'srgan_fast[gpu]'") from None
    return tensorrt


def _make_logger(trt, echo=None):
    """A TensorRT logger that keeps errors (for one-line reports) and echoes warnings."""

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR):
                self.errors.append(str(msg))
            if echo is not None and severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR,
                                                 trt.ILogger.WARNING):
                echo(f"  tensorrt: {msg}")

    return Logger()


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


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def build_engine(onnx_path, engine_path, shapes, timing_cache=None, device: str = "cuda:0",
                 allow_tf32: bool = False, workspace_bytes: int | None = None, log=print) -> dict:
    """Build a strongly typed engine from ``onnx_path`` and write it to ``engine_path``.

    ``shapes``: an ``artifacts.ShapeProfile`` (min/opt/max NxHxW). ``allow_tf32`` False keeps
    fp32 layers exact fp32 (TF32 convolutions would miss the fp32 tolerance of 1e-4). Returns what
    the sidecar records about the build. Raises SrganError listing every parser error, or the
    builder's errors.
    """
    trt = _trt()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    index = (torch.device(device).index or 0) if torch is not None else 0
    ctx = torch.cuda.device(index) if torch is not None else _null()
    with ctx:
        logger = _make_logger(trt, echo=log)
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
        cache = None
        if timing_cache is not None:
            timing_cache = Path(timing_cache)
            blob = timing_cache.read_bytes() if timing_cache.is_file() else b""
            try:
                cache = config.create_timing_cache(blob)
            except Exception:  # noqa: BLE001 - a damaged cache file must not stop the build
                cache = None
            if cache is None and blob:  # unreadable file: start a fresh cache, say so
                log(f"  tensorrt: timing cache {timing_cache} is unreadable, starting a new one")
                cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, False)
        log(f"  tensorrt {trt.__version__}: building strongly typed engine, profile "
            f"{'x'.join(map(str, lo))} / {'x'.join(map(str, opt))} / {'x'.join(map(str, hi))}")
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            detail = " | ".join(logger.errors[-5:]) or "no error message from TensorRT"
            raise SrganError(f"TensorRT could not build an engine from {onnx_path.name}: {detail}")
        _atomic_write(engine_path, bytes(serialized))
        if cache is not None:
            _atomic_write(timing_cache, bytes(config.get_timing_cache().serialize()))
        io = {}
        for i in range(network.num_inputs):
            t = network.get_input(i)
            io[t.name] = str(t.dtype)
        for i in range(network.num_outputs):
            t = network.get_output(i)
            io[t.name] = str(t.dtype)
    return {"version": trt.__version__, "strongly_typed": True, "graph": onnx_path.name,
            "profile": {"min": list(lo), "opt": list(opt), "max": list(hi)},
            "timing_cache": str(timing_cache) if timing_cache else None, "io_dtypes": io,
            "tf32": allow_tf32, "layers": network.num_layers}


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _io_names(trt, engine):
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    if len(inputs) != 1 or len(outputs) != 1:
        raise SrganError(f"expected an engine with one input and one output, got {inputs} -> {outputs}")
    return inputs[0], outputs[0]


def _deserialize(trt, logger, engine_path: Path):
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise SrganError(f"{engine_path}: TensorRT cannot load this engine (built by another TensorRT "
                         f"version or for another GPU?): rebuild it with python -m srgan_fast.build")
    return runtime, engine


class TensorRTEngine(Engine):
    """Runs a serialized engine on torch CUDA tensors (the tensor-address API, no copies)."""

    name = "tensorrt"

    def __init__(self, engine_path, precision: str = "fp16", requested_precision: str | None = None,
                 device: str = "cuda:0", radius: int = 40, shapes=None, sidecar: dict | None = None):
        if torch is None or not torch.cuda.is_available():
            raise SrganError("the tensorrt engine needs an NVIDIA GPU with CUDA")
        trt = _trt()
        self.trt = trt
        self.path = str(engine_path)
        self.sidecar = sidecar
        self.precision = precision
        self.requested_precision = requested_precision or precision
        self.radius = radius
        self.shapes = shapes or ShapeRange()
        self.torch_device = torch.device(device)
        self.device = torch.cuda.get_device_name(self.torch_device)
        # fp16 activations are half the fp32 bytes; TensorRT also needs workspace of its own.
        self.bytes_per_lr_pixel = 12 * 1024 if precision == "fp32" else 8 * 1024
        with torch.cuda.device(self.torch_device):
            self.logger = _make_logger(trt)
            self.runtime, self.engine = _deserialize(trt, self.logger, Path(engine_path))
            self.context = self.engine.create_execution_context()
            self.stream = torch.cuda.Stream(self.torch_device)
        self.input_name, self.output_name = _io_names(trt, self.engine)
        self.in_dtype = self._torch_dtype(self.engine.get_tensor_dtype(self.input_name))
        self.out_dtype = self._torch_dtype(self.engine.get_tensor_dtype(self.output_name))

    def _torch_dtype(self, dt):
        trt = self.trt
        table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int8: torch.int8,
                 trt.int32: torch.int32}
        if hasattr(trt, "bfloat16"):
            table[trt.bfloat16] = torch.bfloat16
        if dt not in table:
            raise SrganError(f"{self.path}: unsupported engine I/O type {dt}")
        return table[dt]

    def _run(self, lr: torch.Tensor) -> torch.Tensor:
        x = lr.to(self.in_dtype).contiguous()
        caller = torch.cuda.current_stream(self.torch_device)
        with torch.cuda.device(self.torch_device):
            if not self.context.set_input_shape(self.input_name, tuple(x.shape)):
                raise ValueError(f"tensorrt engine rejects input shape {tuple(x.shape)} "
                                 f"(profile {self.shapes})")
            out = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)), dtype=self.out_dtype,
                              device=self.torch_device)
            self.context.set_tensor_address(self.input_name, x.data_ptr())
            self.context.set_tensor_address(self.output_name, out.data_ptr())
            # Our own stream (TensorRT warns about the legacy default stream); ordered after the
            # caller's work, and the caller's stream waits for ours before using the result.
            self.stream.wait_stream(caller)
            x.record_stream(self.stream)
            out.record_stream(self.stream)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("tensorrt execute_async_v3 failed: " + " | ".join(self.logger.errors[-3:]))
            caller.wait_stream(self.stream)
        return out.float()

    def info(self) -> dict:
        d = super().info()
        d.update({"artifact": self.path, "tensorrt": self.trt.__version__,
                  "io": {self.input_name: str(self.in_dtype), self.output_name: str(self.out_dtype)}})
        return d

    def close(self) -> None:
        self.context = None
        self.engine = None
        self.runtime = None


# ---------------------------------------------------------------------------------------------
# torch-free runtime (tensorrt + pycuda + numpy)
# ---------------------------------------------------------------------------------------------

def check_sidecar(engine_path) -> dict:
    """Verify ``<engine>.json``: our format, matching size and sha256, same TensorRT version.
    Torch-free on purpose (deployment boxes); raises SrganError with the reason."""
    engine_path = Path(engine_path)
    side = Path(str(engine_path) + ".json")
    try:
        sc = json.loads(side.read_text())
    except (OSError, ValueError) as e:
        raise SrganError(f"{side}: missing or corrupt sidecar ({e.__class__.__name__})") from None
    rec = sc.get("artifact", {}) if isinstance(sc, dict) else {}
    if sc.get("format") != "srgan_fast.artifact" or sc.get("target") != "tensorrt":
        raise SrganError(f"{side}: not a srgan_fast TensorRT artifact")
    if engine_path.stat().st_size != rec.get("bytes"):
        raise SrganError(f"{engine_path}: size differs from its sidecar (truncated or replaced)")
    h = hashlib.sha256()
    with open(engine_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != rec.get("sha256"):
        raise SrganError(f"{engine_path}: sha256 differs from its sidecar (modified)")
    built_with = sc.get("libraries", {}).get("tensorrt")
    trt = _trt()
    if built_with and built_with.split("+")[0] != trt.__version__.split("+")[0]:
        raise SrganError(f"{engine_path}: built with TensorRT {built_with}, this is {trt.__version__}: rebuild it")
    return sc


class PycudaRunner:
    """Run an engine on numpy float32 NCHW arrays with pycuda: no torch needed.

    Host staging buffers are page-locked and device buffers are reused while shapes repeat.
    """

    def __init__(self, engine_path, device: int = 0, verify: bool = True):
        import numpy as np
        import pycuda.driver as cuda

        trt = _trt()
        self.np, self.cuda, self.trt = np, cuda, trt
        self.sidecar = check_sidecar(engine_path) if verify else None
        cuda.init()
        self.ctx = cuda.Device(device).retain_primary_context()
        self.ctx.push()
        try:
            self.logger = _make_logger(trt)
            self.runtime, self.engine = _deserialize(trt, self.logger, Path(engine_path))
            self.context = self.engine.create_execution_context()
            self.stream = cuda.Stream()
            self.input_name, self.output_name = _io_names(trt, self.engine)
            self.in_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
            self.out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        finally:
            self.ctx.pop()
        self._buffers = {}

    def _buffer(self, key, shape, dtype):
        have = self._buffers.get(key)
        if have is None or have[0].shape != tuple(shape):
            host = self.cuda.pagelocked_empty(tuple(shape), dtype)
            self._buffers[key] = (host, self.cuda.mem_alloc(max(host.nbytes, 1)))
        return self._buffers[key]

    def __call__(self, lr):
        np, cuda = self.np, self.cuda
        x = np.ascontiguousarray(lr, dtype=self.in_dtype)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an NCHW RGB batch, got shape {x.shape}")
        self.ctx.push()
        try:
            if not self.context.set_input_shape(self.input_name, x.shape):
                raise ValueError(f"engine rejects input shape {x.shape}")
            out_shape = tuple(self.context.get_tensor_shape(self.output_name))
            h_in, d_in = self._buffer("in", x.shape, self.in_dtype)
            h_out, d_out = self._buffer("out", out_shape, self.out_dtype)
            h_in[...] = x
            cuda.memcpy_htod_async(d_in, h_in, self.stream)
            self.context.set_tensor_address(self.input_name, int(d_in))
            self.context.set_tensor_address(self.output_name, int(d_out))
            if not self.context.execute_async_v3(self.stream.handle):
                raise RuntimeError("tensorrt execute_async_v3 failed: " + " | ".join(self.logger.errors[-3:]))
            cuda.memcpy_dtoh_async(h_out, d_out, self.stream)
            self.stream.synchronize()
            return np.array(h_out, dtype=np.float32)
        finally:
            self.ctx.pop()

    def close(self) -> None:
        self._buffers.clear()
        self.context = self.engine = self.runtime = None
        if self.ctx is not None:
            self.ctx.detach()
            self.ctx = None


# ---------------------------------------------------------------------------------------------
# Package entry points
# ---------------------------------------------------------------------------------------------

def from_artifact(art, **_unused) -> TensorRTEngine:
    sc = art.sidecar
    return TensorRTEngine(art.path, precision=sc["precision"], requested_precision=sc["precision_requested"],
                          device=sc.get("torch_device", "cuda:0"), radius=sc["model"]["radius"],
                          shapes=art.shape_range(), sidecar=sc)


def open_engine(weights=None, precision: str = "fp16", device: str | None = None, shapes=None, calib=None,
                out=None, strict: bool = False, rebuild: bool = False, log=None, **_unused) -> TensorRTEngine:
    """Build (or load from the cache) the TensorRT engine for ``weights`` and open it."""
    from srgan_fast.artifacts import ensure_artifact

    _trt()  # a missing tensorrt is reported before any export work
    art = ensure_artifact(weights, precision, "tensorrt", shapes=shapes, calib=calib, out=out,
                          device=device, strict=strict, rebuild=rebuild, log=log)
    return from_artifact(art)


def _main(argv=None) -> int:
    """Standalone: ``python tensorrt_engine.py ENGINE INPUT.npy OUTPUT.npy`` (float32 NCHW [0, 1])."""
    import numpy as np

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        print(_main.__doc__, file=sys.stderr)
        return 2
    try:
        runner = PycudaRunner(argv[0])
        np.save(argv[2], runner(np.load(argv[1])))
        runner.close()
    except SrganError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main())
