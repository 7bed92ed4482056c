"""``zoo eval run``: One-Pass Evaluation of trackers on a benchmark, locally or on a Ray cluster.

The library (:mod:`compare.tracking.evaluation`) plans, runs and writes; this module parses, shows progress
and draws the summary.
"""
from __future__ import annotations

import time
from pathlib import Path

import click

from compare.tracking.evaluation import run_evaluation, tracker_specs
from compare.tracking.ray_address import check_reachable, parse_ray_address
from zoo.artifacts import default_out_dir
from zoo.backends import DEFAULT_RUNTIME, PRECISIONS, REFERENCE_RUNTIME, RUNTIMES, describe
from zoo.catalog import Catalog
from zoo.cli.caveats import untrained_note
from zoo.cli.options import DIR, MultiValueOption, artifacts_option, counts, oversubscribe_option, report_options
from zoo.cli.output import Column, View, emit, err, export_reporter, label, progress_bar
from zoo.datasets import load_dataset
from zoo.errors import UsageError, ZooError
from zoo.names import choose

SUMMARY_COLUMNS = [label("tracker"), Column("sequences", "seqs run"),
                   Column("skipped", "already done", drop=2), Column("failed", "failed"), Column("frames", "frames", drop=3),
                   Column("network_fps", "network fps", ".1f"), Column("loop_fps", "loop fps", ".1f"),
                   Column("network_ms", "net ms/frame", ".2f", drop=1), Column("loop_ms", "loop ms/frame", ".2f", drop=1)]


@click.command("run")
@click.argument("variants", nargs=-1, required=True)
@click.option("--dataset", "dataset", required=True, metavar="NAME", help="lasot, lasot_ext, tnl2k or otb.")
@click.option("--root", type=DIR, required=True,
              help="Dataset root with frames (LaSOT <class>/<seq>/img/, TNL2K <seq>/imgs/, OTB <Seq>/img/).")
@click.option("--runtime", "runtimes", cls=MultiValueOption, hidden_aliases=("--runtimes",), metavar="RUNTIME...",
              help=f"{REFERENCE_RUNTIME} {describe(RUNTIMES)} or all (default: {DEFAULT_RUNTIME}).")
@click.option("--precision", "precisions", cls=MultiValueOption, metavar="PRECISION...",
              help=f"{describe(PRECISIONS)} (default fp32; each runtime runs those it offers).")
@click.option("--threads", default="1", show_default=True, metavar="N", help="Threads per tracker.")
@click.option("--preset", default=None, metavar="NAME", help="Tracking preset of zoo.yaml (default: each variant's own).")
@click.option("--sequences", "patterns", cls=MultiValueOption, metavar="PATTERN...",
              help="Only these sequences: names (run even outside the test split) or shell patterns (within it).")
@click.option("--all-sequences", is_flag=True, help="Every sequence under the root, not only the official test split.")
@click.option("--results", "results_dir", type=DIR, default=Path("results"), show_default=True,
              help="Results root: <results>/<tracker>/<dataset>/<seq>.txt (+ _time.txt, _score.txt).")
@click.option("--jobs", default="1", show_default=True, metavar="N", help="Processes (one loaded runtime each); with --ray the number of actors.")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Run on Ray: a cluster address, 'auto' (the running cluster) or 'local' (start one on this machine).")
@artifacts_option("artifacts_dir", hidden_aliases=())
@click.option("--split", is_flag=True, help="Use the split artifact: its init graph (template -> cache) at initialisation, "
              "its track graph (search + cache) per frame; exported first when missing.")
