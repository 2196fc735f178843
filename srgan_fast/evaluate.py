"""``python -m srgan_fast.evaluate``: the command's stable name; it lives in ``srgan_fast.eval.evaluate``."""
from .eval.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
