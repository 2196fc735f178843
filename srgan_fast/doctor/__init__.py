"""``python -m srgan_fast.doctor``: prove every backend on this machine in one command.

For each backend x precision the machine can run: parity against the fp32 PyTorch reference on
real pixels shipped in ``data/`` (odd sizes), the fp16/bf16 range of every layer, tiled == whole
frame, speed against the device's measured peak, and memory. A backend that cannot run says why
and how to get it in one line. Modules: ``cli`` (options, the run), ``availability`` (why not,
how to get it), ``spawn``/``worker`` (one process per backend), ``checks`` (parity, tiling),
``ranges`` (per-layer range), ``speed`` with ``measure`` and ``peak`` (timing, memory, peak; the
bench uses these too), ``inputs`` (the shipped crops), ``versions``, ``report`` (JSON schema and
text table), ``table`` (the README's "what has been run where").

A command: it may import every stage (engines, build, eval); no stage imports it.
"""
