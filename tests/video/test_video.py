"""Video pipeline: tiny videos made here with PyAV, upscaled with the tiny torch generator.

Each run decodes, upscales and encodes a 24-frame 32x24 clip; the checks are what a user would
lose first: frames, timestamps, audio, rotation/colour tags, content, and a clean failure.
"""
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

from conftest import as_started_from_a_terminal, slow_job_script  # noqa: E402
from srgan_fast import video  # noqa: E402
from srgan_fast.image import tiling  # noqa: E402
from srgan_fast.engines.torch_engine import TorchEngine  # noqa: E402
from srgan_fast.errors import SrganError  # noqa: E402

from clips import FPS, H, N, W, make_video  # noqa: E402,F401 - the clip maker


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {
        "aac": make_video(d / "aac.mp4"),
        "silent": make_video(d / "silent.mp4", audio=None),
        "vfr": make_video(d / "vfr.mkv", vfr=True),
        "tagged": make_video(d / "tagged.mp4", audio=None, rotation=90,
                             colour={"colorspace": 1, "color_primaries": 1, "color_trc": 1,
                                     "color_range": 2}),
        "pcm_subs": make_video(d / "pcm_subs.mkv", audio="pcm_s16le", subtitles=True),
        "faststart": make_video(d / "faststart.mp4", faststart=True),
    }


@pytest.fixture
def engine(tiny_generator):
    return TorchEngine(tiny_generator, device="cpu")


def frames_of(path, fmt=None):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        out = [(f.pts * f.time_base, f) for f in c.decode(s)]
    return out


def packets_of(path, kind):
    with av.open(str(path)) as c:
        streams = getattr(c.streams, kind)
        if not streams:
            return []
        return [(p.pts * p.time_base, bytes(p)) for p in c.demux(streams[0]) if p.size]


def audio_seconds(path):
    with av.open(str(path)) as c:
        return sum(f.samples for f in c.decode(c.streams.audio[0])) / c.streams.audio[0].sample_rate


def assert_no_leftovers(folder, allowed=()):
    left = sorted(p.name for p in Path(folder).iterdir() if p.name not in allowed)
    assert left == [], f"files left behind: {left}"


def test_every_frame_timestamp_and_audio_packet_kept(clips, engine, tmp_path):
    dst = tmp_path / "out.mp4"
    stats = video.upscale_video(clips["aac"], dst, engine, progress=False)
    src_frames, out_frames = frames_of(clips["aac"]), frames_of(dst)
    assert stats["frames_in"] == stats["frames_out"] == len(out_frames) == N
    assert [t for t, _ in out_frames] == [t for t, _ in src_frames]
    assert {(f.width, f.height) for _, f in out_frames} == {(4 * W, 4 * H)}
    # Audio is copied bit for bit: same packets, same times.
    assert packets_of(dst, "audio") == packets_of(clips["aac"], "audio")
    assert [s["action"] for s in stats["streams"]] == ["copied"]
    assert stats["codec"] == "libx264" and stats["pix_fmt"] == "yuv420p"


def test_variable_frame_rate_survives(clips, engine, tmp_path):
    src_times = [t for t, _ in frames_of(clips["vfr"])]
    assert len(set(np.diff([float(t) for t in src_times]).round(3))) > 5   # really VFR
    dst = tmp_path / "vfr_out.mkv"
    video.upscale_video(clips["vfr"], dst, engine, progress=False, batch=3)
    assert [t for t, _ in frames_of(dst)] == src_times
    assert packets_of(dst, "audio") == packets_of(clips["vfr"], "audio")


def test_no_audio_into_mkv_keeps_times_to_its_millisecond_clock(clips, engine, tmp_path):
    dst = tmp_path / "silent.mkv"
    stats = video.upscale_video(clips["silent"], dst, engine, progress=False, batch=5,
                                max_frames=12)
    out = [float(t) for t, _ in frames_of(dst)]
    assert stats["streams"] == [] and len(out) == 12
    assert np.abs(np.array(out) - np.arange(12) / FPS).max() <= 0.0005 + 1e-9


