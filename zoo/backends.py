"""Every export format and the runtime that runs it, declared once.

One :class:`Backend` row per format: its runtime's CLI name, the pip extra that installs its
converter and runtime, the precisions it offers, the files an artifact holds, the exporter and
runner classes (``"module:Class"``, imported on first use so that a missing converter is only an
error when that format is asked for) and whether ``zoo profile`` can time it op by op.

Everything else reads this table: the catalog schema's format literals and required tolerances,
the CLI's choices and help texts, ``zoo export``/``compare``/``bench``/``profile``/``pull``
validation. Adding a runtime is one exporter module, one runner module and one row here.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

#: PyTorch eager: the reference every artifact is compared with (not an artifact format)
REFERENCE_RUNTIME = "pytorch"
#: the reference runner (PyTorch eager), named like the table's runners so that a process timing
#: another runtime never imports torch (about 2 s of every measurement child's start-up)
REFERENCE_RUNNER = "compare.runners.pytorch:PytorchRunner"
#: the runtime used when none is named: ``zoo track``, ``zoo eval run``, ``zoo.Tracker`` and
#: ``zoo.load_runner``
DEFAULT_RUNTIME = "tflite"


@dataclass(frozen=True)
class Backend:
    """One artifact format and its runtime."""

    format: str
    runtime: str
    extra: str
    precisions: tuple[str, ...]
    #: suffixes of the artifact's model files (each appears exactly once in a manifest)
    suffixes: tuple[str, ...]
    exporter: str
    runner: str
    #: converts from the verified ONNX artifact (built first)
    needs_onnx: bool = True
    #: the runner offers a per-op profiler (``zoo profile``)
    profiles: bool = False
    #: the runner taps every intermediate tensor (``zoo compare --layers``)
    taps: bool = True
    #: display name in help texts and tables
    title: str = ""
    #: the runtime's pip distribution (its version is recorded; a device must run the same one)
    distribution: str = ""
    #: under ``zoo export --jobs N`` (N > 1) its builds run in worker processes of their own
    #: (:mod:`exporters.isolated`): a converter not safe beside other PyTorch work in one process
    #: (litert-torch, measured: "Lowering not found: aten.linear.default" when it converted while other
    #: formats built in other threads), or a lowering in pure Python that holds the GIL for seconds
    #: (ExecuTorch: threads could not overlap its 7-10 s per program with any other build)
    own_process: bool = False

    def exporter_class(self) -> type:
        """The exporter class (imports the exporter module)."""
        return _load(self.exporter)

    def runner_class(self) -> type:
        """The runner class (imports the runner module; not the runtime itself)."""
        return _load(self.runner)


def reference_runner_class() -> type:
    """The PyTorch eager runner class (imports torch)."""
    return _load(REFERENCE_RUNNER)


def _load(ref: str) -> Any:
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


BACKENDS: tuple[Backend, ...] = (
    Backend("onnx", "onnxruntime", "onnx", ("fp32", "int8"), (".onnx",), "exporters.onnx:OnnxExporter",
            "compare.runners.onnxruntime:OnnxRuntimeRunner", needs_onnx=False, profiles=True, title="ONNX Runtime",
            distribution="onnxruntime"),
    Backend("mnn", "mnn", "mnn", ("fp32", "fp16"), (".mnn",), "exporters.mnn:MnnExporter",
            "compare.runners.mnn:MnnRunner", profiles=True, title="MNN", distribution="MNN"),
    Backend("tflite", "tflite", "tflite", ("fp32", "fp16", "int8", "int8-dynamic"), (".tflite",), "exporters.tflite:TfliteExporter",
            "compare.runners.tflite:TfliteRunner", needs_onnx=False, title="TFLite (LiteRT)", distribution="ai-edge-litert",
            own_process=True),
    Backend("ncnn", "ncnn", "ncnn", ("fp32", "fp16", "bf16"), (".param", ".bin"), "exporters.ncnn:NcnnExporter",
            "compare.runners.ncnn:NcnnRunner", title="ncnn", distribution="ncnn"),
    Backend("executorch", "executorch", "executorch", ("fp32", "fp16", "int8"), (".pte",), "exporters.executorch:ExecutorchExporter",
            "compare.runners.executorch:ExecutorchRunner", needs_onnx=False, taps=False, title="ExecuTorch (XNNPACK)", distribution="executorch",
            own_process=True),
)

#: formats in build order (ONNX first: the others convert from it)
FORMATS: tuple[str, ...] = tuple(b.format for b in BACKENDS)
#: runtime CLI names, in the same order
RUNTIMES: tuple[str, ...] = tuple(b.runtime for b in BACKENDS)
#: every precision any backend offers, fp32 first
_ORDER = ("fp32", "fp16", "bf16", "int8", "int8-dynamic")  # widest first in help texts and choices
PRECISIONS: tuple[str, ...] = tuple(sorted(dict.fromkeys(p for b in BACKENDS for p in b.precisions),
                                           key=lambda p: _ORDER.index(p) if p in _ORDER else len(_ORDER)))
#: reduced precisions: built from a recipe in zoo.yaml's ``quantization:`` block and
#: verified at tracker level where the catalog's tolerance says so
REDUCED_PRECISIONS: tuple[str, ...] = ("int8", "int8-dynamic", "bf16")
#: ``--int8-target`` choices (which hardware an int8 recipe targets)
INT8_TARGETS: tuple[str, ...] = ("x86", "arm")
#: runtimes whose runner has a per-op profiler
PROFILED_RUNTIMES: tuple[str, ...] = tuple(b.runtime for b in BACKENDS if b.profiles)
#: runtimes whose runner has a tensor tap (``zoo compare --layers``)
TAPPED_RUNTIMES: tuple[str, ...] = tuple(b.runtime for b in BACKENDS if b.taps)

_BY_FORMAT = {b.format: b for b in BACKENDS}
_BY_RUNTIME = {b.runtime: b for b in BACKENDS}


def by_format(fmt: str) -> Backend:
    """The backend of format ``fmt`` (KeyError when unknown: validate user input with the CLI's ``choose``)."""
    return _BY_FORMAT[fmt]


def by_runtime(runtime: str) -> Backend:
    """The backend whose runtime is called ``runtime``."""
    return _BY_RUNTIME[runtime]


def offered(fmt: str) -> tuple[str, ...]:
    """Precisions format ``fmt`` offers."""
    return by_format(fmt).precisions


def describe(names: tuple[str, ...]) -> str:
    """``a b c`` for help texts."""
    return " ".join(names)


# -- flavours: one format's artifact adapted to a client that loads it by itself -------------------
@dataclass(frozen=True)
class Flavour:
    """A variant of one backend's artifact built for a client with its own contract (``zoo export
    --to FORMAT --for NAME``): converted from the verified plain artifact of ``format``, installed
    as ``<format>[-<precision>]-<name>``, run by that format's runner, and additionally checked in
    the client by ``checker`` (``"module:function"``). ``client_module`` is the module whose
    ``__version__`` the artifact targets (recorded in the manifest: another version warns on load);
    ``preset`` the tracking preset that mirrors the client's loop in ``zoo.Tracker``."""

    name: str
    format: str
    precisions: tuple[str, ...]
    exporter: str
    checker: str
    client: str
    client_module: str
    preset: str
    title: str = ""

    def exporter_class(self) -> type:
        """The exporter class (imports the exporter module)."""
        return _load(self.exporter)

    def checker_function(self) -> Any:
        """``checker(verifier, target, build_dir, manifest) -> Parity`` (imports its module)."""
        return _load(self.checker)


FLAVOURS: tuple[Flavour, ...] = (
    Flavour("opencv", "onnx", ("fp32",), "exporters.opencv:OpencvOnnxExporter", "compare.tracking.opencv_client:check_trackervit",
            client="cv2.TrackerVit", client_module="cv2", preset="opencv-vit", title="OpenCV TrackerVit"),
)
#: flavour names (``zoo export --for``)
FLAVOUR_NAMES: tuple[str, ...] = tuple(f.name for f in FLAVOURS)
_BY_FLAVOUR = {f.name: f for f in FLAVOURS}


def by_flavour(name: str) -> Flavour:
    """The flavour called ``name`` (KeyError when unknown)."""
    return _BY_FLAVOUR[name]
