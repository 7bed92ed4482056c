"""``zoo benchmark VARIANT...``: one decision table (format x precision x device: size, parity,
tracker agreement, AUC and drift vs PyTorch, p50 latency per thread count, speedup) and per
device the artifact to ship; ``--html`` writes the same as one self-contained page with plots.

Library code (:mod:`compare.decision`) measures and decides; this module draws and writes."""
from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import click

from compare.comparison import Options
from compare.decision import Benchmark, benchmark, plot_latency, ship_line
from compare.diagnose.layers import layers_variant, plot_layers, summary_rows
from compare.inputs import load_pairs
from compare.measure.blocks import MAX_REPEATS
from compare.provision import choose_runtimes
from compare.tracking.evaluation import check_frames
from zoo.artifacts import default_out_dir
from zoo.backends import PRECISIONS, RUNTIMES, describe
from zoo.catalog import Catalog
from zoo.cli.caveats import plot_caption, untrained_note
from zoo.cli.catalog_cmds import LIST_COLUMNS, catalog_rows
from zoo.cli.compare_cmd import compare_views
from zoo.cli.compare_layers import SUMMARY_COLUMNS as LAYER_SUMMARY_COLUMNS
from zoo.cli.eval_cmd import TRACKER_COLUMNS as AUC_COLUMNS
from zoo.cli.html_page import Page, Picture, Section
from zoo.cli.options import (DEVICE_SYNTAX, DIR, REPORT_FILE, MultiValueOption, artifacts_option, choose, choose_devices, counts,
                             distinct_outputs, oversubscribe_option, report_options)
from zoo.cli.output import Column, View, emit, err, export_reporter, label, progress_bar, write_text
from zoo.datasets import load_dataset
from zoo.errors import UsageError, ZooError
from zoo.evaluation.plots import drift_plot, evaluation_plots


def decision_columns(threads: list[int]) -> list[Column]:
    """The decision table's columns: what each row is and its verdicts first, then the figures."""
    cols = [label("variant"), label("artifact"), label("precision", "prec"), label("device"),  # device: one table each
            Column("family", "CPU family", justify="left", drop=20, terminal=False),
            label("gate"), Column("size_mb", "MB", ".2f", drop=6), Column("parity", "parity", justify="left", drop=12),
            Column("err_ratio", "err/ allowed", ".3f", drop=8), Column("tracker_iou", "tracker IoU", ".4f", drop=4),
            Column("auc", "AUC", ".2f", optional=True, drop=5), Column("auc_diff", "ΔAUC", "+.2f", optional=True, drop=3),
            Column("drift_iou", "drift IoU", ".3f", optional=True, drop=7),
            Column("diverged", "IoU<0.5 seqs", optional=True, drop=9)]
    for i, t in enumerate(threads):
        cols += [Column(f"ms_{t}t", f"p50 ms {t}T", ".2f"), Column(f"spread_{t}t", f"±% {t}T", ".0f", optional=True, drop=10 + i),
                 Column(f"speedup_{t}t", f"×torch {t}T", ".2f", drop=2 if t == threads[0] else 11 + i)]
    return cols + [Column("error", "error", justify="left", note=True, optional=True)]


SHIP_COLUMNS = [label("device"), Column("family", "CPU family", justify="left", drop=3), label("variant"), label("artifact"),
                label("precision", "prec"), Column("ms", "p50 ms", ".2f"), Column("threads", "thr"),
                Column("speedup", "×torch", ".2f", drop=1), Column("size_mb", "MB", ".2f", drop=2), Column("passing", "passing")]


def benchmark_views(result: Benchmark, machine: dict, opts: Options, devices, caveat: str | None) -> list[View]:
    """One decision table per device (its ship line under it) and the tables behind them (for the files)."""
    views = []
    by_device = {c["device"]: c for c in result.ship}
    for i, device in enumerate(by_device):
        choice = by_device[device]
        where = device + (f", CPU family {choice['family']}" if choice.get("family") else "")
        title = (f"zoo benchmark on {where}: what to ship — p50 = median latency ({machine['cpu_count']} CPUs, {machine['machine']})"
                 if device == "local" else f"zoo benchmark on {where}: parity on its kernels (an emulated CPU gives no timing)"
                 if not choice.get("artifact") else f"zoo benchmark on {where}: what to ship — p50 = median latency there")
        last = i == len(by_device) - 1
        caption = "\n".join([ship_line(choice)] + ([caveat] if caveat and last else []))
        views.append(View("decision" if i == 0 else f"decision {device}", title, [r for r in result.rows if r["device"] == device],
                          decision_columns(result.threads), caption=caption, hidden=("device",)))
    views.append(View("ship", "the fastest artifact passing its gate, per device", result.ship, SHIP_COLUMNS, draw=False))
    for v in compare_views(result.comparison.rows(), machine, opts, devices, False):
        v.draw = False
        views.append(v)
    if result.dataset is not None:
        ev = result.dataset.evaluation
        views.append(View("auc", f"{ev.dataset.spec.title}: {len(ev.sequences)} sequences", ev.rows(), AUC_COLUMNS, draw=False))
    return views


