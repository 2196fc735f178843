"""Upscale videos 4x with any engine: ``python -m srgan_fast.video IN.mp4 OUT.mp4``.

A streaming PyAV pipeline in three overlapping stages joined by bounded queues, so memory stays
flat whatever the video's length and the engine is not left waiting on FFmpeg (``stages``).
Modules: ``options`` (the ``VideoOptions`` dataclass and CLI arguments), ``source`` (path checks,
probing, demuxing), ``plan`` (output streams, colour, range), ``stages`` (decode / engine /
encode), ``pipeline`` (one pass: ``upscale_video``), ``cli``. Long jobs in segments, resumable
and spread over workers, live in ``srgan_fast.jobs``.

May import: the core and ``image`` (``cli``, a command, also the engines and ``jobs``). Never
``eval``, ``train`` or ``build``: the engine is passed in.
"""
from .cli import main, parse_args, run_video
from .options import VIDEO_EXTS, VideoOptions, add_video_arguments, parse_time, video_options
from .pipeline import upscale_video
from .source import check_paths, probe
from .stages import upscale_frames

__all__ = ["VIDEO_EXTS", "VideoOptions", "add_video_arguments", "check_paths", "main",
           "parse_args", "parse_time", "probe", "run_video", "upscale_frames", "upscale_video", "video_options"]
