"""``zoo compare``: every runtime against PyTorch eager on the same inputs, then timing tables.

``zoo compare --pytorch-vs-onnx [VARIANT...]`` is the ONNX-only parity check (no timing).
Library code (:mod:`compare.comparison`) returns the data; this module only draws and writes it.
"""
from __future__ import annotations

import threading
from pathlib import Path

import click
from rich.markup import escape

from compare.comparison import Options, run
from compare.comparison import save_inputs as write_inputs
from compare.comparison import save_outputs as write_outputs
from compare.diagnose.layers import layer_runtimes
from compare.measure.blocks import MAX_REPEATS
from compare.measure.ceiling import GEMM_N
from compare.provision import choose_runtimes
from zoo.artifacts import default_out_dir
from zoo.backends import PRECISIONS, RUNTIMES, describe
from zoo.catalog import Catalog
from zoo.cli.compare_layers import run_layers
from zoo.cli.options import (DEVICE_SYNTAX, PLOT_FILE, REPORT_FILE, Finite, MultiValueOption, artifacts_option, choose, choose_devices, counts,
                             distinct_outputs, oversubscribe_option, report_options)
from zoo.cli.output import KEY_COLUMNS, Column, View, emit, err, export_reporter, label, note, progress_bar
from zoo.errors import UsageError, ZooError

PARITY_COLUMNS = [
    *KEY_COLUMNS,
    label("output"),
    Column("samples", "samples", terminal=False),
    Column("max_abs_err", "max abs", ".2e"),
    Column("mean_abs_err", "mean abs", ".2e", drop=5),
    Column("max_rel_err", "max rel", ".2e", drop=6),
    Column("min_cosine", "cosine", ".6f", drop=4),
    Column("atol", "atol", "g", drop=7),
    Column("rtol", "rtol", "g", drop=8),
    Column("worst_ratio", "err/allowed", ".3f"),
    Column("nan_count", "NaN", drop=3),
    Column("inf_count", "Inf", drop=3),
    label("status"),
    note("note", optional=True),
]
TRACKER_COLUMNS = [
    *KEY_COLUMNS,
    label("device"),
    Column("samples", "samples", drop=8),
    Column("same_cell", "argmax same cell", drop=3),
    Column("min_iou", "min IoU", ".4f"),
    Column("mean_iou", "mean IoU", ".4f"),
    Column("max_center_px", "max centre dist px", ".3f", drop=2),
    Column("max_score_diff", "max peak score diff", ".2e", drop=4),
    # reduced precisions (int8 ...): the catalog's tracker-level gate, over its own held-out pairs (as zoo export)
    Column("gate_pairs", "gate pairs", drop=6, optional=True),
    Column("gate_mean_iou", "gate IoU", ".4f", drop=2, optional=True),
    Column("clear_pairs", "clear peaks", drop=7, optional=True),
    Column("clear_peak_agreement", "clear-peak same cell", ".2f", drop=5, optional=True),
    Column("peak_agreement_all", "all same cell", ".2f", drop=1, optional=True),
    Column("gate", "tracker gate", justify="left", label=True, optional=True),
]
DEVICE_COLUMNS = [
    *KEY_COLUMNS,
    label("device"),
    Column("family", "CPU family", justify="left", drop=3),
    label("output"),
    Column("max_abs_err", "max abs there", ".2e"),
    Column("local_max_abs_err", "max abs here", ".2e", drop=2),
    Column("ratio", "there/here", ".1f", drop=1, optional=True),
    Column("atol", "atol", "g", drop=5),
    Column("rtol", "rtol", "g", drop=6),
    Column("worst_ratio", "err/allowed", ".3f"),
    label("status"),
    note("note", optional=True),
]
#: drop: the higher, the sooner a column leaves a narrow terminal (JSON/CSV/Markdown keep them all)
TIMING_COLUMNS = [
    *KEY_COLUMNS,
    label("device"),
    Column("threads", "thr", label=True),
    Column("oversubscribed", "oversub", justify="left", drop=6, optional=True),
    Column("median_ms", "ms", ".2f"),
    Column("spread_pct", "±%", ".0f", optional=True),
    Column("interval_ms", "interval ms", drop=9, optional=True),
    Column("blocks_kept", "blocks", drop=6, optional=True),
    Column("p90_ms", "p90", ".2f", drop=14),
    Column("p99_ms", "p99", ".2f", drop=15),
    Column("min_ms", "min", ".2f", drop=13),
    Column("fps", "fps", ".1f", drop=10),
    Column("first_ms", "1st ms", ".1f", drop=16),
    Column("cpu_per_wall", "cpu/wall", ".2f", drop=12),
    Column("peak_mem_mb", "mem MB", ".1f", drop=11),
    Column("speedup_vs_pytorch", "×torch", ".2f", drop=5),
    Column("gflops", "GFLOP/s", ".0f", drop=4),
    Column("ceiling_gflops", "ceiling", ".0f", drop=3),
    Column("pct_of_ceiling", "% ceil", ".0f"),
    Column("sgemm_gflops", "sgemm", ".0f", drop=17),
    Column("pct_of_sgemm", "% sgemm", ".0f", drop=17),
    Column("other_cores", "other CPUs", ".1f", drop=7),
    Column("noisy", "noisy", justify="left", drop=2, optional=True),
    note("contention", "unreliable", optional=True),
    note("ceiling_note", "ceiling note", drop=8, optional=True),
    note("error", optional=True),
]
CEILING_COLUMNS = [
    Column("threads", "thr", label=True), label("precision", "prec"), label("kernel"),
    Column("gflops", "GFLOP/s", ".0f"), Column("gflops_lo", "min", ".0f", drop=2), Column("gflops_hi", "max", ".0f", drop=2),
    Column("spread_pct", "±%", ".0f", drop=1), Column("blocks", "blocks", drop=3),
]
SKIPPED_COLUMNS = [*KEY_COLUMNS, note("note")]
SLOWEST_COLUMNS = [*KEY_COLUMNS, Column("threads", "thr", label=True), label("slowest_device", "slowest device"),
                   Column("fps", "fps", ".1f"), Column("devices", "devices", drop=2), note("all", "every device (fps)", drop=1)]
