"""Options and parsing every command shares.

- :class:`AliasedOption`: an option with old spellings still parsed but left out of ``--help``;
- :class:`MultiValueOption`: ``--to onnx mnn`` or ``--to onnx,mnn`` (or repeated);
- :func:`choose` (:mod:`zoo.names`): names, wildcards, ``all`` and "did you mean";
- :data:`REPORT_FILE` and :func:`report_options`: ``--json/--csv/--markdown FILE`` (``-`` is
  stdout; the tables then go to stderr so stdout stays machine-readable);
- :func:`distinct_outputs`: no output is an input or another output, at most one goes to stdout;
- :data:`DIR`: a non-empty directory path; :func:`artifacts_option`: ``--artifacts DIR``, the
  artifacts directory on every command (``--out`` only names a command's own output file);
- :class:`Finite`: a float option that refuses NaN and infinity (and applies a range);
- :func:`counts`: thread counts / instance counts bounded by what the machine can run.
"""
from __future__ import annotations

import copy
import functools
import math
import os
import stat
from collections.abc import Iterable
from pathlib import Path

import click

from zoo.cli.output import tables_to_stderr
from zoo.devices import DEVICE_KINDS, Device, parse_device
from zoo.errors import UsageError
from zoo.fileio import output_target, plot_format
from zoo.names import choose  # noqa: F401  (the CLI's name chooser)
from zoo.resources import check_count, resource_limit  # noqa: F401  (resource_limit: the CLI's bound, for bench)


class AliasedOption(click.Option):
    """An option whose ``hidden_aliases`` (old spellings scripts still use) parse like its other
    names but appear neither in ``--help`` nor in its error messages."""

    def __init__(self, param_decls, *args, hidden_aliases: tuple[str, ...] = (), **kwargs):
        self.hidden_aliases = tuple(hidden_aliases)
        super().__init__([*param_decls, *self.hidden_aliases], *args, **kwargs)

    def _shown(self) -> click.Option:
        shown = copy.copy(self)
        shown.opts = [o for o in self.opts if o not in self.hidden_aliases]
        return shown

    def get_help_record(self, ctx):
        return click.Option.get_help_record(self._shown(), ctx)

    def get_error_hint(self, ctx) -> str:
        return click.Option.get_error_hint(self._shown(), ctx)


class MultiValueOption(AliasedOption):
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


class ReportPath(click.ParamType):
    """A file the command will write (or ``-`` for stdout), checked when the options are parsed
    so a long run never ends in an unwritable path: a new file is created and removed again right
    away (``/proc``, full or read-only file systems fail here, not after the run).

    What is written where follows :func:`zoo.fileio.output_target`: a regular file is replaced by
    a rename when complete, a symbolic link is followed (its target is written, the link stays), a
    character device (``/dev/null``) or a FIFO is written through, and nothing else is replaced
    (a socket or a block device is refused here)."""

    name = "FILE"

    def __init__(self, directory_hint: str = "", plot: bool = False):
        #: said after "PATH is a directory" (e.g. which option takes a directory instead)
        self.directory_hint = directory_hint
        #: a picture: its suffix must name a format matplotlib writes (zoo.fileio.plot_format)
        self.plot = plot

    def convert(self, value, param, ctx):
        if self.plot and str(value).strip():
            try:
                plot_format(value)
            except UsageError as exc:
                self.fail(str(exc), param, ctx)
        if isinstance(value, Path) and str(value) == "-":
            return value
        if str(value) == "-":
            tables_to_stderr()
            return Path("-")
        if not str(value).strip():
            self.fail("an empty path is not a file name", param, ctx)
        path = Path(value).expanduser()
        if path.is_dir():
            self.fail(f"{path} is a directory" + (f" ({self.directory_hint})" if self.directory_hint else ""), param, ctx)
        try:
            target = output_target(path)
        except OSError as exc:
            self.fail(f"cannot write {path}: {exc.strerror or exc}", param, ctx)
        if target.kind == "through":
            if not os.access(target.path, os.W_OK):
                self.fail(f"cannot write {path}: permission denied", param, ctx)
            return path
        real = target.path  # a symlink's target
        ancestor = real.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
            self.fail(f"cannot write {path}: {ancestor} is not a writable directory", param, ctx)
        if ancestor == real.parent and not real.exists():
            try:  # the parent exists: prove the file can be created (e.g. not under /proc)
                with open(real, "xb"):
                    pass
                real.unlink()
            except OSError as exc:
                self.fail(f"cannot write {path}: {exc.strerror or exc}", param, ctx)
        return path


