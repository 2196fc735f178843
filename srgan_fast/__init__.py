"""srgan_fast: SRGAN 4x super-resolution with fast, verified engines.

Kept light on purpose: submodules import torch and the optional backends when used.
"""
__version__ = "0.1.0"
