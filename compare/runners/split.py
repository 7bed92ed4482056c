"""A split artifact (init + track graphs, :mod:`exporters.split`) behind the runner contract.

:class:`SplitRunner` loads both graphs with the format's own runner class. ``infer({template,
search})`` runs the init graph when the template array is a new object (a new
:meth:`compare.tracking.tracker.Tracker.initialize`, or any other caller's first call) and keeps its cache
tensors exactly as the runtime returned them (its layout, e.g. NCL for 3-D tensors from a channels-last converter;
transposed once, at init, only if the track graph wants another layout); every call then runs
the track graph on the search crop and the kept cache. ``last_inference_time`` is the track
graph's run (per frame); ``last_init_time`` the init graph's.

The track runner keeps the cache in its runtime's own form (``ArtifactRunner.keep_input``), so
no cache tensor is rebuilt or copied per frame: MNN as ``MNN.expr`` variables, ncnn as
``ncnn.Mat``, TFLite written once into the interpreter's input tensors (only the search crop is
set per frame); ONNX Runtime takes the kept numpy arrays as they are (no copy on CPU).
"""

from __future__ import annotations

import time

import numpy as np

from compare.runners.base import ArtifactRunner, ManifestRunner
from zoo.errors import ZooError
from zoo.manifest import GraphBinding, GraphSpec, Manifest


def _sub_manifest(manifest: Manifest, graph: GraphSpec) -> Manifest:
    files = [f for f in manifest.files if f.path in graph.files]
    return manifest.model_copy(update={"files": files, "inputs": graph.inputs, "outputs": graph.outputs, "graphs": None})


def _to_runtime(array: np.ndarray, b: GraphBinding) -> np.ndarray:
    """A logical (NCHW / NLC) array in the binding's runtime layout."""
    if b.perm == list(range(array.ndim)):
        return np.ascontiguousarray(array, dtype=np.float32)
    return np.ascontiguousarray(array.transpose(b.perm), dtype=np.float32)


def _to_logical(array: np.ndarray, b: GraphBinding) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32).reshape(b.shape)
    return array if b.perm == list(range(array.ndim)) else np.ascontiguousarray(array.transpose(np.argsort(b.perm)))


class SplitRunner(ManifestRunner):
    """Both graphs of a split artifact in one runtime; catalog-named NCHW in and out."""

    def __init__(self, artifact_dir, manifest: Manifest, runner_class: type[ArtifactRunner]):
        if manifest.graphs is None:
            raise ZooError(f"{artifact_dir} is not a split artifact (its manifest has no graphs section)")
        self.manifest = manifest
        self.format = manifest.format
        self.artifact_dir = artifact_dir
        self.graphs = manifest.graphs
        self.init_runner = runner_class(artifact_dir, _sub_manifest(manifest, self.graphs.init))
        self.track_runner = runner_class(artifact_dir, _sub_manifest(manifest, self.graphs.track))
        super().__init__(f"{manifest.variant}/{manifest.format}-{manifest.precision}-split")
        self._template_ref = self._template_copy = None
        self._cache: dict[str, object] = {}
        self.last_init_time: float | None = None
        self.init_calls = 0

    def set_threads(self, n: int) -> None:
        super().set_threads(n)
        self.init_runner.threads = self.track_runner.threads = self.threads

    def _load(self) -> None:
        for r in (self.init_runner, self.track_runner):
            r.threads = self.threads
            r.load()

    def _close(self) -> None:
        self.init_runner.close()
        self.track_runner.close()
        self._cache, self._template_ref, self._template_copy = {}, None, None

    def reset(self) -> None:
        """Forget the cache: the next call runs the init graph."""
        self._cache, self._template_ref, self._template_copy = {}, None, None

    def init(self, template: np.ndarray) -> dict[str, np.ndarray]:
        """Run the init graph on a (NCHW) template and keep its cache; returns the cache (logical layout)."""
        (tb,) = self.graphs.init.inputs
        feed = {tb.runtime_name: _to_runtime(np.asarray(template, dtype=np.float32), tb)}
        start = time.perf_counter()
        raw = self.init_runner._run(feed)
        track_in = {b.name: b for b in self.graphs.track.inputs}
        cache = {}
        for b in self.graphs.init.outputs:
            if b.runtime_name not in raw:
                raise ZooError(f"{self.name}: the init graph returned no output {b.runtime_name!r} ({b.name})")
            value, dst = raw[b.runtime_name], track_in[b.name]
            if b.perm != dst.perm or list(np.shape(value)) != dst.shape:  # once per init, never per frame
                value = _to_runtime(_to_logical(value, b), dst)
            cache[dst.runtime_name] = self.track_runner.keep_input(dst.runtime_name, value)
        self.last_init_time = time.perf_counter() - start
        self._cache = cache
        self.init_calls += 1
        return {b.name: _to_logical(np.asarray(raw[b.runtime_name]), b) for b in self.graphs.init.outputs}

    def prime(self, inputs: dict[str, np.ndarray]) -> None:
        """Run the init graph on ``inputs``' template now (a tracker's initialisation) unless it is kept already."""
        if not self.is_loaded:
            self.load()
        template = inputs[self.graphs.init.inputs[0].name]
        # the same template object with unchanged contents (a ~50k-element compare: microseconds)
        if not self._cache or template is not self._template_ref or not np.array_equal(template, self._template_copy):
            self.init(template)
            self._template_ref, self._template_copy = template, np.array(template, copy=True)

    def _infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.prime(inputs)
        sb = self.graphs.track.inputs[0]
        feed = {sb.runtime_name: _to_runtime(inputs[sb.name], sb), **self._cache}
        raw = self._timed(self.track_runner._run, feed)
        out = {}
        for b in self.graphs.track.outputs:
            if b.runtime_name not in raw:
                raise ZooError(f"{self.name}: the track graph returned no output {b.runtime_name!r} ({b.name})")
            out[b.name] = _to_logical(np.asarray(raw[b.runtime_name]), b)
        return out
