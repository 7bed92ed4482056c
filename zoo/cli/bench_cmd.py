"""``zoo bench``: thread scaling, several trackers at once, sustained runs, the study's speed column.

Library code (:mod:`compare.measure.bench`) measures and returns data; this module draws and writes it.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click
from rich.markup import escape

from compare.measure import bench, sustained
from compare.measure.blocks import MAX_REPEATS
from compare.measure.ceiling import GEMM_N, ceiling_rows
from compare.measure.machine import machine_info
from compare.measure.specs import macs_per_call, runner_specs
from compare.measure.worker import memory_method
from compare.provision import choose_runtimes
from zoo.artifacts import default_out_dir
from zoo.backends import PRECISIONS, REFERENCE_RUNTIME, RUNTIMES, describe
from zoo.catalog import Catalog
from compare.measure.timing import slowest_rows
from zoo.cli.options import (DEVICE_SYNTAX, PLOT_FILE, REPORT_FILE, Finite, MultiValueOption, artifacts_option, choose, counts, distinct_outputs,
                             oversubscribe_option, report_options, resource_limit)
from zoo.cli.compare_cmd import CEILING_COLUMNS
from zoo.cli.output import KEY_COLUMNS, Column, View, emit, err, export_reporter, label, note, progress_bar
from zoo.devices import LOCAL, parse_device
from zoo.errors import UsageError, ZooError
from zoo.figures import part_rows
from zoo.sample_inputs import sample_pairs

_KEY = (*KEY_COLUMNS, label("device"))
_CELL_KEY = (*_KEY, Column("threads", "thr", label=True), Column("concurrency", "procs", label=True))
SLOWEST_COLUMNS = [*KEY_COLUMNS, Column("threads", "thr", label=True), Column("concurrency", "procs", label=True),
                   label("slowest_device", "slowest device"), Column("instance_fps_median", "fps", ".1f"),
                   Column("devices", "devices", drop=2), note("all", "every device (fps)", drop=1)]
#: drop: the higher, the sooner a column leaves a narrow terminal (JSON/CSV/Markdown keep them all)
CELL_COLUMNS = [*_CELL_KEY, Column("oversubscribed", "oversub", justify="left", drop=9, optional=True),
                Column("aggregate_fps", "aggregate fps", ".1f", drop=3), Column("instance_fps_median", "fps/inst", ".1f"),
                Column("spread_pct", "±%", ".0f", optional=True), Column("interval_fps", "interval fps", drop=8, optional=True),
                Column("blocks_kept", "blocks", drop=9, optional=True),
                Column("instance_fps_worst", "worst", ".1f", drop=10), Column("slowdown_median", "slowdown med", ".2f", drop=5),
                Column("slowdown_worst", "worst", ".2f", drop=11), Column("thread_speedup", "×1 thread", ".2f", drop=6),
                Column("gflops", "GFLOP/s", ".0f", drop=7), Column("pct_of_ceiling", "% ceil", ".0f", drop=2),
                Column("other_cores", "other CPUs", ".1f", drop=4), Column("noisy", "noisy", justify="left", drop=1, optional=True),
                note("contention", "unreliable", optional=True), note("ceiling_note", "ceiling note", drop=12, optional=True),
                Column("pids", "pids", justify="left", drop=13), note("error", optional=True)]
SPEED_COLUMNS = [*_KEY, Column("measured_fps", "fps", ".1f"), Column("reported_fps", "reported", "g", drop=1),
                 Column("measured_vs_base", "÷ base", ".3f"),
                 Column("reported_vs_base", "rep ÷ base", ".3f"),
                 Column("ratio_agreement", "agreement", ".2f")]
WINDOW_COLUMNS = [*_CELL_KEY, label("instance", "inst"),
                  Column("index", "window", label=True), Column("t_start_s", "from s", ".0f"),
                  Column("t_end_s", "to s", ".0f"), Column("runs", "runs"), Column("fps", "fps", ".1f"),
                  Column("median_ms", "median ms", ".2f"), Column("cpu_mhz", "CPU MHz", ".0f", drop=1), Column("temp_c", "°C", ".1f", drop=2)]
SUSTAINED_COLUMNS = [*_CELL_KEY, label("instance", "inst"),
                     Column("duration_s", "seconds", ".0f"), Column("runs", "runs"),
                     Column("first_fps", "first window fps", ".1f"), Column("last_fps", "last window fps", ".1f"),
                     Column("drop_pct", "drop %", ".1f"), note("clock", "clock/temperature"),
                     Column("pid", "pid", drop=1), note("error", optional=True)]


def scaling_columns(rows: list[dict]) -> list[Column]:
    """The scaling table's columns: whatever thread counts / concurrencies the rows carry."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    cols = [*_KEY, Column("fusion_macs_pct", "fusion % MACs", ".0f", drop=6)]  # fps columns: drop 0, kept longest
    titles = {"fps": ("fps {}T", ".1f", 0), "speedup": ("×{}T", ".2f", 2),
              "aggregate_fps": ("agg fps ×{} procs", ".1f", 3), "efficiency": ("eff ×{}", ".2f", 4)}
    for prefix, (title, fmt, drop) in titles.items():
        for k in keys:
            rest = k[len(prefix) + 1:]
            if k.startswith(prefix + "_") and rest.rstrip("t").lstrip("c").isdigit():
                cols.append(Column(k, title.format(rest.strip("tc")), fmt, drop=drop))
    return cols


