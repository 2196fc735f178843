"""TensorRT without torch: numpy in and out through pycuda, for deployment boxes that only have
tensorrt, pycuda, numpy and this package (installed with ``pip install --no-deps``).

``python -m srgan_fast.engines.tensorrt_pycuda ENGINE INPUT.npy OUTPUT.npy`` (float32 NCHW [0, 1]).
The engine's sidecar is verified by ``srgan_fast.artifact.read_record`` (size, sha256, sidecar
integrity), plus the TensorRT version it was built with.
"""
from __future__ import annotations

import sys
from pathlib import Path

from srgan_fast.artifact import read_record
from srgan_fast.errors import SrganError
from srgan_fast.engines.tensorrt_common import deserialize, import_tensorrt, io_names, make_logger


def check_sidecar(engine_path) -> dict:
    """Verify ``<engine>.json`` (one loader: artifact.read_record) and the TensorRT version."""
    record = read_record(engine_path)
    if record.target != "tensorrt":
        raise SrganError(f"{engine_path}: not a srgan_fast TensorRT artifact")
    built_with = record.libraries.get("tensorrt")
    trt = import_tensorrt()
    if built_with and built_with.split("+")[0] != trt.__version__.split("+")[0]:
        raise SrganError(f"{engine_path}: built with TensorRT {built_with}, this is {trt.__version__}: rebuild it")
    return record.sidecar


class PycudaRunner:
    """Run an engine on numpy float32 NCHW arrays with pycuda: no torch needed.

    Host staging buffers are page-locked and device buffers are reused while shapes repeat.
    """

    def __init__(self, engine_path, device: int = 0, verify: bool = True):
        import numpy as np
        import pycuda.driver as cuda

        trt = import_tensorrt()
        self.np, self.cuda, self.trt = np, cuda, trt
        self.sidecar = check_sidecar(engine_path) if verify else None
        cuda.init()
        self.ctx = cuda.Device(device).retain_primary_context()
        self.ctx.push()
        try:
            self.logger = make_logger(trt)
            self.runtime, self.engine = deserialize(trt, self.logger, Path(engine_path))
            self.context = self.engine.create_execution_context()
            self.stream = cuda.Stream()
            self.input_name, self.output_name = io_names(trt, self.engine)
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


def _main(argv=None) -> int:
    """``python -m srgan_fast.engines.tensorrt_pycuda ENGINE INPUT.npy OUTPUT.npy`` (float32 NCHW [0, 1])."""
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
