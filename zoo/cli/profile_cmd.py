"""``zoo profile VARIANT --runtime mnn|onnxruntime``: per-op time mapped to backbone / fusion blocks / head.

Library code (:mod:`compare.diagnose.profile`) returns the data; this module only draws and writes it.
"""
from __future__ import annotations

import click
from rich.text import Text

from compare.diagnose.profile import check_request, profile_variant
from compare.measure.machine import machine_info
from zoo.artifacts import default_out_dir
from zoo.backends import PRECISIONS, PROFILED_RUNTIMES, describe
from zoo.catalog import Catalog
from zoo.cli.options import artifacts_option, choose, counts, oversubscribe_option, report_options
from zoo.cli.output import KEY_COLUMNS, Column, View, emit, export_reporter, label, progress_bar

TOP_COLUMNS = [
    Column("rank", "#", label=True),
    label("name", "op"),
    Column("type", "type", justify="left", drop=2),
    Column("unit", "part", justify="left", drop=4),
    Column("ms", "ms", ".3f"),
    Column("share_pct", "% time", ".1f"),
    Column("mflops", "MFLOPs (MNN)", ".1f", optional=True, drop=3),
    Column("rule", "assigned by", justify="left", optional=True, drop=1),
]
PART_COLUMNS = [
    label("part"),
    Column("ops", "ops"),
    Column("ms", "ms", ".2f"),
    Column("time_share_pct", "% time", ".1f"),
    Column("macs_share_pct", "% MACs", ".1f", optional=True),
    Column("macs_total_share_pct", "% MACs+attn", ".1f", optional=True, drop=2),
    Column("params_share_pct", "% params", ".1f", optional=True),
    Column("time_per_macs", "time/MACs", ".2f", optional=True, drop=1),
    Column("mnn_mflops", "MFLOPs (MNN)", ".1f", optional=True, drop=3),
]
GROUP_COLUMNS = {level: [label(level), Column("ops", "ops"), Column("ms", "ms", ".3f"),
                         Column("share_pct", "% time", ".1f")] for level in ("block", "unit")}
OP_COLUMNS = [
    Column("index", "#", label=True), label("name", "op"), Column("type", "type", justify="left"), Column("unit", "part", justify="left", drop=4),
    Column("ms", "ms", ".3f"), Column("median_ms", "median ms", ".3f"), Column("share_pct", "% time", ".1f"),
    Column("mflops", "MFLOPs (MNN)", ".1f", optional=True), Column("module", "module", justify="left"),
    Column("rule", "assigned by", justify="left"),
]
TOTAL_COLUMNS = [
    *KEY_COLUMNS,
    Column("threads", "thr", label=True),
    Column("runs", "runs"),
    Column("ops", "ops"),
    Column("profile_ms", "profile ms", ".2f"),
    Column("profile_median_ms", "profile median ms", ".2f"),
    Column("e2e_ms", "end-to-end ms", ".2f"),
    Column("profile_vs_e2e", "profile/e2e", ".3f"),
    Column("profiled_run_ms", "profiled call ms", ".2f"),
    Column("fusion_blocks", "fusion blocks"),
    Column("unassigned_ops", "unassigned ops"),
]


def _totals_line(t: dict) -> Text:
    """The totals as text (never markup), unassigned ops in red."""
    rules = ", ".join(f"{n} by {rule}" for rule, n in t["rules"].items())
    assigned = Text("every op assigned to a part") if not t["unassigned_ops"] else \
        Text(f"{t['unassigned_ops']} op(s) unassigned ({t['unassigned_share_pct']:.1f}% of the time)", style="red")
    return Text.assemble(
        f"profile total {t['profile_ms']:.2f} ms (sum of per-op means; median of per-run sums {t['profile_median_ms']:.2f} ms), "
        f"profiled call {t['profiled_run_ms']:.2f} ms\n"
        f"end-to-end {t['e2e_ms']:.2f} ms (median; same runtime and threads, no profiling, interleaved): "
        f"profile/e2e {t['profile_vs_e2e']:.3f} (median of per-round ratios)\n"
        f"{t['ops']} ops, ", assigned, f" ({rules}); fusion blocks found {t['fusion_blocks']} (depth {t['depth']})")