@report_options("the per-tracker summary")
@oversubscribe_option
def run_cmd(variants, dataset, root, runtimes, precisions, threads, preset, patterns, all_sequences, results_dir, jobs,
            ray_address, artifacts_dir, json_file, csv_file, markdown_file, allow_oversubscribe, split=False) -> None:
    """One-Pass Evaluation: each VARIANT in each runtime and precision tracks every sequence from
    its first ground-truth box; raw results go to <results>/<variant>@<runtime>-<precision>/<dataset>/
    in pytracking's layout (finished sequences are skipped on a rerun). Example:

      zoo eval run fgaf3 base-c128 --dataset lasot --root ~/data/LaSOT --runtime tflite mnn --jobs 2

    Then: zoo eval analyze results/* --dataset lasot --root ~/data/LaSOT
    """
    catalog = Catalog.load()
    chosen = catalog.select(variants)
    runtime_names = choose(list(runtimes or ()), (REFERENCE_RUNTIME, *RUNTIMES), "runtime", default=(DEFAULT_RUNTIME,))
    precision_names = choose(list(precisions or ()), PRECISIONS, "precision", default=("fp32",))
    (threads_n,) = counts([threads], "--threads", allow_oversubscribe=allow_oversubscribe)
    (jobs_n,) = counts([jobs], "--jobs", allow_oversubscribe=allow_oversubscribe)
    counts([str(jobs_n * threads_n)], "--jobs x --threads", allow_oversubscribe=allow_oversubscribe)
    if ray_address is not None:  # its form (exit 2) and that a head listens (exit 1), before any work
        check_reachable(parse_ray_address(ray_address))
    if preset is not None:
        for v in chosen:
            catalog.preset_name(v, preset)
    ds = load_dataset(dataset, root=root, patterns=list(patterns or ()), all_sequences=all_sequences)
    split_total = len(ds.sequences) + len(ds.missing)
    if ds.missing:
        err().print(f"note: {len(ds.sequences)} of the {split_total} {ds.spec.title} test sequences are under {ds.source}; "
                    "running those", highlight=False, soft_wrap=True, markup=False)
    out_dir = Path(artifacts_dir) if artifacts_dir else default_out_dir()
    where = f"Ray ({ray_address})" if ray_address else (f"{jobs_n} processes" if jobs_n > 1 else "this process")
    state = {"done": 0, "frames": 0}
    with progress_bar(counted=True, info=True, eta=True) as progress:
        task = progress.add_task("eval run: artifacts", total=None)
        specs, notes = tracker_specs(catalog, chosen, runtime_names, precision_names, out_dir, threads=threads_n, preset=preset,
                                     split=split, on_event=export_reporter(progress, task))
        for note in notes:
            progress.console.print(f"note: {note}", highlight=False, markup=False)
        if not specs:
            raise UsageError("no tracker to run (every runtime x precision combination was skipped)")
        progress.update(task, description="eval run")
        state["start"] = time.perf_counter()  # frames/s of the run, not of the exports
        plan = {}

        def on_start(n_tasks: int, n_frames: int) -> None:
            plan.update(tasks=n_tasks, frames=n_frames)
            skipped = sum(s.skipped for s in summaries.values())
            progress.console.print(f"plan: {len(specs)} tracker{'s' if len(specs) > 1 else ''} x {len(ds.sequences)} sequences: "
                                   f"{n_tasks} runs to do, {n_frames} frames ({skipped} runs already finished)", highlight=False, markup=False)
            progress.update(task, total=max(1, n_frames), description=f"eval run on {where}: 0/{n_tasks} sequences")

        def on_result(t, result) -> None:
            state["done"] += 1
            state["frames"] += len(t.sequence)
            elapsed = time.perf_counter() - state["start"]
            status = "" if result.run is not None else " (failed)"
            progress.update(task, advance=len(t.sequence),
                            description=f"eval run on {where}: {state['done']}/{plan['tasks']} sequences",
                            info=f"{state['frames'] / elapsed:.1f} frames/s, last {t.spec.name} {t.sequence.name}{status}")
            if result.run is None:
                progress.console.print(f"failed: {result.error}", highlight=False, soft_wrap=True, markup=False)

        summaries = {}
        outcome = run_evaluation(specs, ds, results_dir, jobs=jobs_n, ray_address=ray_address, threads=threads_n,
                                 on_start=on_start, on_result=on_result, summaries=summaries)
    rows = [s.row() for s in outcome.summaries.values()]
    ran = len(ds.sequences)
    title = (f"zoo eval run: {ds.spec.title}, {ran} sequences" + (f" of the {split_total}-sequence test split" if ds.missing else "")
             + f", {outcome.tasks} tracker x sequence runs on {where} in {outcome.wall_s:.1f} s; results in {results_dir}")
    caveat = untrained_note([spec.name for spec in specs], catalog)
    notes = [caveat] if caveat else []
    if not outcome.tasks:
        notes.append("every sequence was already finished (delete its <seq>.txt to run it again)")
    report = {"dataset": ds.name, "root": str(ds.source), "results": str(results_dir), "sequences": ds.names(),
              "split_total": split_total, "missing": ds.missing, "executor": where, "wall_s": outcome.wall_s,
              "trackers": rows, "errors": outcome.errors}
    emit([View("trackers", title, rows, SUMMARY_COLUMNS, caption="\n".join(notes))], json_file, csv_file, markdown_file, payload=report)
    if outcome.errors:
        more = f" (+{len(outcome.errors) - 1} more)" if len(outcome.errors) > 1 else ""
        raise (UsageError if outcome.usage_error else ZooError)(f"{outcome.errors[0]}{more}")
