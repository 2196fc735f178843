"""fp16 variant of the graph (for TensorRT's strongly typed builder) and its exact check.

Weights and activations fp16, input and output stay float32 with a Cast at each boundary, so
callers and buffers never change. Activation ranges measured on calibration images decide which
layers would overflow fp16 (with a margin, ``FP16_SAFE_LIMIT``); those layers stay fp32 and the
report names them. ``emulate_onnx`` runs a graph with exact fp16 storage semantics, the check a
CPU runtime cannot give.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import SrganError
# Layers whose calibration range exceeds FP16_SAFE_LIMIT stay fp32: a 4x margin (two binades below
# fp16's maximum) covers brighter or busier content than was seen. One home: ``fp16_range``.
from ..fp16_range import FP16_MAX, FP16_SAFE_LIMIT
from .export import INPUT_NAME, OUTPUT_NAME, need, ort_session, set_metadata

# Ops the low-precision conversion knows: every float input of these shares one dtype.
_LOWP_OPS = {"Conv", "PRelu", "Add", "Sub", "Mul", "Div", "Clip", "DepthToSpace", "Identity",
             "Relu", "LeakyRelu", "Tanh", "Sigmoid"}


def activation_ranges(path, images: list[torch.Tensor]) -> dict[str, float]:
    """Largest |value| of every tensor of the fp32 graph over ``images`` (ONNX Runtime, CPU)."""
    onnx = need("onnx")
    proto = onnx.load(str(path))
    inits = {i.name for i in proto.graph.initializer}
    names = [o for n in proto.graph.node for o in n.output if o and o not in inits]
    known = {o.name for o in proto.graph.output}
    for name in names:
        if name not in known:
            proto.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = ort_session(proto.SerializeToString())
    out_names = [o.name for o in sess.get_outputs()]
    ranges = dict.fromkeys(out_names, 0.0)
    ranges[INPUT_NAME] = 0.0
    for x in images:
        ranges[INPUT_NAME] = max(ranges[INPUT_NAME], float(x.abs().max()))
        for name, value in zip(out_names, sess.run(None, {INPUT_NAME: x.numpy()})):
            peak = float(np.max(np.abs(value))) if value.size else 0.0  # NaN/inf: overflows anyway
            ranges[name] = max(ranges[name], peak if np.isfinite(peak) else float("inf"))
    return ranges


class _Rewriter:
    """Rewrites a graph's nodes one by one into fp16 or fp32, casting where the two meet."""

    def __init__(self, graph, ranges: dict[str, float], limit: float, keep_fp32: set[str]):
        from onnx import TensorProto

        self.graph, self.ranges, self.keep_fp32 = graph, ranges, keep_fp32
        self.F32, self.F16 = TensorProto.FLOAT, TensorProto.FLOAT16
        self.inits = {i.name: i for i in graph.initializer}
        self.hot = {name for name, r in ranges.items() if not r <= limit}  # includes inf/NaN ranges
        self.avail = {i.name: self.F32 for i in graph.input}
        self.nodes, self.new_inits, self.casts, self.copies, self.kept = [], [], {}, {}, []

    def init_as(self, name: str, dtype) -> str:
        from onnx import numpy_helper

        src_init = self.inits[name]
        if src_init.data_type != self.F32 or dtype == self.F32:
            return name
        if name not in self.copies:
            arr = numpy_helper.to_array(src_init)
            if np.abs(arr).max(initial=0) > FP16_MAX:
                raise SrganError(f"weight {name} exceeds the fp16 range: cannot build an fp16 graph")
            self.copies[name] = f"{name}__fp16"
            self.new_inits.append(numpy_helper.from_array(arr.astype(np.float16), self.copies[name]))
        return self.copies[name]

    def cast_to(self, name: str, dtype) -> str:
        from onnx import helper

        key = (name, dtype)
        if key not in self.casts:
            self.casts[key] = f"{name}__to_{'fp16' if dtype == self.F16 else 'fp32'}"
            self.nodes.append(helper.make_node("Cast", [name], [self.casts[key]], to=dtype,
                                               name=f"cast_{self.casts[key]}"))
        return self.casts[key]

    def node(self, node) -> None:
        if node.op_type not in _LOWP_OPS:
            raise SrganError(f"fp16 conversion: unsupported op {node.op_type} ({node.name})")
        tensors = [t for t in list(node.input) + list(node.output) if t and t not in self.inits]
        reasons = [f"{t} reaches {self.ranges[t]:.3g}" for t in tensors if t in self.hot]
        fp32 = bool(reasons) or node.name in self.keep_fp32
        if fp32:
            self.kept.append({"node": node.name, "op": node.op_type,
                              "why": "; ".join(reasons) or "asked to keep fp32"})
        want = self.F32 if fp32 else self.F16
        inputs = [name if not name else self.init_as(name, want) if name in self.inits
                  else self.cast_to(name, want) if self.avail[name] != want else name for name in node.input]
        del node.input[:]
        node.input.extend(inputs)
        self.nodes.append(node)
        for out in node.output:
            self.avail[out] = want

    def finish(self) -> None:
        """fp32 graph outputs (a Cast where the last node runs fp16); drop unused initializers."""
        from onnx import helper

        for out in self.graph.output:
            if self.avail[out.name] != self.F32:
                inner = f"{out.name}__fp16"
                for n in self.nodes:
                    _rename(n.output, out.name, inner)
                    _rename(n.input, out.name, inner)
                self.nodes.append(helper.make_node("Cast", [inner], [out.name], to=self.F32,
                                                   name=f"cast_{out.name}_to_fp32"))
        graph = self.graph
        del graph.node[:]
        graph.node.extend(self.nodes)
        used = {i for n in graph.node for i in n.input}
        keep_inits = [i for i in graph.initializer if i.name in used] + self.new_inits
        del graph.initializer[:]
        graph.initializer.extend(keep_inits)
        del graph.value_info[:]