def _file_keys(path: Path) -> tuple[set, bool]:
    """What identifies the file at ``path``: its resolved path and, when it exists, its device and
    inode (a hard link, a path through another link); and whether it is a character device."""
    real = os.path.realpath(Path(path).expanduser())
    try:
        st = os.stat(Path(path).expanduser())  # through every link, /dev/stdout's to its pipe or file too
    except OSError:
        return {real}, False
    return {real, (st.st_dev, st.st_ino)}, stat.S_ISCHR(st.st_mode)


def _stdout_keys() -> set:
    """What identifies the file behind ``-`` (standard output): ``--json -`` and ``--csv X`` with
    stdout redirected to X are one file."""
    try:
        st = os.fstat(1)
    except OSError:
        return set()
    return set() if stat.S_ISCHR(st.st_mode) else {(st.st_dev, st.st_ino)}


def distinct_outputs(outputs: dict[str, Path | None], inputs: dict[str, Path | Iterable[Path] | None] | None = None) -> None:
    """Refuse (:class:`UsageError`, exit 2) before any work an output that is one of ``inputs``
    (the command would overwrite what it reads), the same file as another output (one would
    replace the other), or a second output on stdout (``-``). Keys are what the messages call
    each path (``--video``, ``SOURCE``); ``None`` values are left out. Character devices
    (``/dev/null``) may take any number of outputs; FIFOs and files one each."""
    seen: dict = {}
    for label, paths in (inputs or {}).items():
        if paths is None:
            continue
        for path in [paths] if isinstance(paths, (str, Path)) else paths:
            if str(path) == "-":
                continue
            for key in _file_keys(path)[0]:
                seen.setdefault(key, (label, path, True))
    stdout = None
    for label, path in outputs.items():
        if path is None:
            continue
        if str(path) == "-":
            if stdout is not None:
                raise UsageError(f"{stdout} - and {label} - both write to stdout: send all but one of them to a file")
            stdout = label
            keys = _stdout_keys()
        else:
            keys, device = _file_keys(path)
            if device:
                continue
        clash = next((seen[k] for k in keys if k in seen), None)
        if clash is not None:
            other, other_path, is_input = clash
            if is_input:
                shown = f" ({other_path})" if str(other_path) != str(path) else ""
                raise UsageError(f"{label} {path} is {other}{shown}, which this command reads: write it to another file")
            raise UsageError(f"{other} {other_path} and {label} {path} are the same file: give each output its own")
        for key in keys:
            seen[key] = (label, path, False)


class NonEmptyDir(click.ParamType):
    """A directory path that must not be empty (``""`` would silently mean the current directory)."""

    name = "DIR"

    def convert(self, value, param, ctx):
        if isinstance(value, Path):
            return value
        if not str(value).strip():
            self.fail("an empty path is not a directory (use . for the current directory)", param, ctx)
        path = Path(value).expanduser()
        if path.exists() and not path.is_dir():
            self.fail(f"{path} exists and is not a directory", param, ctx)
        return path


REPORT_FILE = ReportPath()
PLOT_FILE = ReportPath(plot=True)
DIR = NonEmptyDir()


