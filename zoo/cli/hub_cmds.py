"""Hub commands: ``zoo publish``, ``zoo pull`` and ``zoo cache list|remove|dir``."""
from __future__ import annotations

import fnmatch
import threading
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from zoo.artifacts import ArtifactKey, default_out_dir
from zoo.backends import FORMATS, PRECISIONS, REDUCED_PRECISIONS, describe
from zoo.catalog import Catalog
from zoo.cli.options import DIR, Finite, MultiValueOption, artifacts_option, choose, report_options
from zoo.cli.output import Column, View, emit, emit_rows, err, label, note, out
from zoo.errors import UsageError
from zoo.hub import store
from zoo.hub.resolve import resolve_hub
from zoo.hub.store import artifact_cache_root, scan
from zoo.manifest import MANIFEST_NAME
from zoo.names import did_you_mean
from zoo.paths import cache_dir
from zoo.release.publish import publish
from zoo.release.pull import pull



PUBLISH_COLUMNS = [
    label("variant"), label("item"),
    Column("files", "files"), Column("bytes", "bytes", ","), Column("url", "url", justify="left"),
]
PULL_COLUMNS = [
    label("variant"), label("item"), Column("files", "files"),
    Column("size_mb", "size MB", ".2f"), label("status"), Column("where", "in", justify="left"),
]
TOOL_COLUMNS = [label("kind", "cache"), Column("entries", "entries"), Column("size_mb", "size MB", ".1f"),
                note("what", "what it holds", drop=1)]
CACHE_COLUMNS = [
    label("variant"), Column("weights", "weights", justify="left", drop=1),
    Column("formats", "artifacts", justify="left"), Column("size_mb", "size MB", ".2f"),
]


