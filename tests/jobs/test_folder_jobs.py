"""Folders with --workers and --ray: the same outputs as one process, resume by skipping
finished outputs (a 0-byte one is redone), a bad image costs only itself."""
import importlib.util

import numpy as np
import pytest
from PIL import Image

from srgan_fast import upscale


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from conftest import tiny_weights

    return tiny_weights(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("in")
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (12 + i, 16, 3), dtype=np.uint8)).save(d / f"im{i}.png")
    (d / "bad.png").write_bytes(b"not a png")
    return d


def run(src, dst, weights, *extra):
    return upscale.main([str(src), str(dst), "--backend", "torch", "--weights", str(weights),
                         "--no-progress", *map(str, extra)])


def pixels(folder):
    return {p.name: np.asarray(Image.open(p)).tobytes() for p in sorted(folder.glob("*.png"))}


@pytest.fixture(scope="module")
def reference(folder, weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    assert run(folder, out, weights) == 1          # bad.png fails, the rest are written
    return pixels(out)


def test_two_workers_write_what_one_process_writes_and_resume(folder, weights, reference,
                                                              tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "im0.png").touch()                     # 0 bytes: never "complete"
    assert run(folder, out, weights, "--workers", "2") == 1
    err = capsys.readouterr().err
    assert "error: " in err and "bad.png" in err and "im0.png" in err   # redone, and said so
    assert pixels(out) == reference and len(reference) == 4
    before = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    assert run(folder, out, weights, "--workers", "2") == 1     # only bad.png is left to try
    assert "keeping 4 image(s)" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == before


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="ray is not installed (pip install 'srgan_fast[distributed]')")
def test_ray_writes_what_one_process_writes(folder, weights, reference, tmp_path):
    out = tmp_path / "out"
    assert run(folder, out, weights, "--ray") == 1
    assert pixels(out) == reference


def test_a_link_loop_with_two_workers_writes_each_image_once(weights, tmp_path, capsys):
    """The issue's case: `f/loop -> .` with --recursive --workers 2 wrote 41 nested copies."""
    src = tmp_path / "f"
    src.mkdir()
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(src / "a.png")
    (src / "loop").symlink_to(".")
    out = tmp_path / "out"
    assert run(src, out, weights, "--recursive", "--workers", "2") == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["a.png"]
    assert "link to a folder (not followed" in capsys.readouterr().err
