"""Tensor taps: every intermediate tensor one runtime computes for one input pair, in execution order.

A tap works over "a graph file + its runtime": it reads the runner's model file and session
settings (threads, precision mode), never the variant, so split graphs and other precisions plug
in unchanged. ``run(pair)`` takes catalog-named NCHW arrays and returns :class:`Tapped` records
(runtime tensor name, array in the runtime's own layout and shape); naming them after module paths
is :mod:`compare.diagnose.layer_map`'s job.

- ONNX Runtime: a copy of the model with every node output made a graph output.
- MNN: ``Interpreter.runSessionWithCallBackInfo``; the end callback copies each op's output
  tensors to host (``Tensor_DimensionType_Caffe``, i.e. NCHW whatever MNN keeps inside).
- TFLite: ``experimental_preserve_all_tensors=True`` and the interpreter's tensor table; the
  order is the op table's (its execution order).
- ncnn: ``Extractor.extract`` of every blob of the ``.param`` file, in layer order.
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from compare.runners.base import native_quiet
from zoo.layouts import to_layout
from zoo.requirements import require


class Tapped(NamedTuple):
    """One tensor a runtime computed: its name in that runtime and its value (runtime layout)."""

    name: str
    array: np.ndarray
    constant: bool = False  # computed from weights only (TFLite's dequantized fp16 weights, QDQ weights)
    #: the tensor whose value this one carries as the graph's consumers read it: a QDQ graph's
    #: DequantizeLinear output of ``alias`` (the module's value in the quantized model)
    alias: str | None = None
    #: why the runtime inserted it (quantize/dequantize copies, a pre-quantization float): not a module's value
    inserted: str | None = None


def _float(array) -> np.ndarray | None:
    a = np.asarray(array)
    return np.array(a, dtype=np.float32, copy=True) if np.issubdtype(a.dtype, np.floating) else None


def qdq_roles(graph) -> tuple[set[str], dict[str, str]]:
    """Of an ONNX graph: the tensors computed from initializers only (``constant``), and each
    ``DequantizeLinear(QuantizeLinear(x))`` output -> ``x`` (the float value the next op reads in a
    QDQ model; ``x`` itself is the pre-quantization float, which the fused int8 kernels never hold)."""
    constant = {i.name for i in graph.initializer}
    producer = {}
    for n in graph.node:
        if all(not t or t in constant for t in n.input):
            constant.update(t for t in n.output if t)
        for t in n.output:
            producer[t] = n
    alias = {}
    for n in graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] not in constant:
            q = producer.get(n.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                alias[n.output[0]] = q.input[0]
    return constant, alias


_Q_OUT = "_QuantizeLinear_Output"
#: suffixes ORT's QDQ transformers give a tensor they requantize: the name without it is the source tensor
_QDQ_SUFFIXES = (_Q_OUT, "_pre_q")


def _qdq_source(name: str) -> str:
    for suffix in _QDQ_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
#: op type -> input positions of the output's scale and zero point (ONNX and com.microsoft QLinear ops)
_QPARAM_INPUTS = {"QuantizeLinear": (1, 2), "QLinearConv": (6, 7), "QLinearMatMul": (6, 7), "QLinearAdd": (6, 7), "QLinearMul": (6, 7),
                  "QLinearSigmoid": (3, 4), "QLinearLeakyRelu": (3, 4), "QLinearSoftmax": (3, 4), "QLinearAveragePool": (3, 4),
                  "QLinearGlobalAveragePool": (3, 4), "QLinearConcat": (0, 1)}


def _qparams(graph, inits: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Integer tensor -> (scale, zero point): from the op writing it, or for data-movement ops
    (Transpose, Reshape, Slice, ...) from their input."""
    out: dict[str, tuple] = {}
    for n in graph.node:
        pos = _QPARAM_INPUTS.get(n.op_type)
        if pos is not None and len(n.input) > pos[0] and n.input[pos[0]] in inits:
            scale = np.asarray(inits[n.input[pos[0]]], np.float64)
            zero = np.asarray(inits[n.input[pos[1]]], np.float64) if len(n.input) > pos[1] and n.input[pos[1]] in inits else 0.0
            for t in n.output:
                out[t] = (scale, zero)
        elif n.input and n.input[0] in out:
            for t in n.output:
                out[t] = out[n.input[0]]
    return out


