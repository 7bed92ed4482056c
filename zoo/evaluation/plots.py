"""Success, precision and normalized-precision plots (matplotlib, Agg canvas, PNG and PDF).

Every tracker on one figure; the legend is sorted by the plot's figure, best first, with the value
in front as the LaSOT toolkit draws it (``[57.1] DiMP50``), in percent.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.evaluation import metrics
from zoo.evaluation.analyze import Evaluation
from zoo.fileio import atomic_path, writing

# Ten well-separated colours (matplotlib's tab10), each drawn solid, then dashed, dotted and
# dash-dotted: 40 curves get 40 distinct (colour, line style) pairs, and two curves of one style never
# share a colour (pytracking's 17 colours hold two near-identical oranges, and its styles only
# start after them).
_COLORS = [(0.122, 0.467, 0.706), (1.0, 0.498, 0.055), (0.173, 0.627, 0.173), (0.839, 0.153, 0.157),
           (0.580, 0.404, 0.741), (0.549, 0.337, 0.294), (0.890, 0.467, 0.761), (0.498, 0.498, 0.498),
           (0.737, 0.741, 0.133), (0.090, 0.745, 0.812)]
_STYLES = ["-", "--", ":", "-."]


def draw_style(rank: int) -> tuple[tuple[float, float, float], str]:
    """(colour, line style) of the curve at ``rank``: distinct pairs for the first 40 curves."""
    return _COLORS[rank % len(_COLORS)], _STYLES[(rank // len(_COLORS)) % len(_STYLES)]


def _legend_outside(ax, count: int) -> None:
    """The legend to the right of the axes, never over the curves."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8 if count > 12 else 9,
              framealpha=1.0, edgecolor="black", fancybox=False)

KINDS = {
    "success": ("Success plot", "Overlap threshold", "Success rate [%]", (0.0, 1.0), "lower left"),
    "precision": ("Precision plot", "Location error threshold [pixels]", "Precision [%]", (0.0, 50.0), "lower right"),
    "norm_precision": ("Normalized precision plot", "Normalized location error threshold", "Precision [%]", (0.0, 0.5), "lower right"),
}


def _figure(width: float = 7.0, height: float = 5.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    paths = []
    with writing("plots", out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        for ext in ("png", "pdf"):
            path = out_dir / f"{stem}.{ext}"
            with atomic_path(path, suffix=f".{ext}") as tmp:  # the one output rule (zoo.fileio)
                fig.savefig(tmp, dpi=150 if ext == "png" else None, format=ext)
            paths.append(path)
    return paths


def legend_entries(scores: dict[str, float]) -> list[tuple[str, str]]:
    """(tracker, legend label) best first: ``[57.1] DiMP50`` (score in percent, one decimal)."""
    return [(name, f"[{scores[name]:.1f}] {name}") for name in sorted(scores, key=lambda n: -scores[n])]


def _caption(fig, caption: str | None) -> None:
    """``caption`` (e.g. the untrained-weights caveat) under the axes, then the layout."""
    if caption:
        fig.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=8, color="#7a4d00", wrap=True)
        fig.tight_layout(rect=(0, 0.07, 1, 1))
    else:
        fig.tight_layout()


def curve_plot(curves: dict[str, np.ndarray], scores: dict[str, float], kind: str, title: str,
               out_dir: Path, stem: str, caption: str | None = None) -> list[Path]:
    """One figure of ``curves`` (tracker -> percent values over the kind's thresholds); the
    legend sorted by ``scores``, best first; ``caption`` under it. Returns the PNG and PDF paths."""
    default_title, xlabel, ylabel, xlim, _ = KINDS[kind]
    x = {"success": metrics.OVERLAP_THRESHOLDS, "precision": metrics.CENTER_THRESHOLDS,
         "norm_precision": metrics.NORM_THRESHOLDS}[kind]
    fig, ax = _figure(10.0, 5.5)
    order = legend_entries({n: scores[n] for n in curves})
    for rank, (name, label) in enumerate(order):
        colour, style = draw_style(rank)
        ax.plot(x, curves[name], color=colour, linestyle=style, linewidth=2.0, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, xlim=xlim, ylim=(0, 100), title=title or default_title)
    ax.grid(True, linestyle="-.", alpha=0.6)
    _legend_outside(ax, len(order))
    _caption(fig, caption)
    return _save(fig, out_dir, stem)


def evaluation_plots(ev: Evaluation, out_dir: Path, caption: str | None = None) -> list[Path]:
    """Success, precision and normalized-precision plots of every tracker, plus one success plot
    per attribute when the dataset has attribute annotations; ``caption`` under each."""
    title = f"{ev.dataset.spec.title} ({len(ev.sequences)} sequences, {ev.protocol})"
    summaries = {t.tracker: ev.summary(t) for t in ev.trackers}
    paths = []
    for kind, score_key in (("success", "auc"), ("precision", "precision"), ("norm_precision", "norm_precision")):
        curves = {n: np.asarray(s[f"{kind}_curve"]) for n, s in summaries.items()}
        scores = {n: s[score_key] for n, s in summaries.items()}
        paths += curve_plot(curves, scores, kind, f"{KINDS[kind][0]}: {title}", out_dir, kind, caption)
    for row in ev.attribute_rows():
        curves = {n: np.asarray(s["success_curve"]) for n, s in row["_curves"].items()}
        scores = {n: s["auc"] for n, s in row["_curves"].items()}
        paths += curve_plot(curves, scores, "success", f"Success plot - {row['name']} ({row['sequences']})",
                            out_dir, f"success_{row['attribute']}", caption)
    return paths


def drift_plot(traces: dict[str, np.ndarray], names: list[str], a: str, b: str, out_dir: Path,
               caption: str | None = None) -> list[Path]:
    """IoU between the two trajectories over the frames of ``names`` (the worst sequences);
    ``caption`` under it."""
    fig, ax = _figure(11.0, 4.5)
    for rank, name in enumerate(names):
        v = traces[name]
        colour, style = draw_style(rank)
        ax.plot(np.arange(1, v.size + 1), v, color=colour, linestyle=style, linewidth=1.2, label=f"[{v.mean():.3f}] {name}")
    ax.axhline(0.5, color="gray", linestyle=":", linewidth=1)
    ax.set(xlabel="frame", ylabel="IoU", ylim=(-0.02, 1.02), title=f"IoU of {b} vs {a}: worst sequences (mean IoU)")
    ax.grid(True, linestyle="-.", alpha=0.6)
    _legend_outside(ax, len(names))
    _caption(fig, caption)
    return _save(fig, out_dir, "drift_iou")
