"""TensorRT pieces shared by the builder and both runtimes: import, logger, engine loading.

Torch-free on purpose: the pycuda runner for deployment boxes imports this with numpy only.
Written against the TensorRT 10.12+ / 11 Python API; tests/test_tensorrt.py checks every name
used here against the names TensorRT 11's bindings export.
"""
from __future__ import annotations

from pathlib import Path

from srgan_fast.errors import SrganError


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise SrganError("tensorrt is not installed: pip install 'srgan_fast[gpu]'") from None
    return tensorrt


def make_logger(trt, echo=None):
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


def io_names(trt, engine) -> tuple[str, str]:
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    if len(inputs) != 1 or len(outputs) != 1:
        raise SrganError(f"expected an engine with one input and one output, got {inputs} -> {outputs}")
    return inputs[0], outputs[0]


def deserialize(trt, logger, engine_path: Path):
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
    if engine is None:
        raise SrganError(f"{engine_path}: TensorRT cannot load this engine (built by another TensorRT "
                         f"version or for another GPU?): rebuild it with python -m srgan_fast.build")
    return runtime, engine