def dequantized(array: np.ndarray, quantization: dict) -> np.ndarray | None:
    """An integer TFLite tensor as the real values it stands for (``(q - zero_point) * scale``, per
    axis when the scales are per channel); None without quantization parameters."""
    scales = np.asarray(quantization.get("scales", ()), np.float64)
    if not scales.size or not np.issubdtype(np.asarray(array).dtype, np.integer):
        return None
    zeros = np.asarray(quantization.get("zero_points", ()), np.float64)
    zeros = zeros if zeros.size == scales.size else np.zeros_like(scales)
    if scales.size > 1:
        shape = [1] * array.ndim
        shape[int(quantization.get("quantized_dimension", 0))] = scales.size
        scales, zeros = scales.reshape(shape), zeros.reshape(shape)
    return ((np.asarray(array, np.float64) - zeros) * scales).astype(np.float32)


class OrtTap:
    """Every node output of the runner's ONNX model, as graph outputs of a copy of it."""

    def __init__(self, runner):
        self.runner = runner
        self._session = None
        self._order: dict[str, int] = {}
        self._constant: set[str] = set()
        self._alias: dict[str, str] = {}

    def _load(self):
        import onnx

        ort = require("onnxruntime", self.runner.extra, "ONNX Runtime")
        model = onnx.load(str(self.runner.model_file(".onnx")))
        if any(n.op_type == "QuantizeLinear" for n in model.graph.node):
            return self._load_fused(ort, onnx)
        declared = {o.name for o in model.graph.output}
        order = [t for n in model.graph.node for t in n.output if t and t not in declared]
        model.graph.output.extend(onnx.ValueInfoProto(name=t) for t in order)
        order += [o.name for o in model.graph.output if o.name in declared]
        self._constant, self._alias = qdq_roles(model.graph)
        with tempfile.TemporaryDirectory(prefix="zoo-layers-") as tmp:  # a file: no 2 GB in-memory protobuf limit
            path = Path(tmp) / "all_outputs.onnx"
            onnx.save(model, str(path))
            self._session = ort.InferenceSession(str(path), self.runner.session_options(), providers=["CPUExecutionProvider"])
        self._order = {t: i for i, t in enumerate(order)}

    def _load_fused(self, ort, onnx):
        """A QDQ model: the graph ONNX Runtime runs once it fused the QDQ groups into integer kernels
        (QLinearConv, QLinearMatMul, ...), saved by ORT itself, then every tensor of it exposed and run
        unoptimised; its integer tensors are dequantized with the scale and zero point their producer
        writes (``_qparams``)."""
        from onnx import numpy_helper

        with tempfile.TemporaryDirectory(prefix="zoo-layers-") as tmp:
            opts = self.runner.session_options()
            opts.optimized_model_filepath = str(Path(tmp) / "fused.onnx")
            ort.InferenceSession(str(self.runner.model_file(".onnx")), opts, providers=["CPUExecutionProvider"])
            model = onnx.load(opts.optimized_model_filepath)
            inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
            self._qparams = _qparams(model.graph, inits)
            self._constant, self._alias = qdq_roles(model.graph)
            self._constant |= set(inits)
            # what ORT inserted: quantize/dequantize copies left unfused, layout transposes of its NHWC kernels
            self._copies = {t: f"{n.op_type} ORT inserted" for n in model.graph.node for t in n.output
                            if n.op_type in ("QuantizeLinear", "DequantizeLinear") or (n.op_type == "Transpose" and "_token_" in n.name)}
            declared = {o.name for o in model.graph.output}
            order = [t for n in model.graph.node for t in n.output if t and t not in declared]
            model.graph.output.extend(onnx.ValueInfoProto(name=t) for t in order)
            order += [o.name for o in model.graph.output if o.name in declared]
            path = Path(tmp) / "all_outputs.onnx"
            onnx.save(model, str(path))
            plain = self.runner.session_options()
            plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # run it as saved
            self._session = ort.InferenceSession(str(path), plain, providers=["CPUExecutionProvider"])
        self._order = {t: i for i, t in enumerate(order)}

    def run(self, pair: dict[str, np.ndarray]) -> list[Tapped]:
        if self._session is None:
            self._load()
        feed = {b.runtime_name: to_layout(pair[b.name], b.layout) for b in self.runner.manifest.inputs}
        names = [o.name for o in self._session.get_outputs()]
        values = dict(zip(names, self._session.run(names, feed), strict=True))
        ordered = sorted(values, key=lambda n: self._order.get(n, len(self._order)))
        if getattr(self, "_qparams", None) is not None:
            out, quantized = [], set(self._alias.values())
            for n in ordered:
                a = _float(values[n])
                if a is None and n in self._qparams:
                    scale, zero = self._qparams[n]
                    a = ((values[n].astype(np.float64) - zero) * scale).astype(np.float32)
                if a is not None:
                    alias = _qdq_source(self._alias.get(n, n))
                    alias = alias if alias != n else None
                    why = "pre-quantization float (its DequantizeLinear copy is the value read on)" if n in quantized else None
                    if n.endswith("_q_to_dq"):
                        why = "a quantize-dequantize copy ORT inserted"
                    out.append(Tapped(n, a, n in self._constant, alias, why or (None if alias else self._copies.get(n))))
            return out
        quantized = set(self._alias.values())
        return [Tapped(n, a, n in self._constant, self._alias.get(n),
                       "pre-quantization float (its DequantizeLinear copy is the value read on)" if n in quantized else None)
                for n in ordered if (a := _float(values[n])) is not None]


