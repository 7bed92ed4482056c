"""``zoo export VARIANT... --to FORMAT... [--precision P...]``: build, verify and install artifacts."""
from __future__ import annotations

import threading
from pathlib import Path

import click
from rich.markup import escape

from compare.provision import ensure, keys_for, open_calibration, plan
from zoo.artifacts import SPLIT_SUFFIX, Status, default_out_dir
from zoo.backends import FLAVOUR_NAMES, FLAVOURS, FORMATS, INT8_TARGETS, PRECISIONS, describe
from zoo.catalog import Catalog
from zoo.cli.options import DEVICE_SYNTAX, MultiValueOption, artifacts_option, choose, choose_devices, report_options
from zoo.cli.output import Column, View, emit, err, export_reporter, label, note, progress_bar
from zoo.manifest import MANIFEST_NAME, read_manifest
from zoo.errors import ZooError

SUMMARY_COLUMNS = [
    label("variant"),
    label("format"),
    label("precision"),
    label("status"),
    Column("size_mb", "size MB", ".2f"),
    Column("max_abs_err", "max abs err", ".2e", drop=2),
    Column("seconds", "time s", ".1f", drop=1),
    note("note", drop=3),
]
LOG_TAIL = 25


def _print_log(title: str, path: str | Path | None, tail: int | None) -> None:
    if not path or not Path(path).is_file():
        return
    lines = Path(path).read_text(errors="replace").splitlines()
    shown = lines[-tail:] if tail else lines
    cut = f" (last {len(shown)} of {len(lines)} lines)" if len(shown) < len(lines) else ""
    err().print(f"[dim]--- {escape(f'{title}: {path}{cut}')}[/]", highlight=False)
    for line in shown:
        err().print(line, markup=False, highlight=False, soft_wrap=True)


DEVICE_COLUMNS = [
    label("variant"), label("format"), label("precision", "prec"), label("device"),
    Column("family", "CPU family", justify="left", drop=1), Column("max_abs_err", "max abs", ".2e"),
    Column("worst_ratio", "err/allowed", ".3f"), label("tracker", "tracker gate"),
    label("status"),
]


def device_rows(provisioned) -> list[dict]:
    """One row per installed artifact x device record of its manifest."""
    rows = []
    for p in provisioned:
        if p.path is None or not (p.path / MANIFEST_NAME).is_file() or p.key.is_reference:
            continue
        for d in read_manifest(p.path).parity.devices:
            rows.append({"variant": p.key.variant, "format": p.key.label, "precision": p.key.precision, "device": d.device,
                         "family": d.family, "max_abs_err": max(o.max_abs_err for o in d.outputs),
                         "worst_ratio": max(o.worst_ratio for o in d.outputs),
                         "tracker": None if d.tracker is None else ("pass" if d.tracker.passed else "FAIL"),
                         "status": "pass" if d.passed else "FAIL"})
    return rows


@click.command("export")
@click.argument("variants", nargs=-1, required=True)
@click.option("--to", "formats", cls=MultiValueOption, required=True, metavar="FORMAT...",
              help=f"{describe(FORMATS)} (or all); several values allowed.")
@click.option("--precision", "precisions", cls=MultiValueOption, metavar="PRECISION...",
              help=f"{describe(PRECISIONS)} (default fp32); a precision a format does not offer is skipped with a note.")
@click.option("--for", "flavour", metavar="CLIENT",
              help="Build for a client that loads the artifact by itself: "
                   + "; ".join(f"{f.name} = {f.title} ({f.format}, into <variant>/{f.format}-{f.name})" for f in FLAVOURS) + ".")