def _head_remark(parts: list[dict]) -> str | None:
    head = next((p for p in parts if p["part"] == "head"), None)
    if head is None or head["params_share_pct"] is None:
        return None
    return (f"the study's remark (the head has many parameters but little compute): the head holds "
            f"{head['params_share_pct']:.1f}% of the parameters, {head['macs_share_pct']:.1f}% of the MACs "
            f"and takes {head['time_share_pct']:.1f}% of the time")


@click.command("profile")
@click.argument("variant")
@click.option("--runtime", default="mnn", show_default=True, help=f"{' or '.join(PROFILED_RUNTIMES)}.")
@click.option("--threads", type=click.IntRange(1, None), default=1, show_default=True, help="CPU threads of the runtime.")
@click.option("--precision", default="fp32", show_default=True, help=f"Artifact precision ({describe(PRECISIONS)}; as the runtime offers).")
@click.option("--runs", type=click.IntRange(1, 100000), default=30, show_default=True, help="Profiled runs averaged (each paired with one end-to-end run).")
@click.option("--warmup", type=click.IntRange(0, 10000), default=5, show_default=True, help="Untimed rounds first.")
@click.option("--top", type=click.IntRange(1, 10000), default=10, show_default=True, help="Slowest ops listed.")
@click.option("--split", is_flag=True, help="Profile the split artifact's track graph (the per-frame work; exported first when missing).")
@artifacts_option()
@oversubscribe_option
@report_options("totals, top ops, parts, blocks, units and every op")
def profile_cmd(variant, runtime, threads, precision, runs, warmup, top, split, out_dir, allow_oversubscribe,
                json_file, csv_file, markdown_file) -> None:
    """Per-op time of VARIANT in MNN (per-op callbacks) or ONNX Runtime (its profiler).

    Each op is mapped to the model part it came from (backbone / fusion block k / head) through
    the module names export keeps; per part, the share of time is shown beside the share of
    MACs and of parameters. The artifact is exported where missing.
    """
    (precision,) = choose((precision,), PRECISIONS, "precision")
    (threads,) = counts((str(threads),), "--threads", allow_oversubscribe=allow_oversubscribe)
    check_request(runtime, precision)
    catalog = Catalog.load()
    v = catalog.get(variant)
    with progress_bar() as progress:
        task = progress.add_task("preparing", total=None)
        on_export = export_reporter(progress, task)
        result = profile_variant(catalog, v, runtime, threads=threads, precision=precision, runs=runs, warmup=warmup,
                                 out=out_dir or default_out_dir(), on_export=on_export, split=split,
                                 on_progress=lambda stage, text: progress.update(task, description=text))
    data = result.as_json(top)
    t = data["totals"]
    caption = "\n".join([_totals_line(t).plain, *filter(None, [_head_remark(data["parts"])])])
    views = [
        View("totals", f"zoo profile {t['variant']}: {t['runtime']} {t['precision']}, {t['threads']} thread(s)", [t], TOTAL_COLUMNS,
             draw=False),
        View("top", f"zoo profile {v.name}: {result.runtime} {precision}, {threads} thread(s), "
                    f"top {len(data['top'])} of {t['ops']} ops (mean of {runs} runs after {warmup} warm-up)", data["top"], TOP_COLUMNS),
        View("parts", "per part: share of time vs share of MACs and parameters (zoo info's figures)", data["parts"], PART_COLUMNS),
        View("blocks", "per block", data["blocks"], GROUP_COLUMNS["block"], caption=caption),
        View("units", "per unit", data["units"], GROUP_COLUMNS["unit"], draw=False),
        View("ops", "every op", data["ops"], OP_COLUMNS, draw=False),
    ]
    emit(views, json_file, csv_file, markdown_file, payload={"machine": machine_info(), **data}, csv_tagged=True)
