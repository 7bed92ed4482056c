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
from zoo.cli.output import KEY_COLUMNS, Column, export_reporter, out, progress_bar, rich_table, tables_csv, to_json, to_markdown, write_text

TOP_COLUMNS = [
    Column("rank", "#"),
    Column("name", "op", justify="left"),
    Column("type", "type", justify="left"),
    Column("unit", "part", justify="left"),
    Column("ms", "ms", ".3f"),
    Column("share_pct", "% time", ".1f"),
    Column("mflops", "MFLOPs (MNN)", ".1f"),
    Column("rule", "assigned by", justify="left"),
]
PART_COLUMNS = [
    Column("part", "part", justify="left"),
    Column("ops", "ops"),
    Column("ms", "ms", ".2f"),
    Column("time_share_pct", "% time", ".1f"),
    Column("macs_share_pct", "% MACs", ".1f"),
    Column("macs_total_share_pct", "% MACs+attn", ".1f"),
    Column("params_share_pct", "% params", ".1f"),
    Column("time_per_macs", "time/MACs", ".2f"),
    Column("mnn_mflops", "MFLOPs (MNN)", ".1f"),
]
GROUP_COLUMNS = {level: [Column(level, level, justify="left"), Column("ops", "ops"), Column("ms", "ms", ".3f"),
                         Column("share_pct", "% time", ".1f")] for level in ("block", "unit")}
TOTAL_COLUMNS = [
    *KEY_COLUMNS,
    Column("threads", "thr"),
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


def _without_empty(columns: list[Column], rows: list[dict]) -> list[Column]:
    return [c for c in columns if any(r.get(c.key) is not None for r in rows)]


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


def _markdown(data: dict) -> str:
    t = data["totals"]
    sections = [f"# zoo profile {t['variant']}: {t['runtime']} {t['precision']}, {t['threads']} thread(s)\n",
                to_markdown([t], TOTAL_COLUMNS)]
    for title, key, columns in (("top ops", "top", TOP_COLUMNS), ("per part", "parts", PART_COLUMNS),
                                ("per block", "blocks", GROUP_COLUMNS["block"]), ("per unit", "units", GROUP_COLUMNS["unit"])):
        sections.append(f"## {title}\n\n{to_markdown(data[key], _without_empty(columns, data[key]))}")
    return "\n".join(sections)


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
    out().print(rich_table(data["top"], _without_empty(TOP_COLUMNS, data["top"]),
                             title=f"zoo profile {v.name}: {result.runtime} {precision}, {threads} thread(s), "
                                   f"top {len(data['top'])} of {t['ops']} ops (mean of {runs} runs after {warmup} warm-up)"))
    out().print(rich_table(data["parts"], _without_empty(PART_COLUMNS, data["parts"]),
                             title="per part: share of time vs share of MACs and parameters (zoo info's figures)"))
    out().print(rich_table(data["blocks"], GROUP_COLUMNS["block"], title="per block"))
    out().print(_totals_line(t), highlight=False, markup=False)
    remark = _head_remark(data["parts"])
    if remark:
        out().print(remark, highlight=False, markup=False)
    if json_file is not None:
        write_text(json_file, to_json({"machine": machine_info(), **data}))
    if csv_file is not None:
        write_text(csv_file, tables_csv({k: data[k] for k in ("top", "parts", "blocks", "units", "ops")}))
    if markdown_file is not None:
        write_text(markdown_file, _markdown(data))
