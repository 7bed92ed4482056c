"""``zoo eval analyze`` / ``zoo eval drift``: benchmark figures of raw result folders.

Library code (:mod:`zoo.datasets`, :mod:`zoo.evaluation`) reads and computes; this module draws
tables, writes reports and plots.
"""
from __future__ import annotations

import click

from zoo.cli.caveats import catalog_or_none, plot_caption, untrained_note
from zoo.cli.options import DIR, MultiValueOption, report_options
from zoo.cli.output import Column, View, emit, err, label, out, progress_bar, show, write_text, write_views
from zoo.cli.tables import to_csv
from zoo.datasets import load_dataset, open_results
from zoo.evaluation.analyze import evaluate
from zoo.evaluation.drift import drift
from zoo.evaluation.plots import drift_plot, evaluation_plots

_FIGURES = [Column("auc", "AUC", ".2f"), Column("op50", "OP50", ".2f"), Column("op75", "OP75", ".2f"),
            Column("precision", "Prec@20", ".2f"), Column("norm_precision", "NPrec@0.2", ".2f")]
TRACKER_COLUMNS = [label("tracker"), Column("sequences", "seqs", drop=2), Column("frames", "frames", drop=1), *_FIGURES]
SEQUENCE_COLUMNS = [label("tracker"), label("sequence"),
                    Column("frames", "frames", drop=2), Column("absent", "absent", drop=1), *_FIGURES]
DRIFT_COLUMNS = [label("sequence"), Column("frames", "frames", drop=1),
                 Column("mean_iou", "mean IoU", ".3f"), Column("iou_ge_0.9", "IoU≥0.9 %", ".1f"),
                 Column("iou_ge_0.5", "IoU≥0.5 %", ".1f"), Column("first_below_0.5", "first IoU<0.5"),
                 Column("auc_a", "AUC A", ".2f"), Column("auc_b", "AUC B", ".2f"), Column("auc_diff", "B−A", "+.2f")]