def convert_fp16(src, dst, ranges: dict[str, float] | None = None, limit: float = FP16_SAFE_LIMIT,
                 keep_fp32: set[str] | None = None) -> dict:
    """Write an fp16 copy of the fp32 graph ``src``; input and output stay float32.

    A node runs fp32 when any tensor it reads or writes has a measured range above ``limit``
    (or when its name is in ``keep_fp32``); Casts are inserted where fp16 and fp32 parts meet.
    Returns a report: the nodes kept fp32 and why, and the largest range seen.
    """
    onnx = need("onnx")
    ranges = ranges or {}
    proto = onnx.load(str(src))
    rw = _Rewriter(proto.graph, ranges, limit, set(keep_fp32 or ()))
    for node in list(proto.graph.node):
        rw.node(node)
    rw.finish()
    finite = [r for r in ranges.values() if np.isfinite(r)]
    report = {"limit": limit, "fp16_max": FP16_MAX, "max_abs": max(finite, default=0.0),
              "kept_fp32": rw.kept, "nodes": len([n for n in proto.graph.node if n.op_type != "Cast"]),
              "io": "float32 input and output, Cast to/from fp16 inside the graph"}
    set_metadata(proto, {"srgan_fast.graph": "fp16", "srgan_fast.fp16_kept_fp32": len(rw.kept)})
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(dst))
    return report


def emulate_onnx(path, images: list[torch.Tensor]) -> list[torch.Tensor]:
    """Run a (mixed fp16/fp32) graph of this network's ops with exact fp16 storage semantics.

    Every tensor typed fp16 in the graph is rounded to fp16 (overflow becomes inf, as on a GPU);
    arithmetic runs in fp32, as TensorRT's fp16 convolutions accumulate. ONNX Runtime's CPU
    provider is no such check: it runs fp16 nodes through inserted fp32 casts and removes the
    cast pairs between them, so an activation above 65504 never overflows there.
    """
    onnx = need("onnx")
    from onnx import numpy_helper

    F = torch.nn.functional
    proto = onnx.load(str(path))
    consts = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in proto.graph.initializer}
    types = {onnx.TensorProto.FLOAT: torch.float32, onnx.TensorProto.FLOAT16: torch.float16}
    outs = []
    for x in images:
        env = dict(consts)
        env[INPUT_NAME] = x.float()
        for node in proto.graph.node:
            a = {k.name: onnx.helper.get_attribute_value(k) for k in node.attribute}
            ins = [env[n] if n else None for n in node.input]
            dtype = next((t.dtype for t in ins if t is not None and t.is_floating_point()), torch.float32)
            f = [t.float() if t is not None else None for t in ins]
            op = node.op_type
            if op == "Conv":
                pads = a.get("pads", [0, 0, 0, 0])
                if pads[:2] != pads[2:]:
                    raise SrganError(f"emulate_onnx: asymmetric padding in {node.name}")
                y = F.conv2d(f[0], f[1], f[2] if len(f) > 2 else None, stride=a.get("strides", 1),
                             padding=tuple(pads[:2]), dilation=a.get("dilations", 1), groups=a.get("group", 1))
            elif op == "PRelu":
                y = torch.where(f[0] >= 0, f[0], f[0] * f[1])
            elif op in ("Add", "Sub", "Mul", "Div"):
                y = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}[op](f[0], f[1])
            elif op == "Clip":
                lo = f[1] if len(f) > 1 and f[1] is not None else None
                hi = f[2] if len(f) > 2 and f[2] is not None else None
                y = f[0].clamp(lo, hi)
            elif op == "DepthToSpace":
                b = a["blocksize"]
                mode = a.get("mode", b"DCR")
                if mode in (b"CRD", "CRD"):
                    y = F.pixel_shuffle(f[0], b)
                else:
                    n, c, h, w = f[0].shape
                    y = f[0].reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2).reshape(
                        n, c // (b * b), h * b, w * b)
            elif op == "Cast":
                dtype, y = types[a["to"]], f[0]
            elif op in ("Identity", "Relu"):
                y = f[0].clamp_min(0) if op == "Relu" else f[0]
            else:
                raise SrganError(f"emulate_onnx: unsupported op {op} ({node.name})")
            env[node.output[0]] = y.to(dtype)
        outs.append(env[OUTPUT_NAME].float())
    return outs


def _rename(field, old: str, new: str) -> None:
    for i, name in enumerate(field):
        if name == old:
            field[i] = new
