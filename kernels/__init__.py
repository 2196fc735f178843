"""Fused Triton kernels for the SRGAN generator (implicit-GEMM convs over NHWC).

Imported as ``srgan_fast.kernels``; importing it imports triton. Set ``TRITON_INTERPRET=1``
before the first import to run the kernels on the CPU (tests do; ``INTERPRET`` records what was
decided). Each op has a pure-PyTorch ``*_reference`` beside it. Layers are packed once with
``pack_conv`` into the layout the kernel reads.
"""
from .conv2d import INTERPRET, PackedConv, conv2d_nhwc, conv2d_nhwc_reference, pack_conv
from .conv9x9 import head_conv_prelu, head_conv_prelu_reference, tail_conv_map, tail_conv_map_reference
from .conv_prelu import conv3x3_add, conv3x3_add_reference, conv3x3_prelu, conv3x3_prelu_reference
from .conv_shuffle_prelu import conv3x3_shuffle_prelu, conv3x3_shuffle_prelu_reference

__all__ = [
    "INTERPRET", "PackedConv", "pack_conv", "conv2d_nhwc", "conv2d_nhwc_reference",
    "conv3x3_prelu", "conv3x3_prelu_reference", "conv3x3_add", "conv3x3_add_reference",
    "conv3x3_shuffle_prelu", "conv3x3_shuffle_prelu_reference",
    "head_conv_prelu", "head_conv_prelu_reference", "tail_conv_map", "tail_conv_map_reference",
]
