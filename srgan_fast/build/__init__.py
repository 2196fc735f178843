"""Build an inference artifact: ``python -m srgan_fast.build --precision fp16``.

Exports the generator to ONNX, makes the fp16 or INT8 variant when asked, compiles it for the
target (TensorRT on an NVIDIA GPU, else OpenVINO on the CPU), checks it against the PyTorch
reference, and writes the artifact with a sealed JSON sidecar into the cache. An artifact that is
already in the cache for the same inputs is reused (``--rebuild`` forces a new build).

Modules, in pipeline order: ``spec`` (what to build, the cache key), ``export`` (fp32 ONNX and
the parity checks), ``fp16`` and ``int8`` (the graph variants), ``cache`` (the cache folder,
shared exports, publishing), ``gate`` (the INT8 quality gate), ``pipeline`` (the steps and the
cache lookup), ``cli``. The build may import the backends' build hooks
(``engines.tensorrt_builder``) and open engines to verify; no runtime backend imports the build.
"""
__all__ = ["ensure_artifact", "main", "parse_args", "rebuild_stale"]


def __getattr__(name):  # lazily: importing one build module (e.g. gate) should not load the pipeline
    if name in ("main", "parse_args"):
        from . import cli

        return getattr(cli, name)
    if name in ("ensure_artifact", "rebuild_stale"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
