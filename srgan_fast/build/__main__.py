"""``python -m srgan_fast.build``."""
import sys

from .cli import main

sys.exit(main())
