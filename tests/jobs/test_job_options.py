"""Job options that cannot work are one `error:` line before any work: a GPU this machine does not
have, non-finite or negative segment lengths, zero workers, a malformed Ray address."""
import numpy as np
import pytest
from PIL import Image

from jobfixtures import cli_args, clip, weights  # noqa: F401
from srgan_fast import upscale, video
from srgan_fast.jobs.engine_spec import gpu_count


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(d / "a.png")
    return d


MISSING_GPU = f"cuda:{gpu_count()}"      # one past the last GPU: missing on every machine

BAD = {
    "a GPU this machine lacks": ["--devices", MISSING_GPU],
    "not a device": ["--devices", "gpu7"],
    "no device": ["--devices", ","],
    "several GPUs, one missing": ["--devices", f"cpu,{MISSING_GPU}"],
    "--devices with --ray": ["--devices", "cpu", "--ray"],
    "NaN segments": ["--segment-seconds", "nan"],
    "infinite segments": ["--segment-seconds", "inf"],
    "negative segments": ["--segment-seconds", "-1"],
    "zero workers": ["--workers", "0"],
    "negative workers": ["--workers", "-2"],
    "an empty Ray address": ["--ray", ""],
    "a Ray address without port": ["--ray", "head"],
    "a Ray port out of range": ["--ray", "head:70000"],
    "a zero Ray timeout": ["--ray", "--ray-timeout", "0"],
    "a NaN Ray timeout": ["--ray-timeout", "nan"],
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("kind", ["video", "folder", "image"])
def test_bad_job_options_are_one_line_before_any_work(case, kind, clip, weights, image_folder,
                                                      tmp_path, capsys):
    src = {"video": clip, "folder": image_folder, "image": image_folder / "a.png"}[kind]
    dst = tmp_path / {"video": "o.mp4", "folder": "out", "image": "o.png"}[kind]
    argv = [str(src), str(dst), "--backend", "torch", "--weights", str(weights), "--no-progress",
            *BAD[case]]
    capsys.readouterr()
    assert upscale.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert list(tmp_path.iterdir()) == []                  # nothing written, not even a folder


@pytest.mark.parametrize("crf", ["nan", "inf", "-1"])
def test_a_crf_that_is_not_a_number_is_refused(crf, clip, weights, tmp_path, capsys):
    assert video.main(cli_args(clip, tmp_path / "o.mp4", weights, "--crf", crf)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--crf" in err
    assert list(tmp_path.iterdir()) == []


def test_a_single_device_is_honoured_not_ignored(clip, weights, tmp_path, monkeypatch):
    """--devices cpu reaches the engine of a one-process job (it used to be dropped)."""
    import srgan_fast.engines as engines

    seen, real = [], engines.open_engine

    def spy(*a, **k):
        seen.append(k.get("device"))
        return real(*a, **k)

    monkeypatch.setattr(engines, "open_engine", spy)
    assert video.main(cli_args(clip, tmp_path / "o.mp4", weights, "--devices", "cpu",
                               "--duration", "0.25")) == 0
    assert seen == ["cpu"]
    assert video.main(cli_args(clip, tmp_path / "p.mp4", weights, "--devices", "cpu",
                               "--segment-seconds", "0", "--duration", "0.25")) == 0
    assert seen == ["cpu", "cpu"]


def test_one_image_is_not_spread(image_folder, weights, tmp_path, capsys):
    rc = upscale.main([str(image_folder / "a.png"), str(tmp_path / "o.png"), "--backend", "torch",
                       "--weights", str(weights), "--workers", "2"])
    assert rc == 2 and "one image" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_local_workers_are_at_most_one_per_core(monkeypatch, capsys):
    from srgan_fast.jobs import engine_spec

    monkeypatch.setattr(engine_spec, "usable_cores", lambda: 2)
    monkeypatch.setattr(engine_spec, "gpu_count", lambda: 0)
    assert engine_spec.worker_slots(3, None) == [(None, 1), (None, 1)]
    assert "--workers 3 on 2 CPU cores: running 2 workers" in capsys.readouterr().err
    assert engine_spec.worker_slots(2, None) == [(None, 1), (None, 1)]
    assert engine_spec.worker_slots(1, "cpu") == [("cpu", 2)]
