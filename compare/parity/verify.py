"""The export pipeline's verifier: run a freshly built artifact in its own runtime and compare
every output with PyTorch eager on a fixed realistic input pair (:func:`zoo.sample_inputs.sample_pairs`).

:class:`Verifier` is the callable :class:`exporters.pipeline.Pipeline` receives; it computes the
PyTorch reference once per variant.
"""
from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import numpy as np

from compare.devices.connection import connect
from compare.devices.runner import runner_on
from compare.runners import PytorchRunner, runner_for
from zoo.artifacts import ArtifactKey
from zoo.backends import by_flavour, by_format
from zoo.calibration import held_out_pairs
from zoo.catalog import Catalog
from zoo.devices import Device, local_family
from zoo.manifest import DeviceParity, Manifest, Parity
from zoo.parity import compare_output
from zoo.sample_inputs import sample_pairs
from zoo.schema import Variant
from zoo.tracker_parity import tracker_parity

#: the verification input: the first scene of zoo.sample_inputs
VERIFY_INPUTS = "zoo.sample_inputs.sample_pairs(variant, 1)[0] (scikit-image 'astronaut' crops)"
REFERENCE = "PyTorch eager, fp32, catalog weights (BatchNorm unfolded)"


class Verifier:
    """``verifier(key, build_dir, manifest) -> Parity`` for :class:`exporters.pipeline.Pipeline`; the
    catalog in use gives the variants, their tolerances, presets and the quantization settings.
    With ``devices``, an artifact that passes here is verified again on each device's kernels
    (:meth:`on_device`) and passes only if it passes there too."""

    def __init__(self, catalog: Catalog, devices: tuple[Device, ...] = ()):
        self.catalog = catalog
        self.devices = tuple(devices)
        self._refs: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}
        self._lock = threading.Lock()
        self._held_out: dict[tuple, tuple[list, list]] = {}

    def __getstate__(self) -> dict:
        """A worker process (:mod:`exporters.isolated`) gets the catalog and devices; it computes its
        own references (the lock does not cross processes)."""
        return {"catalog": self.catalog, "devices": self.devices}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["catalog"], state["devices"])

    def reference(self, variant: Variant) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(inputs, PyTorch outputs) of the verification pair, computed once per variant."""
        with self._lock:
            if variant.name not in self._refs:
                inputs = sample_pairs(variant, 1)[0]
                with PytorchRunner(variant) as ref:
                    self._refs[variant.name] = (inputs, ref.infer(inputs))
            return self._refs[variant.name]

    def held_out(self, variant: Variant, n: int) -> tuple[list, list]:
        """(pairs, PyTorch outputs) of the gate's ``n`` held-out pairs (:func:`zoo.calibration.held_out_pairs`:
        the held-out scenes, whatever the calibration source was), computed once per variant."""
        key = (variant.name, n)
        with self._lock:
            if key not in self._held_out:
                pairs = held_out_pairs(variant, self.catalog.preset(variant), n, self.catalog.quantization)
                with PytorchRunner(variant) as ref:
                    self._held_out[key] = (pairs, [ref.infer(p) for p in pairs])
            return self._held_out[key]

    def __call__(self, key: ArtifactKey, build_dir: Path, manifest: Manifest) -> Parity:
        if key.flavour:  # a flavoured artifact: its client's check (zoo.backends.FLAVOURS)
            return by_flavour(key.flavour).checker_function()(self, key, build_dir, manifest)
        parity = self.here(key, build_dir, manifest)
        if parity.passed and self.devices:
            found = [self.on_device(d, key, build_dir, manifest) for d in self.devices]
            parity = parity.model_copy(update={"devices": found, "passed": all(d.passed for d in found)})
        return parity

    def on_device(self, device: Device, key: ArtifactKey, build_dir: Path, manifest: Manifest) -> DeviceParity:
        """The verification of :meth:`here` with the artifact run on ``device``, judged by the
        tolerance of the device's CPU family."""
        variant = self.catalog.get(key.variant)
        inputs, expected = self.reference(variant)
        conn = connect(device)
        tol = variant.tolerance(key.format, key.precision, conn.family)
        with runner_on(device, build_dir, manifest, connection=conn) as runner:
            actual = runner.infer(inputs)
            tracker = None
            if tol.tracker is not None:
                pairs, refs = self.held_out(variant, tol.tracker.pairs)
                tracker = tracker_parity(refs, [runner.infer(p) for p in pairs], self.catalog.preset(variant),
                                         variant.preprocessing.search_size, tol.tracker)
        outputs = [compare_output(spec.name, actual[spec.name], expected[spec.name], tol.atol, tol.rtol)
                   for spec in variant.io.outputs]
        backend = by_format(key.format)
        features = {"hwcaps": conn.info.get("cpu", {}).get("hwcaps", [])}
        if conn.info.get("features", {}).get(backend.runtime):
            features[backend.runtime] = conn.info["features"][backend.runtime]
        return DeviceParity(device=device.name, family=conn.family, machine=conn.info.get("machine", "?"),
                            features=features,
                            runtime_version=conn.runtime_version(backend.distribution), atol=tol.atol, rtol=tol.rtol,
                            passed=tracker.passed if tracker is not None else all(o.passed for o in outputs),
                            outputs=outputs, tracker=tracker,
                            checked=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))

    def here(self, key: ArtifactKey, build_dir: Path, manifest: Manifest) -> Parity:
        """The artifact in this process against PyTorch on the verification pair (reduced precisions:
        and the tracker-level gate on held-out pairs)."""
        variant = self.catalog.get(key.variant)
        inputs, expected = self.reference(variant)
        tol = variant.tolerance(key.format, key.precision, local_family())
        with runner_for(build_dir, manifest) as runner:
            actual = runner.infer(inputs)
            tracker = None
            if tol.tracker is not None:
                pairs, refs = self.held_out(variant, tol.tracker.pairs)
                outs = [runner.infer(p) for p in pairs]
                tracker = tracker_parity(refs, outs, self.catalog.preset(variant), variant.preprocessing.search_size,
                                         tol.tracker)
        outputs = [compare_output(spec.name, actual[spec.name], expected[spec.name], tol.atol, tol.rtol)
                   for spec in variant.io.outputs]
        if tracker is not None:  # element-wise figures are reported; the tracker-level check decides
            return Parity(reference=REFERENCE, inputs=VERIFY_INPUTS + f"; tracker-level: {tracker.pairs} held-out pairs "
                          "(zoo.calibration.held_out_pairs: the held-out scenes, never the calibration images)", atol=tol.atol, rtol=tol.rtol,
                          passed=tracker.passed, outputs=outputs, tracker=tracker)
        return Parity(reference=REFERENCE, inputs=VERIFY_INPUTS, atol=tol.atol, rtol=tol.rtol,
                      passed=all(o.passed for o in outputs), outputs=outputs)
