"""``zoo benchmark``: one decision table and a ship line from a real comparison, timing and
evaluation, and its HTML page rendered in headless Chromium (screenshot, tables read back from
the DOM)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.browser import dom_tables, rendered_dom, screenshot
from tests.helpers.cli import run, zoo_as_user  # noqa: F401 (fixture)
from zoo.datasets.synthetic import sequence_names, write_dataset

VARIANT = "base-c128"


@pytest.fixture(scope="module")
def benchmarked(exported, tmp_path_factory) -> dict:
    """One real ``zoo benchmark`` run: MNN at fp32 and fp16, 1 and 2 threads, two synthetic OTB
    sequences tracked by both artifacts and PyTorch."""
    tmp = tmp_path_factory.mktemp("benchmark")
    art = exported.copy(tmp / "art", VARIANT, "onnx", "mnn", "mnn-fp16")
    root = tmp / "otb"
    write_dataset(root, "otb", count=2, frames=8)
    files = {"json": tmp / "b.json", "html": tmp / "b.html", "csv": tmp / "b.csv"}
    proc = zoo_as_user("benchmark", VARIANT, "--runtime", "mnn", "--precision", "fp32", "fp16",
                       "--threads", "1", "2", "--runs", "2", "--warmup", "1", "--samples", "1", "--dataset", "otb",
                       "--root", str(root), "--sequences", *sequence_names("otb", 2), "--artifacts", str(art),
                       "--json", str(files["json"]), "--html", str(files["html"]), "--csv", str(files["csv"]),
                       env={"COLUMNS": "100"})
    assert proc.returncode == 0, proc.stderr
    return {"out": proc.stdout, "err": proc.stderr, "report": json.loads(files["json"].read_text()), **files}


def test_the_decision_table_has_a_row_per_artifact_with_every_figure(benchmarked) -> None:
    rows = {(r["artifact"], r["precision"]): r for r in benchmarked["report"]["decision"]}
    assert set(rows) == {("pytorch", "fp32"), ("mnn", "fp32"), ("mnn", "fp16")}
    for key, r in rows.items():
        assert r["ms_1t"] > 0 and r["ms_2t"] > 0 and r["auc"] is not None, key
        if key[0] == "pytorch":
            assert r["gate"] == "reference" and r["speedup_1t"] == pytest.approx(1.0)
            continue
        assert r["gate"] == "pass" and r["parity"] == "pass" and r["size_mb"] > 0 and 0.95 < r["tracker_iou"] <= 1.0, key
        assert r["drift_iou"] > 0.5 and r["diverged"].endswith("/2") and r["auc_diff"] is not None, key
        assert r["speedup_1t"] == pytest.approx(rows[("pytorch", "fp32")]["ms_1t"] / r["ms_1t"])
    out = benchmarked["out"]
    assert max(len(line) for line in out.splitlines()) <= 100
    for artifact, precision in rows:
        assert re.search(rf"│ {VARIANT} +│ {artifact} +│ {precision} ", out), (artifact, precision)


def test_the_ship_line_names_the_fastest_artifact_that_passes(benchmarked) -> None:
    rows = [r for r in benchmarked["report"]["decision"] if r["gate"] == "pass"]
    best = min(rows, key=lambda r: min(r["ms_1t"], r["ms_2t"]))
    (ship,) = benchmarked["report"]["ship"]
    assert (ship["artifact"], ship["precision"]) == (best["artifact"], best["precision"])
    assert ship["ms"] == pytest.approx(min(best["ms_1t"], best["ms_2t"]))
    line = next(line for line in benchmarked["out"].splitlines() if line.startswith("ship on local"))
    assert f"{VARIANT} {best['artifact']} {best['precision']}" in line and "(x86-64)" in line
    assert "untrained reference weights" in benchmarked["out"]


def test_the_report_redraws_and_the_csv_tags_every_table(benchmarked, run, tmp_path) -> None:
    code, out, err = run("report", str(benchmarked["json"]), "--width", "80")
    assert code == 0 and "ship on local" in out and max(len(line) for line in out.splitlines()) <= 80, err
    tables = {line.split(",", 1)[0] for line in benchmarked["csv"].read_text().splitlines()[1:]}
    assert {"decision", "ship", "parity", "tracker", "timing", "auc"} <= tables


def test_the_html_page_renders_in_chromium_with_its_tables_and_plots(benchmarked, tmp_path) -> None:
    page = benchmarked["html"]
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "the page loads nothing from a network"
    assert text.count('src="data:image/png;base64,') >= 4  # latency, layers, success/precision, drift
    png = screenshot(page, tmp_path / "page.png")
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.int32)
    colours = len(np.unique(pixels[::8, ::8].reshape(-1, 3), axis=0))
    dark = float((pixels.sum(axis=2) < 200).mean())
    assert colours > 20 and dark > 0.002, "the screenshot is blank"
    tables = dom_tables(rendered_dom(page))
    assert {"decision", "catalog", "export", "parity", "tracker", "timing", "layers", "auc"} <= set(tables)
    head, *body = tables["decision"]
    assert head[:3] == ["variant", "artifact", "prec"] and "device" not in head and "gate" in head and "p50 ms 1T" in head
    shown = {(r[1], r[2], r[head.index("gate")]) for r in body}
    assert shown == {(r["artifact"], r["precision"], r["gate"]) for r in benchmarked["report"]["decision"]}
    col = head.index("p50 ms 1T")
    for r, cells in zip(benchmarked["report"]["decision"], body):
        assert float(cells[col]) == pytest.approx(r["ms_1t"], abs=0.006)  # the figure, read back from the page


def test_a_dataset_without_frames_is_refused_before_any_work(run, tmp_path) -> None:
    seq = tmp_path / "otb" / "Couple"
    seq.mkdir(parents=True)
    (seq / "groundtruth_rect.txt").write_text("1,2,30,40\n")
    code, out, err = run("benchmark", VARIANT, "--dataset", "otb", "--root", str(tmp_path / "otb"), "--sequences", "Couple",
                         "--artifacts", str(tmp_path / "art"))
    assert code == 2 and "no frames for sequence Couple" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "art").exists()
