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


def _written(out):
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_a_link_loop_is_not_followed_and_is_named(tmp_path, weights, capsys):
    """The issue's case: f/loop -> . with --recursive wrote 41 nested copies and exited 0."""
    src = tmp_path / "f"
    _png(src / "a.png", 1)
    _png(src / "sub" / "b.png", 2)
    (src / "loop").symlink_to(".")
    (src / "sub" / "up").symlink_to("..")
    (src / "gone").symlink_to(tmp_path / "missing")
    code, err = _run([src, tmp_path / "out", "--recursive"], weights, capsys)
    assert code == 0, err
    assert _written(tmp_path / "out") == ["a.png", "sub/b.png"]
    assert "2 link to a folder (not followed; --follow-links follows them): loop, sub/up" in err
    assert "1 broken link: gone" in err


def test_follow_links_walks_each_folder_once(tmp_path, weights, capsys):
    src, elsewhere = tmp_path / "f", tmp_path / "elsewhere"
    _png(src / "a.png", 1)
    _png(elsewhere / "c.png", 3)
    (src / "loop").symlink_to(".")
    (src / "more").symlink_to(elsewhere)
    (elsewhere / "back").symlink_to(src)
    code, err = _run([src, tmp_path / "out", "--recursive", "--follow-links"], weights, capsys)
    assert code == 0, err
    assert _written(tmp_path / "out") == ["a.png", "more/c.png"]
    assert "2 folder already walked (a link or mount loop): loop, more/back" in err


def test_an_input_linked_to_its_own_output_is_never_overwritten(tmp_path, weights, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    _png(src / "real.png", 1)
    _png(out / "a.png", 2)
    before = (out / "a.png").read_bytes()
    (src / "a.png").symlink_to(out / "a.png")
    code, err = _run([src, out, "--overwrite"], weights, capsys)
    assert code == 0 and "1 link to its own output file: a.png" in err, err
    assert (out / "a.png").read_bytes() == before


def test_stale_temporaries_of_this_folder_job_are_removed_and_only_those(tmp_path, weights, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    _png(src / "a.png", 1)
    _png(src / "sub" / "b.png", 2)
    (out / "sub").mkdir(parents=True)
    stale = [out / ".a.abcd_123.partial.png", out / "sub" / ".b.zz99yy88.partial.png"]
    kept = [out / ".a.mine.partial.png", out / ".c.abcd_123.partial.png", out / "notes.txt"]
    for f in stale + kept:
        f.write_bytes(b"x" * 10)
    code, err = _run([src, out, "--recursive"], weights, capsys)
    assert code == 0, err
    assert not any(f.exists() for f in stale) and all(f.exists() for f in kept)
    assert err.count("note: removed") == 2
    assert not (out / folder.LOCK_NAME).exists()


def test_a_second_job_on_the_same_output_folder_is_refused(tmp_path, weights, capsys):
    import os

    from srgan_fast.joblock import hold

    src, out = tmp_path / "in", tmp_path / "out"
    _png(src / "a.png", 1)
    out.mkdir()
    with hold(out, out / folder.LOCK_NAME):      # another job is writing here
        code, err = _run([src, out], weights, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and f"pid {os.getpid()}" in err
    assert list(out.iterdir()) == []