def _pictures(result: Benchmark, catalog: Catalog, variants, opts: Options, work: Path, on_progress) -> tuple[list, list]:
    """The HTML page's layer-error plots (and their summary rows), latency plot, evaluation plots."""
    pictures, layer_rows = [], []
    plot_latency(result.rows, result.threads, work / "latency.png")
    pictures.append(("timing", Picture.from_file(work / "latency.png", "p50 latency per artifact and thread count (this machine)")))
    for v in variants:
        pairs = load_pairs(v, 1, None, catalog.preset(v), catalog.quantization)
        runtimes = [r for r in opts.runtimes]
        reports = layers_variant(catalog, v, runtimes, opts.precisions, pairs, opts.out, on_progress=on_progress)
        path = work / f"layers-{v.name}.png"
        plot_layers(reports, path, title=f"{v.name}: error per layer vs PyTorch")
        pictures.append(("layers", Picture.from_file(path, f"{v.name}: relative error per module output, allowance dashed")))
        layer_rows += summary_rows([r for r in reports if not r.skipped])
    if result.dataset is not None:
        ds = result.dataset
        caption = plot_caption([t.tracker for t in ds.evaluation.trackers], catalog)
        for p in evaluation_plots(ds.evaluation, work / "eval", caption):
            if p.suffix == ".png":
                pictures.append(("evaluation", Picture.from_file(p, p.stem.replace("_", " "))))
        for key, d in ds.drifts.items():
            for p in drift_plot(d.iou, d.worst(3), d.a, d.b, work / f"drift-{'-'.join(key)}", plot_caption([d.a, d.b], catalog)):
                if p.suffix == ".png":
                    pictures.append(("evaluation", Picture.from_file(p, f"IoU of {d.b} to {d.a} over the frames")))
    return pictures, layer_rows


def benchmark_page(result: Benchmark, views: list[View], catalog: Catalog, variants, pictures, layer_rows, caveat) -> Page:
    """The self-contained page: catalog rows, the decision, export, parity, timing, layers, evaluation."""
    by_name = {v.name: v for v in views}
    export_rows = [{"variant": w.key.variant, "artifact": w.key.label, "precision": w.key.precision, "status": str(w.status),
                    "note": w.note} for w in result.comparison.artifacts]
    export_cols = [label("variant"), label("artifact"), label("precision"), label("status"), Column("note", "note", justify="left")]
    sections = [
        Section("What to ship", views=[v for v in views if v.name.startswith("decision")],
                paragraphs=[ship_line(c) for c in result.ship], tone="ship"),
        Section("Catalog", views=[View("catalog", "the variants' catalog rows (the study's figures)", catalog_rows(variants), LIST_COLUMNS)]),
        Section("Export", views=[View("export", "artifacts", export_rows, export_cols)]),
        Section("Parity", views=[by_name[n] for n in ("parity", "tracker", "devices") if n in by_name]),
        Section("Timing", views=[by_name[n] for n in ("timing", "ceilings") if n in by_name],
                pictures=[p for kind, p in pictures if kind == "timing"]),
        Section("Layer error", views=[View("layers", "first module above its allowance, per runtime", layer_rows, LAYER_SUMMARY_COLUMNS)],
                pictures=[p for kind, p in pictures if kind == "layers"]),
    ]
    if result.dataset is not None:
        sections.append(Section("Evaluation", views=[by_name["auc"]], pictures=[p for kind, p in pictures if kind == "evaluation"],
                                paragraphs=[caveat] if caveat else [], tone="caveat" if caveat else ""))
    return Page(title=f"zoo benchmark {' '.join(v.name for v in variants)}",
                lead=by_name["decision"].title, caveat=caveat or "", sections=sections)


@click.command("benchmark")
@click.argument("variants", nargs=-1, required=True)
@click.option("--runtime", "runtimes", cls=MultiValueOption, hidden_aliases=("--runtimes",), metavar="RUNTIME...",
              help=f"{describe(RUNTIMES)} (default: all); PyTorch eager is the reference.")