@artifacts_option()
@click.option("--force", is_flag=True, help="Rebuild even when an identical verified artifact exists.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="Artifacts built at once: variants in parallel, and a variant's conversions from its ONNX artifact.")
@click.option("--verbose", "-v", is_flag=True, help="Show the converters' logs.")
@click.option("--calibration", metavar="PATH", default=None,
              help="Calibration crops for int8 (and the held-out verification pairs): a dataset root, a sequence folder "
                   "or a folder of images; default: the bundled photographs with jitter.")
@click.option("--int8-target", type=click.Choice(INT8_TARGETS), default=None,
              help="Hardware an int8 recipe targets where the format has several (ONNX: x86 = U8S8, arm = S8S8); "
                   "default: zoo.yaml's quantization.default_target.")
@click.option("--split", is_flag=True, help="Export split artifacts instead: an init graph (template -> cache) and a track "
              "graph (search + cache -> maps) in ARTIFACTS/<variant>/<format>[-<precision>]-split/.")
@click.option("--verify-on", "verify_on", multiple=True, metavar="DEVICE",
              help=f"Also verify every artifact on DEVICE's kernels (repeatable; {DEVICE_SYNTAX}) with the tolerance of its "
                   "CPU family; record it in the manifest; an artifact failing there is not installed.")
@report_options("the summary rows")
def export_cmd(variants, formats, precisions, flavour, out_dir, force, jobs, verbose, json_file, csv_file, markdown_file,
               calibration=None, int8_target=None, split=False, verify_on=()) -> None:
    """Export VARIANTs (names, wildcards, 'all') to each FORMAT, verified against PyTorch.

    Artifacts go to ARTIFACTS/<variant>/<format>[-<precision>]/ (--artifacts DIR, default
    $ZOO_ARTIFACTS or ./artifacts) with a manifest.json; formats that convert from ONNX build (or
    reuse) the ONNX artifact first. With --split each artifact holds an init and a track graph
    (template caching) in ARTIFACTS/<variant>/<format>[-<precision>]-split/.
    """
    catalog = Catalog.load()
    selected = catalog.select(variants)
    fmt_list = choose(formats, FORMATS, "format")
    prec_list = choose(precisions, PRECISIONS, "precision", default=("fp32",))
    if flavour is not None:
        flavour = choose((flavour,), FLAVOUR_NAMES, "--for client")[0]
    keys = keys_for(selected, fmt_list, prec_list, flavour, split=split)
    planned = plan(keys)  # nothing to export: one line, exit 2, before any work
    artifacts_dir = Path(out_dir or default_out_dir()).absolute()
    devices = tuple(choose_devices(verify_on))
    calibration = open_calibration(keys, catalog, calibration) or calibration  # refused before any work

    lock = threading.Lock()
    with progress_bar(counted=True) as progress:
        task = progress.add_task("exporting", total=len(planned))

        on_event = export_reporter(progress, task, lock, advance=True, prefix="")
        provisioned = ensure(keys, artifacts_dir, catalog, refresh=True, force=force, jobs=jobs, on_event=on_event,
                             calibration=calibration, int8_target=int8_target, verify_on=devices)
    rows = [p.row for p in provisioned]
    if verbose:
        for row in rows:
            if row.status in (Status.BUILT, Status.REBUILT) and row.path:
                _print_log(f"{row.variant} {row.format} {row.precision} log", Path(row.path) / "export.log", None)
    failed = [r for r in rows if r.status is Status.FAILED]
    for row in failed:
        _print_log(f"{row.variant} {row.format} {row.precision} log", row.log, None if verbose else LOG_TAIL)
    # a flavour shows as "<format> --for <flavour>", a split artifact as <format>-split (the JSON
    # keeps format, flavour and split); an artifact assembled from cached conversion steps says so
    table_rows = [{**r.as_dict(), "status": f"{r.status} from cache" if r.cached_steps else str(r.status),
                   "format": r.format + (f" --for {r.flavour}" if r.flavour else "") + (SPLIT_SUFFIX if r.split else "")} for r in rows]
    views = [View("artifacts", f"zoo export → {artifacts_dir}", table_rows, SUMMARY_COLUMNS)]
    if devices:
        views.append(View("devices", "verified on devices (the manifest's records; tolerance of each CPU family)",
                          device_rows(provisioned), DEVICE_COLUMNS))
    emit(views, json_file, csv_file, markdown_file, payload={"artifacts": [r.as_dict() for r in rows]})
    for row in failed:
        err().print(f"[red]failed:[/] {escape(row.note + (f' (log: {row.log})' if row.log else ''))}", highlight=False, soft_wrap=True)
    if failed:
        raise ZooError(f"{len(failed)} of {len(rows)} exports failed")
