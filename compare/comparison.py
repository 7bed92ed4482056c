"""One comparison, end to end: artifacts (exported where missing), parity against PyTorch on the
same inputs for every variant x runtime x precision, then optional timing. Returns a
:class:`Report` of plain data; the CLI draws it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from compare.devices.connection import connect
from compare.inputs import Pair, load_pairs, save_npz, stack_pairs
from compare.measure.ceiling import CeilingBlock, ceiling_rows
from compare.measure.machine import machine_info
from compare.measure.specs import macs_per_call
from compare.measure.timing import Timing, TimingJob, slowest_rows, time_jobs, timing_rows
from compare.measure.worker import RunnerSpec, memory_method
from compare.parity.runtimes import RuntimeParity, compare_variant, device_rows, parity_rows, sample_rows, tracker_rows
from compare.provision import Provisioned, ensure, runtime_keys
from zoo.artifacts import Status, default_out_dir
from zoo.catalog import Catalog
from zoo.devices import Device
from zoo.schema import Variant
from zoo.tracker_parity import describe_tracker_failure

#: progress callback: (stage, text) with stage one of export | parity | timing
OnProgress = Callable[[str, str], None]


@dataclass
class Options:
    """What to compare and how (the CLI's options, validated)."""

    runtimes: list[str]
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    samples: int = 4
    inputs_file: Path | None = None
    threads: list[int] = field(default_factory=lambda: [1, 2, 4])
    runs: int = 20  # 0: no timing
    warmup: int = 3
    #: interleaved timing blocks (every row and the ceilings once per block)
    repeats: int = 1
    parity_threads: int = 1
    out: Path = field(default_factory=default_out_dir)  # $ZOO_ARTIFACTS or ./artifacts
    jobs: int = 1
    #: also each runtime's split artifact (init + track graphs): parity, and the track graph's time per frame
    split: bool = False
    #: devices off this machine whose kernels compute the parity figures too (beside this machine's)
    devices: list[Device] = field(default_factory=list)


@dataclass
class Report:
    """Everything a comparison measured."""

    artifacts: list[Provisioned]
    parity: list[RuntimeParity]
    timing: list[Timing]
    inputs: dict[str, list[Pair]]  # variant -> pairs used
    outputs: dict  # (variant, runtime, precision) -> outputs per sample
    #: the ceilings measured beside each timing block
    ceilings: list[CeilingBlock] = field(default_factory=list)

    @property
    def _order(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.inputs)}

    @property
    def failures(self) -> list[str]:
        """One line per failed export, runtime error or output above tolerance."""
        lines = [f"{w.key.variant} {w.key.label} {w.key.precision}: export failed: {w.note}"
                 for w in self.artifacts if w.status is Status.FAILED]
        for r in self.parity:
            what = f"{r.variant} {r.runtime} {r.precision}" + ("" if r.device == "local" else f" on {r.device}")
            if r.error:
                lines.append(f"{what}: {r.error}")
            if r.gate is not None and not r.gate.passed:
                lines.append(f"{what}: " + describe_tracker_failure(r.gate))
            bad = [o.output for o in r.outputs if not o.passed]
            if bad:
                lines.append(f"{what}: {', '.join(bad)} above the {r.family} tolerance "
                             f"(atol {r.outputs[0].atol:g}, rtol {r.outputs[0].rtol:g})")
        return lines

    def rows(self) -> dict[str, list[dict]]:
        """The tables as plain rows: parity (per output), tracker (per runtime), timing, skipped."""
        return {
            "parity": parity_rows([r for r in self.parity if r.device == "local"]),
            "devices": device_rows(self.parity),
            "tracker": tracker_rows(self.parity),
            "timing": timing_rows(sorted(self.timing, key=lambda t: (t.device != "local", t.device, self._order[t.variant], t.threads))),
            "ceilings": ceiling_rows(self.ceilings, {t.precision for t in self.timing if t.device == "local"}),
            "slowest": slowest_rows(timing_rows(self.timing)) if len({t.device for t in self.timing} - {"local"}) > 1 else [],
            "skipped": [{"variant": w.key.variant, "runtime": w.key.label, "precision": w.key.precision, "note": w.note}
                        for w in self.artifacts if w.status is Status.SKIPPED],
        }

    def as_json(self) -> dict:
        """Rows plus per-sample tracker figures and the machine the figures come from."""
        return {"machine": machine_info(memory_method(), timed=True), **self.rows(), "samples": sample_rows(self.parity),
                "ceiling_blocks": [asdict(b) for b in self.ceilings]}


