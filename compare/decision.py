"""``zoo benchmark``'s library: one decision table of what to ship, from the figures four commands
measure — size (export), parity verdict and tracker agreement (compare), latency per thread count
(compare's timing), AUC and drift against PyTorch on a dataset's sequences (eval run, analyze,
drift) — and per device the fastest artifact that passes its gate.

Returns data only (rows, the ship choices, the comparison and evaluation behind them); the CLI
draws. Figures off the CPU they were measured on are labelled with that device and its family.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from compare.comparison import Options, Report, run
from compare.tracking.evaluation import result_folder, run_evaluation, tracker_specs
from zoo.backends import REFERENCE_RUNTIME
from zoo.catalog import Catalog, Variant
from zoo.datasets import Dataset, open_results
from zoo.evaluation.analyze import Evaluation, evaluate
from zoo.evaluation.drift import Drift, drift
from zoo.evaluation.plots import draw_style
from zoo.fileio import atomic_path, plot_format
from zoo.manifest import MANIFEST_NAME, read_manifest

#: (variant, runtime label, precision)
RowKey = tuple[str, str, str]


@dataclass
class DatasetRun:
    """A dataset's sequences tracked by PyTorch and every artifact: AUC per tracker, drift of each
    artifact's trajectories from PyTorch's."""

    dataset: Dataset
    results: Path
    evaluation: Evaluation
    #: (variant, runtime label, precision) -> tracker name in the results
    names: dict[RowKey, str]
    drifts: dict[RowKey, Drift] = field(default_factory=dict)


@dataclass
class Benchmark:
    """What ``zoo benchmark`` measured and decided."""

    comparison: Report
    rows: list[dict]
    ship: list[dict]
    threads: list[int]
    dataset: DatasetRun | None = None


def _artifact_sizes(report: Report) -> dict[RowKey, float]:
    sizes = {}
    for w in report.artifacts:
        if w.path is not None and w.usable and (w.path / MANIFEST_NAME).is_file():
            sizes[(w.key.variant, w.key.label, w.key.precision)] = read_manifest(w.path).size_bytes / 1e6
    return sizes


def decision_rows(report: Report, threads: list[int], dataset: DatasetRun | None = None) -> list[dict]:
    """One row per variant x artifact x precision x device: size, parity verdict (worst output
    error / allowed), tracker agreement on the verification pairs (reduced precisions: the
    catalog's tracker-level gate), AUC and drift vs PyTorch on the dataset, p50 latency and its
    spread per thread count, speedup vs PyTorch, and the gate: passes when parity (and the
    tracker gate, where the precision has one) passes on that device."""
    tables = report.rows()
    sizes = _artifact_sizes(report)
    rows: dict[tuple, dict] = {}

    def row(variant: str, runtime: str, precision: str, device: str) -> dict:
        key = (variant, runtime, precision, device)
        if key not in rows:
            rows[key] = {"variant": variant, "artifact": runtime, "precision": precision, "device": device,
                         "size_mb": sizes.get((variant, runtime, precision)), "parity": None, "err_ratio": None,
                         "tracker_iou": None, "gate": None}
        return rows[key]

    for r in tables["timing"]:  # PyTorch first: rows keep the order they are first seen in
        if r["runtime"] == REFERENCE_RUNTIME:
            row(r["variant"], r["runtime"], r["precision"], r["device"]).update(parity="reference", gate="reference")
    family = {}
    for r in [*tables["parity"], *tables["devices"]]:
        out = row(r["variant"], r["runtime"], r["precision"], r["device"])
        family[(r["variant"], r["runtime"], r["precision"], r["device"])] = r.get("family")
        ok = r.get("status") == "pass"
        out["parity"] = "pass" if ok and out["parity"] in (None, "pass") else "FAIL"
        if r.get("worst_ratio") is not None:
            out["err_ratio"] = max(out["err_ratio"] or 0.0, r["worst_ratio"])
    for r in tables["tracker"]:
        out = row(r["variant"], r["runtime"], r["precision"], r["device"])
        out["tracker_iou"] = r.get("gate_mean_iou", r["mean_iou"]) if r.get("gate") else r["mean_iou"]
        if r.get("gate"):
            out["tracker_gate"] = r["gate"]
    for key, out in rows.items():
        out["family"] = family.get(key)
        if out["gate"] != "reference":
            passed = out["parity"] == "pass" and out.get("tracker_gate", "pass") == "pass"
            out["gate"] = "pass" if passed else "FAIL"
    reference = {(r["variant"], r["device"], r["threads"]): r["median_ms"] for r in tables["timing"]
                 if r["runtime"] == REFERENCE_RUNTIME and r.get("median_ms")}
    for r in tables["timing"]:
        out = row(r["variant"], r["runtime"], r["precision"], r["device"])
        t = r["threads"]
        out[f"ms_{t}t"] = r.get("median_ms")
        out[f"spread_{t}t"] = r.get("spread_pct")
        base = reference.get((r["variant"], r["device"], t))
        out[f"speedup_{t}t"] = base / r["median_ms"] if base and r.get("median_ms") else None
        if r.get("error"):
            out["gate"] = "FAIL"
            out["error"] = r["error"]
    if dataset is not None:
        auc = {r["tracker"]: r["auc"] for r in dataset.evaluation.rows()}
        for key, name in dataset.names.items():
            for out in (o for (v, a, p, _), o in rows.items() if (v, a, p) == key):
                out["auc"] = auc.get(name)
                d = dataset.drifts.get(key)
                if d is not None:
                    overall = d.rows()[-1]
                    out["auc_diff"] = overall["auc_diff"]
                    out["drift_iou"] = overall["mean_iou"]
                    out["diverged"] = f"{overall['diverged']}/{len(d.evaluation.sequences)}"
    devices = list(dict.fromkeys(["local", *(k[3] for k in rows)]))
    variants = list(dict.fromkeys(k[0] for k in rows))
    seen = list(rows)
    order = sorted(seen, key=lambda k: (devices.index(k[3]), variants.index(k[0]), k[1] != REFERENCE_RUNTIME, seen.index(k)))
    return [rows[k] for k in order]  # per device, per variant: PyTorch first, then the artifacts


def fastest_time(row: dict, threads: list[int]) -> tuple[float, int] | None:
    """The row's lowest p50 latency and its thread count (None when untimed)."""
    timed = [(row[f"ms_{t}t"], t) for t in threads if row.get(f"ms_{t}t")]
    return min(timed) if timed else None


def ship_choices(rows: list[dict], threads: list[int]) -> list[dict]:
    """Per device: the fastest artifact (lowest p50 at any thread count) that passes its gate. A
    device with no timing (an emulated CPU) gets the passing artifacts and no choice of speed."""
    choices = []
    for device in dict.fromkeys(r["device"] for r in rows):
        mine = [r for r in rows if r["device"] == device and r["gate"] == "pass"]
        timed = [(fastest_time(r, threads), r) for r in mine]
        timed = [(t, r) for t, r in timed if t is not None]
        family = next((r.get("family") for r in rows if r["device"] == device and r.get("family")), None)
        if timed:
            (ms, t), best = min(timed, key=lambda item: item[0][0])
            ref = next((r for r in rows if r["device"] == device and r["artifact"] == REFERENCE_RUNTIME
                        and r["variant"] == best["variant"]), None)
            ref_ms = ref.get(f"ms_{t}t") if ref else None
            choices.append({"device": device, "family": family, "variant": best["variant"], "artifact": best["artifact"],
                            "precision": best["precision"], "ms": ms, "threads": t, "size_mb": best["size_mb"],
                            "speedup": ref_ms / ms if ref_ms else None, "tracker_iou": best["tracker_iou"],
                            "passing": len(mine)})
        else:
            choices.append({"device": device, "family": family, "variant": None, "artifact": None, "precision": None,
                            "ms": None, "threads": None, "size_mb": None, "speedup": None, "tracker_iou": None,
                            "passing": len(mine), "passing_names": [f"{r['variant']} {r['artifact']} {r['precision']}" for r in mine]})
    return choices


def ship_line(choice: dict) -> str:
    """One sentence: what to ship on a device, and on what figures."""
    where = choice["device"] + (f" ({choice['family']})" if choice.get("family") else "")
    if choice["artifact"] is None:
        if choice["passing"]:
            names = ", ".join(choice.get("passing_names", [])[:4])
            return (f"ship on {where}: no timing on this device (parity only); {choice['passing']} artifact(s) pass "
                    f"their gate there: {names} — time them on the phone itself (ssh://) to choose")
        return f"ship on {where}: nothing passes its gate"
    speed = f", {choice['speedup']:.2f}x PyTorch" if choice.get("speedup") else ""
    size = f", {choice['size_mb']:.2f} MB" if choice.get("size_mb") is not None else ""
    iou = f", tracker IoU {choice['tracker_iou']:.4f} vs PyTorch" if choice.get("tracker_iou") is not None else ""
    return (f"ship on {where}: {choice['variant']} {choice['artifact']} {choice['precision']} — p50 {choice['ms']:.2f} ms at "
            f"{choice['threads']} thread(s){speed}{size}{iou}; fastest of {choice['passing']} passing its gate")


def run_dataset(catalog: Catalog, variants: list[Variant], report: Report, dataset: Dataset, results: Path,
                out: Path, on_event: Callable | None = None, on_result: Callable | None = None) -> DatasetRun:
    """Track ``dataset``'s sequences with PyTorch and every artifact the comparison verified
    (one thread each, results under ``results``), then AUC per tracker and each artifact's drift
    from PyTorch."""
    usable = [w for w in report.artifacts if w.usable]
    by_name = {v.name: v for v in variants}
    specs = []
    names: dict[RowKey, str] = {}
    for v in variants:
        mine = [w for w in usable if w.key.variant == v.name and not w.key.split]
        runtimes = list(dict.fromkeys([REFERENCE_RUNTIME, *(w.key.runtime for w in mine)]))
        precisions = list(dict.fromkeys(["fp32", *(w.key.precision for w in mine)]))
        found, _ = tracker_specs(catalog, [by_name[v.name]], runtimes, precisions, out, on_event=on_event)
        wanted = {(w.key.runtime, w.key.precision) for w in mine} | {(REFERENCE_RUNTIME, "fp32")}
        for spec in found:
            if (spec.key.runtime, spec.key.precision) in wanted:
                specs.append(spec)
                names[(v.name, spec.key.label, spec.key.precision)] = spec.name
    run_evaluation(specs, dataset, results, on_result=on_result)
    trackers = [open_results(f"{spec.name}={result_folder(results, spec.name, dataset.name)}", dataset.name, dataset.names())
                for spec in specs]
    ev = evaluate(dataset, trackers)
    by_tracker = {t.name: t for t in trackers}
    drifts = {}
    for key, name in names.items():
        if key[1] != REFERENCE_RUNTIME:
            reference = by_tracker[names[(key[0], REFERENCE_RUNTIME, "fp32")]]
            drifts[key] = drift(dataset, reference, by_tracker[name])
    return DatasetRun(dataset, results, ev, names, drifts)


def benchmark(catalog: Catalog, variants: list[Variant], opts: Options, dataset: Dataset | None = None,
              results: Path | None = None, on_progress: Callable | None = None, on_export: Callable | None = None,
              on_result: Callable | None = None) -> Benchmark:
    """Compare (export, parity, tracker agreement, timing), track the dataset when given, decide."""
    report = run(catalog, variants, opts, on_progress=on_progress, on_export=on_export)
    ds_run = None
    if dataset is not None:
        if on_progress:
            on_progress("dataset", f"{dataset.spec.title}: {len(dataset.sequences)} sequences")
        if results is None:
            with tempfile.TemporaryDirectory(prefix="zoo-benchmark-") as tmp:
                ds_run = run_dataset(catalog, variants, report, dataset, Path(tmp), opts.out, on_export, on_result)
        else:
            ds_run = run_dataset(catalog, variants, report, dataset, results, opts.out, on_export, on_result)
    rows = decision_rows(report, opts.threads, ds_run)
    return Benchmark(report, rows, ship_choices(rows, opts.threads), list(opts.threads), ds_run)


def plot_latency(rows: list[dict], threads: list[int], path: Path) -> None:
    """p50 latency per artifact (bars, one group per thread count, the spread as error bars) on
    this machine, written atomically as a PNG/PDF/SVG by ``path``'s suffix."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    timed = [r for r in rows if r["device"] == "local" and any(r.get(f"ms_{t}t") for t in threads)]
    fig = Figure(figsize=(max(7.0, 0.55 * len(timed) * len(threads) + 3), 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(timed))
    width = 0.8 / max(1, len(threads))
    for i, t in enumerate(threads):
        ms = [r.get(f"ms_{t}t") or 0.0 for r in timed]
        err = [(r.get(f"spread_{t}t") or 0.0) / 100 * m for r, m in zip(timed, ms)]
        ax.bar(x + i * width, ms, width, yerr=err, capsize=2, color=draw_style(i)[0], label=f"{t} thread(s)")
    ax.set_xticks(x + width * (len(threads) - 1) / 2)
    ax.set_xticklabels([f"{r['variant']}\n{r['artifact']} {r['precision']}" for r in timed], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("p50 latency (ms)")
    ax.set_title("p50 latency per artifact on this machine (lower is better)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, dpi=120, format=plot_format(path))
