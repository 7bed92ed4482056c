"""Catalog commands: list, info, register, weights, catalog check/refresh."""
from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from zoo.catalog import Catalog
from zoo.cli.options import report_options
from zoo.cli.output import Column, View, emit_rows, label, out, progress_bar, show, write_views
from zoo.figures import part_rows, reported_dict, summary_row, within_budget
from zoo.hub.resolve import resolve_hub
from zoo.register import check_rows, refresh_catalog, register_checkpoint
from zoo.split_figures import split_summary
from zoo.weights import ensure_weights

catalog_option = click.option(
    "--catalog", "catalog_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Catalog file (default: $ZOO_CATALOG or the zoo.yaml of this installation).",
)

LIST_COLUMNS = [
    label("name", "variant"),
    Column("row", "row", drop=6),
    Column("block_label", "blocks", justify="left", drop=3),
    Column("channels", "C", drop=5),
    Column("pretrain", "pre", justify="left", drop=4),
    Column("lasot_auc", "AUC %", ".2f"),
    Column("params_reported_m", "params M rep", ".3f"),
    Column("params_m", "params M", ".3f"),
    Column("params_delta_pct", "Δ%", "+.2f", drop=2),
    Column("macs_reported_m", "MACs M rep", ".0f"),
    Column("macs_m", "MACs M", ".1f"),
    Column("macs_delta_pct", "Δ%", "+.2f", drop=2),
    Column("macs_total_m", "MACs+attn M", ".1f", drop=7),
    label("weights_shown", "weights"),
]

PART_COLUMNS = [
    label("part"),
    Column("params", "params", ","),
    Column("params_share_pct", "params %", ".1f"),
    Column("macs", "MACs", ","),
    Column("macs_share_pct", "MACs %", ".1f"),
    Column("macs_total", "MACs+attn", ","),
    Column("macs_total_share_pct", "MACs+attn %", ".1f"),
    Column("macs_per_param", "MACs/param", ".0f"),
]


def catalog_rows(variants) -> list[dict]:
    """``zoo list``'s rows: the weights column says ``reference (untrained)`` where the study's AUC
    is not these weights' skill (the cache state stays in ``weights``, for --json)."""
    rows = [summary_row(v) for v in variants]
    for row in rows:
        row["weights_shown"] = "reference (untrained)" if row["untrained"] else row["weights"]
    return rows


@click.command("list")
@click.argument("patterns", nargs=-1)
@report_options()
@catalog_option
def list_cmd(patterns: tuple[str, ...], json_file: Path | None, csv_file: Path | None, markdown_file: Path | None, catalog_file: Path | None) -> None:
    """List variants (PATTERNS: names or wildcards such as 'fgaf*'; default all)."""
    catalog = Catalog.load(catalog_file)
    variants = catalog.select(patterns or ["all"])
    rows = catalog_rows(variants)
    emit_rows("variants", rows, LIST_COLUMNS, f"zoo catalog ({len(rows)} of {len(catalog)} variants)", (json_file, csv_file, markdown_file))
    if any(row["untrained"] for row in rows):
        out().print("AUC % is the study's published figure; weights marked untrained are zoo's deterministic reference "
                    "weights (they check conversion and parity, not tracking skill): 'zoo register VARIANT CKPT' adds yours",
                    markup=False, highlight=False)
    over = [v.name for v in variants if not all(within_budget(v))]
    if over:
        out().print(f"[red]outside the study's budget (params ±1%, MACs ±2%): {escape(', '.join(over))}[/]"
                    " · MACs: conv+linear (thop convention); MACs+attn adds attention products")
    else:
        out().print("[green]every reported variant is within the study's budget (params ±1%, MACs ±2%)[/]"
                    " · MACs: conv+linear (thop convention); MACs+attn adds attention products")


@click.command("info")
@click.argument("variant")
@report_options()
@catalog_option
def info_cmd(variant: str, json_file: Path | None, csv_file: Path | None, markdown_file: Path | None, catalog_file: Path | None) -> None:
    """Architecture, reported figures, weights and a per-part breakdown of one VARIANT."""
    catalog = Catalog.load(catalog_file)
    v = catalog.get(variant)
    preset_name = catalog.preset_name(v)
    parts = part_rows(v)
    split = split_summary(v)
    if json_file or csv_file or markdown_file:
        payload = {
            "name": v.name, "description": v.description, "arch": v.arch.model_dump(),
            "training": v.training.model_dump(), "reported": reported_dict(v), "measured": v.measured.model_dump(),
            "parts": parts, "weights": v.weights.model_dump(), "preprocessing": v.preprocessing.model_dump(),
            "io": v.io.model_dump(), "tolerances": {k: {p: t.model_dump() for p, t in d.items()} for k, d in v.tolerances.items()},
            "tracking": {"preset": preset_name, **catalog.tracking.presets[preset_name].model_dump()},
            "split": split,
        }
        write_views([View("parts", f"{v.name}: where parameters and compute are", parts, PART_COLUMNS)], json_file, csv_file,
                    markdown_file, payload=payload)
    a = v.arch
    head = Table.grid(padding=(0, 2))
    head.add_row(Text("variant", style="bold"), Text(f"{v.name} — {v.description}"))
    head.add_row("backbone", Text(f"channels {a.backbone.channels}, inverted residuals {a.backbone.blocks} (expansion {a.backbone.expansion})"))
    head.add_row("fusion", Text(f"{a.fusion.kind} x{a.fusion.depth}, {a.fusion.heads} heads, {a.fusion.norm}norm, ffn hidden {a.fusion.ffn_hidden}"))
    head.add_row("head", Text(f"center head, {a.head.channels} channels, branch hidden {a.head.branch_hidden}"))
    head.add_row("training", Text(f"pretrain {v.training.pretrain}, distillation {v.training.distillation or 'none'}"))
    if v.reported:
        r = v.reported
        sup = f" (superseded: {', '.join(map(str, r.lasot_auc_superseded))})" if r.lasot_auc_superseded else ""
        head.add_row("reported", Text(f"row {r.row}: LaSOT AUC {r.lasot_auc}{sup}, {r.params_m}M params, {r.macs_m:g}M MACs, "
                     f"{r.speed_fps:g} fps GPU, {r.speed_1thread_fps:g} fps 1 CPU thread" + (f" — {r.note}" if r.note else "")))
    else:
        head.add_row("reported", "not trained in the study")
    head.add_row("tracking", Text(f"preset {preset_name} — {catalog.tracking.presets[preset_name].description}"))
    w = v.weights
    head.add_row("weights", Text(f"{w.file} ({w.bytes / 1e6:.2f} MB, sha256 {w.sha256[:16]}…) — {w.provenance.description}"))
    head.add_row("split", Text(f"MACs per frame: track graph {split['macs_track'] / 1e6:.1f}M vs full graph {split['macs_full'] / 1e6:.1f}M "
                 f"({split['macs_ratio']:.2f}x fewer; init graph {split['macs_init'] / 1e6:.1f}M once per sequence); cache: "
                 f"{split['cache_kind']}, {split['cache_tensors']} tensor(s), {split['cache_bytes']:,} bytes (zoo export --split)"))
    out().print(head, markup=False)
    show([View("parts", f"{v.name}: where parameters and compute are", parts, PART_COLUMNS)])