def test_lossless_output_equals_image_path(clips, engine, tmp_path):
    """ffv1 RGB is lossless: the video path must give the image path's pixels (tiled, too)."""
    dst = tmp_path / "lossless.mkv"
    video.upscale_video(clips["silent"], dst, engine, codec="ffv1", pix_fmt="bgr0", tile=16,
                        max_frames=6, batch=4, progress=False)
    src = [f for _, f in frames_of(clips["silent"])][:6]
    out = [f for _, f in frames_of(dst)]
    assert len(out) == len(src) == 6
    for fs, fo in zip(src[1::2], out[1::2]):
        lr = torch.from_numpy(fs.to_ndarray(format="rgb24")).permute(2, 0, 1)[None].float() / 255
        ref = (tiling.upscale(engine, lr, tile=0)[0].clamp(0, 1) * 255).round().to(torch.uint8)
        got = torch.from_numpy(fo.to_ndarray(format="rgb24")).permute(2, 0, 1)
        diff = (got.int() - ref.int()).abs()
        # Tiles and batches only reorder float sums: at most a rare 1-level rounding flip.
        assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3


def test_default_lossy_output_is_close_to_image_path(clips, engine, tmp_path):
    dst = tmp_path / "lossy.mp4"
    video.upscale_video(clips["silent"], dst, engine, progress=False, max_frames=8)
    fs, fo = frames_of(clips["silent"])[7][1], frames_of(dst)[7][1]
    lr = torch.from_numpy(fs.to_ndarray(format="rgb24")).permute(2, 0, 1)[None].float() / 255
    ref = tiling.upscale(engine, lr, tile=0)[0].clamp(0, 1) * 255
    got = torch.from_numpy(fo.to_ndarray(format="rgb24")).permute(2, 0, 1).float()
    psnr = 10 * torch.log10(255**2 / ((got - ref) ** 2).mean())
    assert psnr > 30, f"H.264 crf 18 output only {psnr:.1f} dB from the image path"


def test_ten_bit_source_stays_ten_bit(engine, tmp_path):
    src = tmp_path / "ten.mkv"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "qp": "0"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p10le"
        for i in range(4):
            ramp = np.linspace(0, 65535, W * H * 3).reshape(H, W, 3)
            f = av.VideoFrame.from_ndarray(np.roll(ramp, 97 * i).astype(np.uint16), format="rgb48le")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode())
    dst = tmp_path / "ten_out.mkv"
    stats = video.upscale_video(src, dst, engine, progress=False)
    assert stats["pix_fmt"] == "yuv420p10le" and stats["frames_out"] == 4
    fs, fo = frames_of(src)[2][1], frames_of(dst)[2][1]
    assert fo.format.name == "yuv420p10le"
    lr = torch.from_numpy(fs.to_ndarray(format="rgb48le").astype(np.float32) / 65535)
    ref = tiling.upscale(engine, lr.permute(2, 0, 1)[None], tile=0)[0].clamp(0, 1) * 65535
    got = torch.from_numpy(fo.to_ndarray(format="rgb48le").astype(np.float32)).permute(2, 0, 1)
    psnr = 10 * torch.log10(65535**2 / ((got - ref) ** 2).mean())
    assert psnr > 33, f"10-bit output only {psnr:.1f} dB from the image path"


def test_rotation_and_colour_tags_kept(clips, engine, tmp_path):
    dst = tmp_path / "tagged_out.mp4"
    video.upscale_video(clips["tagged"], dst, engine, progress=False, max_frames=4)
    src, out = frames_of(clips["tagged"])[0][1], frames_of(dst)[0][1]
    assert src.rotation == 90 and out.rotation == 90
    for k in ("colorspace", "color_primaries", "color_trc", "color_range"):
        assert getattr(out, k) == getattr(src, k), k
    assert out.color_range == 2     # full range stays full range


