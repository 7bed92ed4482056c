"""Which part of the model an op a runtime executed came from, read from the names export kept.

``torch.onnx.export`` names every ONNX node after the scopes of the modules it ran in, one path
segment per module call: ``/fusion/blocks.0/attn/qkv/MatMul``,
``/backbone/stages/stages.2/stages.2.1/expand/expand.0/Conv`` (a container's child repeats the
parent's segment: ``stages`` then ``stages.2``), ``/head/score/score.0/...`` (a ``ModuleDict``
indexed in ``forward`` leaves no segment of its own), ``..._1`` for a module's second call (the
shared backbone on the template crop). Tensors are named ``<node>_output_<k>``. onnxsim keeps
these names; MNN names its ops after their output tensors and adds ``__matmul_converted``,
``_raster_<k>`` (layout copies it inserts) or ``__before_tr``; ONNX Runtime keeps node names,
appends what it fused (``/MatMulAddFusion``, ``_nchwc``) and invents names for ops it inserts
(``ReorderOutput_token_12``, ``gemm_input_reshape``).

:meth:`PartMapper.module_of` turns such a name into the deepest real module path of the model
(``fusion.blocks.0.attn.qkv``, ``head.branches.score.0.0``), checking every step against the
model's ``named_modules()`` so an op name (``MatMul_2``) or a runtime's suffix is never taken
for a module. An op whose own name carries no module path is assigned by these rules, first
that applies (the rule is kept with the op):

1. ``name``: its own name carries a module path;
2. ``tensor``: its name, without the runtimes' suffixes, is a tensor of the exported ONNX graph
   (MNN names ops after their output tensors, e.g. ``score`` or ``score__before_tr_raster_0``;
   ORT names a fused graph-output conv ``offset_nchwc``): the rules applied to the ONNX node
   that produces it; or, in the graph the runtime executed, one of its output tensors carries a
   module path (ORT keeps the original output names on the ops it inserts, e.g.
   ``ReorderOutput_token_3`` writes ``/backbone/.../Add_output_0``);
3. ``producer``: the nearest upstream op that has a module path (breadth-first over the
   producers of its inputs): reshapes and layout conversions belong to what they convert;
4. ``consumer``: the nearest downstream one (ops fed only by graph inputs);
5. ``order``: an op found in neither graph takes the assignment of the op executed before it;
6. ``unknown``: none of the above (reported as part ``unknown``).

Levels: ``part`` = backbone | fusion | head (the parts of :mod:`zoo.counting`); ``block`` =
``fusion.blocks.<k>`` inside the fusion blocks, else the part; ``unit`` = ``backbone.stages.<k>``,
``fusion.blocks.<k>.{norm1,attn,norm2,ffn}``, ``head.neck``, ``head.branches.<output>``.
"""
from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from zoo.models import build_model

UNKNOWN = "unknown"
_BARE_CALL = re.compile(r"^(.*?)(?:_(\d+))?$")  # 'qkv_2': the third bare call of a module named qkv
_CALL = re.compile(r"_\d+$")  # 'stages.0.0.0_1': second call of a module
RUNTIME_SUFFIX = re.compile(r"(__matmul_converted|__before_tr|_raster_\d+|_nchwc)+$")  # MNN's and ORT's


