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
from zoo.artifacts import ArtifactKey
from zoo.backends import by_flavour
from zoo.calibration import make_pairs, open_source
from zoo.catalog import Catalog
from zoo.errors import ZooError
from zoo.manifest import Manifest, Parity
from zoo.parity import compare_output
from zoo.sample_inputs import sample_pairs
from zoo.schema import QuantizationSpec, Variant
from zoo.tracker_parity import tracker_parity

#: the verification input: the first scene of zoo.sample_inputs
VERIFY_INPUTS = "zoo.sample_inputs.sample_pairs(variant, 1)[0] (scikit-image 'astronaut' crops)"
REFERENCE = "PyTorch eager, fp32, catalog weights (BatchNorm unfolded)"


class Verifier:
    """``verifier(key, build_dir, manifest) -> Parity`` for :class:`exporters.pipeline.Pipeline`; the
    catalog in use gives the variants, their tolerances, presets and the quantization settings."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
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
                spec = self.catalog.quantization or QuantizationSpec.model_validate({"recipes": {}})  # the schema's jitter defaults
                pairs = make_pairs(variant, self.catalog.preset(variant), opened, n, "verification", spec.jitter_shift, spec.jitter_scale)
                with PytorchRunner(variant) as ref:
                    self._held_out[key] = (pairs, [ref.infer(p) for p in pairs])
            return self._held_out[key]

    def __call__(self, key: ArtifactKey, build_dir: Path, manifest: Manifest) -> Parity:
        if key.flavour:  # a flavoured artifact: its client's check (zoo.backends.FLAVOURS)
            return by_flavour(key.flavour).checker_function()(self, key, build_dir, manifest)
        variant = self.catalog.get(key.variant)
        inputs, expected = self.reference(variant)
        tol = variant.tolerance(key.format, key.precision)
        with runner_for(build_dir, manifest) as runner:
            actual = runner.infer(inputs)
            tracker = None
            if tol.tracker is not None:
                pairs, refs = self.held_out(variant, (manifest.quantization or {}).get("calibration"), tol.tracker.pairs)
                outs = [runner.infer(p) for p in pairs]
                tracker = tracker_parity(refs, outs, self.catalog.preset(variant), variant.preprocessing.search_size,
                                         tol.tracker)
        outputs = [compare_output(spec.name, actual[spec.name], expected[spec.name], tol.atol, tol.rtol)
                   for spec in variant.io.outputs]
        if tracker is not None:  # element-wise figures are reported; the tracker-level check decides
            return Parity(reference=REFERENCE, inputs=VERIFY_INPUTS + f"; tracker-level: {tracker.pairs} held-out pairs "
                          "(zoo.calibration, stream 'verification')", atol=tol.atol, rtol=tol.rtol,
                          passed=tracker.passed, outputs=outputs, tracker=tracker)
        return Parity(reference=REFERENCE, inputs=VERIFY_INPUTS, atol=tol.atol, rtol=tol.rtol,
                      passed=all(o.passed for o in outputs), outputs=outputs)