class MnnTap:
    """Each op's output tensors, copied to host in the end callback of a profiled session."""

    def __init__(self, runner):
        self.runner = runner

    def run(self, pair: dict[str, np.ndarray]) -> list[Tapped]:
        with native_quiet():  # MNN prints the CPU's features on stdout when it first starts
            mnn = require("MNN", self.runner.extra, "MNN")
            interpreter = mnn.Interpreter(str(self.runner.model_file(".mnn")))
            session = interpreter.createSession(self.runner.config())
        for b in self.runner.manifest.inputs:
            array = np.ascontiguousarray(to_layout(pair[b.name], b.layout), dtype=np.float32)
            # NHWC only: a split graph's 3-D cache tensors (NLC) are plain row-major arrays, as Caffe's type keeps them
            dim = mnn.Tensor_DimensionType_Tensorflow if b.layout == "NHWC" else mnn.Tensor_DimensionType_Caffe
            interpreter.getSessionInput(session, b.runtime_name).copyFrom(mnn.Tensor(list(array.shape), mnn.Halide_Type_Float, array, dim))
        out: list[Tapped] = []

        def begin(_tensors, _info):
            return True

        def end(tensors, info):
            name = info.getName()
            for k, t in enumerate(tensors):
                shape = list(t.getShape())
                if t.getDataType() != mnn.Halide_Type_Float or not shape or 0 in shape:
                    continue
                host = mnn.Tensor(shape, mnn.Halide_Type_Float, np.zeros(shape, np.float32), mnn.Tensor_DimensionType_Caffe)
                t.copyToHostTensor(host)
                out.append(Tapped(name if k == 0 else f"{name}:{k}", np.array(host.getNumpyData(), np.float32, copy=True).reshape(shape)))
            return True

        with native_quiet():
            interpreter.runSessionWithCallBackInfo(session, begin, end)
        return out


