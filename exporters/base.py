"""The exporter contract: one small class per format, the pipeline does everything else.

An :class:`Exporter` declares its ``name``, the ``precisions`` it offers, the pip ``extra``
that installs its converter and runtime, whether it converts from the ONNX artifact
(``needs_onnx``), and ``versions()`` of the packages that determine its output. ``convert``
writes the model files into a build directory and returns a :class:`ConvertResult`: the files,
the I/O bindings (catalog name -> runtime name, shape, layout) and the converter's exact flags.
Verification, manifest, locking and installation are the pipeline's (:mod:`exporters.pipeline`).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import ClassVar

from zoo.backends import Backend, by_format
from zoo.calibration import CalibrationSource
from zoo.catalog import Catalog
from zoo.errors import ZooError
from zoo.manifest import Converter, TensorBinding
from zoo.procs import run_group
from zoo.requirements import MissingPackage
from zoo.schema import QuantRecipe, TensorSpec, Variant


#: torch.onnx.export, torch.export (litert-torch, ExecuTorch) and their tracing keep process-wide state:
#: with formats converted side by side (``zoo export --jobs N``) one PyTorch trace runs at a time
TORCH_TRACE_LOCK = threading.Lock()


class ConversionError(ZooError):
    """A converter failed or produced something unusable (the build log has the details)."""


@dataclass
class BuildContext:
    """Everything :meth:`Exporter.convert` may use."""

    variant: Variant
    precision: str
    build_dir: Path
    log_path: Path
    #: the verified fp32 ONNX model (formats with ``needs_onnx``)
    onnx_path: Path | None = None
    #: --force: converters must not reuse cached intermediate results either
    force: bool = False
    #: conversion steps a converter took from the zoo cache instead of running them (the export
    #: table says so: "built from cache")
    cached_steps: list = field(default_factory=list)
    #: reduced precisions: the recipe from zoo.yaml and the calibration pairs
    quantization: Quantization | None = None
    #: the catalog in use (presets, recipes): passed down, never reloaded below the CLI/API
    catalog: Catalog | None = None
    #: one graph of a split artifact, for an exporter that converts from PyTorch: (module, example inputs)
    graph_module: tuple | None = None


@dataclass
class Quantization:
    """What a reduced-precision conversion reads: the catalog's recipe (``quantization:`` in
    zoo.yaml) for this format, precision and target, and calibration pairs cut like the tracker's."""

    recipe: QuantRecipe
    target: str
    source: CalibrationSource
    #: catalog-named NCHW float32 input pairs (empty for recipes without calibration)
    pairs: list = field(default_factory=list)

    def record(self) -> dict:
        """What the manifest records (recipe, target hardware, calibration source and its sha256)."""
        return {"recipe": self.recipe.model_dump(), "target": self.target, "hardware": self.recipe.hardware,
                "calibration": {**self.source.describe(), "pairs": len(self.pairs)}}


@dataclass
class ConvertResult:
    files: list[str]  # relative to the build directory
    inputs: list[TensorBinding]
    outputs: list[TensorBinding]
    converter: Converter
    notes: list[str] = field(default_factory=list)
    #: a flavoured artifact's client target (:class:`zoo.artifacts.ClientTarget` fields)
    client: dict | None = None
    #: split artifacts (:mod:`exporters.split`): the manifest's ``graphs`` section
    graphs: object | None = None


def append_log(log_path: Path, text: str) -> None:
    """Append ``text`` (one line break at the end) to a build log."""
    with open(log_path, "a", encoding="utf-8") as f:
        f.write(text if text.endswith("\n") else text + "\n")


def package_version(dist: str, extra: str) -> str:
    """Installed version of distribution ``dist``; a :class:`MissingPackage` naming the extra if absent."""
    try:
        return version(dist)
    except PackageNotFoundError:
        raise MissingPackage(f"{dist} is not installed: pip install 'zoo[{extra}]'") from None


