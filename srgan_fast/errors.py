"""User-facing errors and the CLI wrapper that turns them into one line and a non-zero exit."""
from __future__ import annotations

import argparse
import functools
import sys

from .signals import terminate_as_interrupt


class SrganError(Exception):
    """An error caused by the user's input or environment; printed as one line, no traceback."""


def cli(main):
    """Decorate a ``main(argv) -> int`` so bad input ends as ``error: ...`` and exit code 2.

    Ctrl-C, SIGTERM and SIGHUP end with exit code 130 and one line (``signals``). Anything else is
    a bug and keeps its traceback.
    """
    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            with terminate_as_interrupt():   # SIGTERM/SIGHUP clean up like Ctrl-C
                return main(argv) or 0
        except SrganError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    return wrapper


def require(module: str, extra: str, label: str | None = None):
    """Import an optional library, or raise a one-line install hint naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise SrganError(f"{label or module} is not installed: pip install 'srgan_fast[{extra}]'") from None


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each option's default, except the empty ones (None, False)."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)
