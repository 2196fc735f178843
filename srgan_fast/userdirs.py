"""Where srgan_fast keeps what it derives on the user's machine: the one home of that location.

``$SRGAN_FAST_CACHE``, else ``~/.cache/srgan_fast``: built engine artifacts (``build.cache``)
and ``--detail`` blends of the shipped generators (``detail``). Everything in it can be
deleted at any time; it is made again when needed.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("SRGAN_FAST_CACHE") or Path.home() / ".cache" / "srgan_fast")
