"""``python -m srgan_fast.train``."""
from .trainer import main

raise SystemExit(main())
