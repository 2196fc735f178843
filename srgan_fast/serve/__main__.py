"""``python -m srgan_fast.serve``."""
import sys

from .cli import main

sys.exit(main())
