"""``python -m srgan_fast.quality``: the command's stable name; it lives in ``srgan_fast.eval.quality``."""
from .eval.quality import main

if __name__ == "__main__":
    raise SystemExit(main())
