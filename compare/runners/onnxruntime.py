"""ONNX Runtime (CPU execution provider) runner, and its per-node profiler."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from compare.runners.base import ArtifactRunner, OpRecord
from compare.runners.taps import OrtTap
from zoo.layouts import to_layout
from zoo.requirements import require


class OnnxRuntimeRunner(ArtifactRunner):
    format = "onnx"

    def settings(self) -> dict:
        """``SessionOptions`` attributes: intra-op threads, one inter-op thread, a quiet log."""
        return {"intra_op_num_threads": self.threads, "inter_op_num_threads": 1, "log_severity_level": 3}

    def session_options(self):
        """ONNX Runtime session options for this runner (:meth:`settings`)."""
        ort = require("onnxruntime", self.extra, "ONNX Runtime")
        opts = ort.SessionOptions()
        for key, value in self.settings().items():
            setattr(opts, key, value)
        return opts

    def session(self, opts=None):
        """A CPU inference session of the artifact's model."""
        ort = require("onnxruntime", self.extra, "ONNX Runtime")
        return ort.InferenceSession(str(self.model_file(".onnx")), opts or self.session_options(),
                                    providers=["CPUExecutionProvider"])

    def profiler(self) -> "OrtOpProfiler":
        """A session of the same model and options with ONNX Runtime's profiler on."""
        return OrtOpProfiler(self)

    def tensor_tap(self):
        """Every intermediate tensor of this artifact, for ``zoo compare --layers`` (:mod:`compare.runners.taps`)."""
        return OrtTap(self)

    def _load(self) -> None:
        self._session = self.session()
        self._output_names = [b.runtime_name for b in self.manifest.outputs]

    def _close(self) -> None:
        self._session = None

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._output_names, self._session.run(self._output_names, feed), strict=True))


class OrtOpProfiler:
    """A session with ``enable_profiling`` (the optimized graph saved beside the trace); the
    chrome-trace events of category ``Node`` named ``<node>_kernel_time`` give ``args.op_name``
    and ``dur`` (us), grouped into runs by the ``model_run`` events."""

    def __init__(self, runner: OnnxRuntimeRunner):
        self.runner = runner
        self.optimized_model: Path | None = None

    def load(self, pair: dict[str, np.ndarray]) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="zoo-profile-"))
        opts = self.runner.session_options()
        opts.enable_profiling = True
        opts.profile_file_prefix = str(self._tmp / "ort")
        opts.optimized_model_filepath = str(self._tmp / "optimized.onnx")  # the graph that runs
        try:
            self._session = self.runner.session(opts)
        except Exception:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        self.optimized_model = self._tmp / "optimized.onnx"
        self._feed = {b.runtime_name: to_layout(pair[b.name], b.layout) for b in self.runner.manifest.inputs}
        self._outputs = [b.runtime_name for b in self.runner.manifest.outputs]

    def run(self) -> float:
        """One profiled run; returns its wall seconds."""
        t0 = time.perf_counter()
        self._session.run(self._outputs, self._feed)
        return time.perf_counter() - t0

    def finish(self) -> list[list[OpRecord]]:
        """Stop profiling, free the session and its files; the op records of every run."""
        try:
            events = json.loads(Path(self._session.end_profiling()).read_text())
        finally:
            self._session = None
            shutil.rmtree(self._tmp, ignore_errors=True)
        windows = [(e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
        nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
        return [[OpRecord(e["name"].removesuffix("_kernel_time"), e["args"].get("op_name", "?"), None, e["dur"] / 1e6)
                 for e in nodes if lo <= e["ts"] <= hi] for lo, hi in windows]