def test_untagged_source_gets_explicit_bt601_tags(clips, engine, tmp_path):
    dst = tmp_path / "tags.mp4"
    video.upscale_video(clips["silent"], dst, engine, progress=False, max_frames=4)
    out = frames_of(dst)[0][1]
    assert (out.colorspace, out.color_range) == (6, 1)    # SMPTE170M (BT.601), limited range


def test_segment(clips, engine, tmp_path):
    dst = tmp_path / "segment.mp4"
    stats = video.upscale_video(clips["aac"], dst, engine, start=0.25, duration="0.5",
                                progress=False)
    times = [float(t) for t, _ in frames_of(dst)]
    assert stats["frames_out"] == len(times) == 12                 # frames 6..17 of 24 fps
    assert times[0] == 0 and times[-1] == pytest.approx(11 / FPS)
    assert audio_seconds(dst) == pytest.approx(0.5, abs=2 * 1024 / 44100)


def test_audio_reencoded_and_subtitles_dropped_when_container_cannot_hold_them(clips, engine,
                                                                             tmp_path):
    messages = []
    dst = tmp_path / "reenc.m4v"
    stats = video.upscale_video(clips["pcm_subs"], dst, engine, progress=False,
                                log=messages.append)
    actions = {s["type"]: s["action"] for s in stats["streams"]}
    assert actions == {"audio": "re-encoded to aac", "subtitle": "dropped"}
    assert len(messages) == 2 and all("stream #" in m for m in messages)
    with av.open(str(dst)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
        assert c.streams.audio[0].codec_context.name == "aac"
    # AAC adds at most one frame of padding at each end.
    assert audio_seconds(dst) == pytest.approx(audio_seconds(clips["pcm_subs"]), abs=2 * 1024 / 44100)


def test_subtitles_and_pcm_copied_into_matroska(clips, engine, tmp_path):
    dst = tmp_path / "copy.mkv"
    stats = video.upscale_video(clips["pcm_subs"], dst, engine, progress=False)
    assert [s["action"] for s in stats["streams"]] == ["copied", "copied"]
    assert packets_of(dst, "subtitles") == packets_of(clips["pcm_subs"], "subtitles")
    assert packets_of(dst, "audio") == packets_of(clips["pcm_subs"], "audio")
    with av.open(str(dst)) as c:
        assert c.streams.subtitles[0].language == "fra"


class Interrupting:
    """Wraps an engine and raises ``exc`` on the given call, as Ctrl-C would."""

    def __init__(self, inner, exc, after=2):
        self.inner, self.exc, self.calls = inner, exc, 0
        self.after = after

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def __call__(self, lr):
        self.calls += 1
        if self.calls > self.after:
            raise self.exc
        return self.inner(lr)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError("engine failed")])
def test_interruption_leaves_no_file_and_no_threads(clips, engine, tmp_path, exc):
    threads = threading.active_count()
    dst = tmp_path / "out.mp4"
    with pytest.raises(type(exc) if isinstance(exc, BaseException) else exc):
        video.upscale_video(clips["aac"], dst, Interrupting(engine, exc), batch=2, progress=False)
    assert not dst.exists()
    assert_no_leftovers(tmp_path)
    assert threading.active_count() == threads


@pytest.fixture
def weights(tmp_path, tiny_generator):
    from srgan_fast.checkpoints import save_generator

    path = tmp_path / "tiny.safetensors"
    save_generator(tiny_generator, path, dtype=torch.float32)
    return path


def run_cli(capsys, *argv):
    rc = video.main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return rc, err


def test_cli_end_to_end(clips, weights, tmp_path, capsys):
    dst = tmp_path / "cli.mp4"
    rc, err = run_cli(capsys, clips["aac"], dst, "--backend", "torch", "--weights", weights,
                      "--no-progress", "--duration", "0:00.25", "--crf", "23", "--preset", "fast")
    assert rc == 0, err
    assert len(frames_of(dst)) == 6 and "wrote" in err


