"""The work folder OUT.parts/ is used only if srgan_fast made it, cleaned by name, never through a
link; a damaged manifest is one error naming --restart; a changed source is refused."""
import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from jobfixtures import av, cli_args, clip, decoded, reference, weights  # noqa: F401
from srgan_fast import video
from srgan_fast.errors import SrganError


def run(capsys, *argv):
    capsys.readouterr()
    rc = video.main([str(a) for a in argv])
    return rc, capsys.readouterr().err.strip()


def tree(folder):
    """Every entry under ``folder`` (links not followed) with its content or link target."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            out[os.path.relpath(p, folder)] = os.readlink(p) if os.path.islink(p) else \
                None if os.path.isdir(p) else open(p, "rb").read()
    return out


@pytest.mark.parametrize("restart", [[], ["--restart"]])
def test_a_folder_of_the_users_files_is_refused_and_untouched(clip, weights, tmp_path, capsys,
                                                               restart):
    work = tmp_path / "x.mp4.parts"
    work.mkdir()
    (work / "diary.txt").write_text("mine")
    (work / "part-00000.mov").write_text("also mine")
    rc, err = run(capsys, *cli_args(clip, tmp_path / "x.mp4", weights, *restart))
    assert rc == 2 and len(err.splitlines()) == 1 and "uses only a work folder it made" in err
    assert "move it away or choose another output name" in err
    assert tree(work) == {"diary.txt": b"mine", "part-00000.mov": b"also mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.mp4.parts"]   # no output, no lock


@pytest.mark.parametrize("restart", [[], ["--restart"]])
@pytest.mark.parametrize("kind", ["link to a folder", "link to nowhere", "file"])
def test_a_work_folder_that_is_a_link_or_a_file_is_refused(clip, weights, tmp_path, capsys,
                                                           kind, restart):
    users = tmp_path / "users"
    users.mkdir()
    (users / "part-00000.mov").write_text("mine")
    work = tmp_path / "x.mp4.parts"
    if kind == "file":
        work.write_text("mine too")
    else:
        work.symlink_to(users if kind == "link to a folder" else tmp_path / "missing")
    before = tree(tmp_path)
    rc, err = run(capsys, *cli_args(clip, tmp_path / "x.mp4", weights, *restart))
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert ("is a symbolic link" if kind != "file" else "exists and is not a folder") in err
    assert tree(tmp_path) == before


def test_cleanup_removes_only_the_jobs_files_and_never_follows_a_link(clip, weights, reference,
                                                                      tmp_path, capsys):
    dst, work = tmp_path / "out.mp4", tmp_path / "out.mp4.parts"
    assert run(capsys, *cli_args(clip, dst, weights, "--keep-parts"))[0] == 0
    users = tmp_path / "users.mov"
    users.write_bytes((work / "part-00001.mov").read_bytes())      # same bytes: checksum matches
    (work / "part-00001.mov").unlink()
    (work / "part-00001.mov").symlink_to(users)                     # a link named like a part
    (work / "diary.txt").write_text("mine")
    (work / ".part-00002.abcdefgh.partial.mov").write_text("a killed run's temporary")
    dst.unlink()
    rc, err = run(capsys, *cli_args(clip, dst, weights))
    assert rc == 0, err
    assert "resuming: 3 of 4 segments already done" in err           # the link is not trusted
    assert "kept" in err and "diary.txt" in err
    assert decoded(dst) == reference[1]
    assert tree(work) == {"diary.txt": b"mine"}                      # ours gone, the user's kept
    assert users.read_bytes() and not users.is_symlink()             # the link's target intact


def test_an_empty_folder_is_used_and_left_in_place(clip, weights, reference, tmp_path, capsys):
    dst, work = tmp_path / "out.mp4", tmp_path / "out.mp4.parts"
    work.mkdir()
    assert run(capsys, *cli_args(clip, dst, weights))[0] == 0
    assert decoded(dst) == reference[1]
    assert work.is_dir() and not list(work.iterdir())               # it was there before the job


def _damage(kind, data):
    if kind == "done key not an integer":
        data["done"]["x"] = data["done"].pop("0")
    elif kind == "done entry not an object":
        data["done"]["0"] = 3
    elif kind == "a JSON array":
        data = [data]
    elif kind == "bytes a string":
        data["done"]["0"]["bytes"] = "12"
    elif kind == "segments not a list":
        data["segments"] = {"0": data["segments"][0]}
    elif kind == "frames a bool":
        data["segments"][0]["frames"] = True
    elif kind == "source missing":
        del data["source"]
    elif kind == "another output":
        data["output"] = "y.mp4"
    elif kind == "an older version":
        del data["made_by"]
        data["version"] = 1
    elif kind == "not JSON":
        return "{not json"
    elif kind == "NaN seconds":
        return json.dumps(data).replace('"seconds": 0.25', '"seconds": NaN', 1)
    return json.dumps(data)


@pytest.fixture(scope="module")
def kept_job(clip, weights, tmp_path_factory):
    """A finished job's work folder (--keep-parts): 12 frames, 2 parts."""
    base = tmp_path_factory.mktemp("kept")
    argv = cli_args(clip, base / "out.mp4", weights, "--duration", "0.5")
    assert video.main([*argv, "--keep-parts"]) == 0
    return base / "out.mp4.parts"


