"""The test clip maker, shared by the video and job tests (PyAV needed)."""
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

W, H, N, FPS = 32, 24, 24, 24


def make_video(path, *, n=N, w=W, h=H, audio="aac", vfr=False, rotation=None, colour=None,
               subtitles=False, faststart=False, gop=None):
    """Write a small test clip: moving gradient video, optional sine audio and subtitles;
    ``gop``: a keyframe exactly every that many frames."""
    options = {"movflags": "faststart"} if faststart else {}
    enc = {"preset": "ultrafast", "crf": "10"}
    if gop:
        enc.update(g=str(gop), keyint_min=str(gop), sc_threshold="0")
    with av.open(str(path), "w", options=options) as c:
        v = c.add_stream("libx264", rate=FPS, options=enc)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.codec_context.time_base = Fraction(1, 1000) if vfr else Fraction(1, FPS)
        if rotation is not None:
            v.set_display_rotation(rotation)
        if colour:
            for k, val in colour.items():
                setattr(v.codec_context, k, val)
        a = c.add_stream(audio, rate=44100) if audio else None
        if a is not None:
            a.layout = "stereo"
        s = c.add_mux_stream("subrip", time_base=Fraction(1, 1000)) if subtitles else None
        if s is not None:
            s.metadata["language"] = "fra"
        rng = np.random.default_rng(0)
        t = 0
        for i in range(n):
            img = np.zeros((h, w, 3), np.uint8)
            img[..., 0] = (np.arange(w) * 8 + i * 10) % 256
            img[..., 1] = (np.arange(h)[:, None] * 9) % 256
            img[4:12, (2 * i) % w:(2 * i) % w + 6, 2] = 250
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = t if vfr else i
            t += int(rng.integers(15, 90)) if vfr else 1
            c.mux(v.encode(f))
        c.mux(v.encode())
        if a is not None:
            samples = int(n / FPS * 44100)
            sig = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)
            fmt = a.codec_context.format.name
            pts = 0
            for s0 in range(0, samples, 1024):
                chunk = np.ascontiguousarray(np.stack([sig[s0:s0 + 1024]] * 2))
                if fmt == "s16":
                    chunk = np.ascontiguousarray((chunk * 32767).astype(np.int16).T.reshape(1, -1))
                fr = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="stereo")
                fr.sample_rate, fr.pts = 44100, pts
                pts += chunk.shape[-1] if fmt != "s16" else chunk.shape[-1] // 2
                c.mux(a.encode(fr))
            c.mux(a.encode())
        if s is not None:
            for i, text in enumerate([b"hello", b"world"]):
                p = av.Packet(text)
                p.pts = p.dts = 100 + i * 400
                p.duration, p.time_base, p.stream = 300, Fraction(1, 1000), s
                c.mux(p)
    return Path(path)
