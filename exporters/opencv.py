"""``zoo export VARIANT --to onnx --for opencv``: an ONNX model stock ``cv2.TrackerVit`` runs.

TrackerVit (OpenCV's ``modules/video/src/tracking/tracker_vit.cpp``) loads one ONNX with inputs
``template``/``search`` and reads outputs named ``output1`` (score after sigmoid), ``output2``
(size) and ``output3`` (offset). It feeds each crop as cv2 gives it (BGR, no channel swap) through
``blobFromImageWithParams`` with a per-channel affine that depends on the OpenCV version. This
exporter takes the verified plain ONNX artifact, measures that affine in the installed OpenCV
(:mod:`exporters.opencv_probe`), and prepends one 1x1 convolution per input that maps OpenCV's blob
back to what the network was trained with (the catalog's ``preprocessing``: RGB, ``x * scale``,
ImageNet mean/std), then renames the outputs. The measured transform and the OpenCV version go
into the manifest (``client``) and the model's metadata.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from exporters.base import BuildContext, ConversionError, ConvertResult, Exporter, nchw_bindings, package_version
from exporters.opencv_probe import AFFINE_TOLERANCE, measure, write_probes
from zoo.backends import by_flavour
from zoo.catalog import Catalog
from zoo.manifest import Converter
from zoo.requirements import require
from zoo.schema import Preprocessing

MODEL_FILE = "model.onnx"
FLAVOUR = "opencv"
#: catalog output name -> the name TrackerVit asks for
OUTPUT_NAMES = {"score": "output1", "size": "output2", "offset": "output3"}
#: the channels of a cv2 frame (TrackerVit feeds them as given)
FRAME_ORDER = "BGR"


def measure_installed() -> dict:
    """The input transform of the installed ``cv2.TrackerVit`` (see :func:`exporters.opencv_probe.measure`)."""
    require("cv2", "onnx", "OpenCV (opencv-python)")
    with tempfile.TemporaryDirectory(prefix="zoo-trackervit-probe-") as tmp:
        return measure(write_probes(Path(tmp)))


def input_layer(transform: dict, pre: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """``(weight 3x3, bias 3)`` of the 1x1 convolution that turns the client's blob
    ``blob = M @ frame_pixel + b`` (frame channels BGR) into the network's input
    ``(rgb_pixel * scale - mean) / std``."""
    matrix = np.asarray(transform["matrix"], np.float64)
    offset = np.asarray(transform["offset"], np.float64)
    if matrix.shape != (3, 3) or abs(np.linalg.det(matrix)) < 1e-12:
        raise ConversionError(f"OpenCV's measured input transform is not invertible: {transform['matrix']}")
    to_rgb = np.zeros((3, 3))
    for c, name in enumerate(pre.color):  # the network's channel c is the frame's channel FRAME_ORDER.index(name)
        to_rgb[c, FRAME_ORDER.index(name)] = 1.0
    std = np.asarray(pre.std, np.float64)
    weight = np.diag(pre.scale / std) @ to_rgb @ np.linalg.inv(matrix)
    bias = -weight @ offset - np.asarray(pre.mean, np.float64) / std
    return weight, bias


def adapt(model, weight: np.ndarray, bias: np.ndarray, inputs: list[str], outputs: dict[str, str]) -> None:
    """In place: a 1x1 Conv (``weight``, ``bias``) in front of every input in ``inputs`` and the graph
    outputs renamed by ``outputs`` (catalog name -> client name)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inner = {name: f"{name}_network_input" for name in inputs}
    renamed = {**inner, **outputs}
    for node in graph.node:
        node.input[:] = [renamed.get(x, x) for x in node.input]
        node.output[:] = [outputs.get(x, x) for x in node.output]
    for out in graph.output:
        out.name = outputs.get(out.name, out.name)
    graph.initializer.extend([numpy_helper.from_array(weight.astype(np.float32).reshape(3, 3, 1, 1), "client_input_weight"),
                              numpy_helper.from_array(bias.astype(np.float32), "client_input_bias")])
    convs = [helper.make_node("Conv", [name, "client_input_weight", "client_input_bias"], [inner[name]],
                              name=f"client_input_{name}", kernel_shape=[1, 1]) for name in inputs]
    nodes = convs + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


