"""The runner contract: load a model in one runtime, feed it catalog-named NCHW arrays, time it.

In the spirit of Polygraphy's ``BaseRunner``: ``set_threads(n)`` then ``load()`` (or use the
runner as a context manager), ``infer(inputs)`` any number of times, ``last_inference_time``
holds the seconds of the last runtime call (the runtime's own run, without layout conversion),
``close()`` frees it.

:class:`ArtifactRunner` loads an exported artifact from its directory and ``manifest.json``;
every input and output is mapped through the manifest's bindings (catalog name <-> the
runtime's tensor name, NCHW <-> the runtime's layout), never by position.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np

from zoo.backends import by_format
from zoo.errors import UsageError, ZooError
from zoo.layouts import from_layout, shape_from, to_layout
from zoo.manifest import Manifest, TensorBinding, read_manifest
from zoo.native import native_quiet  # noqa: F401  (re-exported for runners)


class OpRecord(NamedTuple):
    """One op of one profiled run, in execution order."""

    name: str
    type: str
    mflops: float | None  # the runtime's own count (MNN: multiply-add = 1), None when it has none
    seconds: float


class BaseRunner(ABC):
    """One model in one runtime; inputs and outputs keyed by catalog name, NCHW float32."""

    #: the format (row of :data:`zoo.backends.BACKENDS`) this runner runs
    format: ClassVar[str] = ""
    #: pip extra that installs the runtime
    extra: ClassVar[str] = ""

    def __init__(self, name: str):
        self.name = name
        self.threads = 1
        self.last_inference_time: float | None = None
        self.is_loaded = False

    # -- lifecycle -------------------------------------------------------------------------
    def set_threads(self, n: int) -> None:
        """Use ``n`` CPU threads; a loaded runner is reloaded (some runtimes fix it at load)."""
        if int(n) < 1:
            raise UsageError(f"thread count must be >= 1, got {n}")
        self.threads = int(n)
        if self.is_loaded:
            self.close()
            self.load()

    def load(self) -> "BaseRunner":
        if not self.is_loaded:
            self._load()
            self.is_loaded = True
        return self

    def close(self) -> None:
        if self.is_loaded:
            self._close()
            self.is_loaded = False

    def __enter__(self) -> "BaseRunner":
        return self.load()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- inference -------------------------------------------------------------------------
    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once: catalog-named NCHW float32 arrays in, catalog-named NCHW arrays out."""
        if not self.is_loaded:
            self.load()
        return self._infer(self._check_inputs(inputs))

    @property
    @abstractmethod
    def input_names(self) -> list[str]:
        """Catalog names of the inputs, in declaration order."""

    def _check_inputs(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``inputs`` as contiguous float32 arrays, keyed by exactly the model's input names."""
        expected = self.input_names
        if not isinstance(inputs, Mapping) or not all(isinstance(k, str) for k in inputs):
            raise UsageError(f"{self.name}: infer() takes a dict of the inputs {sorted(expected)} (NCHW float32 arrays), "
                             f"got {type(inputs).__name__}")
        if sorted(inputs) != sorted(expected):
            raise UsageError(f"{self.name}: inputs {sorted(inputs)} do not match the model's {sorted(expected)}")
        arrays = {}
        for k, v in inputs.items():
            try:
                arrays[k] = np.ascontiguousarray(v, dtype=np.float32)
            except (TypeError, ValueError):
                raise UsageError(f"{self.name}: input {k!r} must be a numeric array, got {type(v).__name__}") from None
        return arrays

    def _timed(self, fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        self.last_inference_time = time.perf_counter() - start
        return result

    @abstractmethod
    def _load(self) -> None: ...

    def _close(self) -> None:  # default: drop references
        pass

    @abstractmethod
    def _infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class ManifestRunner(BaseRunner):
    """A runner of an artifact described by ``self.manifest`` (one graph or a split pair)."""

    manifest: Manifest

    @property
    def extra(self) -> str:
        """The pip extra that installs this runtime."""
        return by_format(self.format).extra

    @property
    def input_names(self) -> list[str]:
        return [b.name for b in self.manifest.inputs]


class ArtifactRunner(ManifestRunner):
    """A runner over an exported artifact directory; subclasses implement :meth:`_run`.

    ``_run`` takes ``{runtime_name: array in the runtime's layout}`` and returns
    ``{runtime_name: array}``; this class does the name and layout mapping from the manifest.
    """

    def __init__(self, artifact_dir: Path | str, manifest: Manifest | None = None):
        self.artifact_dir = Path(artifact_dir)
        self.manifest = manifest or read_manifest(self.artifact_dir)
        if self.format and self.manifest.format != self.format:
            raise UsageError(f"{self.artifact_dir} holds a {self.manifest.format} artifact, not {self.format}")
        m = self.manifest
        super().__init__(f"{m.variant}/{m.format}-{m.precision}")

    def settings(self) -> dict:
        """The runtime's settings this runner loads its model with (threads, precision switches), as
        plain data: what a device's worker (:mod:`compare.devices.worker`) applies to run it alike."""
        raise NotImplementedError(f"{self.name}: {self.format} runner declares no settings")

    def profiler(self):
        """A per-op profiler of this artifact (``load(pair)``, ``run() -> seconds``,
        ``finish() -> [[OpRecord]]``, ``optimized_model``); runtimes without one say so."""
        raise UsageError(f"{self.name}: {self.format} has no per-op profiler in zoo")

    def tensor_tap(self):
        """A tap of every intermediate tensor (``run(pair) -> [Tapped]``, :mod:`compare.runners.taps`);
        runtimes without one say so."""
        raise UsageError(f"{self.name}: {self.format} has no tensor tap in zoo")

    def model_file(self, suffix: str) -> Path:
        """The manifest's (single) file ending in ``suffix``."""
        hits = [f.path for f in self.manifest.files if f.path.endswith(suffix)]
        if len(hits) != 1:
            raise ZooError(f"{self.name}: expected one *{suffix} file in the manifest, found {len(hits)}")
        return self.artifact_dir / hits[0]

    def _infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {}
        for b in self.manifest.inputs:
            array = inputs[b.name]
            expected = shape_from(b.shape, b.layout)
            if list(array.shape) != expected:
                raise UsageError(f"{self.name}: input {b.name!r} has shape {list(array.shape)}, expected {expected} (NCHW)")
            feed[b.runtime_name] = to_layout(array, b.layout)
        raw = self._timed(self._run, feed)
        return {b.name: self._output(raw, b) for b in self.manifest.outputs}

    def keep_input(self, runtime_name: str, value: np.ndarray) -> object:
        """``value`` (runtime layout) as this runtime keeps an input between calls: what
        :meth:`_run` then takes in ``feed`` without converting it again (a split artifact's cache).
        Default: a contiguous float32 array; runtimes with native tensors override."""
        return np.ascontiguousarray(value, dtype=np.float32)

    def _output(self, raw: dict[str, np.ndarray], b: TensorBinding) -> np.ndarray:
        if b.runtime_name not in raw:
            raise ZooError(f"{self.name}: the runtime returned no output {b.runtime_name!r} ({b.name})")
        array = np.asarray(raw[b.runtime_name], dtype=np.float32).reshape(b.shape)
        return from_layout(array, b.layout)

    @abstractmethod
    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...
