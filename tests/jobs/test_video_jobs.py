"""Long video jobs: segments at keyframes, resume, local workers, Ray (issue 11).

A tiny clip and the tiny torch generator (``jobfixtures``), so each run takes seconds. The
reference is an uninterrupted single-process segmented run; every other way of running the same
job must decode to exactly its frames. Interruptions are in test_interrupts.py.
"""
import json

import numpy as np
import pytest

from jobfixtures import (audio_packets, av, cli_args, clip, decoded, packets_of,  # noqa: F401
                         reference, weights)
from srgan_fast import video
from srgan_fast.errors import SrganError


def test_segments_start_at_keyframes_and_cover_every_frame_once(clip):
    from srgan_fast.jobs.segments import index_source, plan_segments

    index = index_source(clip)
    segs = plan_segments(index, 0.25, video.VideoOptions())
    assert [s.frames for s in segs] == [6, 6, 6, 6]
    assert [s.first_frame for s in segs] == [0, 6, 12, 18]
    assert all(s.lo_pts in index.keyframes for s in segs[1:])
    assert segs[0].lo_pts is None and segs[-1].hi_pts is None
    # Longer segments: at least 0.3 s, so every second keyframe; a range cuts the ends.
    assert [s.frames for s in plan_segments(index, 0.3, video.VideoOptions())] == [12, 12]
    part = plan_segments(index, 0.25, video.VideoOptions(start=0.1, duration=0.5))
    assert [s.frames for s in part] == [9, 3]              # frames 3..11, 12..14


def test_default_segments_only_for_long_inputs_or_several_workers():
    from fractions import Fraction

    from srgan_fast.jobs.segments import SourceIndex, segment_length

    def index(seconds):
        return SourceIndex(list(range(seconds * 24)), list(range(0, seconds * 24, 48)),
                           Fraction(1, 24), 0.0)

    opts = video.VideoOptions()
    assert segment_length(None, index(200), opts) == 60          # long: 60 s segments
    assert segment_length(None, index(10), opts) == 0            # short: one pass
    assert segment_length(None, index(10), opts, spread=2) == pytest.approx((10 - 1 / 24) / 8)
    assert segment_length(0.5, index(10), opts) == 0.5
    assert segment_length(None, index(200), video.VideoOptions(duration=30)) == 0
    with pytest.raises(SrganError):
        segment_length(-1, index(10), opts)


def test_short_clip_runs_in_one_pass_by_default(clip, weights, tmp_path, capsys):
    dst = tmp_path / "o.mp4"
    args = cli_args(clip, dst, weights, "--keep-parts")
    args.remove("--segment-seconds")
    args.remove("0.25")
    assert video.main(args) == 0
    assert len(decoded(dst)) == 24 and not (tmp_path / "o.mp4.parts").exists()


def test_segmented_run_keeps_every_frame_time_and_audio(clip, weights, reference):
    dst, frames = reference
    src_times = [t for t, _ in decoded(clip)]
    assert [t for t, _ in frames] == src_times
    assert audio_packets(dst) == audio_packets(clip)
    assert not (dst.parent / f"{dst.name}.parts").exists()       # removed after the join
    one_pass = dst.parent / "one_pass.mp4"
    assert video.main(cli_args(clip, one_pass, weights, "--segment-seconds", "0")) == 0
    # Parts restart the encoder at each keyframe, so pixels differ slightly from one pass...
    a = np.frombuffer(b"".join(f for _, f in frames), np.uint8).astype(float)
    b = np.frombuffer(b"".join(f for _, f in decoded(one_pass)), np.uint8).astype(float)
    assert 10 * np.log10(255**2 / np.mean((a - b) ** 2)) > 35      # ...but not visibly


def test_resume_keeps_good_parts_and_redoes_a_corrupt_one(clip, weights, reference, tmp_path,
                                                           capsys):
    dst = tmp_path / "out.mp4"
    assert video.main(cli_args(clip, dst, weights, "--keep-parts")) == 0
    work = tmp_path / "out.mp4.parts"
    manifest = json.loads((work / "manifest.json").read_text())
    assert sorted(manifest["done"]) == ["0", "1", "2", "3"]
    assert manifest["settings"]["crf"] == 18 and "model_sha256" in manifest["settings"]
    part = work / "part-00002.mov"
    part.write_bytes(part.read_bytes()[:-100])           # truncated: must be redone
    dst.unlink()
    capsys.readouterr()
    assert video.main(cli_args(clip, dst, weights)) == 0
    assert "resuming: 3 of 4 segments already done" in capsys.readouterr().err
    assert decoded(dst) == reference[1]
    assert not work.exists()


