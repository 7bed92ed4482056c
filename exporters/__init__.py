"""Exporters: one module per format behind :class:`exporters.base.Exporter`.

``zoo export`` drives them through :mod:`exporters.pipeline` (build order, verification in the
target runtime, manifest, atomic install, locking, reuse). Converters and runtimes are imported
lazily: a missing one is reported when a format needs it, naming its pip extra.
"""
from __future__ import annotations

import importlib

from exporters.base import Exporter

#: every format, in build order (ONNX first: the others convert from it)
FORMATS = ("onnx", "mnn", "tflite", "ncnn")


#: format -> "module:class" of its exporter, imported on first use
_EXPORTERS = {
    "onnx": "exporters.onnx:OnnxExporter",
    "mnn": "exporters.mnn:MnnExporter",
    "tflite": "exporters.tflite:TfliteExporter",
    "ncnn": "exporters.ncnn:NcnnExporter",
}


def get_exporter(name: str) -> Exporter:
    """The exporter of format ``name`` (one of :data:`FORMATS`)."""
    module, cls = _EXPORTERS[name].split(":")
    return getattr(importlib.import_module(module), cls)()
