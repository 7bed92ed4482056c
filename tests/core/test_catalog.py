"""zoo.yaml against its schema, the registry's lookups, and the study's table."""
from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from tests.helpers.catalog import CATALOG, DATA
from tests.helpers.cli import (
    error_line,
    run,  # noqa: F401 (fixture)
)
from zoo.catalog import Catalog
from zoo.errors import CatalogError, UsageError
from zoo.paths import catalog_path

#: the study's seed table, vendored (tests/data/README.md)
STUDY_CSV = DATA / "ablation.csv"
EXPECTED_NAMES = [
    "base-c128", "base-c128-mae", "base-c128-mtr", "base-c256", "gaf3", "fgaf3", "af3", "faf3", "fgaf4",
    "fgaf2", "fgaf5", "af3-bn-c128", "faf3-bn-c128", "gaf3-bn-c128", "fgaf3-bn-c128",
]


def test_catalog_has_every_variant() -> None:
    assert CATALOG.names == EXPECTED_NAMES
    assert CATALOG.get("fgaf5").reported is None
    assert sorted(v.reported.row for v in CATALOG if v.reported) == list(range(1, 15))


def test_reported_figures_match_the_study_table() -> None:
    with STUDY_CSV.open(newline="") as f:
        rows = {int(r["row"]): r for r in csv.DictReader(f)}
    assert sorted(rows) == list(range(1, 15))  # every row of the study, each cataloged (below)
    for v in CATALOG:
        if v.reported is None:
            continue
        r = rows[v.reported.row]
        rep = v.reported
        assert (rep.block, rep.lasot_auc, rep.params_m, rep.macs_m) == (r["block"], float(r["lasot_auc"]), float(r["params_m"]), float(r["macs_m"]))
        assert (rep.speed_fps, rep.speed_1thread_fps) == (float(r["speed_fps"]), float(r["speed_1thread_fps"]))
        assert (rep.note or "") == r["lasot_auc_note"]
        pretrain = r["pretrain"].lower() or "none"
        assert v.training.pretrain == pretrain
        channels = int(r["backbone_channels"])
        assert v.arch.width == channels and v.arch.head.channels == int(r["head_channels"])
        if "first reported" in r["lasot_auc_note"]:
            assert rep.lasot_auc_superseded, v.name


def test_block_column_maps_to_architecture() -> None:
    for v in CATALOG:
        if v.reported is None:
            continue
        block = v.reported.block
        f = v.arch.fusion
        if not block:
            assert f.kind == "base"
        elif "(BN)" in block:
            assert (f.kind, f.norm, f.depth) == (block.split("(")[0].lower(), "batch", 3)
        else:
            kind, depth = block.split("*")
            assert (f.kind, f.norm, f.depth) == (kind.lower(), "layer", int(depth))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("        depth: 3\n", "        depth: three\n", "variant 'base-c128': arch.fusion.depth: Input should be a valid integer"),
        ("        kind: fgaf\n", "        kind: fgaff\n", "variant 'fgaf3': arch.fusion.kind: Input should be"),
        ("      pretrain: mae\n", "      pretrain: mae\n      pretrian: mtr\n", "variant 'base-c128-mae': training.pretrian: unknown key"),
        ("      lasot_auc: 57.77\n", "", "variant 'fgaf3': reported.lasot_auc: missing field"),
        ("  - name: gaf3\n", "  - name: fgaf3\n", "duplicate variant name 'fgaf3'"),
        ("schema_version: 1\n", "schema_version: 2\n", "schema_version: Input should be 1"),
        ("      sha256: ", "      sha256: zz", "weights.sha256: String should match pattern"),
    ],
)
def test_schema_errors_name_entry_and_field(catalog_copy: Path, old: str, new: str, message: str) -> None:
    text = catalog_copy.read_text()
    assert old in text
    catalog_copy.write_text(text.replace(old, new, 1))
    with pytest.raises(CatalogError) as info:
        Catalog.load(catalog_copy)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "zoo.yaml"
    bad.write_text("variants: [\n  - {name: x\n")
    with pytest.raises(CatalogError, match="invalid YAML at line"):
        Catalog.load(bad)
    with pytest.raises(CatalogError, match="catalog not found"):
        Catalog.load(tmp_path / "nope.yaml")


def test_lookup_suggests_close_names() -> None:
    with pytest.raises(UsageError, match=r"unknown variant 'fgaf33' \(did you mean 'fgaf3'"):
        CATALOG.get("fgaf33")
    with pytest.raises(UsageError, match="did you mean 'base-c128'"):
        CATALOG.get("base-128")


def test_select_by_wildcard_and_all() -> None:
    assert [v.name for v in CATALOG.select(["fgaf*"])] == ["fgaf3", "fgaf4", "fgaf2", "fgaf5", "fgaf3-bn-c128"]
    assert [v.name for v in CATALOG.select(["*-bn-c128"])] == ["af3-bn-c128", "faf3-bn-c128", "gaf3-bn-c128", "fgaf3-bn-c128"]
    assert len(CATALOG.select(["all"])) == 15
    assert [v.name for v in CATALOG.select(["fgaf3", "fgaf3", "af3"])] == ["fgaf3", "af3"]
    with pytest.raises(UsageError, match="no variant matches 'zz\\*'"):
        CATALOG.select(["zz*"])


# -- bad input through the CLI ----------------------------------------------------------------

def test_catalog_that_is_not_utf8_is_one_line(tmp_path, run, monkeypatch) -> None:
    bad = tmp_path / "zoo.yaml"
    bad.write_bytes(catalog_path().read_bytes().replace(b"description:", b"descr\xe9ption:", 1))
    monkeypatch.setenv("ZOO_CATALOG", str(bad))
    code, _, err = run("list")
    assert code == 2 and "zoo.yaml: not UTF-8 text (byte 0xe9 at line" in error_line(err)


BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip([None, *"abcdefgh"], "abcdefghi"))


@pytest.mark.parametrize("text", [BOMB, BOMB + "schema_version: 1\nvariants: [*i]\n", "a: &a [*a]\n"],
                         ids=["top-level", "in-variants", "recursive"])
def test_yaml_alias_bomb_is_refused_quickly(tmp_path, run, monkeypatch, text) -> None:
    bomb = tmp_path / "zoo.yaml"
    bomb.write_text(text)
    monkeypatch.setenv("ZOO_CATALOG", str(bomb))
    start = time.monotonic()
    code, _, err = run("list")
    assert time.monotonic() - start < 2
    line = error_line(err)
    assert code == 2 and line.startswith("error: zoo.yaml:"), line


def test_catalog_with_ordinary_anchors_still_loads() -> None:
    assert "*backbone-c128" in catalog_path().read_text() and len(CATALOG) == 15
