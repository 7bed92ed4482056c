"""``zoo export VARIANT... --to FORMAT... [--precision P...]``: build, verify and install artifacts."""
from __future__ import annotations

import threading
from pathlib import Path

import click
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from zoo.catalog import Catalog, did_you_mean
from zoo.cli.output import REPORT_FILE, Column, console, err_console, rich_table, to_json, write_text
from zoo.errors import UsageError, ZooError
from zoo.schema import PRECISIONS

SUMMARY_COLUMNS = [
    Column("variant", "variant", justify="left"),
    Column("format", "format", justify="left"),
    Column("precision", "precision", justify="left"),
    Column("status", "status", justify="left"),
    Column("size_mb", "size MB", ".2f"),
    Column("max_abs_err", "max abs err", ".2e"),
    Column("seconds", "seconds", ".1f"),
    Column("note", "note", justify="left"),
]
LOG_TAIL = 25


class MultiValueOption(click.Option):
    """An option taking one or more values: ``--to onnx mnn`` or ``--to onnx,mnn``.

    Values run up to the next token starting with ``-``; the option may also be repeated.
    """

    def __init__(self, *args, **kwargs):
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)

    def add_to_parser(self, parser, ctx):
        super().add_to_parser(parser, ctx)
        for opt in self.opts:
            parser_option = parser._long_opt.get(opt) or parser._short_opt.get(opt)
            if parser_option is None:
                continue
            original = parser_option.process

            def process(value, state, original=original):
                values = [value]
                while state.rargs and not state.rargs[0].startswith("-"):
                    values.append(state.rargs.pop(0))
                for v in values:
                    for part in v.split(","):
                        if part:
                            original(part, state)

            parser_option.process = process


def _choose(values: tuple[str, ...], choices: tuple[str, ...], what: str) -> list[str]:
    chosen: list[str] = []
    for value in values:
        names = choices if value == "all" else (value,)
        for name in names:
            if name not in choices:
                raise UsageError(f"unknown {what} {name!r}{did_you_mean(name, choices)}; choose from {', '.join(choices)}")
            if name not in chosen:
                chosen.append(name)
    return [c for c in choices if c in chosen]  # canonical order


def _print_log(title: str, path: str | Path | None, tail: int | None) -> None:
    if not path or not Path(path).is_file():
        return
    lines = Path(path).read_text(errors="replace").splitlines()
    shown = lines[-tail:] if tail else lines
    cut = f" (last {len(shown)} of {len(lines)} lines)" if len(shown) < len(lines) else ""
    err_console.print(f"[dim]--- {title}: {path}{cut}[/]", highlight=False)
    for line in shown:
        err_console.print(line, markup=False, highlight=False, soft_wrap=True)


def _short(note: str | None, width: int = 60) -> str | None:
    return note if note is None or len(note) <= width else note[: width - 1] + "…"


@click.command("export")
@click.argument("variants", nargs=-1, required=True)
@click.option("--to", "formats", cls=MultiValueOption, required=True, metavar="FORMAT...",
              help="onnx mnn tflite ncnn (or all); several values allowed.")
@click.option("--precision", "precisions", cls=MultiValueOption, metavar="PRECISION...",
              help="fp32 (default) and/or fp16; a precision a format does not offer is skipped with a note.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Artifacts directory (default: $ZOO_ARTIFACTS or ./artifacts).")
@click.option("--force", is_flag=True, help="Rebuild even when an identical verified artifact exists.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="Variants exported in parallel.")
@click.option("--verbose", "-v", is_flag=True, help="Show the converters' logs.")
@click.option("--json", "json_file", type=REPORT_FILE, default=None,
              help="Also write the summary rows as JSON to this file ('-' for stdout).")
def export_cmd(variants, formats, precisions, out_dir, force, jobs, verbose, json_file) -> None:
    """Export VARIANTs (names, wildcards, 'all') to each FORMAT, verified against PyTorch.

    Artifacts go to OUT/<variant>/<format>[-<precision>]/ with a manifest.json; formats that
    convert from ONNX build (or reuse) the ONNX artifact first.
    """
    from exporters import FORMATS
    from exporters.pipeline import Pipeline, default_out_dir, plan

    selected = Catalog.load().select(variants)
    fmt_list = _choose(formats, FORMATS, "format")
    prec_list = _choose(precisions or ("fp32",), PRECISIONS, "precision")
    targets, skipped = plan(selected, fmt_list, prec_list)
    from exporters import get_exporter

    for fmt in dict.fromkeys(t.format for t in targets):  # a missing converter: one line, before any work
        get_exporter(fmt).versions()

    lock = threading.Lock()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err_console, transient=True) as progress:
        task = progress.add_task("exporting", total=len(targets))

        def on_event(target, stage):
            with lock:
                if stage in ("built", "rebuilt", "reused", "failed"):
                    progress.advance(task)
                    progress.console.print(f"{target.label}: {stage}", highlight=False)
                else:
                    progress.update(task, description=f"{target.label}: {stage}")

        pipeline = Pipeline(out_dir or default_out_dir(), force=force, verbose=verbose, jobs=jobs, on_event=on_event)
        rows = pipeline.run(targets)

    rows = rows + skipped
    if verbose:
        for row in rows:
            if row.status in ("built", "rebuilt") and row.path:
                _print_log(f"{row.variant} {row.format} {row.precision} log", Path(row.path) / "export.log", None)
    failed = [r for r in rows if r.status == "failed"]
    for row in failed:
        _print_log(f"{row.variant} {row.format} {row.precision} log", row.log, None if verbose else LOG_TAIL)
    table_rows = [{**r.as_dict(), "note": _short(r.note)} for r in rows]  # full notes: below and in --json
    console.print(rich_table(table_rows, SUMMARY_COLUMNS, title=f"zoo export → {pipeline.out}"))
    if json_file is not None:
        write_text(json_file, to_json([r.as_dict() for r in rows]))
    for row in failed:
        err_console.print(f"[red]failed:[/] {row.note}" + (f" (log: {row.log})" if row.log else ""), highlight=False, soft_wrap=True)
    if failed:
        raise ZooError(f"{len(failed)} of {len(rows)} exports failed")