class OpencvOnnxExporter(Exporter):
    """The ``opencv`` flavour of the ONNX artifact (built from the verified plain ONNX)."""

    name = "onnx"
    flavour = FLAVOUR

    @property
    def needs_onnx(self) -> bool:
        return True

    @property
    def precisions(self) -> tuple[str, ...]:
        return by_flavour(self.flavour).precisions

    def versions(self) -> dict[str, str]:
        import importlib

        require("cv2", self.extra, "OpenCV (opencv-python)")
        return {"onnx": package_version("onnx", self.extra), "opencv": importlib.import_module("cv2").__version__}

    def options(self, precision: str, catalog: Catalog) -> dict:
        # the client check runs zoo's tracker with the flavour's preset: a changed preset rebuilds (and rechecks)
        preset = by_flavour(self.flavour).preset
        return {"precision": precision, "flavour": self.flavour, "outputs": OUTPUT_NAMES, "frame_order": FRAME_ORDER,
                "check_preset": {preset: catalog.tracking.presets[preset].model_dump()}}

    def convert(self, ctx: BuildContext) -> ConvertResult:
        """Measure OpenCV's input transform, prepend the inverse 1x1 layer, rename the outputs."""
        onnx = require("onnx", self.extra)
        variant = ctx.variant
        transform = measure_installed()
        with open(ctx.log_path, "a", encoding="utf-8") as log:
            log.write(f"cv2.TrackerVit input transform (probe models): {json.dumps(transform)}\n")
        if transform["affine_residual"] > AFFINE_TOLERANCE:
            raise ConversionError(f"OpenCV {transform['opencv']} does not feed TrackerVit an affine of the pixels "
                                  f"(residual {transform['affine_residual']:.2g})")
        weight, bias = input_layer(transform, variant.preprocessing)
        model = onnx.load(str(ctx.onnx_path))
        inputs = [s.name for s in variant.io.inputs]
        outputs = {s.name: OUTPUT_NAMES[s.name] for s in variant.io.outputs}
        adapt(model, weight, bias, inputs, outputs)
        meta = {p.key: p.value for p in model.metadata_props}
        meta.update({"flavour": self.flavour, "client": by_flavour(self.flavour).client, "opencv_version": transform["opencv"],
                     "input_transform": json.dumps(transform)})
        del model.metadata_props[:]
        for key, value in meta.items():
            model.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(ctx.build_dir / MODEL_FILE))
        self._check_loads(ctx.build_dir / MODEL_FILE)
        flags = [f"1x1 Conv per input: W={np.round(weight, 6).tolist()}, b={np.round(bias, 6).tolist()}",
                 f"outputs renamed {outputs}", f"measured in OpenCV {transform['opencv']}"]
        return ConvertResult(
            files=[MODEL_FILE],
            inputs=nchw_bindings(variant.io.inputs),
            outputs=nchw_bindings(variant.io.outputs, [outputs[s.name] for s in variant.io.outputs]),
            converter=Converter(name="zoo.opencv", version=transform["opencv"], flags=flags),
            notes=[f"for cv2.TrackerVit (OpenCV {transform['opencv']}): feed BGR frames as cv2 gives them"],
            client={"flavour": self.flavour, "client": by_flavour(self.flavour).client, "version": transform["opencv"],
                    "input_transform": {**transform, "layer_weight": weight.tolist(), "layer_bias": bias.tolist()}},
        )

    @staticmethod
    def _check_loads(path: Path) -> None:
        import cv2

        try:
            cv2.dnn.readNet(str(path))
        except cv2.error as exc:
            raise ConversionError(f"OpenCV's DNN module cannot read the model: {str(exc).strip().splitlines()[-1]}") from None