TABLES = {"parity": PARITY_COLUMNS, "devices": DEVICE_COLUMNS, "tracker": TRACKER_COLUMNS, "timing": TIMING_COLUMNS,
          "ceilings": CEILING_COLUMNS, "slowest": SLOWEST_COLUMNS, "skipped": SKIPPED_COLUMNS}


def machine_line(machine: dict) -> str:
    """The machine the figures hold for, in one line (the Markdown report's preamble)."""
    return (f"CPUs: {machine['cpu_count']} ({machine['machine']}); memory: {machine['memory']}; "
            f"latency: {machine['latency']}\n")


@click.command("compare")
@click.argument("variants", nargs=-1)
@click.option("--split", is_flag=True, help="Also each runtime's split artifact (<runtime>-split: init graph once, "
              "track graph per frame), exported where missing: its parity, and the track graph's time per frame beside the full graph's.")
@click.option("--pytorch-vs-onnx", "onnx_only", is_flag=True,
              help="Parity of ONNX Runtime against PyTorch only (no timing); exports ONNX where missing.")
@click.option("--runtime", "runtimes", cls=MultiValueOption, hidden_aliases=("--runtimes",), metavar="RUNTIME...",
              help=f"{describe(RUNTIMES)} (default: all); PyTorch eager is always the reference.")
@click.option("--precision", "precisions", cls=MultiValueOption, metavar="PRECISION...",
              help=f"{describe(PRECISIONS)} (default fp32; all = every one).")
@click.option("--samples", type=click.IntRange(1, 1000), default=4, show_default=True,
              help="Distinct input pairs: the first N held-out pairs cut from the bundled photographs (ignored with "
                   "--inputs). Reduced precisions are gated on the catalog's own count of these pairs, as zoo export.")
