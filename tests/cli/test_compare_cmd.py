"""zoo compare's timing through the real CLI: ``--repeats`` blocks give every row its spread and
interval, the ceiling of its precision and the noise verdict, in the table (80 columns), JSON, CSV
and Markdown. Few runs: the test checks what is reported, never how fast anything is."""
from __future__ import annotations

import csv
import io
import json

import pytest

from tests.helpers.cli import (
    onnx_export,  # noqa: F401 (fixture)
    zoo_as_user,
)
from zoo.cli.compare_cmd import TIMING_COLUMNS
from zoo.cli.tables import View, layout

VARIANT = "base-c128"
NEW_FIELDS = ("repeats", "block_median_ms", "median_lo_ms", "median_hi_ms", "spread_pct", "ceiling_precision",
              "ceiling_gflops", "ceiling_kernel", "ceiling_spread_pct", "pct_of_ceiling", "noisy", "ceiling_note",
              "blocks_left_out")


def test_repeats_give_spreads_and_a_ceiling_per_precision_in_every_output(onnx_export, tmp_path):
    files = {k: tmp_path / f"rows.{k}" for k in ("json", "csv", "md")}
    proc = zoo_as_user("compare", VARIANT, "--runtimes", "onnxruntime", "--threads", "1", "--samples", "1",
                       "--runs", "3", "--warmup", "0", "--repeats", "2", "--out", str(onnx_export),
                       "--json", str(files["json"]), "--csv", str(files["csv"]), "--markdown", str(files["md"]),
                       env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    data = json.loads(files["json"].read_text())
    rows = data["timing"]
    assert {r["runtime"] for r in rows} == {"pytorch", "onnxruntime"}
    for r in rows:
        assert all(k in r for k in NEW_FIELDS), r
        assert r["repeats"] == 2 and len(r["block_median_ms"]) + r["blocks_left_out"] == 2
        assert r["median_lo_ms"] - 1e-9 <= r["median_ms"] <= r["median_hi_ms"] + 1e-9
        assert r["ceiling_precision"] == "fp32" and r["ceiling_gflops"] > 0 and r["ceiling_kernel"]
        assert r["pct_of_ceiling"] == pytest.approx(100 * r["gflops"] / r["ceiling_gflops"])
    (ceiling,) = data["ceilings"]
    assert ceiling["precision"] == "fp32" and ceiling["blocks"] == 2 and len(ceiling["block_gflops"]) == 2
    assert [b["block"] for b in data["ceiling_blocks"]] == [0, 1]
    assert "block" in data["machine"]["isolation"]
    table = list(csv.DictReader(io.StringIO(files["csv"].read_text())))
    assert {r["table"] for r in table} >= {"timing", "ceilings"}
    assert set(NEW_FIELDS) <= set(table[0])
    markdown = files["md"].read_text()
    assert "## ceilings" in markdown and "| ±% |" in markdown and "| noisy |" in markdown and "% ceil" in markdown
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in proc.stdout
    assert any(line.startswith(f"│ {VARIANT} │ onnxruntime │") for line in lines)  # key columns whole
    assert "ceilings beside each block" in proc.stdout and "% ceil" in proc.stdout


def test_the_timing_table_keeps_its_verdict_at_80_columns():
    """However many columns a run fills, 80 columns keep the row's key, its median, its spread,
    its % of the ceiling and why it is unreliable (the rest stays in JSON/CSV/Markdown)."""
    row = {c.key: 123456.789 for c in TIMING_COLUMNS if c.justify == "right"}
    row.update(variant=VARIANT, runtime="onnxruntime", precision="int8", contention="the row is noisy: block medians",
               noisy="ceiling 38%", ceiling_note="the fp32 ceiling is noisy", interval_ms="4.10-4.60", device="local",
               error=None, oversubscribed=False)
    row.update(threads=1, median_ms=4.25, spread_pct=12.0, pct_of_ceiling=16.0)
    kept = {c.key for c in layout(View("timing", "", [row], TIMING_COLUMNS, hidden=("device",)), 80).columns}
    assert {"variant", "runtime", "precision", "threads", "median_ms", "spread_pct", "pct_of_ceiling", "contention"} <= kept
