"""Folder jobs: the tree mirrored with --recursive, every skipped entry named with its reason,
incomplete outputs redone on resume, and the overlapped pipeline giving the same files as one at a time."""
import numpy as np
import pytest
from PIL import Image

from srgan_fast import upscale
from srgan_fast.image import folder, job as imagejob
from srgan_fast.checkpoints import save_generator

from conftest import NearestEngine


def _png(path, seed=0, size=(20, 24)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "in"
    _png(src / "a.png", 1)
    _png(src / "sub" / "b.png", 2)
    _png(src / "sub" / "deeper" / "c.png", 3)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).quantize(8).save(src / "d.gif")
    (src / "notes.txt").write_text("not an image")
    (src / ".hidden.png").write_bytes(b"")
    (src / "clip.mp4").write_bytes(b"\x00" * 10)
    return src


@pytest.fixture
def weights(tiny_generator, tmp_path):
    save_generator(tiny_generator, tmp_path / "tiny.safetensors")
    return tmp_path / "tiny.safetensors"


def _run(args, weights, capsys):
    code = upscale.main([*map(str, args), "--backend", "torch", "--weights", str(weights), "--no-progress"])
    return code, capsys.readouterr().err


def test_skipped_entries_are_named_with_reasons(tree, tmp_path, weights, capsys):
    code, err = _run([tree, tmp_path / "out"], weights, capsys)
    assert code == 0, err
    assert "skipped 4 entries" in err
    for text in ("1 hidden: .hidden.png", "1 subfolder (use --recursive): sub", "1 not an image file: notes.txt",
                 "1 video (upscale videos one at a time): clip.mp4"):
        assert text in err
    assert "wrote 2 images" in err  # a.png and d.gif (written as d.png)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "d.png"]


def test_recursive_mirrors_the_tree(tree, tmp_path, weights, capsys):
    code, err = _run([tree, tmp_path / "out", "--recursive"], weights, capsys)
    assert code == 0, err
    out = tmp_path / "out"
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a.png", "d.png", "sub/b.png", "sub/deeper/c.png"]
    assert "wrote 4 images" in err
    assert Image.open(out / "sub" / "deeper" / "c.png").size == (96, 80)


def test_output_folder_inside_the_input_is_not_walked(tree, weights, capsys):
    code, err = _run([tree, tree / "up", "--recursive"], weights, capsys)
    assert code == 0, err
    code, err = _run([tree, tree / "up", "--recursive"], weights, capsys)
    assert "the output folder: up" in err and "keeping 4 image(s)" in err and "wrote 0 images" in err


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_incomplete_outputs_are_redone(tmp_path, weights, capsys, damage):
    src = tmp_path / "in"
    for i in range(3):
        _png(src / f"{i}.png", i)
    out = tmp_path / "out"
    code, err = _run([src, out], weights, capsys)
    assert code == 0 and "wrote 3 images" in err
    good = (out / "1.png").read_bytes()
    bad = {"empty": b"", "truncated": good[: len(good) // 2], "garbage": b"x" * 500}[damage]
    (out / "1.png").write_bytes(bad)
    assert folder.incomplete(out / "1.png") is not None
    assert folder.incomplete(out / "0.png") is None
    code, err = _run([src, out], weights, capsys)
    assert code == 0
    assert "redoing" in err and "1.png" in err and "keeping 2 image(s)" in err and "wrote 1 image" in err
    assert (out / "1.png").read_bytes() == good


def test_pipeline_equals_one_at_a_time_and_survives_bad_files(tmp_path, capsys):
    src = tmp_path / "in"
    jobs = []
    for i in range(6):
        path = _png(src / f"{i}.png", i, size=(20 + i, 30 - i))
        jobs.append((path, tmp_path / "piped" / f"{i}.png"))
    (src / "3.png").write_bytes(b"broken")
    written, failed = folder.run_jobs(NearestEngine(), jobs, progress=False)
    assert (written, failed) == (5, 1)
    assert "error: " in capsys.readouterr().err
    for i, (s, d) in enumerate(jobs):
        if i == 3:
            assert not d.exists()
            continue
        alone = tmp_path / "alone" / f"{i}.png"
        alone.parent.mkdir(exist_ok=True)
        imagejob.upscale_file(NearestEngine(), s, alone)
        assert np.array_equal(np.asarray(Image.open(d)), np.asarray(Image.open(alone)))
    assert not list((tmp_path / "piped").glob(".*partial*"))


def test_interrupt_leaves_no_partial_files(tmp_path):
    src = tmp_path / "in"
    jobs = [(_png(src / f"{i}.png", i), tmp_path / "out" / f"{i}.png") for i in range(5)]

    class Interrupting(NearestEngine):
        calls = 0

        def _run(self, lr):
            Interrupting.calls += 1
            if Interrupting.calls == 3:
                raise KeyboardInterrupt
            return super()._run(lr)
    with pytest.raises(KeyboardInterrupt):
        folder.run_jobs(Interrupting(), jobs, progress=False)
    out = tmp_path / "out"
    assert not list(out.glob(".*partial*"))
    for p in out.glob("*.png"):  # whatever was written is complete
        assert folder.incomplete(p) is None