@click.option("--inputs", "inputs_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=".npz with one array per catalog input name (one pair, or N pairs on a leading axis).")
@click.option("--save-inputs", type=REPORT_FILE, default=None, help="Write the inputs used (.npz).")
@click.option("--save-outputs", type=REPORT_FILE, default=None,
              help="Write every runtime's outputs (.npz, keys variant/runtime-precision/output).")
@click.option("--threads", "threads", cls=MultiValueOption, metavar="N...", help="Thread counts to time [default: 1 2 4].")
@click.option("--runs", type=click.IntRange(0, 100000), default=20, show_default=True, help="Timed runs (0: no timing).")
@click.option("--warmup", type=click.IntRange(0, 10000), default=3, show_default=True, help="Untimed runs first.")
@click.option("--repeats", type=click.IntRange(1, MAX_REPEATS), default=None,
              help=f"Interleaved timing blocks (1-{MAX_REPEATS}, default 1): every row and the ceilings once per block; rows "
                   "get the spread of their block medians, a block under load is left out when another was clean, "
                   "and a flag names the noisy figure (row or ceiling).")
@artifacts_option()
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="Variants exported in parallel.")
@oversubscribe_option
@click.option("--device", "devices", multiple=True, metavar="DEVICE",
              help=f"Also compute parity on DEVICE's kernels (repeatable): {DEVICE_SYNTAX}. The figure here is shown beside "
                   "each device's and judged by the tolerance of the device's CPU family. Emulated devices give no timing.")
@click.option("--layers", is_flag=True,
              help="Compare every module's output (PyTorch hooks vs each runtime's intermediate tensors); name the first "
                   "layer above its allowance. No timing.")