def run(catalog: Catalog, variants: list[Variant], opts: Options, on_progress: OnProgress | None = None,
        on_export: Callable | None = None) -> Report:
    """Export what is missing, compare every runtime with PyTorch, then time them (``opts.runs`` > 0)."""
    progress = on_progress or (lambda stage, text: None)
    inputs = {v.name: load_pairs(v, opts.samples, opts.inputs_file, catalog.preset(v), catalog.quantization)
              for v in variants}  # bad inputs fail first
    devices = []
    for device in opts.devices:  # an unreachable device fails before any export
        progress("devices", f"starting {device.name}")
        devices.append((device, connect(device).family))
    keys = runtime_keys(variants, opts.runtimes, opts.precisions)
    if opts.split:
        keys += runtime_keys(variants, opts.runtimes, opts.precisions, split=True)
    artifacts = ensure(keys, opts.out, catalog, on_event=on_export, jobs=opts.jobs)
    usable = [w for w in artifacts if w.usable]
    parity: list[RuntimeParity] = []
    outputs: dict = {}
    for v in variants:
        mine = [(w.key.label, w.path) for w in usable if w.key.variant == v.name]
        progress("parity", f"{v.name}: {len(mine)} artifact(s) vs PyTorch on {len(inputs[v.name])} sample(s)")
        parity.extend(compare_variant(v, mine, inputs[v.name], catalog.preset(v), threads=opts.parity_threads, keep_outputs=outputs,
                                      devices=tuple(devices), quantization=catalog.quantization,
                                      on_result=lambda r: progress("parity", f"{r.variant} {r.runtime} {r.precision} on {r.device}")))
    timing: list[Timing] = []
    ceilings: list[CeilingBlock] = []
    if opts.runs > 0:
        jobs = []
        for v in variants:
            specs = [RunnerSpec(w.key, v, w.path) for w in usable if w.key.variant == v.name]
            jobs.append(TimingJob(v.name, v.measured.macs_total, inputs[v.name][0], RunnerSpec.reference(v), specs,
                                  {s.key.label: macs_per_call(s) for s in specs if s.key.split}))
        for device in (d for d in opts.devices if d.kind.timing):  # the same artifacts timed on each board
            jobs += [TimingJob(v.name, v.measured.macs_total, inputs[v.name][0], None,
                               [RunnerSpec(w.key, v, w.path, device) for w in usable if w.key.variant == v.name and not w.key.split])
                     for v in variants]
        progress("timing", f"{len(jobs)} variant(s) x threads {sorted(set(opts.threads))} x {opts.repeats} block(s)")
        timing = time_jobs(jobs, opts.threads, opts.warmup, opts.runs, repeats=opts.repeats, ceilings=ceilings,
                           on_block=lambda s, n, b: progress("timing", f"block {b + 1}/{opts.repeats}: {s.label} {n}T"))
    return Report(artifacts, parity, timing, inputs, outputs, ceilings)


def save_inputs(report: Report, path: Path) -> None:
    """The input pairs as ``.npz``: keys are input names (prefixed ``<variant>/`` when variants differ)."""
    stacked = {name: stack_pairs(pairs) for name, pairs in report.inputs.items()}
    first = next(iter(stacked.values()))
    same = all(a.keys() == first.keys() and all(np.array_equal(a[k], first[k]) for k in a) for a in stacked.values())
    arrays = first if same else {f"{v}/{k}": a for v, arrays in stacked.items() for k, a in arrays.items()}
    save_npz(path, arrays)


def save_outputs(report: Report, path: Path) -> None:
    """Every output set as ``.npz``: ``<variant>/<runtime>-<precision>/<output>`` with a sample axis."""
    arrays = {}
    for (variant, runtime, precision), per_sample in report.outputs.items():
        for name in per_sample[0]:
            arrays[f"{variant}/{runtime}-{precision}/{name}"] = np.stack([o[name] for o in per_sample])
    save_npz(path, arrays)

