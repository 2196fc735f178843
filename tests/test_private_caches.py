"""The test suite writes nothing to the user's home: Triton's cache and Ray's files and token go
to the private temporary folder tests/conftest.py sets up (issue 18)."""
import importlib.util
import os
from pathlib import Path

import pytest

HOME = Path.home().resolve()


def _outside_home(path) -> bool:
    return HOME not in Path(path).resolve().parents and Path(path).resolve() != HOME


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_triton_caches_outside_the_home():
    knobs = pytest.importorskip("triton.knobs", reason="a Triton without knobs (< 3.3)")
    assert _outside_home(knobs.cache.dir) and _outside_home(knobs.cache.home_dir)


def test_ray_writes_outside_the_home():
    assert _outside_home(os.environ["RAY_TMPDIR"])
    # A token in the environment: Ray then never generates ~/.ray/auth_token.
    assert os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        assert _outside_home(os.environ["RAY_AUTH_TOKEN_PATH"])
