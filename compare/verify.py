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
from zoo.parity import compare_output
from zoo.sample_inputs import sample_pairs
from zoo.schema import Variant

#: the verification input: the first scene of zoo.sample_inputs
VERIFY_INPUTS = "zoo.sample_inputs.sample_pairs(variant, 1)[0] (scikit-image 'astronaut' crops)"
REFERENCE = "PyTorch eager, fp32, catalog weights (BatchNorm unfolded)"


class Verifier:
    """``verifier(target, build_dir, manifest) -> Parity`` for :class:`exporters.pipeline.Pipeline`."""

    def __init__(self):
        self._refs: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}
        self._lock = threading.Lock()

    def reference(self, variant: Variant) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(inputs, PyTorch outputs) of the verification pair, computed once per variant."""
        with self._lock:
            if variant.name not in self._refs:
                inputs = sample_pairs(variant, 1)[0]
                with PytorchRunner(variant) as ref:
                    self._refs[variant.name] = (inputs, ref.infer(inputs))
            return self._refs[variant.name]

    def __call__(self, target, build_dir: Path, manifest: Manifest) -> Parity:
        if getattr(target, "flavour", None):  # a flavoured artifact: its client's check (zoo.backends.FLAVOURS)
            return by_flavour(target.flavour).checker_function()(self, target, build_dir, manifest)
        variant = target.variant
        inputs, expected = self.reference(variant)
        tol = variant.tolerances[target.format][target.precision]
        with runner_for(build_dir, manifest) as runner:
            actual = runner.infer(inputs)
        outputs = [compare_output(spec.name, actual[spec.name], expected[spec.name], tol.atol, tol.rtol)
                   for spec in variant.io.outputs]
        return Parity(reference=REFERENCE, inputs=VERIFY_INPUTS, atol=tol.atol, rtol=tol.rtol,
                      passed=all(o.passed for o in outputs), outputs=outputs)
