"""``python -m srgan_fast.interpolate``: the command's stable name; it lives in ``srgan_fast.train.interpolate``."""
from .train.interpolate import main

if __name__ == "__main__":
    raise SystemExit(main())
