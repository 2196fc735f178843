"""``python -m srgan_fast.doctor``."""
import sys

from .cli import main

sys.exit(main())