def _fusion_share(variant) -> float | None:
    """Share (%) of the variant's MACs, attention products included, spent in the fusion blocks."""
    return next((r["macs_total_share_pct"] for r in part_rows(variant) if r["part"] == "fusion"), None)


def _specs(catalog, selected, runtimes, precision, out, split=False):
    names = [r for r in runtimes if r != REFERENCE_RUNTIME]
    chosen = ([REFERENCE_RUNTIME] if REFERENCE_RUNTIME in runtimes else []) + (choose_runtimes(names) if names else [])
    with progress_bar(counted=True) as progress:
        task = progress.add_task("artifacts", total=None)
        specs, wanted = runner_specs(catalog, selected, chosen, precision, out, on_event=export_reporter(progress, task), split=split)
    for w in wanted:
        if not w.usable:
            err().print(f"[yellow]{escape(w.status)}:[/] {escape(f'{w.key.variant} {w.key.label} {w.key.precision}: {w.note}')}", highlight=False)
    if not specs:
        raise ZooError("nothing to benchmark: no usable artifact")
    return specs


@click.command("bench")
@click.argument("variants", nargs=-1, required=True)
@click.option("--runtime", "runtimes", cls=MultiValueOption, hidden_aliases=("--runtimes",), required=True, metavar="RUNTIME...",
              help=f"{REFERENCE_RUNTIME} {describe(RUNTIMES)} (or all).")
@click.option("--precision", default="fp32", show_default=True, help=f"Artifact precision ({describe(PRECISIONS)}).")
@click.option("--threads", "threads", cls=MultiValueOption, metavar="N...", help="Threads per instance [default: 1 2 4; 1 with --duration].")
@click.option("--concurrency", "concurrency", cls=MultiValueOption, metavar="N...",
              help="Trackers running at once, one process each [default: 1 2 4; 1 with --duration].")
@click.option("--seconds", type=Finite(0.2, 3600), default=3.0, show_default=True,
              help="Timed seconds per measurement (all instances of a cell run for the same time).")
@click.option("--warmup", type=click.IntRange(0, 10000), default=5, show_default=True, help="Untimed runs per instance first.")
@click.option("--repeats", type=click.IntRange(1, MAX_REPEATS), default=None,
              help=f"Interleaved blocks of cells (1-{MAX_REPEATS}, default 1): every cell and the ceilings once per block; "
                   "cells get the spread of their blocks, a block under load is left out when another was clean, and a "
                   "flag names the noisy figure (cell or ceiling).")
@click.option("--duration", type=Finite(1, 86400), default=None,
              help="Sustained run instead: N instances (--concurrency) per variant x runtime x threads busy for S seconds.")
@click.option("--split", is_flag=True, help="Also each runtime's split artifact (<runtime>-split: init graph once, "
              "track graph per frame), exported where missing: timed per frame (track graph) beside the full graph.")
@click.option("--window", type=Finite(0.5, 3600), default=10.0, show_default=True, help="Sustained-run window (s).")
@click.option("--plot", "plot_file", type=PLOT_FILE, default=None,
              help="Sustained fps over time as a picture (.png, .pdf or .svg) [default: beside --json, else ./zoo-bench-sustained.png].")
