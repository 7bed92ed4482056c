"""Which tensor a runtime computed is which PyTorch module's output, read from the exported graph.

The exported ONNX graph (the artifact every other format is converted from) names its nodes after
module scopes (:mod:`compare.diagnose.onnx_graph`). A module *call* is a connected piece of the nodes in
its scope (the shared backbone runs twice: two pieces, ordered as the graph runs them, which is
the order PyTorch called it); its output is the one tensor of that piece read outside it (when a
module returns a tuple, the one whose shape is that of a tuple element). A module without a node
(``Identity`` where BatchNorm was folded) has no tensor: it is not in the graph.

A runtime's tensors are named after the source graph's tensors in one of two ways
(:data:`NAMING`):

- ``names``: the runtime keeps ONNX tensor names. ONNX Runtime keeps them verbatim; MNN names each
  op after its output tensor, adding ``__matmul_converted`` / ``__before_tr``; ops it inserts to
  copy layouts (``..._raster_<k>``) copy an *input* and are listed as inserted.
- ``values``: the names carry no ONNX tensor name (litert-torch: PyTorch module paths such as
  ``.../Backbone_backbone/.../Conv2d_0;1``; onnx2tf, before 0.1: ``model/tf.math.add_61/Add``; pnnx/ncnn:
  numbered blobs). The map is calibrated once on the format's fp32 artifact: each tensor is the
  source tensor(s) it equals (max abs difference under 1e-3 of the tensor's scale, after the
  runner's layout rules) on the same input, and the map is then applied by name to every precision
  of that format (ncnn's fp16 ``.param`` is the fp32 one; ai-edge-quantizer's fp16 and int8 models keep
  every fp32 tensor name). At fp32 a departure therefore shows as a run of unmatched tensors, not as an error.

Fused activations: a tensor named after a node whose single consumer is an elementwise activation
(MNN's Conv+ReLU) carries the activation's output when that output appears nowhere else; the
producer's own output is then *fused away*: not computed by that runtime.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from compare.diagnose.onnx_graph import RUNTIME_SUFFIX, PartMapper
from compare.runners.taps import Tapped
from zoo.layouts import NHWC, from_layout, shape_in

#: how each runtime's tensor names relate to the source ONNX graph; a runtime not listed is calibrated by value
NAMING: dict[str, str] = {"onnxruntime": "names", "mnn": "names", "tflite": "values", "ncnn": "values"}
#: ops a runtime folds into the op before them (the value then carries the activation)
ACTIVATIONS = frozenset({"Relu", "Clip", "Sigmoid", "LeakyRelu", "HardSigmoid", "HardSwish", "Tanh"})
_INSERTED = ("_raster_",)  # MNN: a layout copy of an op's input
CALIBRATION_TOLERANCE = 1e-3
_KERAS_MODEL = re.compile(r"(^|;)model_\d+/")


def naming(runtime: str) -> str:
    """``names`` or ``values`` (see the module's docstring)."""
    return NAMING.get(runtime, "values")


@dataclass(frozen=True)
class Site:
    """One call of one module of the PyTorch model and the source-graph tensor carrying its output."""

    module: str
    call: int
    tensor: str | None
    order: int  # position of the tensor's producer in the source graph (-1: none)
    note: str | None = None

    @property
    def key(self) -> str:
        return self.module if self.call == 0 else f"{self.module}#{self.call}"


class SourceGraph:
    """The exported ONNX graph: nodes in order, producers/consumers, each node's module path."""

    def __init__(self, path, mapper: PartMapper, shapes: dict[str, tuple], fallback=None):
        """``shapes``: every tensor's shape, from a run of the graph (ONNX shape inference is not always complete);
        ``fallback(node_name)``: the module path of a node whose name ``mapper`` cannot read (split graphs)."""
        import onnx

        self.shapes = shapes
        #: every tensor's value on the input the runtimes' first tap ran (set by the caller): decides layouts a shape cannot
        self.values: dict[str, np.ndarray] | None = None
        model = onnx.load(str(path), load_external_data=False)
        self.nodes = list(model.graph.node)
        self.outputs = {o.name for o in model.graph.output}
        self.mapper = mapper
        self.module = [mapper.module_of(n.name) or (fallback and fallback(n.name)) or "" for n in self.nodes]
        self.position = {t: i for i, n in enumerate(self.nodes) for t in n.output if t}
        self.op_type = {t: n.op_type for n in self.nodes for t in n.output if t}
        self.node_output = {n.name: n.output[0] for n in self.nodes if n.output}  # a fused kernel names its output after the node
        self.readers: dict[str, list[int]] = {}  # tensor -> indices of the nodes reading it
        for i, n in enumerate(self.nodes):
            for t in n.input:
                self.readers.setdefault(t, []).append(i)

    def module_of_tensor(self, tensor: str) -> str:
        i = self.position.get(tensor)
        return self.module[i] if i is not None else ""

    def _pieces(self, members: list[int]) -> list[list[int]]:
        parent = {i: i for i in members}

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i in members:
            for t in self.nodes[i].input:
                j = self.position.get(t)
                if j is not None and j in parent:
                    parent[find(i)] = find(j)
        groups: dict[int, list[int]] = {}
        for i in members:
            groups.setdefault(find(i), []).append(i)
        return sorted(groups.values(), key=min)

    def sites(self, calls: dict[str, list[list[tuple]]]) -> list[Site]:
        """One :class:`Site` per module call; ``calls[module]`` = per call, the shapes it returned."""
        out = []
        for module, shapes in calls.items():
            members = [i for i, m in enumerate(self.module) if m == module or m.startswith(module + ".")]
            pieces = self._pieces(members) if members else []
            for call, returned in enumerate(shapes):
                if not pieces:
                    out.append(Site(module, call, None, -1, "no op in the exported graph"))
                    continue
                if len(pieces) != len(shapes):
                    out.append(Site(module, call, None, -1, f"{len(shapes)} call(s) but {len(pieces)} piece(s) in the graph"))
                    continue
                inside = set(pieces[call])
                leaving = [t for i in sorted(inside) for t in self.nodes[i].output
                           if t and (t in self.outputs or any(j not in inside for j in self.readers.get(t, ())))]
                if len(leaving) > 1:
                    leaving = [t for t in leaving if self.shape(t) in returned] or leaving
                if len(leaving) != 1:
                    out.append(Site(module, call, None, -1, f"{len(leaving)} tensors leave the module's ops"))
                    continue
                out.append(Site(module, call, leaving[0], self.position[leaving[0]]))
        return sorted(out, key=lambda s: (s.order, -s.module.count(".")))

    def shape(self, tensor: str) -> tuple | None:
        return self.shapes.get(tensor)

    def fused_into(self, tensor: str) -> str | None:
        """The activation output a runtime's op named ``tensor`` may carry (single elementwise consumer)."""
        readers = self.readers.get(tensor, ())
        if len(readers) == 1 and tensor not in self.outputs:
            node = self.nodes[readers[0]]
            if node.op_type in ACTIVATIONS and len(node.output) == 1:
                return node.output[0]
        return None


# -- layouts ------------------------------------------------------------------------------------
def layouts(runtime_shape: tuple, shape: tuple) -> list[str]:
    """Layout rules that turn an array of ``runtime_shape`` into ``shape`` (the runners' rules:
    NHWC / NWC from onnx2tf, squeezed batch or 1x1 spatial axes from ncnn and MNN)."""
    rs, s = tuple(runtime_shape), tuple(shape)
    if int(np.prod(rs)) != int(np.prod(s)):
        return []
    rules = []
    if [d for d in rs if d != 1] == [d for d in s if d != 1]:
        rules.append("reshape")
    if len(s) == 4 and list(rs) == shape_in(s, NHWC):  # also when C == H == W: a value decides
        rules.append("nhwc")
    if len(s) == 3 and rs == (s[0], s[2], s[1]):
        rules.append("nwc")
    return rules


def to_source_layout(array: np.ndarray, rule: str, shape: tuple) -> np.ndarray:
    """``array`` in the source graph's layout and shape by ``rule`` (see :func:`layouts`)."""
    if rule == "nhwc":
        return from_layout(array.reshape(shape_in(shape, NHWC)), NHWC)
    if rule == "nwc":
        return array.reshape(shape[0], shape[2], shape[1]).transpose(0, 2, 1)
    return array.reshape(shape)


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| over max |b| (inf when not finite)."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not np.isfinite(a64).all():
        return float("inf")
    return float(np.abs(a64 - b64).max() / max(float(np.abs(b64).max()), 1e-12))


# -- maps ---------------------------------------------------------------------------------------
@dataclass
class TensorMap:
    """Runtime tensor name -> [(source tensor, layout rule)]; what could not be named, and why."""

    links: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    inserted: list[str] = field(default_factory=list)  # layout copies of an input, weights converted at run time
    unmatched: list[str] = field(default_factory=list)


def map_by_names(taps: Iterable[Tapped], source: SourceGraph) -> TensorMap:
    """Names the runtime kept: verbatim, or without MNN's suffixes; fused activations applied. A
    QDQ model's ``DequantizeLinear`` copy of a tensor is that tensor's value (what the next op reads);
    the quantize/dequantize tensors the quantizer inserted are listed as inserted."""
    result, shapes = TensorMap(), source.shapes
    taps = list(taps)
    for t in taps:
        if t.constant or t.inserted or any(mark in t.name for mark in _INSERTED):
            result.inserted.append(t.name)
            continue
        # a DequantizeLinear copy carries its input's value, or the graph output's name the quantizer moved onto it
        candidates = (t.alias, t.name) if t.alias is not None else (t.name, RUNTIME_SUFFIX.sub("", t.name), source.node_output.get(t.name))
        if t.alias is not None and not any(k in source.position for k in candidates):  # a dequantized graph input
            result.inserted.append(t.name)
            continue
        key = next((k for k in candidates if k in source.position), None)
        rules = layouts(t.array.shape, shapes[key]) if key and key in shapes else []
        if key is None or not rules:
            result.unmatched.append(t.name)
            continue
        if len(rules) > 1 and source.values is not None and key in source.values:  # C == H == W: NCHW or NHWC? the value decides
            rules.sort(key=lambda rule: relative_error(to_source_layout(t.array, rule, shapes[key]), source.values[key]))
        result.links[t.name] = [(key, rules[0])]
    named = {src for links in result.links.values() for src, _ in links}
    for name, links in result.links.items():
        src = links[0][0]
        fused = source.fused_into(src)
        if fused and fused not in named:
            result.links[name] = [(fused, links[0][1])]
    return result


def map_by_values(taps: Iterable[Tapped], values: dict[str, np.ndarray], tolerance: float = CALIBRATION_TOLERANCE) -> TensorMap:
    """Each runtime tensor -> every source tensor it equals (``values``: the source graph run on
    the same input) under one of the layout rules; calibrate on an fp32 artifact."""
    by_size: dict[int, list[str]] = {}
    for name, v in values.items():
        by_size.setdefault(v.size, []).append(name)
    result = TensorMap()
    for t in taps:
        if t.constant or t.inserted:
            result.inserted.append(t.name)
            continue
        links = []
        for name in by_size.get(t.array.size, ()):
            for rule in layouts(t.array.shape, values[name].shape):
                if relative_error(to_source_layout(t.array, rule, values[name].shape), values[name]) < tolerance:
                    links.append((name, rule))
                    break
        if links:
            result.links[t.name] = links
        else:
            result.unmatched.append(t.name)
    return result


def canonical_name(name: str) -> str:
    """A tensor name without the Keras model counter onnx2tf's names carry (``model_87/...``: the
    number depends on how many Keras models the converting process built before)."""
    return _KERAS_MODEL.sub(r"\1model/", name)


def apply_map(taps: list[Tapped], calibrated: TensorMap, source: SourceGraph) -> TensorMap:
    """A calibrated map restricted to ``taps`` (another precision of the same format): names it
    does not know are unmatched; a known name whose shape changed is unmatched too."""
    result = TensorMap()
    known = {canonical_name(k): v for k, v in calibrated.links.items()}
    inserted = {canonical_name(k) for k in calibrated.inserted}
    for t in taps:
        links = [] if t.inserted else [(src, rule) for src, rule in known.get(canonical_name(t.name), ())
                                       if src in source.shapes and rule in layouts(t.array.shape, source.shapes[src])]
        if links:
            result.links[t.name] = links
        elif t.constant or t.inserted or canonical_name(t.name) in inserted:
            result.inserted.append(t.name)
        else:
            result.unmatched.append(t.name)
    return result


def located(taps: list[Tapped], tmap: TensorMap, source: SourceGraph) -> dict[str, tuple[int, np.ndarray]]:
    """Source tensor -> (execution index of the first runtime tensor carrying it, its value in the
    source graph's layout and shape)."""
    found: dict[str, tuple[int, np.ndarray]] = {}
    for i, t in enumerate(taps):
        for src, rule in tmap.links.get(t.name, ()):
            if src not in found:
                found[src] = (i, to_source_layout(t.array, rule, source.shapes[src]))
    return found


def tap_drift(runner, taps: list[Tapped], pair: dict[str, np.ndarray]) -> float | None:
    """Largest relative difference (max abs / max |value|) between the outputs among ``taps`` and
    the runner's own run on ``pair``: what exposing every tensor changed (ONNX Runtime fuses no QDQ
    group whose tensors are graph outputs, so a tapped int8 model runs its float simulation).
    None when the tap holds no output."""
    if not runner.is_loaded:
        runner.load()
    outputs = runner.infer(pair)
    by_name = {t.name: t.array for t in taps}
    worst = None
    for b in runner.manifest.outputs:
        tapped = next((by_name[n] for n in (b.runtime_name, b.name) if n in by_name), None)
        expected = outputs.get(b.name)
        if tapped is None or expected is None:
            continue
        errs = [relative_error(to_source_layout(tapped, rule, expected.shape), expected) for rule in layouts(tapped.shape, expected.shape)]
        if errs:
            worst = max(worst or 0.0, min(errs))
    return worst