@click.option("--precision", "precisions", cls=MultiValueOption, metavar="PRECISION...",
              help=f"{describe(PRECISIONS)} (default: fp32 fp16).")
@click.option("--threads", "threads", cls=MultiValueOption, metavar="N...", help="Thread counts to time [default: 1 2 4].")
@click.option("--device", "devices", multiple=True, metavar="DEVICE",
              help=f"Also judge parity on DEVICE's kernels (repeatable): {DEVICE_SYNTAX}; one ship line per device.")
@click.option("--samples", type=click.IntRange(1, 1000), default=4, show_default=True, help="Verification pairs for parity and tracker agreement.")
@click.option("--runs", type=click.IntRange(1, 100000), default=20, show_default=True, help="Timed runs per block.")
@click.option("--warmup", type=click.IntRange(0, 10000), default=3, show_default=True, help="Untimed runs first.")
@click.option("--repeats", type=click.IntRange(1, MAX_REPEATS), default=1, show_default=True, help="Interleaved timing blocks.")
@click.option("--dataset", default=None, metavar="NAME", help="Also track a dataset (lasot, lasot_ext, tnl2k, otb): AUC and drift vs PyTorch.")
@click.option("--root", type=DIR, default=None, help="The dataset's root (with --dataset).")
@click.option("--sequences", "patterns", cls=MultiValueOption, metavar="PATTERN...", help="Only these sequences (with --dataset).")
@click.option("--results", "results_dir", type=DIR, default=None,
              help="Keep the tracking results here (default: a temporary folder; finished sequences are reused).")
@click.option("--html", "html_file", type=REPORT_FILE, default=None,
              help="Write one self-contained HTML page: catalog rows, decision, export, parity, timing, layer error, evaluation plots.")
@artifacts_option()
@oversubscribe_option
@report_options("the tables")
def benchmark_cmd(variants, runtimes, precisions, threads, devices, samples, runs, warmup, repeats, dataset, root, patterns,
                  results_dir, html_file, out_dir, allow_oversubscribe, json_file, csv_file, markdown_file) -> None:
    """What to ship: VARIANTs in every runtime and precision, one decision table and per device
    the fastest artifact that passes its gate (exported where missing)."""
    distinct_outputs({"--html": html_file, "--json": json_file, "--csv": csv_file, "--markdown": markdown_file})
    if (root or patterns or results_dir) and not dataset:
        raise UsageError("--root, --sequences and --results go with --dataset")
    catalog = Catalog.load()
    selected = catalog.select(variants)
    opts = Options(runtimes=choose_runtimes(runtimes or ("all",)),
                   precisions=choose(precisions, PRECISIONS, "precision", default=("fp32", "fp16")),
                   samples=samples, threads=counts(threads, "--threads", ("1", "2", "4"), allow_oversubscribe), runs=runs,
                   warmup=warmup, repeats=repeats, out=Path(out_dir or default_out_dir()), devices=choose_devices(devices))
    ds = None
    if dataset:
        ds = load_dataset(dataset, root=root, patterns=list(patterns or ()))
        check_frames(ds)  # frames and a first box for every sequence, before minutes of comparison
    lock = threading.Lock()
    with progress_bar() as progress:
        task = progress.add_task("preparing", total=None)

        def on_progress(stage, text):
            with lock:
                progress.update(task, description=f"{stage}: {text}")

        def on_result(t, r):
            on_progress("tracking", f"{t.spec.name} {t.sequence.name}" + ("" if r.run is not None else " (failed)"))

        result = benchmark(catalog, selected, opts, ds, results_dir, on_progress=on_progress,
                           on_export=export_reporter(progress, task, lock), on_result=on_result)
        machine = result.comparison.as_json()["machine"]
        caveat = untrained_note([v.name for v in selected], catalog)
        views = benchmark_views(result, machine, opts, opts.devices, caveat)
        page = None
        if html_file is not None:
            with tempfile.TemporaryDirectory(prefix="zoo-benchmark-plots-") as tmp:
                pictures, layer_rows = _pictures(result, catalog, selected, opts, Path(tmp), on_progress)
                page = benchmark_page(result, views, catalog, selected, pictures, layer_rows, caveat)
    emit(views, json_file, csv_file, markdown_file, payload={"machine": machine, "decision": result.rows, "ship": result.ship},
         csv_tagged=True)
    if page is not None:
        write_text(html_file, page.html())
        err().print(f"page: {html_file}", markup=False, highlight=False)
    failures = result.comparison.failures
    if failures:
        raise ZooError(f"{len(failures)} comparison(s) failed: {failures[0]}")