@click.command("register")
@click.argument("variant")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--description", help="Provenance note recorded in zoo.yaml.")
@catalog_option
def register_cmd(variant: str, checkpoint: Path, description: str | None, catalog_file: Path | None) -> None:
    """Adopt a trained CHECKPOINT (.safetensors, .pth, .pth.tar) as VARIANT's weights."""
    catalog = Catalog.load(catalog_file)
    result = register_checkpoint(catalog, variant, checkpoint, description)
    out().print(f"registered {result.tensors} tensors for {result.variant}: {result.file} "
                f"sha256 {result.sha256} ({result.bytes / 1e6:.2f} MB) -> {result.cache_path}", markup=False)
    out().print(f"zoo.yaml updated: {catalog.path}", markup=False)


@click.command("weights")
@click.argument("patterns", nargs=-1)
@report_options()
@catalog_option
def weights_cmd(patterns: tuple[str, ...], json_file: Path | None, csv_file: Path | None, markdown_file: Path | None, catalog_file: Path | None) -> None:
    """Materialise and verify the weights of variants (reference weights are regenerated)."""
    catalog = Catalog.load(catalog_file)
    variants = catalog.select(patterns or ["all"])
    hub = resolve_hub(catalog_hub=catalog.hub)
    rows = []
    with out().status("verifying weights") as status:
        for v in variants:
            status.update(escape(f"weights of {v.name}"))  # a status is markup
            path = ensure_weights(v, hub)
            rows.append({"name": v.name, "kind": v.weights.provenance.kind, "sha256": v.weights.sha256,
                         "bytes": v.weights.bytes, "path": str(path)})
    cols = [label("name", "variant"), Column("kind", "provenance", justify="left", drop=2),
            Column("bytes", "bytes", ",", drop=1), Column("sha256", "sha256 (verified)", justify="left", drop=3),
            Column("path", "path", justify="left")]
    emit_rows("weights", rows, cols, "weights", (json_file, csv_file, markdown_file))


@click.group("catalog")
def catalog_group() -> None:
    """Check or refresh the measured figures and reference hashes in zoo.yaml."""


CHECK_COLUMNS = [
    label("name", "variant"), Column("params", "params", ","), Column("params_catalog", "in zoo.yaml", ","),
    Column("macs", "MACs", ","), Column("macs_catalog", "in zoo.yaml", ","), label("ok"),
]


@catalog_group.command("check")
@click.argument("patterns", nargs=-1)
@report_options()
@catalog_option
def catalog_check(patterns: tuple[str, ...], json_file: Path | None, csv_file: Path | None, markdown_file: Path | None, catalog_file: Path | None) -> None:
    """Rebuild every model, recount it and regenerate reference weights; exit 1 on any drift."""
    variants = Catalog.load(catalog_file).select(patterns or ["all"])
    rows = []
    with progress_bar(counted=True) as progress:  # tens of seconds per variant: say which one
        task = progress.add_task("catalog check", total=len(variants))
        for v in variants:
            progress.update(task, description=f"check {v.name}: rebuild, recount, regenerate weights")
            rows += check_rows([v])
            progress.advance(task)
    emit_rows("checks", rows, CHECK_COLUMNS, "zoo.yaml vs recomputed", (json_file, csv_file, markdown_file))
    if not all(r["ok"] for r in rows):
        raise click.exceptions.Exit(1)


@catalog_group.command("refresh")
@click.argument("patterns", nargs=-1)
@catalog_option
def catalog_refresh(patterns: tuple[str, ...], catalog_file: Path | None) -> None:
    """Write recomputed measured figures and reference weight hashes into zoo.yaml."""
    catalog = Catalog.load(catalog_file)
    changed = refresh_catalog(catalog, check_rows(catalog.select(patterns or ["all"])))
    out().print(f"updated: {', '.join(changed)}" if changed else "zoo.yaml is up to date", markup=False)