@click.option("--device", "devices", multiple=True, metavar="DEVICE",
              help=f"Where to measure (repeatable; default: local): {DEVICE_SYNTAX}. With several, a table gives each row's "
                   "slowest device. Emulated devices give no timing.")
@click.option("--big-cores", is_flag=True, help="On a device: pin each instance to its fastest cores (highest cpuinfo_max_freq).")
@click.option("--cooldown", "cooldown_c", type=Finite(20, 110), default=None, metavar="DEG_C",
              help="On a device: before each measurement wait until every thermal zone is at or below DEG_C.")
@artifacts_option()
@oversubscribe_option
@report_options("the results")
def bench_cmd(variants, runtimes, precision, threads, concurrency, seconds, warmup, repeats, duration, window, plot_file,
              out_dir, allow_oversubscribe, json_file, csv_file, markdown_file, split=False, devices=(), big_cores=False,
              cooldown_c=None) -> None:
    """Deployment benchmarks: thread scaling and N trackers at once (one process each), or a
    sustained run with --duration; `zoo bench all --runtime mnn --threads 1` reproduces the
    study's 1-thread speed column."""
    distinct_outputs({"--plot": plot_file, "--json": json_file, "--csv": csv_file, "--markdown": markdown_file})
    catalog = Catalog.load()
    selected = catalog.select(variants)
    (precision,) = choose((precision,), PRECISIONS, "precision")
    where = [parse_device(d) for d in dict.fromkeys(devices)] or [LOCAL]
    for d in where:
        d.refuse_timing()
    remote = [d for d in where if not d.is_local]
    if (big_cores or cooldown_c is not None) and not remote:
        raise UsageError("--big-cores and --cooldown act on a device: add --device ssh://HOST")
    choose_runtimes([r for r in runtimes if r != REFERENCE_RUNTIME])  # a misspelled runtime first, with a suggestion
    thread_list = counts(threads, "--threads", ("1",) if duration else ("1", "2", "4"), allow_oversubscribe)
    conc_list = counts(concurrency, "--concurrency", ("1",) if duration else ("1", "2", "4"), allow_oversubscribe)
    busiest = max(thread_list) * max(conc_list)
    if busiest > resource_limit() and not allow_oversubscribe:
        raise UsageError(f"--threads {max(thread_list)} x --concurrency {max(conc_list)} = {busiest} threads is more than "
                         f"this machine can run ({resource_limit()}); pass --allow-oversubscribe to run it anyway "
                         "(risks exhausting memory and stalling the machine)")
    if duration is not None and repeats is not None:
        raise UsageError("--repeats repeats cells: a sustained run (--duration) is one long measurement")
    if duration is not None and window > duration:
        raise UsageError(f"--window {window:g} is longer than --duration {duration:g}")
    specs = _specs(catalog, selected, list(runtimes), precision, out_dir or default_out_dir(), split)
    if remote:
        if any(s.key.is_reference for s in specs) and LOCAL not in where:
            raise UsageError(f"{REFERENCE_RUNTIME} runs on this machine only: add --device local or drop it from --runtime")
        specs = [s.on(d) for d in where for s in specs if d.is_local or not s.key.is_reference]
    device_options = {"big_cores": big_cores, "cooldown_c": cooldown_c}
    pairs = {v.name: sample_pairs(v, 1)[0] for v in selected}
    report: dict = {"machine": machine_info(memory_method())}
    tables: dict[str, tuple[list[dict], list[Column]]] = {}

    if duration is not None:
        jobs = [(s, t, c) for s in specs for t in sorted(set(thread_list)) for c in sorted(set(conc_list))]
        runs = []
        with progress_bar(counted=True) as progress:
            task = progress.add_task("sustained", total=len(jobs))
            for spec, t, c in jobs:
                progress.update(task, description=f"sustained {spec.label} {t}T ×{c} for {duration:g} s")
                runs += sustained.run_sustained(spec, pairs[spec.variant.name], t, duration, window, warmup, concurrency=c,
                                            device_options=None if spec.device.is_local else device_options)
                progress.advance(task)
        summary = [{**{k: v for k, v in asdict(s).items() if k != "windows"},
                    "first_fps": s.windows[0].fps if s.windows else None,
                    "last_fps": s.windows[-1].fps if s.windows else None} for s in runs]
        tables["windows"] = (sustained.window_rows(runs), WINDOW_COLUMNS)
        tables["sustained"] = (summary, SUSTAINED_COLUMNS)
        plot = plot_file or (Path(json_file).with_suffix(".png") if json_file and str(json_file) != "-" else Path("zoo-bench-sustained.png"))
        sustained.plot_sustained(runs, plot)
        report.update(sustained=[asdict(s) for s in runs], plot=str(plot))
    else:
        cells_total = len(specs) * len(set(thread_list)) * len(set(conc_list) | {1}) * (repeats or 1)
        with progress_bar(counted=True) as progress:
            task = progress.add_task("bench", total=cells_total)

            def on_cell(cell):
                progress.advance(task)
                progress.update(task, description=f"{cell.variant} {cell.runtime} {cell.threads}T ×{cell.concurrency}")

            ceilings = []
            macs = {(s.variant.name, s.key.label, s.key.precision, s.device.name): macs_per_call(s) for s in specs}
            cells = bench.run_cells([(s, pairs[s.variant.name]) for s in specs], thread_list, conc_list, seconds,
                                    warmup, on_cell=on_cell, device_options=device_options, repeats=repeats or 1,
                                    macs=macs, ceilings=ceilings)
        rows = bench.cell_rows(cells)
        flat = [{**{k: v for k, v in r.items() if k != "instances"}, "pids": " ".join(str(i["pid"]) for i in r["instances"])}
                for r in rows]
        for r in flat:  # the interval of the blocks' fps per instance and the blocks kept, one cell each
            if r["spread_pct"] is not None:
                r["interval_fps"] = f"{r['fps_lo']:.1f}-{r['fps_hi']:.1f}"
            if r["repeats"] > 1:
                r["blocks_kept"] = f"{r['repeats'] - r['blocks_left_out']}/{r['repeats']}"
        ceiling_table = ceiling_rows(ceilings, {c.precision for c in cells if c.device == "local"})
        scaling = bench.scaling_rows(cells, {v.name: _fusion_share(v) for v in selected})
        tables["cells"] = (flat, CELL_COLUMNS)
        if ceiling_table:
            tables["ceilings"] = (ceiling_table, CEILING_COLUMNS)
        tables["scaling"] = (scaling, scaling_columns(scaling))
        reported = {v.name: v.reported.speed_1thread_fps if v.reported else None for v in selected}
        if 1 in thread_list:
            tables["speed_column"] = (bench.speed_column(cells, reported), SPEED_COLUMNS)
        if len(remote) > 1:
            tables["slowest"] = (slowest_rows(flat, ("variant", "runtime", "precision", "threads", "concurrency"),
                                              "instance_fps_median"), SLOWEST_COLUMNS)
        report.update(cells=rows, ceilings=ceiling_table, ceiling_blocks=[asdict(b) for b in ceilings], scaling=scaling, speed_column=tables.get("speed_column", ([], None))[0],
                      slowest=tables.get("slowest", ([], None))[0])

    titles = {"cells": f"zoo bench: {repeats or 1} interleaved block(s) of {seconds:g} s per measurement, fps = 1000 / median "
                       "latency per instance; ±% = spread of the blocks; % ceil = GFLOP/s of the ceiling of the precision",
              "ceilings": f"ceilings beside each block: best {GEMM_N}² matmul per precision (int8: MatMulInteger)",
              "scaling": "scaling per variant (fps at 1 instance; aggregate fps of N one-thread instances)",
              "speed_column": "the study's 1-thread speed column: fps ÷ base-c128's, measured here and reported (rep: a phone's); agreement = their ratio",
              "windows": f"sustained: fps per {window:g} s window", "sustained": "sustained runs",
              "slowest": "each row's slowest device (ship for the slower one)"}
    local_only = all(r.get("device", "local") == "local" for rows, _ in tables.values() for r in rows)
    views = [View(name, titles[name], rows, columns, hidden=("device",) if local_only else ()) for name, (rows, columns) in tables.items()]
    if duration is not None:
        views[-1].caption = f"plot: {report['plot']}  (clock: {report['machine']['clock']}; temperature: {report['machine']['temperature']})"
    emit(views, json_file, csv_file, markdown_file, payload=report, csv_tagged=True)
    failed = [r for rows, _ in tables.values() for r in rows if r.get("error")]
    if failed:
        raise ZooError(f"{len(failed)} measurement(s) failed: {failed[0]['variant']} {failed[0]['runtime']}: {failed[0]['error']}")