def test_changed_settings_are_refused_until_restart(clip, weights, tmp_path, capsys):
    dst = tmp_path / "out.mp4"
    assert video.main(cli_args(clip, dst, weights, "--keep-parts", "--duration", "0.3")) == 0
    dst.unlink()
    capsys.readouterr()
    assert video.main(cli_args(clip, dst, weights, "--crf", "30", "--duration", "0.3")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "crf 18.0 -> 30.0" in err and "--restart" in err
    assert not dst.exists()
    assert video.main(cli_args(clip, dst, weights, "--crf", "30", "--duration", "0.3",
                               "--restart")) == 0
    assert "resuming" not in capsys.readouterr().err and len(decoded(dst)) == 8   # t < 0.3 s


def test_disk_full_in_a_part_is_one_line_and_keeps_finished_parts(clip, weights, tmp_path,
                                                                  capsys, monkeypatch):
    import errno

    from srgan_fast.jobs import parts

    real, calls = parts.atomic_output, []

    def filling(path):
        calls.append(path)
        if len(calls) == 3:
            raise SrganError(f"{path}: no space left on the device "
                             f"(nothing was written under that name)") from OSError(errno.ENOSPC, "full")
        return real(path)

    monkeypatch.setattr(parts, "atomic_output", filling)
    dst = tmp_path / "out.mp4"
    assert video.main(cli_args(clip, dst, weights)) == 2
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if not ln.startswith("engine: ")]   # the engine that ran
    assert len(lines) == 1 and "no space left" in lines[0]
    done = json.loads((tmp_path / "out.mp4.parts" / "manifest.json").read_text())["done"]
    assert sorted(done) == ["0", "1"] and not dst.exists()


def test_workers_need_segments(clip, weights, tmp_path, capsys):
    rc = video.main(cli_args(clip, tmp_path / "o.mp4", weights, "--workers", "2",
                             "--segment-seconds", "0"))
    assert rc == 2 and "segments" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["vfr", "tagged", "subtitles", "ten_bit"])
def test_segments_keep_timestamps_tags_streams_and_depth(kind, weights, tmp_path):
    from clips import make_video

    src = tmp_path / {"vfr": "v.mkv", "tagged": "t.mp4", "subtitles": "s.mkv",
                      "ten_bit": "ten.mkv"}[kind]
    if kind == "ten_bit":
        _ten_bit_clip(src)
    else:
        make_video(src, gop=6, vfr=kind == "vfr", audio="pcm_s16le" if kind == "subtitles" else "aac",
                   subtitles=kind == "subtitles", rotation=90 if kind == "tagged" else None,
                   colour={"colorspace": 1, "color_primaries": 1, "color_trc": 1,
                           "color_range": 2} if kind == "tagged" else None)
    dst, one = tmp_path / f"out{src.suffix}", tmp_path / f"one{src.suffix}"
    assert video.main(cli_args(src, dst, weights, "--segment-seconds", "0.2")) == 0
    assert [t for t, _ in decoded(dst)] == [t for t, _ in decoded(src)]
    # Tags, depth and streams as a one-pass run writes them (a few frames of one suffice).
    assert video.main(cli_args(src, one, weights, "--segment-seconds", "0", "--duration", "0.1")) == 0
    with av.open(str(one)) as a, av.open(str(dst)) as b:
        assert [s.type for s in a.streams] == [s.type for s in b.streams]
        fa, fb = next(a.decode(video=0)), next(b.decode(video=0))
        for k in ("colorspace", "color_primaries", "color_trc", "color_range", "rotation"):
            assert getattr(fb, k) == getattr(fa, k), k
        assert fb.format.name == fa.format.name
    for stream in ("audio", "subtitles"):
        assert packets_of(dst, stream) == packets_of(src, stream)


def _ten_bit_clip(path):
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=24, options={"preset": "ultrafast", "qp": "0", "g": "4",
                                                      "keyint_min": "4", "sc_threshold": "0"})
        v.width, v.height, v.pix_fmt = 32, 24, "yuv420p10le"
        for i in range(12):
            ramp = np.linspace(0, 65535, 32 * 24 * 3).reshape(24, 32, 3)
            f = av.VideoFrame.from_ndarray(np.roll(ramp, 97 * i).astype(np.uint16), format="rgb48le")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode())


def test_workers_share_one_build_of_a_cpu_artifact(monkeypatch):
    """The parent builds a CPU backend's artifact once before the workers start (they then hit
    the cache); torch needs no artifact and a GPU build belongs to each GPU's worker."""
    import srgan_fast.build.pipeline as pipeline
    from srgan_fast.jobs.engine_spec import EngineSpec

    calls = []
    monkeypatch.setattr(pipeline, "ensure_artifact", lambda *a, **k: calls.append(a))
    EngineSpec(backend="openvino", precision="int8", weights="w.safetensors").prepare()
    assert calls == [("w.safetensors", "int8", "openvino")]
    EngineSpec(backend="torch").prepare()
    EngineSpec(backend="onnxruntime", device="cuda:1").prepare()
    EngineSpec(backend="openvino", artifact="built/").prepare()
    assert len(calls) == 1
