"""srgan_fast benchmark suite: every backend x precision x size, timed and compared in one run.

``python -m bench`` (see bench/README.md) runs the suite and writes results.json,
results.md and results.png; ``pytest bench/ --benchmark-only`` runs the same cases as
pytest-benchmark tests. Modules: backends (the cases and skip reasons), runner (one size: timing
and memory, with the probes of ``srgan_fast.doctor.measure``), pipelines (image/video end to
end), report (outputs), env (the stamp), worker (one case per process; the measured device peak
is ``srgan_fast.doctor.peak``, shared with the doctor), cli (the command). ``gpu_check.sh`` is
the one prepared GPU check (README: "On a GPU box").
"""
