"""Images in and out: file -> tensor -> engine -> tensor -> file, one image or a folder.

``read`` (decode, colour conversions, the checks that keep bad input out), ``write`` (what each
format can hold, atomic writes), ``pngstream`` (PNG streamed in row bands), ``pixels``
(quantization), ``imresize`` (MATLAB-compatible bicubic), ``tiling`` (exact tiles from the
receptive field), ``job`` (one image through an engine), ``folder`` (folders: plan, resume,
three overlapping stages).

May import: the core (``model``, ``errors``, ``atomic``, ``handoff``, ...). Never ``eval``,
``train``, ``build``, ``video``, ``jobs`` or the engines: an engine is passed in.
"""
