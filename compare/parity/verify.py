"""The export pipeline's verifier: run a freshly built artifact in its own runtime and compare
every output with PyTorch eager on a fixed realistic input pair (:func:`zoo.sample_inputs.sample_pairs`).

:class:`Verifier` is the callable :class:`exporters.pipeline.Pipeline` receives; it computes the
PyTorch reference once per variant.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from compare.runners import PytorchRunner, runner_for
from zoo.artifacts import Manifest, Parity
from zoo.backends import by_flavour
from zoo.calibration import make_pairs, open_source
from zoo.catalog import Catalog
from zoo.errors import ZooError
from zoo.parity import compare_output
from zoo.sample_inputs import sample_pairs
from zoo.schema import Variant
from zoo.tracker_parity import tracker_parity

#: the verification input: the first scene of zoo.sample_inputs
VERIFY_INPUTS = "zoo.sample_inputs.sample_pairs(variant, 1)[0] (scikit-image 'astronaut' crops)"
REFERENCE = "PyTorch eager, fp32, catalog weights (BatchNorm unfolded)"


class Verifier:
    """``verifier(target, build_dir, manifest) -> Parity`` for :class:`exporters.pipeline.Pipeline`."""

    def __init__(self):
        self._refs: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}
        self._lock = threading.Lock()
        self._held_out: dict[tuple, tuple[list, list]] = {}

    def reference(self, variant: Variant) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(inputs, PyTorch outputs) of the verification pair, computed once per variant."""
        with self._lock:
            if variant.name not in self._refs:
                inputs = sample_pairs(variant, 1)[0]
                with PytorchRunner(variant) as ref:
                    self._refs[variant.name] = (inputs, ref.infer(inputs))
            return self._refs[variant.name]

    def held_out(self, variant: Variant, source: dict | None, n: int) -> tuple[list, list]:
        """(pairs, PyTorch outputs) of ``n`` verification pairs (never the calibration pairs) cut from
        the calibration source the manifest records, computed once per variant and source."""
        path = (source or {}).get("path")
        key = (variant.name, path, n)
        with self._lock:
            if key not in self._held_out:
                opened = open_source(path)
                if source and opened.sha256 != source.get("sha256"):
                    raise ZooError(f"calibration source {path or 'bundled'} changed during the export (sha256 differs)")
                spec = Catalog.load().quantization
                shift, scale = (spec.jitter_shift, spec.jitter_scale) if spec else (0.3, 0.2)
                pairs = make_pairs(variant, Catalog.load().preset(variant), opened, n, "verification", shift, scale)
                with PytorchRunner(variant) as ref:
                    self._held_out[key] = (pairs, [ref.infer(p) for p in pairs])
            return self._held_out[key]

    def __call__(self, target, build_dir: Path, manifest: Manifest) -> Parity:
        if getattr(target, "flavour", None):  # a flavoured artifact: its client's check (zoo.backends.FLAVOURS)
            return by_flavour(target.flavour).checker_function()(self, target, build_dir, manifest)
        variant = target.variant
        inputs, expected = self.reference(variant)
        tol = variant.tolerances[target.format][target.precision]
        with runner_for(build_dir, manifest) as runner:
            actual = runner.infer(inputs)
            tracker = None
            if tol.tracker is not None:
                pairs, refs = self.held_out(variant, (manifest.quantization or {}).get("calibration"), tol.tracker.pairs)
                outs = [runner.infer(p) for p in pairs]
                tracker = tracker_parity(refs, outs, Catalog.load().preset(variant), variant.preprocessing.search_size,
                                         tol.tracker)
        outputs = [compare_output(spec.name, actual[spec.name], expected[spec.name], tol.atol, tol.rtol)
                   for spec in variant.io.outputs]
        if tracker is not None:  # element-wise figures are reported; the tracker-level check decides
            return Parity(reference=REFERENCE, inputs=VERIFY_INPUTS + f"; tracker-level: {tracker.pairs} held-out pairs "
                          "(zoo.calibration, stream 'verification')", atol=tol.atol, rtol=tol.rtol,
                          passed=tracker.passed, outputs=outputs, tracker=tracker)
        return Parity(reference=REFERENCE, inputs=VERIFY_INPUTS, atol=tol.atol, rtol=tol.rtol,
                      passed=all(o.passed for o in outputs), outputs=outputs)