class RichReporter:
    """Draws transfers as rich progress bars on stderr (one per file) and notes above them.

    The bars appear with the first transfer, so a pull with nothing to fetch prints none.
    """

    def __init__(self):
        self.progress: Progress | None = None
        self.tasks: dict[str, int] = {}
        self.lock = threading.Lock()

    def _bars(self) -> Progress:
        with self.lock:
            if self.progress is None:
                self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                         TransferSpeedColumn(), TimeRemainingColumn(), console=err())
                self.progress.start()
            return self.progress

    def start(self, key: str, label: str, total: int, offset: int) -> None:
        bars = self._bars()
        with self.lock:
            if key not in self.tasks:
                self.tasks[key] = bars.add_task(escape(label), total=total, completed=offset)  # descriptions are markup here
            else:
                bars.reset(self.tasks[key], total=total, completed=offset)

    def advance(self, key: str, nbytes: int) -> None:
        self._bars().advance(self.tasks[key], nbytes)

    def finish(self, key: str, status: str) -> None:
        if key in self.tasks:
            color = "red" if status == "failed" else "green"
            self._bars().update(self.tasks[key], description=f"{escape(key)} [{color}]{escape(status)}[/]")

    def note(self, message: str) -> None:
        console = self.progress.console if self.progress else err()
        console.print(f"[yellow]{escape(message)}[/]", highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


HUB_OPTIONS = [
    click.option("--hub", help="Hub URL (release directory or its index.json) [default: $ZOO_HUB, else zoo.yaml 'hub']."),
    click.option("--offline", is_flag=True, help="Use only the cache (also ZOO_OFFLINE=1); say exactly what is missing."),
    click.option("--allow-http", is_flag=True, help="Accept plain http to non-loopback hosts (also ZOO_ALLOW_HTTP=1)."),
    click.option("--timeout", type=Finite(0.01, 86400), default=None,
                 help="Seconds without data before a connection counts as stalled [default: $ZOO_HUB_TIMEOUT or 30]."),
    click.option("--retries", type=click.IntRange(1, 100), default=None,
                 help="Attempts per file, transient failures only [default: $ZOO_HUB_RETRIES or 5]."),
]


def hub_options(func):
    """--hub / --offline / --allow-http / --timeout / --retries."""
    for opt in reversed(HUB_OPTIONS):
        func = opt(func)
    return func


def target_options(default: str):
    """VARIANT... --format/--formats FORMAT... --precision PRECISION... (``default``: what omitting means)."""
    def decorate(func):
        func = click.option("--precision", "precisions", cls=MultiValueOption, metavar="PRECISION...",
                            help=f"{describe(PRECISIONS)} [default: {default}].")(func)
        func = click.option("--formats", "--format", "formats", cls=MultiValueOption, metavar="FORMAT...",
                            help=f"{describe(FORMATS)} [default: {default}].")(func)
        return click.argument("variants", nargs=-1, required=True)(func)
    return decorate


@click.command("publish")
@target_options("all (every one must have been exported; int8/int8-dynamic/bf16 where exported)")
@click.option("--to", "dest", required=True, type=DIR, help="Release directory to write (replaced whole).")
@click.option("--base-url", help="Where clients will fetch the files from (recorded in index.json; default: beside index.json).")
@artifacts_option("src", hidden_aliases=(), help="Where the artifacts were exported [default: $ZOO_ARTIFACTS or ./artifacts].")
@click.option("--allow-http", is_flag=True, help="Accept a plain http --base-url on a non-loopback host.")
@click.option("--split", is_flag=True, help="Publish each artifact's split form (zoo export --split) too.")
@report_options()
def publish_cmd(variants, formats, precisions, dest, base_url, src, allow_http, json_file, csv_file, markdown_file, split=False) -> None:
    """Write a release tree (weights, artifacts, index.json) of VARIANTs for a static file host.

    Artifacts are verified against their manifests first; missing ones are an error naming the
    'zoo export' command that builds them. The same inputs give a byte-identical tree.
    """
    selected_catalog = Catalog.load()
    selected = selected_catalog.select(variants)
    fmt_list = choose(formats, FORMATS, "format", default=("all",))
    prec_list = choose(precisions, PRECISIONS, "precision", default=("all",))
    if not precisions:  # reduced precisions (int8, bf16) are opt-in exports: "all" takes the ones that exist
        root = src or default_out_dir()
        prec_list = [p for p in prec_list if p not in REDUCED_PRECISIONS
                     or any((ArtifactKey(v.name, f, p).path(root) / MANIFEST_NAME).is_file() for v in selected for f in fmt_list)]
    with err().status("verifying and copying"):
        result = publish(selected, fmt_list, prec_list, src or default_out_dir(), dest, base_url, allow_http,
                         hub=resolve_hub(catalog_hub=selected_catalog.hub), split=split)
    emit_rows("published", result.rows, PUBLISH_COLUMNS, f"zoo publish → {dest}", (json_file, csv_file, markdown_file))
    out().print(f"{result.files} files, {result.bytes / 1e6:.1f} MB; index.json sha256 {result.index_sha256}",
                      highlight=False, markup=False)


@click.command("pull")
@target_options("everything the hub publishes for the variant")
@hub_options
@artifacts_option(help="Also place the artifacts in this artifacts directory (e.g. ./artifacts, where zoo export and zoo compare look).")
@click.option("--jobs", type=click.IntRange(1, 16), default=4, show_default=True, help="Files downloaded at once.")
@click.option("--split", is_flag=True, help="The split artifacts (init + track graphs, <format>[-<precision>]-split) instead.")
@report_options()
def pull_cmd(variants, formats, precisions, hub, offline, allow_http, timeout, retries, out_dir, jobs, json_file, csv_file, markdown_file,
             split=False) -> None:
    """Download VARIANTs' weights and artifacts from a hub into the cache, verified by sha256.

    Interrupted files resume (HTTP Range), transient failures are retried with backoff, and
    nothing becomes visible in the cache before its hash matches. Artifacts land in
    <cache>/artifacts/<variant>/<format>[-fp16]/ (see 'zoo cache dir'), and with --artifacts DIR also there.
    """
    catalog = Catalog.load()
    selected = catalog.select(variants)
    fmt_list = choose(formats, FORMATS, "format") if formats else None
    prec_list = choose(precisions, PRECISIONS, "precision") if precisions else None
    cfg = resolve_hub(hub, catalog.hub, offline, allow_http, timeout, retries)
    reporter = RichReporter()
    try:
        rows = pull(selected, fmt_list, prec_list, cfg, out_dir, reporter, jobs, split)
    finally:
        reporter.close()
    source = "the cache (offline)" if cfg.offline else cfg.url
    for row in rows:
        row["size_mb"] = row["bytes"] / 1e6
        row["where"] = _short_path(row["path"])
    emit_rows("pulled", rows, PULL_COLUMNS, f"zoo pull ← {source}", (json_file, csv_file, markdown_file))
    if out_dir is None:
        out().print(f"artifacts are in {artifact_cache_root()}; --artifacts DIR also places them where zoo export / compare look",
                      highlight=False, markup=False)


def _short_path(path: str | None) -> str | None:
    """A path under the cache as ``<cache>/...`` (the table stays narrow; --json has it whole)."""
    if path is None:
        return None
    p, root = Path(path), cache_dir()
    if not p.is_relative_to(root):
        return path
    parts = list(p.relative_to(root).parts)
    if parts[0] in ("weights", "files") and len(parts) > 2:
        parts[1] = parts[1][:12] + "…"
    return "<cache>/" + "/".join(parts)


@click.group("cache")
def cache_group() -> None:
    """What the user cache holds (weights, pulled artifacts), and removing it."""


def _weights_owners(catalog: Catalog) -> dict[str, str]:
    owners: dict[str, str] = {}
    for v in catalog:
        owners.setdefault(v.weights.sha256, v.name)
    return owners


@cache_group.command("list")
@report_options()
def cache_list(json_file, csv_file, markdown_file) -> None:
    """Variants in the cache (weights, pulled artifacts, size) and the converters' and devices'
    caches."""
    info = scan(_weights_owners(Catalog.load()).get)
    rows = [{"variant": e["variant"], "weights": e["weights"]["file"] if e["weights"] else None,
             "formats": " ".join(a["dir"] for a in e["artifacts"]) or None, "size_mb": e["bytes"] / 1e6,
             "bytes": e["bytes"]} for e in info["variants"]]
    tools = [{**t, "size_mb": t["bytes"] / 1e6} for t in info["tools"]]
    views = [View("listing", f"zoo cache: {info['cache']}", rows, CACHE_COLUMNS)]
    if tools:
        views.append(View("tools", "converter and device caches (rebuilt when removed; cache remove --all)", tools, TOOL_COLUMNS))
    emit(views, json_file, csv_file, markdown_file, payload={"listing": rows, **info}, csv_tagged=True)
    extra = ""
    if info["partial_downloads"]:
        extra += f"; {len(info['partial_downloads'])} partial downloads ({info['partial_bytes'] / 1e6:.1f} MB, resumed by the next pull)"
    if info["unreferenced_bytes"]:
        extra += f"; {info['unreferenced_bytes'] / 1e6:.1f} MB of files no artifact uses"
    out().print(f"total {info['total_bytes'] / 1e6:.1f} MB{extra}", highlight=False, markup=False)


@cache_group.command("remove")
@click.argument("variants", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Remove every cached weights file, artifact and partial download.")
def cache_remove(variants, everything) -> None:
    """Remove VARIANTs' pulled artifacts and reference weights from the cache (names or wildcards).

    Trained weights (registered checkpoints) are kept; --all removes everything zoo keeps there.
    """
    if everything == bool(variants):
        raise UsageError("name the variants to remove, or pass --all (not both)")
    if everything:
        out().print(f"removed everything: {store.remove_all() / 1e6:.1f} MB freed", highlight=False, markup=False)
        return
    catalog = Catalog.load()
    known = list(dict.fromkeys([*catalog.names, *store.cached_variants()]))
    chosen = []
    for pattern in variants:
        hits = fnmatch.filter(known, pattern)
        if not hits:
            raise UsageError(f"unknown variant {pattern!r}{did_you_mean(pattern, known)}")
        chosen += [h for h in hits if h not in chosen]
    art_shas = store.cached_artifact_shas()
    for name in chosen:
        keep = {v.weights.sha256 for v in catalog if v.name not in chosen}
        keep |= {s for other, shas in art_shas.items() if other not in chosen for s in shas}
        variant = catalog.get(name) if name in catalog else None
        trained = variant is not None and variant.weights.provenance.kind == "trained"
        sha = variant.weights.sha256 if variant is not None and not trained else None
        freed = store.remove_variant(name, sha, keep)
        out().print(f"removed {name}: {freed / 1e6:.1f} MB freed" if freed else f"{name}: nothing cached", highlight=False, markup=False)
        if trained:
            out().print(f"kept {name}'s trained weights (a registered checkpoint may exist nowhere else; --all removes them)",
                          highlight=False, markup=False)


@cache_group.command("dir")
def cache_dir_cmd() -> None:
    """Print the cache directory ($ZOO_CACHE_DIR or the platform's user cache)."""
    click.echo(str(cache_dir()))