@dataclass(frozen=True)
class Node:
    """One op of an executed graph: its name and the tensors it reads and writes."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class Graph:
    """Ops with producer/consumer links by tensor name."""

    def __init__(self, nodes: Iterable[Node]):
        self.nodes = {n.name: n for n in nodes}
        self.producer: dict[str, Node] = {}
        self.consumers: dict[str, list[Node]] = {}
        for n in self.nodes.values():
            for t in n.outputs:
                self.producer[t] = n
            for t in n.inputs:
                self.consumers.setdefault(t, []).append(n)

    @classmethod
    def from_onnx(cls, path: Path | str) -> "Graph":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        return cls(Node(n.name, tuple(i for i in n.input if i), tuple(n.output)) for n in model.graph.node)


@dataclass(frozen=True)
class Assignment:
    """Where one op belongs: the deepest module path found and the rule that found it."""

    module: str
    rule: str

    @property
    def part(self) -> str:
        return self.module.split(".", 1)[0] if self.module else UNKNOWN

    @property
    def block(self) -> str:
        t = self.module.split(".")
        return ".".join(t[:3]) if t[:2] == ["fusion", "blocks"] and len(t) >= 3 else self.part

    @property
    def unit(self) -> str:
        if not self.module:
            return UNKNOWN
        t = self.module.split(".")
        depth = {"backbone": 3, "fusion": 4}.get(t[0], 3 if t[1:2] == ["branches"] else 2)
        return ".".join(t[:depth])


class PartMapper:
    """Names -> module paths for one model (``named_modules()`` of the exported architecture)."""

    def __init__(self, module_names: Iterable[str], fallback: Callable[[str], str | None] | None = None):
        """``fallback``: module path of a name no scope chain resolves (e.g. a split graph's bare
        ``/qkv_1/...`` scopes, :class:`ScopeResolver`)."""
        self.modules = {m for m in module_names if m}
        self.fallback = fallback
        self.children: dict[str, list[str]] = {}
        for m in sorted(self.modules):
            parent = m.rsplit(".", 1)[0] if "." in m else ""
            self.children.setdefault(parent, []).append(m)

    @classmethod
    def for_variant(cls, variant) -> "PartMapper":
        return cls(name for name, _ in build_model(variant.arch).named_modules())

    def _step(self, path: str, prev: str, seg: str) -> str | None:
        join = (lambda s: f"{path}.{s}") if path else (lambda s: s)
        candidates = [join(seg[len(prev) + 1:])] if prev and seg.startswith(prev + ".") else []
        candidates.append(join(seg))
        for c in candidates:
            if c in self.modules:
                return c
        for child in self.children.get(path, ()):  # a container the scope skipped (ModuleDict[key])
            if f"{child}.{seg}" in self.modules:
                return f"{child}.{seg}"
        return None

    def module_of(self, name: str) -> str | None:
        """The deepest module path a node or tensor name carries, or None."""
        if not name.startswith("/"):
            return None
        path, prev = "", ""
        for seg in name.split("/")[1:]:
            seg = _CALL.sub("", seg)
            nxt = self._step(path, prev, seg) if seg else None
            if nxt is None:
                break
            path, prev = nxt, seg
        if not path and self.fallback is not None:
            return self.fallback(name)
        return path or None

    # -- graph rules -----------------------------------------------------------------------
    def _own(self, node: Node) -> Assignment | None:
        module = self.module_of(node.name)
        if module:
            return Assignment(module, "name")
        for t in node.outputs:
            module = self.module_of(t)
            if module:
                return Assignment(module, "tensor")
        return None

    def _search(self, graph: Graph, start: Node, upstream: bool) -> str | None:
        seen = {start.name}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            tensors = node.inputs if upstream else node.outputs
            nxt = [graph.producer[t] for t in tensors if t in graph.producer] if upstream else \
                [c for t in tensors for c in graph.consumers.get(t, ())]
            for n in nxt:
                if n.name in seen:
                    continue
                seen.add(n.name)
                own = self._own(n)
                if own:
                    return own.module
                queue.append(n)
        return None

    def assign_node(self, graph: Graph, node: Node) -> Assignment:
        """Rules 1-4 for an op of ``graph``."""
        own = self._own(node)
        if own:
            return own
        for upstream, rule in ((True, "producer"), (False, "consumer")):
            module = self._search(graph, node, upstream)
            if module:
                return Assignment(module, rule)
        return Assignment("", UNKNOWN)

    def assign_ops(self, names: list[str], executed: Graph | None, source: Graph | None) -> list[Assignment]:
        """Assignments of ops in execution order.

        ``executed``: the graph the runtime ran, whose nodes ``names`` are (ORT's optimized
        graph; None for MNN, which does not expose it). ``source``: the exported ONNX graph; a
        name without a module path is looked up there as a tensor, without the runtimes'
        suffixes (MNN names ops after their outputs; ORT names a fused graph-output conv
        ``<output>_nchwc``). Names found nowhere take the previous op's assignment (``order``).
        """
        out: list[Assignment] = []
        for name in names:
            a = self._assign_one(name, executed, source)
            if a.rule == UNKNOWN and out and out[-1].module:
                a = Assignment(out[-1].module, "order")
            out.append(a)
        return out

    def _assign_one(self, name: str, executed: Graph | None, source: Graph | None) -> Assignment:
        module = self.module_of(name)
        if module:
            return Assignment(module, "name")
        for key in (name, RUNTIME_SUFFIX.sub("", name)) if source is not None else ():
            if key in source.producer:
                a = self.assign_node(source, source.producer[key])
                return Assignment(a.module, "tensor" if a.rule == "name" else a.rule)
        node = executed.nodes.get(name) if executed is not None else None
        return self.assign_node(executed, node) if node else Assignment("", UNKNOWN)


class ScopeResolver:
    """Module paths of ONNX scopes the exporter names after a bare module: a module the split's code
    calls outside its parent module (``block.attn.qkv(h)`` inside ``InitNet.forward``) is scoped by its
    own attribute name, the scope's last segment numbered per repeat (``/qkv``, ``/qkv_1``;
    ``/ffn/fc1_1`` is the second ``ffn.fc1``). The k-th repeat of a scope is the k-th module whose
    path ends with it, in the order PyTorch called them (``order``: module paths by first call)."""

    def __init__(self, order: list[str]):
        self.order = list(order)

    def __call__(self, node_name: str) -> str | None:
        segments = node_name.split("/")[1:-1]  # the last segment is the op's own name
        if not segments:
            return None
        parts = [_BARE_CALL.match(seg) for seg in segments]
        suffix = ".".join(p.group(1) for p in parts)
        k = int(parts[-1].group(2) or 0)
        candidates = [m for m in self.order if m == suffix or m.endswith("." + suffix)]
        return candidates[k] if k < len(candidates) else None