class TfliteTap:
    """Every float tensor an op writes, read after one run of an interpreter that keeps them all."""

    def __init__(self, runner, signature: str):
        self.runner = runner
        self.signature = signature

    def run(self, pair: dict[str, np.ndarray]) -> list[Tapped]:
        litert = require("ai_edge_litert.interpreter", self.runner.extra, "ai-edge-litert")
        with native_quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "intended for debugging purposes only": this is debugging
            interpreter = litert.Interpreter(model_path=str(self.runner.model_file(".tflite")), num_threads=self.runner.threads,
                                             experimental_preserve_all_tensors=True)
            interpreter.allocate_tensors()
        signatures = interpreter.get_signature_list()
        key = self.signature if self.signature in signatures else next(iter(signatures))
        runner = interpreter.get_signature_runner(key)
        runner(**{b.runtime_name: to_layout(pair[b.name], b.layout) for b in self.runner.manifest.inputs})
        details = {d["index"]: d for d in interpreter.get_tensor_details()}
        # the graph outputs by their catalog names: the converter numbers them (StatefulPartitionedCall:k)
        # in an order that differs between the fp32 and the quantized models of one network
        catalog = {b.runtime_name: b.name for b in self.runner.manifest.outputs}
        outputs = {int(d["index"]): catalog[n] for n, d in runner.get_output_details().items() if n in catalog}
        ops = interpreter._get_ops_details()  # the op table, in execution order
        produced = {int(i) for op in ops for i in op["outputs"]} | {d["index"] for d in interpreter.get_input_details()}
        out, seen = [], set()
        for op in ops:
            constant = all(int(i) not in produced for i in op["inputs"] if i >= 0)
            copy = op["op_name"].lower() if op["op_name"] in ("QUANTIZE", "DEQUANTIZE") else None
            for i in op["outputs"]:
                if i < 0 or i in seen:
                    continue
                seen.add(i)
                try:
                    raw = interpreter.get_tensor(int(i))
                except ValueError:  # a tensor the runtime did not keep
                    continue
                # int8 models: the integer tensor stands for (q - zero_point) * scale
                array = _float(raw)
                if array is None:
                    array = dequantized(raw, details[int(i)].get("quantization_parameters", {}))
                if array is not None and array.size:
                    if int(i) in outputs:
                        out.append(Tapped(outputs[int(i)], array, constant))
                    else:
                        out.append(Tapped(details[int(i)]["name"], array, constant, inserted=copy and f"a {copy} copy the converter inserted"))
        return out


def ncnn_blobs(param: Path) -> list[str]:
    """The blob names of an ncnn ``.param`` file in layer order (each layer's tops)."""
    lines = Path(param).read_text().split("\n")
    blobs = []
    for line in lines[2:]:
        f = line.split()
        if len(f) < 4:
            continue
        bottoms, tops = int(f[2]), int(f[3])
        blobs += f[4 + bottoms:4 + bottoms + tops]
    return blobs


class NcnnTap:
    """Every blob of the ``.param`` file, extracted by name after feeding the inputs."""

    def __init__(self, runner):
        self.runner = runner

    def run(self, pair: dict[str, np.ndarray]) -> list[Tapped]:
        runner = self.runner
        if not runner.is_loaded:
            runner.load()
        ncnn = runner._ncnn
        inputs = {b.runtime_name for b in runner.manifest.inputs}
        out = []
        with runner._net.create_extractor() as ex:
            for b in runner.manifest.inputs:
                ex.input(b.runtime_name, ncnn.Mat(np.ascontiguousarray(to_layout(pair[b.name], b.layout), np.float32),
                                                  batch_index=0).clone())
            for blob in ncnn_blobs(runner.model_file(".param")):
                if blob in inputs:
                    continue
                ret, mat = ex.extract(blob)
                if ret == 0:
                    out.append(Tapped(blob, np.array(mat.numpy(), dtype=np.float32, copy=True)))
        return out