@pytest.mark.parametrize("kind", ["done key not an integer", "done entry not an object",
                                  "a JSON array", "bytes a string", "segments not a list",
                                  "frames a bool", "source missing", "another output",
                                  "not JSON", "NaN seconds", "an older version"])
def test_a_damaged_manifest_is_one_line_naming_restart(clip, weights, reference, kept_job,
                                                       tmp_path, capsys, kind):
    dst, work = tmp_path / "out.mp4", tmp_path / "out.mp4.parts"
    shutil.copytree(kept_job, work)
    argv = cli_args(clip, dst, weights, "--duration", "0.5")
    m = work / "manifest.json"
    m.write_text(_damage(kind, json.loads(m.read_text())))
    rc, err = run(capsys, *argv)
    assert rc == 2 and len(err.splitlines()) == 1 and "--restart" in err, err
    assert not dst.exists()
    if kind == "a JSON array":         # and --restart recovers (the same for every kind)
        rc, err = run(capsys, *argv, "--restart")
        assert rc == 0 and "resuming" not in err, err
        assert decoded(dst) == reference[1][:12] and not work.exists()


def test_a_fifo_in_the_work_folder_never_hangs_the_job(clip, weights, reference, tmp_path,
                                                       capsys):
    dst, work = tmp_path / "out.mp4", tmp_path / "out.mp4.parts"
    argv = cli_args(clip, dst, weights)
    assert run(capsys, *argv, "--keep-parts")[0] == 0
    dst.unlink()
    (work / "part-00002.mov").unlink()
    os.mkfifo(work / "part-00002.mov")                 # read it and the job would wait forever
    rc, err = run(capsys, *argv)
    assert rc == 0 and "resuming: 3 of 4" in err, err
    assert decoded(dst) == reference[1]
    (tmp_path / "m.mp4.parts").mkdir()
    os.mkfifo(tmp_path / "m.mp4.parts" / "manifest.json")
    rc, err = run(capsys, *cli_args(clip, tmp_path / "m.mp4", weights))
    assert rc == 2 and "not a regular file" in err and "--restart" in err, err


def _raw_clip(path, frames=400, w=64, h=48):
    """Raw RGB frames (9 KiB each): every byte of the file but a few headers is picture."""
    rng = np.random.default_rng(3)
    with av.open(str(path), "w") as c:
        v = c.add_stream("rawvideo", rate=24)
        v.width, v.height, v.pix_fmt = w, h, "rgb24"
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                                           format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode())
    return path