@click.option("--plot", type=PLOT_FILE, default=None, help="With --layers: the error per layer as a picture (.png, .pdf or .svg), one line per runtime/precision.")
@click.option("--atol", type=Finite(0.0), default=None, help="With --layers: absolute allowance (default: the catalog's tolerance).")
@click.option("--rtol", type=Finite(0.0), default=None, help="With --layers: allowance relative to each tensor's max |value| (default: the catalog's).")
@report_options("the tables")
def compare_cmd(variants, onnx_only, runtimes, precisions, samples, inputs_file, save_inputs, save_outputs, threads,
                runs, warmup, repeats, out_dir, jobs, allow_oversubscribe, devices, layers, plot, atol, rtol, json_file, csv_file,
                markdown_file, split=False) -> None:
    """Compare each runtime with PyTorch eager on VARIANTs (default: every variant).

    Artifacts come from ARTIFACTS/<variant>/<format>[-<precision>]/ and are exported where missing.
    Exit 1 when any output is above its catalog tolerance, has NaN/Inf, or a runtime fails
    (with --layers: when any module output is above its allowance).
    """
    distinct_outputs({"--save-inputs": save_inputs, "--save-outputs": save_outputs, "--plot": plot, "--json": json_file,
                      "--csv": csv_file, "--markdown": markdown_file}, {"--inputs": inputs_file})
    catalog = Catalog.load()
    if not layers and (plot is not None or atol is not None or rtol is not None):
        raise UsageError("--plot, --atol and --rtol go with --layers")
    if layers and (onnx_only or threads or save_inputs or save_outputs or repeats):
        raise UsageError("--layers compares tensors only: drop --pytorch-vs-onnx/--threads/--repeats/--save-inputs/--save-outputs")
    if repeats is not None and (onnx_only or runs == 0):
        raise UsageError("--repeats repeats the timing: drop it with --pytorch-vs-onnx or --runs 0")
    selected = catalog.select(variants or ("all",))
    device_list = choose_devices(devices)
    if threads:
        for device in device_list:
            device.refuse_timing()
    if layers:
        if inputs_file is not None and not inputs_file.is_file():
            raise UsageError(f"--inputs file not found: {inputs_file}")
        run_layers(catalog, selected, layer_runtimes(runtimes), choose(precisions, PRECISIONS, "precision", default=("fp32",)),
                   samples, inputs_file, out_dir or default_out_dir(), atol, rtol, plot, json_file, csv_file, markdown_file, split=split,
                   devices=device_list)
        return
    if onnx_only:
        if runtimes or precisions or threads:
            raise UsageError("--pytorch-vs-onnx compares ONNX Runtime fp32 only: drop --runtime/--precision/--threads")
        runtime_list, precision_list, runs = ["onnxruntime"], ["fp32"], 0
    else:
        runtime_list = choose_runtimes(runtimes or ("all",))
        precision_list = choose(precisions, PRECISIONS, "precision", default=("fp32",))
    if inputs_file is not None and not inputs_file.is_file():
        raise UsageError(f"--inputs file not found: {inputs_file}")
    thread_list = counts(threads, "--threads", ("1", "2", "4"), allow_oversubscribe)
    opts = Options(runtimes=runtime_list, precisions=precision_list, samples=samples,
                   inputs_file=inputs_file, threads=thread_list, runs=runs,
                   warmup=warmup, repeats=repeats or 1, parity_threads=1,
                   out=out_dir or default_out_dir(), jobs=jobs, split=split, devices=device_list)
    report = _run_with_progress(catalog, selected, opts)
    tables = report.rows()
    for r in tables["timing"]:  # the interval of the block medians and the blocks kept, one cell each
        if r.get("spread_pct") is not None:
            r["interval_ms"] = f"{r['median_lo_ms']:.2f}-{r['median_hi_ms']:.2f}"
        if r.get("repeats", 1) > 1:
            r["blocks_kept"] = f"{r['repeats'] - r['blocks_left_out']}/{r['repeats']}"
    machine = report.as_json()["machine"]
    views = compare_views(tables, machine, opts, device_list, onnx_only)
    untimed = [d for d in device_list if not d.kind.timing]
    if untimed and tables["timing"]:
        err().print(escape("timing: this machine only; " + "; ".join(f"{d.name}: {d.kind.no_timing_reason}" for d in untimed)),
                    highlight=False)
    if save_inputs is not None:
        write_inputs(report, save_inputs)
    if save_outputs is not None:
        write_outputs(report, save_outputs)
    emit(views, json_file, csv_file, markdown_file, payload=report.as_json(), preamble=machine_line(machine), csv_tagged=True)
    failures = report.failures
    for line in failures:
        err().print(f"[red]failed:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if failures:
        raise ZooError(f"{len(failures)} comparison(s) failed")


def compare_views(tables: dict[str, list[dict]], machine: dict, opts: Options, devices, onnx_only: bool) -> list[View]:
    """The tables of a comparison, titled; empty ones left out (the parity table always drawn)."""
    title = "PyTorch vs ONNX Runtime" if onnx_only else "parity vs PyTorch eager"
    timed_off = any(r["device"] != "local" for r in tables["timing"])
    titles = {
        "parity": f"zoo compare: {title}",
        "devices": "parity on each device's kernels vs PyTorch here, beside this machine's figure (same artifact, same inputs)",
        "tracker": "tracker: box decoded from each runtime vs PyTorch's (256 px search crop)",
        "timing": f"timing: {opts.repeats} interleaved block(s) of {opts.warmup} warm-up + {opts.runs} runs, "
                  f"{machine['cpu_count']} CPUs; ms = median; ±% = spread of block medians; "
                  "% ceil = GFLOP/s (macs×2/median) of the ceiling of the row's precision",
        "ceilings": f"ceilings beside each block: best {GEMM_N}² matmul per precision (int8: MatMulInteger)",
        "slowest": "each row's slowest device (ship for the slower one)",
        "skipped": "skipped",
    }
    hidden = {"tracker": () if devices else ("device",), "timing": () if timed_off else ("device",)}
    return [View(name, titles[name], rows, TABLES[name], hidden=hidden.get(name, ()))
            for name, rows in tables.items() if rows or name == "parity"]


def _run_with_progress(catalog, selected, opts):
    lock = threading.Lock()
    with progress_bar() as progress:
        task = progress.add_task("preparing", total=None)
        on_export = export_reporter(progress, task, lock)

        def on_progress(stage, text):
            with lock:
                progress.update(task, description=f"{stage}: {text}")

        return run(catalog, selected, opts, on_progress=on_progress, on_export=on_export)
