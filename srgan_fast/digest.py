"""Content hashes of files: the one home (weights identity, artifact and part verification)."""
from __future__ import annotations

import hashlib


def file_sha256(path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest() if hasattr(hashlib, "file_digest") \
            else _blocks(f)


def _blocks(f) -> str:  # Python 3.10 has no hashlib.file_digest
    h = hashlib.sha256()
    while block := f.read(1 << 20):
        h.update(block)
    return h.hexdigest()