def nchw_bindings(specs: list[TensorSpec], runtime_names: list[str] | None = None) -> list[TensorBinding]:
    """Bindings for a runtime that keeps the catalog's shapes and layouts (NCHW; NLC for a split
    artifact's cache tensors); runtime names default to the catalog's."""
    names = runtime_names or [s.name for s in specs]
    return [TensorBinding(name=s.name, runtime_name=r, shape=list(s.shape), dtype=s.dtype, layout=s.layout)
            for s, r in zip(specs, names, strict=True)]


def find_tool(name: str) -> str | None:
    """Path of the executable ``name``: next to the running Python first (the venv's ``bin``,
    where pip installs console scripts such as ``pnnx``, even when that ``bin`` is not on PATH,
    e.g. ``/path/to/venv/bin/zoo``), then on PATH; None when neither has it."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def run_tool(argv: list[str], log_path: Path, cwd: Path, what: str, extra: str, env: dict | None = None) -> None:
    """Run a converter command, appending its output to ``log_path``; failure -> ConversionError.

    A bare command name is looked up with :func:`find_tool`; a missing executable is a
    :class:`MissingPackage` naming the pip extra. The tool runs in a process group of its own that
    is killed when ``zoo`` is interrupted (Ctrl-C, SIGTERM) or dies, so no converter outlives the
    command.
    """
    exe, where, command = argv[0], "", list(argv)
    if os.sep not in exe:
        found = find_tool(exe)
        if found is None:
            raise MissingPackage(f"{what} ({exe}) is not installed: pip install 'zoo[{extra}]'")
        where, command[0] = f"# {exe}: {found}\n", found
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(argv) + "\n" + where).encode())  # the recorded command, then which binary ran
        log.flush()
        proc = run_group(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise ConversionError(f"{what} failed (exit {proc.returncode})")


def python_tool(code: str) -> list[str]:
    """argv running ``code`` in this interpreter (for converters shipped as Python extensions)."""
    return [sys.executable, "-c", code]


class Exporter(ABC):
    """Converts one variant into one format. Its format, precisions, pip extra and whether it
    converts from ONNX are the :class:`zoo.backends.Backend` row named by ``name``.

    Split artifacts (:mod:`exporters.split`) are part of the contract: :meth:`convert_graph` converts
    one graph (``init`` or ``track``) given a context whose variant has that graph's I/O."""

    name: ClassVar[str]
    #: bump when the exporter's code changes what it produces (part of the build key)
    revision: ClassVar[int] = 1
    #: reduced precisions bind outputs by identity on probe inputs (:meth:`convert_graph` gets them)
    binds_by_probe: ClassVar[bool] = False

    @property
    def backend(self) -> Backend:
        return by_format(self.name)

    @property
    def precisions(self) -> tuple[str, ...]:
        return self.backend.precisions

    @property
    def extra(self) -> str:
        return self.backend.extra

    @property
    def needs_onnx(self) -> bool:
        return self.backend.needs_onnx

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of the converter and runtime packages (raises MissingPackage when absent)."""

    @abstractmethod
    def convert(self, ctx: BuildContext) -> ConvertResult:
        """Write the model files into ``ctx.build_dir``; converter output goes to ``ctx.log_path``."""

    def options(self, precision: str, catalog: Catalog) -> dict:
        """Options that determine the artifact besides the versions (part of the build key); ``catalog``
        is the catalog in use (an exporter whose output depends on a preset reads it there)."""
        return {"precision": precision}

    def needs_onnx_for(self, precision: str) -> bool:
        """Whether this precision converts from the verified fp32 ONNX artifact (built first)."""
        return self.needs_onnx

    def convert_graph(self, ctx: BuildContext, probes: list[dict] | None = None) -> ConvertResult:
        """One graph of a split artifact into ``ctx.build_dir``: ``ctx.variant`` carries the graph's I/O,
        ``ctx.onnx_path`` the graph's verified ONNX file (``ctx.graph_module`` the PyTorch module and
        example inputs for an exporter that does not convert from ONNX); ``probes`` are the graph's
        inputs for exporters that bind by probe. A binding that is a :class:`zoo.manifest.GraphBinding`
        states its own ``perm``. By default the graph is converted like a full model."""
        return self.convert(ctx)