class Finite(click.ParamType):
    """A float in ``[lo, hi]``; NaN and infinity are refused."""

    name = "NUMBER"

    def __init__(self, lo: float | None = None, hi: float | None = None):
        self.lo, self.hi = lo, hi

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.lo is not None and number < self.lo:
            self.fail(f"{value} is below {self.lo:g}" if self.hi is None else self._range(value), param, ctx)
        if self.hi is not None and number > self.hi:
            self.fail(f"{value} is above {self.hi:g}" if self.lo is None else self._range(value), param, ctx)
        return number

    def _range(self, value) -> str:
        return f"{value} is not in the range {self.lo:g} to {self.hi:g}"


#: help of ``--artifacts`` where omitting it means the default directory
ARTIFACTS_HELP = "Artifacts directory (default: $ZOO_ARTIFACTS or ./artifacts)."


def artifacts_option(dest: str = "out_dir", hidden_aliases: tuple[str, ...] = ("--out",), help: str = ARTIFACTS_HELP):
    """``--artifacts DIR``: the artifacts directory, the same name on every command (default
    ``$ZOO_ARTIFACTS`` or ``./artifacts``, :func:`zoo.artifacts.default_out_dir`). ``--out``, its
    old name on export/compare/bench/profile/pull, still parses there but is not shown."""
    return click.option("--artifacts", dest, cls=AliasedOption, hidden_aliases=hidden_aliases, type=DIR,
                        default=None, metavar="DIR", help=help)


def report_options(what: str = "the rows"):
    """``--json FILE`` / ``--csv FILE`` / ``--markdown FILE`` (``-``: stdout), checked by
    :func:`distinct_outputs` before the command runs (at most one on stdout, never the same file
    twice); a command with other inputs or outputs checks them all with it again."""
    def decorate(func):
        @functools.wraps(func)  # keeps the options already attached (click's __click_params__)
        def checked(*args, **kwargs):
            distinct_outputs({"--json": kwargs.get("json_file"), "--csv": kwargs.get("csv_file"),
                              "--markdown": kwargs.get("markdown_file")})
            return func(*args, **kwargs)

        command = click.option("--markdown", "markdown_file", type=REPORT_FILE, default=None,
                               help=f"Write {what} as Markdown to FILE ('-': stdout).")(checked)
        command = click.option("--csv", "csv_file", type=REPORT_FILE, default=None,
                               help=f"Write {what} as CSV to FILE ('-': stdout).")(command)
        return click.option("--json", "json_file", type=REPORT_FILE, default=None,
                            help=f"Write {what} as JSON to FILE ('-': stdout; tables then go to stderr).")(command)
    return decorate


def counts(values: tuple[str, ...] | list[str], what: str, default: tuple[str, ...] = (),
           allow_oversubscribe: bool = False) -> list[int]:
    """Whole numbers >= 1 from option values (thread counts, concurrency), each at most
    :func:`resource_limit` unless ``allow_oversubscribe``; anything else is a usage error."""
    out = []
    for value in values or default:
        try:
            n = int(value)
        except ValueError:
            raise UsageError(f"{what} must be whole numbers, got {value!r}") from None
        check_count(n, what, allow_oversubscribe)
        out.append(n)
    return out


def oversubscribe_option(func):
    """``--allow-oversubscribe``: lift the bound on threads and instances."""
    return click.option("--allow-oversubscribe", is_flag=True,
                        help="Allow more threads/instances than 8 x the CPUs (risks exhausting memory and stalling the machine).")(func)


#: ``--device`` help text: every device kind's syntax
DEVICE_SYNTAX = ", ".join(k.syntax for k in DEVICE_KINDS)


def choose_devices(values: tuple[str, ...] | list[str]) -> list[Device]:
    """The devices ``--device`` names, once each, ``local`` left out (this machine always runs)."""
    chosen: dict[str, Device] = {}
    for value in values:
        device = parse_device(value)
        if not device.is_local:
            chosen.setdefault(device.name, device)
    return list(chosen.values())
