"""``zoo compare VARIANT --layers``: the tables and files of :mod:`compare.diagnose.layers` (drawing only)."""
from __future__ import annotations

import threading
from pathlib import Path

from rich.markup import escape

from compare.devices.connection import connect
from compare.diagnose.layers import DEPARTURE_FACTOR, departure, depth_rows, layer_rows, layers_variant, plot_layers, summary_rows
from compare.diagnose.layers_split import layers_split
from compare.inputs import load_pairs
from zoo.cli.output import Column, View, err, export_reporter, label, note, progress_bar, show, write_views
from zoo.errors import ZooError

#: terminal=False: left to the files (the terminal table stays readable)
SUMMARY_COLUMNS = [
    label("variant"),
    label("runtime"),
    Column("graph", "graph", justify="left", label=True, optional=True),
    label("precision", "prec"),
    label("device"),
    Column("naming", "named by", justify="left", terminal=False),
    Column("tensors", "tensors", terminal=False),
    Column("computed", "module outputs computed", drop=4),
    Column("matched", "matched", drop=3),
    Column("coverage_pct", "% matched", ".1f"),
    Column("fused_away", "fused away", terminal=False),
    Column("unmatched_tensors", "unnamed tensors", drop=2),
    note("allowance", drop=5),
    label("first_divergent", "first above allowance"),
    Column("first_ratio", "err/allowed", ".2f"),
    Column("last_rel_err", "last layer rel err", ".2e", terminal=False),
    Column("max_ratio", "max err/allowed", ".3f", drop=1),
    note("note", terminal=False),
]
LAYER_COLUMNS = [
    label("variant"),
    label("runtime"),
    Column("graph", "graph", justify="left", label=True, optional=True),
    label("precision", "prec"),
    Column("index", "#", label=True),
    label("module"),
    Column("shape", "shape", justify="left"),
    Column("max_abs_err", "max abs", ".2e"),
    Column("mean_abs_err", "mean abs", ".2e"),
    Column("cosine", "cosine", ".6f"),
    Column("scale", "scale", ".3g"),
    Column("rel_err", "rel err", ".2e"),
    Column("allowed", "allowed", ".2e"),
    Column("ratio", "err/allowed", ".3f"),
    label("status"),
]


def depth_columns(rows: list[dict]) -> list[Column]:
    """``module`` then one relative-error column per runtime/precision present."""
    labels = list(dict.fromkeys(k for r in rows for k in r if k not in ("module", "graph_order")))
    return [label("module", "module (depth order)"), *(Column(k, k, ".2e") for k in labels)]


def run_layers(catalog, selected, runtimes: list[str], precisions: list[str], samples: int, inputs_file: Path | None, out_dir: Path,
               atol: float | None, rtol: float | None, plot: Path | None, json_file, csv_file, markdown_file, split: bool = False,
               devices: list | None = None) -> None:
    """Compare every layer of each selected variant (``split``: and each graph of its split
    artifacts; ``devices``: also on each device's kernels), draw the tables, write the files asked for."""
    reports = []
    on_devices = tuple((d, connect(d).family) for d in devices or ())
    lock = threading.Lock()
    with progress_bar() as progress:
        task = progress.add_task("preparing", total=None)
        on_export = export_reporter(progress, task, lock)
        for v in selected:
            pairs = load_pairs(v, samples, inputs_file, catalog.preset(v), catalog.quantization)
            on_progress = lambda stage, text: progress.update(task, description=f"{stage}: {text}")
            reports += layers_variant(catalog, v, runtimes, precisions, pairs, out_dir, atol, rtol, on_export=on_export, on_progress=on_progress,
                                      devices=on_devices)
            if split:
                reports += layers_split(catalog, v, runtimes, precisions, pairs, out_dir, atol, rtol, on_export=on_export, on_progress=on_progress)
    summary = summary_rows([r for r in reports if not r.skipped])
    skipped = [r for r in reports if r.skipped]
    depth = depth_rows(reports)
    views = [View("depth", "zoo compare --layers: max abs error / max |PyTorch|, largest over each module's layers (exported graph's order)",
                  depth, depth_columns(depth)),
             View("summary", "per runtime: module outputs matched and the first above its allowance (atol + rtol x scale)", summary,
                  SUMMARY_COLUMNS, hidden=() if devices else ("device",)),
             View("layers", "zoo compare --layers: every matched module output", layer_rows(reports), LAYER_COLUMNS, draw=False)]
    show(views)
    for row in summary:
        if row.get("note"):
            graph = f"-split/{row['graph']}" if row.get("graph") else ""
            err().print(f"{row['variant']} {row['runtime']}{graph} {row['precision']}: {row['note']}", highlight=False, soft_wrap=True, markup=False)
    for r in skipped:
        err().print(f"skipped: {r.variant} {r.label}: {r.error}", highlight=False, soft_wrap=True, markup=False)
    here = {(r.variant, r.runtime, r.graph, r.precision): r for r in reports if r.device == "local" and not r.error}
    for r in reports:
        local = here.get((r.variant, r.runtime, r.graph, r.precision))
        if r.device != "local" and local is not None and not r.error:
            found = departure(local, r)
            line = (f"{r.variant} {r.label}: departs from this machine at {found[1].module} (op #{found[1].index}): relative error "
                    f"{found[1].rel_err:.2g} there vs {found[0].rel_err:.2g} here" if found else
                    f"{r.variant} {r.label}: no module departs from this machine by more than {DEPARTURE_FACTOR:g}x")
            err().print(escape(line), highlight=False, soft_wrap=True)
    for r in reports:
        first = r.first_divergent
        if first is not None:
            err().print(f"{r.variant} {r.label}: first above its allowance: {first.module} "
                        f"(op #{first.index}, {first.runtime_tensor}): max abs {first.max_abs_err:.3g}, "
                        f"{first.ratio:.3g}x the allowance", highlight=False, soft_wrap=True, markup=False)
        if r.unmatched_tensors:
            names = ", ".join(r.unmatched_tensors[:6]) + (", ..." if len(r.unmatched_tensors) > 6 else "")
            err().print(f"{r.variant} {r.label}: {len(r.unmatched_tensors)} tensor(s) named after no module: {names}",
                        highlight=False, soft_wrap=True, markup=False)
    if plot is not None:
        plot_layers(reports, plot, title=f"zoo compare --layers {' '.join(v.name for v in selected)}")
    write_views(views[2:], None, csv_file, markdown_file)  # CSV and Markdown: every matched module output
    write_views(views, json_file, payload={"summary": summary, "depth": depth, "reports": [r.as_json() for r in reports]})
    failed = [f"{r.variant} {r.label}: {r.error}" for r in reports if r.error and not r.layers and not r.skipped]
    for line in failed:
        err().print(f"[red]failed:[/] {escape(line)}", highlight=False, soft_wrap=True)
    diverged = [r for r in reports if r.first_divergent is not None]
    if failed or diverged:
        raise ZooError(f"{len(failed)} runtime(s) failed, {len(diverged)} departed from PyTorch above the allowance")
