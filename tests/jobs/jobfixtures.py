"""Fixtures and helpers shared by the video job tests (import the fixtures by name).

A tiny clip (32x24, 24 fps, a keyframe every 6 frames, AAC audio) and the tiny torch generator,
so each run takes seconds. The reference is an uninterrupted single-process segmented run; every
other way of running the same job must decode to exactly its frames.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

av = pytest.importorskip("av")

import jobhooks  # noqa: E402
from clips import make_video  # noqa: E402 - the clip maker (32x24, 24 fps, AAC)
from conftest import as_started_from_a_terminal, tiny_weights  # noqa: E402
from srgan_fast import video  # noqa: E402

REPO = Path(__file__).parents[2]


def decoded(path):
    """(timestamp, RGB bytes) of every frame: what 'the same frames' means."""
    with av.open(str(path)) as c:
        return [(f.pts * f.time_base, f.to_ndarray(format="rgb24").tobytes())
                for f in c.decode(c.streams.video[0])]


def packets_of(path, kind):
    with av.open(str(path)) as c:
        streams = getattr(c.streams, kind)
        if not streams:
            return []
        return [(p.pts * p.time_base, bytes(p)) for p in c.demux(streams[0]) if p.size]


def audio_packets(path):
    return packets_of(path, "audio")


def cli_args(src, dst, weights, *extra):
    return [str(src), str(dst), "--backend", "torch", "--weights", str(weights), "--no-progress",
            "--segment-seconds", "0.25", *map(str, extra)]


_SESSION: dict = {}      # made once per session, whichever test module asks first


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return tiny_weights(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """24 frames, a keyframe every 6: 0.25 s segments are 6 frames each."""
    if "clip" not in _SESSION:
        _SESSION["clip"] = make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", gop=6)
    return _SESSION["clip"]


@pytest.fixture(scope="module")
def reference(clip, weights, tmp_path_factory):
    """The uninterrupted single-process segmented run."""
    if "reference" not in _SESSION:
        dst = tmp_path_factory.mktemp("ref") / "ref.mp4"
        assert video.main(cli_args(clip, dst, weights)) == 0
        _SESSION["reference"] = dst, decoded(dst)
    return _SESSION["reference"]


def start_job(argv, *, environ=None, preexec_fn=None, **hooks):
    """The video command in a subprocess with the test hooks (``jobhooks``) installed, as if
    started in a terminal (Ctrl-C reaches it); ``environ``: more environment variables."""
    def child():
        as_started_from_a_terminal()
        if preexec_fn:
            preexec_fn()
    return subprocess.Popen([sys.executable, "-c", jobhooks.script(argv)], stderr=subprocess.PIPE,
                            text=True, cwd=REPO, env={**jobhooks.env(**hooks), **(environ or {})},
                            preexec_fn=child)


def wait_for(path: Path, proc, timeout=300):
    """Until ``path`` exists (a hook's barrier): the job is then exactly where the hook stops it.
    The timeout only turns a broken job into a failure instead of a hang."""
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the job ended (rc {proc.returncode}) before its barrier: "
                                 f"{proc.stderr.read()}")
        if time.time() - t0 > timeout:
            raise AssertionError("the job never reached its barrier")
        time.sleep(0.01)
    return path.read_text()


def done_parts(work: Path) -> int:
    return len(json.loads((work / "manifest.json").read_text())["done"])
