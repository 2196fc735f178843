"""srgan_fast benchmark suite: every backend x precision x size, timed and compared in one run.

``python -m bench`` (see bench/README.md) runs the suite and writes results.json,
results.md and results.png; ``pytest bench/ --benchmark-only`` runs the same cases as
pytest-benchmark tests. Modules: backends (the cases and skip reasons), runner (timing and
memory), peak (measured device peak), pipelines (image/video end to end), report (outputs),
env (the stamp), worker (one case per process), cli (the command).
"""