def _dataset_options(f):
    options = [
        click.option("--dataset", "dataset", required=True, metavar="NAME", help="lasot, lasot_ext, tnl2k or otb."),
        click.option("--root", type=DIR, default=None,
                     help="Dataset root (LaSOT <class>/<seq>/groundtruth.txt..., TNL2K <seq>/groundtruth.txt, OTB <Seq>/groundtruth_rect.txt)."),
        click.option("--annotations", type=DIR, default=None,
                     help="Toolkit annotation layout (LaSOT annos/<seq>.txt + annos/absent/; TNL2K gt_rect/ + absent/)."),
        click.option("--sequences", "patterns", cls=MultiValueOption, metavar="PATTERN...",
                     help="Only these sequences: names (run even outside the test split) or shell patterns (within it)."),
        click.option("--all-sequences", is_flag=True, help="Every annotated sequence, not only the official test split."),
        click.option("--protocol", type=click.Choice(["pytracking", "toolkit"]), default="pytracking", show_default=True,
                     help="pytracking's analysis or the official MATLAB toolkits' rules (see README)."),
        click.option("--allow-missing", is_flag=True, help="Evaluate the sequences every results folder has."),
        click.option("--plot", "plot_dir", type=DIR, default=None,
                     help="Write the plots (PNG and PDF) into this folder."),
        report_options("the report"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _load(dataset, root, annotations, patterns, all_sequences):
    with progress_bar() as progress:
        task = progress.add_task("annotations")
        ds = load_dataset(dataset, root=root, annotations=annotations, patterns=list(patterns or ()),
                          all_sequences=all_sequences, on_sequence=lambda n: progress.update(task, description=f"annotations {n}"))
    if ds.missing:
        total = len(ds.missing) + len(ds.sequences)
        err().print(f"note: {len(ds.sequences)} of the {total} {ds.spec.title} test sequences are annotated under "
                          f"{ds.source}; evaluating those", highlight=False, soft_wrap=True, markup=False)
    return ds


def _stepper(progress, total: int, label: str):
    task = progress.add_task(label, total=total)

    def step(tracker: str, sequence: str) -> None:
        progress.update(task, description=f"{tracker}: {sequence}")
        progress.advance(task)

    return step


def _title(ev, command: str) -> str:
    spec = ev.dataset.spec
    title = f"zoo eval {command}: {spec.title}, {ev.protocol} protocol, {len(ev.sequences)} sequences"
    if ev.missing:
        total = len(ev.dataset.sequences)
        title += f" (--allow-missing: {len(ev.sequences)} of {total} have results from every folder)"
    return title


@click.group("eval")
def eval_group() -> None:
    """One-pass evaluation on LaSOT, LaSOT_ext, TNL2K and OTB: run trackers over a dataset's
    sequences (run: needs the frames), then score raw results (analyze, drift: annotations and
    result files only, no tracker, no images)."""


@eval_group.command("analyze")
@click.argument("results", nargs=-1, required=True)
@_dataset_options
@click.option("--per-sequence", is_flag=True, help="Also print the per-sequence table.")
def analyze_cmd(results, dataset, root, annotations, patterns, all_sequences, protocol, allow_missing, plot_dir,
                json_file, csv_file, markdown_file, per_sequence) -> None:
    """Success AUC, OP50, OP75, precision@20px and normalized precision@0.20 of each RESULTS
    folder (<seq>.txt, x,y,w,h per line; NAME=DIR names a tracker), as pytracking computes them
    (or the MATLAB toolkits with --protocol toolkit). Example:

      zoo eval analyze runs/DiMP50 runs/fgaf3 --dataset lasot --root ~/data/LaSOT --plot plots/
    """
    ds = _load(dataset, root, annotations, patterns, all_sequences)
    trackers = [open_results(r, ds.name, ds.names()) for r in results]
    with progress_bar(counted=True) as progress:
        ev = evaluate(ds, trackers, protocol, allow_missing,
                      on_step=_stepper(progress, len(trackers) * len(ds.sequences), "evaluate"))
    rows = sorted(ev.rows(), key=lambda r: -r["auc"])
    seq_rows = ev.sequence_rows()
    att_rows = ev.attribute_rows()
    title = _title(ev, "analyze")
    catalog = catalog_or_none()
    caveat = untrained_note([r["tracker"] for r in rows], catalog)
    att_columns = [label("attribute", "attr"), label("name", "attribute"),
                   Column("sequences", "seqs", drop=1), *[Column(r["tracker"], r["tracker"], ".2f") for r in rows]]
    views = [View("trackers", title, rows, TRACKER_COLUMNS, caption=caveat or "")]
    if att_rows:
        views.append(View("attributes", "success AUC per attribute", [{k: v for k, v in r.items() if k != "_curves"} for r in att_rows],
                          att_columns))
    views.append(View("per_sequence", "per sequence (percent)", seq_rows, SEQUENCE_COLUMNS, draw=per_sequence))
    show(views)
    plots = []
    if plot_dir is not None:
        plots = [str(p) for p in evaluation_plots(ev, plot_dir, plot_caption([r["tracker"] for r in rows], catalog))]
        out().print(f"plots: {plot_dir} ({len(plots)} files: success, precision, norm_precision"
                    f"{', one success plot per attribute' if att_rows else ''}; PNG and PDF)", highlight=False, soft_wrap=True, markup=False)
    report = {"dataset": ds.name, "protocol": protocol, "source": str(ds.source), "sequences": ev.sequences,
              "missing_results": ev.missing, "missing_annotations": ds.missing,
              "thresholds": {"overlap": ev.overlap_thresholds.tolist(), "center": list(range(51)),
                             "center_norm": [k / 100 for k in range(51)]},
              "rows": rows, "per_sequence": seq_rows,
              "attributes": [{k: v for k, v in r.items() if k != "_curves"} for r in att_rows], "plots": plots}
    write_views(views, json_file, None, markdown_file, payload=report)
    if csv_file is not None:  # one CSV of the overall rows (sequence ALL) and the per-sequence rows
        overall = [{**r, "sequence": "ALL"} for r in rows]
        write_text(csv_file, to_csv(overall + seq_rows, SEQUENCE_COLUMNS))


@eval_group.command("drift")
@click.argument("results_a")
@click.argument("results_b")
@_dataset_options
@click.option("--worst", type=click.IntRange(1, 50), default=5, show_default=True,
              help="Sequences drawn in the IoU-over-frames plot.")
def drift_cmd(results_a, results_b, dataset, root, annotations, patterns, all_sequences, protocol, allow_missing,
              plot_dir, json_file, csv_file, markdown_file, worst) -> None:
    """Frame-by-frame agreement of two result folders (e.g. a runtime's tracker vs PyTorch's):
    per sequence the mean IoU between the trajectories, the share of frames with IoU >= 0.9 and
    >= 0.5, the first frame with IoU < 0.5, each one's AUC against the ground truth and B - A."""
    ds = _load(dataset, root, annotations, patterns, all_sequences)
    a = open_results(results_a, ds.name, ds.names())
    b = open_results(results_b, ds.name, ds.names())
    with progress_bar(counted=True) as progress:
        d = drift(ds, a, b, protocol, allow_missing, on_step=_stepper(progress, len(ds.sequences), "drift"))
    rows = d.rows()
    title = _title(d.evaluation, "drift") + f" — A = {d.a}, B = {d.b}"
    overall = rows[-1]
    catalog = catalog_or_none()
    caveat = untrained_note([d.a, d.b], catalog)
    caption = f"{overall['diverged']} of {len(rows) - 1} sequences fall below IoU 0.5 at some frame" + (f". {caveat}" if caveat else "")
    plots = []
    if plot_dir is not None:
        plots = [str(p) for p in drift_plot(d.iou, d.worst(worst), d.a, d.b, plot_dir, plot_caption([d.a, d.b], catalog))]
        caption += f"\nplot: {plots[0]}"
    report = {"dataset": ds.name, "protocol": protocol, "a": d.a, "b": d.b, "sequences": d.evaluation.sequences,
              "missing_results": d.evaluation.missing, "rows": rows, "plots": plots}
    emit([View("drift", title, rows, DRIFT_COLUMNS, caption=caption)], json_file, csv_file, markdown_file, payload=report)