def test_cli_ctrl_c_exits_130_without_output(clips, engine, tmp_path, capsys, monkeypatch):
    import srgan_fast.engines as engines

    monkeypatch.setattr(engines, "open_engine",
                        lambda *a, **k: Interrupting(engine, KeyboardInterrupt, after=1))
    dst = tmp_path / "out" / "cli.mp4"
    dst.parent.mkdir()
    rc, err = run_cli(capsys, clips["aac"], dst, "--no-progress", "--batch", "1")
    assert rc == 130 and err.splitlines()[-1] == "interrupted"
    assert_no_leftovers(dst.parent)


def _bad_inputs(clips, tmp):
    junk = tmp / "junk.mp4"
    junk.write_bytes(os.urandom(4096))
    empty = tmp / "empty.mp4"
    empty.touch()
    data = clips["faststart"].read_bytes()
    cut_mp4 = tmp / "cut.mp4"
    cut_mp4.write_bytes(data[: len(data) * 6 // 10])      # header intact, frames missing
    data = clips["vfr"].read_bytes()
    cut_mkv = tmp / "cut.mkv"
    cut_mkv.write_bytes(data[: len(data) * 6 // 10])
    audio_only = tmp / "audio_only.mp4"
    with av.open(str(clips["aac"])) as i, av.open(str(audio_only), "w") as o:
        a = o.add_stream_from_template(i.streams.audio[0])
        for p in i.demux(i.streams.audio[0]):
            if p.size:
                p.stream = a
                o.mux(p)
    unknown = tmp / "unknown_codec.mkv"       # a codec id no decoder knows
    unknown.write_bytes(clips["vfr"].read_bytes().replace(b"V_MPEG4/ISO/AVC", b"V_QQQQQ/ISO/QQQ"))
    file_as_folder = tmp / "plain_file"
    file_as_folder.write_text("x")
    good = clips["silent"]
    return {
        "corrupt": (junk, tmp / "o1.mp4", "not a readable video"),
        "empty": (empty, tmp / "o2.mp4", "empty file"),
        "missing": (tmp / "nope.mp4", tmp / "o3.mp4", "no such file"),
        "truncated mp4": (cut_mp4, tmp / "o4.mp4", "truncated"),
        "truncated mkv": (cut_mkv, tmp / "o5.mkv", "truncated"),
        "no video": (audio_only, tmp / "o6.mp4", "no video stream"),
        "unknown codec": (unknown, tmp / "o7.mp4", "cannot decode"),
        "output is input": (good, good.parent / "." / good.name, "overwrite the input"),
        "output folder missing": (good, tmp / "no_dir" / "o.mp4", "does not exist"),
        "output folder is a file": (good, file_as_folder / "o.mp4", "is not a folder"),
        "bad output extension": (good, tmp / "o.txt", "unsupported output extension"),
        "bad codec": (good, tmp / "o8.webm", "cannot encode with 'libx264'"),
    }


BAD = ["corrupt", "empty", "missing", "truncated mp4", "truncated mkv", "no video",
       "unknown codec", "output is input", "output folder missing", "output folder is a file",
       "bad output extension", "bad codec"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_error(case, clips, weights, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    src, dst, words = _bad_inputs(clips, tmp_path / "in")[case]
    extra = ["--codec", "libx264"] if case == "bad codec" else []
    before = set(os.listdir(tmp_path / "in"))
    rc, err = run_cli(capsys, src, dst, "--backend", "torch", "--weights", weights,
                      "--no-progress", *extra)
    assert rc == 2
    lines = [ln for ln in err.splitlines() if not ln.startswith("engine: ")]   # the engine that ran, if it opened
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in err, err
    assert set(os.listdir(tmp_path / "in")) == before       # nothing written, no temp file


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_unwritable_output_folder(clips, engine, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(SrganError, match="not writable"):
            video.upscale_video(clips["silent"], ro / "o.mp4", engine, progress=False)
    finally:
        ro.chmod(0o755)


def test_parser_options_and_conflicts():
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=1)       # a host parser's own --batch wins
    video.add_video_arguments(p)
    args = p.parse_args(["--start", "1:05", "--duration", "2.5", "--crf", "20", "--pix-fmt",
                         "yuv444p", "--codec", "libx265"])
    opts = video.video_options(args)
    assert opts == {"codec": "libx265", "crf": 20, "pix_fmt": "yuv444p", "preset": None,
                    "start": 65.0, "duration": 2.5, "batch": 1, "queue": 8}
    assert video.parse_time("01:02:03.5") == 3723.5
    with pytest.raises(SrganError):
        video.parse_time("1h")
    assert {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"} <= video.VIDEO_EXTS


def test_measure_pipeline_reports_both_rates(clips, engine):
    from bench.pipelines import measure_pipeline

    m = measure_pipeline(engine, clips["silent"], frames=4, batch=2)
    assert m["frames"] == 4 and m["lr_size"] == (W, H)
    assert m["bare_fps"] > 0 and m["pipeline_fps"] > 0 and m["io_fps"] > 0
    assert m["efficiency"] == pytest.approx(m["pipeline_fps"] / m["bare_fps"])
    assert 0 < m["engine_busy"] <= 1 and m["repeats"] == 1 and m["cpu_efficiency"] > 0


def test_existing_output_is_replaced_only_with_overwrite(clips, weights, tmp_path, capsys):
    dst = tmp_path / "exists.mp4"
    dst.write_bytes(b"keep me")
    args = [clips["silent"], dst, "--backend", "torch", "--weights", weights, "--no-progress",
            "--duration", "0.1"]
    rc, err = run_cli(capsys, *args)
    assert rc == 2 and err == f"error: {dst}: exists (use --overwrite to replace it)"
    assert dst.read_bytes() == b"keep me"
    rc, err = run_cli(capsys, *args, "--overwrite")
    assert rc == 0, err
    assert len(frames_of(dst)) == 3


def test_every_output_path_checked_before_the_engine_opens(clips, tmp_path, capsys, monkeypatch):
    import srgan_fast.engines as engines

    def never(*a, **k):
        raise AssertionError("engine opened before the output path was checked")

    monkeypatch.setattr(engines, "open_engine", never)
    rc, err = run_cli(capsys, clips["silent"], tmp_path / "missing" / "o.mp4", "--no-progress")
    assert rc == 2 and "does not exist" in err


def _start_slow_job(src, dst, preexec_fn):
    """The video command on a slow engine in a subprocess, once its pipeline is running."""
    import subprocess
    import sys

    script = slow_job_script("video", [src, dst, "--no-progress", "--batch", "1"])
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=Path(__file__).parents[2], preexec_fn=preexec_fn)
    assert proc.stdout.readline().strip() == "engine"
    return proc


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_end_like_ctrl_c(signame, clips, tmp_path):
    import signal

    out = tmp_path / "out"
    out.mkdir()
    proc = _start_slow_job(clips["aac"], out / "o.mp4", as_started_from_a_terminal)
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (130, 143), err
    assert [ln for ln in err.strip().splitlines() if not ln.startswith("engine: ")] == ["interrupted"]
    assert_no_leftovers(out)


def test_a_job_started_under_nohup_outlives_sighup(clips, tmp_path):
    """nohup ignores SIGHUP so that the job survives its terminal: the job keeps it ignored."""
    import signal

    def nohup():
        as_started_from_a_terminal()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    proc = _start_slow_job(clips["aac"], tmp_path / "o.mp4", nohup)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "interrupted" not in err, err
    assert len(frames_of(tmp_path / "o.mp4")) == len(frames_of(clips["aac"]))
