"""``zoo`` command line: click commands, rich tables; errors become one line and an exit code."""
from __future__ import annotations

import os
import sys

import click
from rich.markup import escape

from zoo.cli import output
from zoo.cli.bench_cmd import bench_cmd
from zoo.cli.benchmark_cmd import benchmark_cmd
from zoo.cli.catalog_cmds import catalog_group, info_cmd, list_cmd, register_cmd, weights_cmd
from zoo.cli.compare_cmd import compare_cmd
from zoo.cli.device_cmds import device_group
from zoo.cli.eval_cmd import eval_group
from zoo.cli.eval_run_cmd import run_cmd
from zoo.cli.export_cmd import export_cmd
from zoo.cli.hub_cmds import cache_group, publish_cmd, pull_cmd
from zoo.cli.output import err
from zoo.cli.profile_cmd import profile_cmd
from zoo.cli.report_cmd import report_cmd
from zoo.cli.track_cmd import track_cmd
from zoo.errors import ZooError
from zoo.fileio import PATH_ERRNOS
from zoo.procs import Interrupted, interrupt_handlers
from zoo.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo")
def cli() -> None:
    """Model zoo and export toolchain for the lightweight tracker family."""


for command in (list_cmd, info_cmd, register_cmd, weights_cmd, catalog_group):
    cli.add_command(command)
cli.add_command(export_cmd)
cli.add_command(compare_cmd)
for command in (publish_cmd, pull_cmd, cache_group):
    cli.add_command(command)
cli.add_command(bench_cmd)
cli.add_command(benchmark_cmd)
cli.add_command(profile_cmd)
eval_group.add_command(run_cmd)
cli.add_command(eval_group)
cli.add_command(track_cmd)
cli.add_command(device_group)
cli.add_command(report_cmd)


def main() -> None:
    """Console entry point: ZooError -> 'error: ...' on stderr and its exit code.

    SIGINT (Ctrl-C) and SIGTERM unwind the command (children are stopped on the way out) and end
    it with one line: "interrupted", exit 130, or "terminated", exit 143.
    """
    output.reset()
    try:
        with interrupt_handlers():
            code = cli.main(prog_name="zoo", standalone_mode=False) or 0
        sys.exit(code)
    except Interrupted as exc:
        _stop_live_display()
        err().print(exc.message, markup=False)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err().print("aborted")
        sys.exit(130)
    except click.UsageError as exc:  # one line, not click's four (usage, hint, blank, error)
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        err().print(f"[bold red]error:[/] {escape(exc.format_message() + where)}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        err().print(f"[bold red]error:[/] {escape(exc.format_message())}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except ZooError as exc:
        err().print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err().print("interrupted")
        sys.exit(130)
    except OSError as exc:  # the machine's answer on a path no writer named (each writer names its own)
        if os.environ.get("ZOO_DEBUG"):
            raise
        reason = exc.strerror or type(exc).__name__
        err().print(f"[bold red]error:[/] {escape(f'{exc.filename}: {reason}' if exc.filename else reason)}",
                    highlight=False, soft_wrap=True)
        sys.exit(2 if exc.errno in PATH_ERRNOS else 1)
    except Exception as exc:  # a bug: one line unless ZOO_DEBUG asks for the traceback
        if os.environ.get("ZOO_DEBUG"):
            raise
        err().print(f"[bold red]internal error:[/] {escape(f'{type(exc).__name__}: {exc}')} (set ZOO_DEBUG=1 for the traceback)",
                    highlight=False, soft_wrap=True)
        sys.exit(1)


def _stop_live_display() -> None:
    """A progress display interrupted mid-refresh may not have stopped: end it before the last line."""
    live = getattr(err(), "_live_stack", None)
    for display in list(live or ()):
        try:
            display.stop()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