def _sampled(path, mib=1 << 20):
    """The first, middle and last MiB: what the old fingerprint hashed."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        return [(f.seek(o), f.read(mib))[1]
                for o in (0, max(0, size // 2 - mib // 2), max(0, size - mib))]


def test_a_source_replaced_by_one_of_the_same_size_and_sampled_bytes_is_refused(
        weights, tmp_path, capsys):
    src, dst = _raw_clip(tmp_path / "raw.mov"), tmp_path / "out.mp4"
    argv = [src, dst, "--backend", "torch", "--weights", weights, "--no-progress",
            "--segment-seconds", "0.1", "--duration", "0.25", "--keep-parts"]
    assert run(capsys, *argv)[0] == 0
    dst.unlink()
    before, sampled, size = src.read_bytes(), _sampled(src), src.stat().st_size
    data = bytearray(before)
    offset = ((1 << 20) + size // 2 - (1 << 19)) // 2     # between the first and middle MiB
    data[offset] ^= 0xFF
    src.write_bytes(bytes(data))
    assert src.stat().st_size == size and _sampled(src) == sampled     # the case
    with av.open(str(src)) as c:                                       # still a valid video
        assert sum(1 for p in c.demux(video=0) if p.size) == 400
    rc, err = run(capsys, *argv)
    assert rc == 2 and "another source file" in err and "--restart" in err, err
    assert hashlib.sha256(before).digest() != hashlib.sha256(src.read_bytes()).digest()


def test_manifest_open_refuses_another_source_and_restart_starts_over(tmp_path):
    from srgan_fast.jobs.manifest import Manifest
    from srgan_fast.jobs.segments import Segment

    segs = [Segment(0, None, None, 0, 0, 24, 1.0)]
    work = tmp_path / "o.mp4.parts"
    src1, src2 = {"size": 1, "video_sha256": "a" * 64}, {"size": 1, "video_sha256": "b" * 64}
    m, resumed = Manifest.open(work, src1, {"crf": 18.0}, segs, restart=False)
    assert not resumed and (work / "manifest.json").is_file()
    m.record(0, {"bytes": 5, "sha256": "c" * 64, "frames": 24})
    m, resumed = Manifest.open(work, src1, {"crf": 18.0}, segs, restart=False)
    assert resumed and m.data["done"] == {"0": {"bytes": 5, "sha256": "c" * 64, "frames": 24}}
    with pytest.raises(SrganError, match="another source file.*--restart"):
        Manifest.open(work, src2, {"crf": 18.0}, segs, restart=False)
    m, resumed = Manifest.open(work, src2, {"crf": 18.0}, segs, restart=True)
    assert not resumed and m.data["done"] == {} and m.data["made_folder"] is True


def test_a_source_changed_while_the_job_runs_gives_no_part_and_no_output(clip, tmp_path):
    import shutil as sh

    from conftest import NearestEngine
    from srgan_fast.jobs.runners import InlineRunner
    from srgan_fast.jobs.video_job import run_segmented

    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    sh.copy(clip, src)

    class Touching(InlineRunner):         # the file is replaced after the job indexed it
        def run(self, items, on_done, bar=None):
            st = os.stat(src)
            os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
            super().run(items, on_done, bar)

    with pytest.raises(SrganError, match="changed while the job ran"):
        run_segmented(src, dst, video.VideoOptions(progress=False), 0.25,
                      Touching(NearestEngine), {"backend": "nearest"})
    assert not dst.exists()
    assert json.loads((tmp_path / "out.mp4.parts" / "manifest.json").read_text())["done"] == {}


def test_an_input_inside_the_work_folder_is_refused(clip, weights, tmp_path, capsys):
    import shutil as sh

    work = tmp_path / "x.mp4.parts"
    work.mkdir()
    sh.copy(clip, work / "part-00000.mov")      # named like a part: cleanup would delete it
    rc, err = run(capsys, *cli_args(work / "part-00000.mov", tmp_path / "x.mp4", weights))
    assert rc == 2 and "inside the job's work folder" in err, err
    assert (work / "part-00000.mov").read_bytes() == clip.read_bytes()
