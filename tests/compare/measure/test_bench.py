"""zoo bench: N trackers really run as N processes at once, sustained runs give windows and a
plot, the speed column is relative to base-c128, and bad input is a one-line usage error."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from compare.measure import bench
from compare.measure.bench import Cell, fill_ratios, merge_blocks, rate_cells, run_cell, scaling_rows, speed_column
from compare.measure.ceiling import CeilingBlock
from compare.measure.worker import MeasureTask, RunnerSpec, measure
from tests.helpers.catalog import CATALOG
from tests.helpers.cli import zoo_here  # noqa: F401 (fixture)
from tests.helpers.export import zoo
from zoo.artifacts import ArtifactKey
from zoo.sample_inputs import sample_pairs

VARIANT = CATALOG.get("base-c128")
PAIR = sample_pairs(VARIANT, 1)[0]


@pytest.fixture(scope="module")
def artifacts(exported) -> Path:
    """The session's shared artifacts (read-only: base-c128 onnx and ncnn are used here)."""
    return exported.out


def test_concurrent_instances_are_separate_processes_running_at_once(artifacts) -> None:
    spec = RunnerSpec(ArtifactKey.for_runtime(VARIANT.name, "ncnn"), VARIANT, artifacts / "base-c128" / "ncnn")
    cell = run_cell(spec, PAIR, threads=1, concurrency=2, seconds=0.6, warmup=1)
    assert cell.error is None, cell.error
    pids = [i.pid for i in cell.instances]
    assert len(pids) == 2 and len(set(pids)) == 2 and os.getpid() not in pids
    # the barrier starts the timed phases together: the two busy intervals overlap
    assert max(i.start for i in cell.instances) < min(i.end for i in cell.instances)
    assert all(i.runs >= 5 and i.fps > 0 for i in cell.instances)
    assert cell.aggregate_fps == pytest.approx(sum(i.fps for i in cell.instances))
    assert cell.instance_fps_worst <= cell.instance_fps_median


def test_measure_reports_a_failing_instance_instead_of_raising(tmp_path) -> None:
    spec = RunnerSpec(ArtifactKey.for_runtime(VARIANT.name, "onnxruntime"), VARIANT, tmp_path / "no-such-artifact")
    (m,) = measure([MeasureTask(spec, PAIR, 1, 0, 1)])
    assert not m.ok and m.error and "manifest" in m.error.lower()
    assert m.pid != os.getpid()


def _cell(variant: str, threads: int, concurrency: int, fps: list[float]) -> Cell:
    """A cell as run_cell leaves it, with instance speeds chosen by hand."""
    return Cell(variant, "ncnn", "fp32", threads, concurrency, False, aggregate_fps=sum(fps),
                instance_fps_median=float(np.median(fps)), instance_fps_worst=min(fps))


def test_ratios_and_speed_column_on_known_figures() -> None:
    """Slowdowns, thread speedup, efficiency and the speed column on figures worked out by hand."""
    one, two_threads, busy = _cell("base-c128", 1, 1, [50.0]), _cell("base-c128", 2, 1, [80.0]), _cell("base-c128", 1, 2, [30.0, 20.0])
    other = _cell("fgaf3", 1, 1, [20.0])
    broken = Cell("fgaf3", "ncnn", "fp32", 1, 2, False, error="instance 1 failed")
    cells = [one, two_threads, busy, other, broken]
    fill_ratios(cells)
    assert busy.single_fps == 50.0 and busy.slowdown_median == pytest.approx(2.0) and busy.slowdown_worst == pytest.approx(2.5)
    assert two_threads.thread_speedup == pytest.approx(1.6) and two_threads.single_fps == 80.0
    assert busy.thread_speedup is None  # a speedup is per instance at concurrency 1 only
    assert broken.single_fps is None and broken.slowdown_median is None
    (row, _) = scaling_rows(cells, {"base-c128": 40.0, "fgaf3": 60.0})
    assert (row["fps_1t"], row["fps_2t"], row["speedup_2t"]) == (50.0, 80.0, pytest.approx(1.6))
    assert row["aggregate_fps_c2"] == 50.0 and row["efficiency_c2"] == pytest.approx(0.5)  # 50 fps from 2 x 50
    rows = {r["variant"]: r for r in speed_column(cells, {"base-c128": 65, "fgaf3": 37})}
    assert set(rows) == {"base-c128", "fgaf3"}
    assert (rows["fgaf3"]["measured_fps"], rows["fgaf3"]["reported_fps"]) == (20.0, 37)
    assert rows["fgaf3"]["measured_vs_base"] == pytest.approx(0.4)  # 20 / 50
    assert rows["fgaf3"]["reported_vs_base"] == pytest.approx(37 / 65)
    assert rows["fgaf3"]["ratio_agreement"] == pytest.approx(0.4 * 65 / 37)
    # without the baseline measured there is nothing to relate to
    (alone,) = speed_column([other], {"base-c128": 65, "fgaf3": 37})
    assert alone["measured_vs_base"] is None and "ratio_agreement" not in alone


def _block_cell(fps: float, contended: bool = False) -> Cell:
    cell = _cell("base-c128", 1, 1, [fps])
    if contended:
        cell.flag("other processes used 1.5 CPUs while 1 were free")
    return cell


def test_blocks_of_a_cell_merge_into_one_with_their_spread() -> None:
    cell = merge_blocks([_block_cell(100.0), _block_cell(40.0, contended=True), _block_cell(90.0)])
    assert cell.reliable and cell.blocks_left_out == 1 and cell.repeats == 3  # the loaded block is left out
    assert cell.block_fps == [100.0, 90.0] and (cell.fps_lo, cell.fps_hi) == (90.0, 100.0)
    assert cell.instance_fps_median == 95.0 and cell.spread_pct == pytest.approx(100 * (1e3 / 90 - 1e3 / 100) / ((1e3 / 90 + 1e3 / 100) / 2))
    loaded = merge_blocks([_block_cell(40.0, contended=True), _block_cell(50.0, contended=True)])
    assert not loaded.reliable and "in all 2 blocks" in loaded.contention
    failed = merge_blocks([_block_cell(40.0), Cell("base-c128", "ncnn", "fp32", 1, 1, False, error="boom")])
    assert failed.error == "boom"
    one = merge_blocks([_block_cell(40.0)])
    assert one.block_fps == [40.0] and one.spread_pct is None


def test_cells_are_held_against_the_ceiling_of_their_precision() -> None:
    """An int8 cell at 200 fps x 651 M MACs = 260 GFLOP/s: above float32's 125, far below int8's 510."""
    int8 = merge_blocks([_block_cell(200.0), _block_cell(201.0)])
    int8.precision = "int8"
    ceilings = [CeilingBlock(b, 1, {"torch (MKL) fp32": 125.0, "onnxruntime MatMulInteger u8s8": 510.0}) for b in range(2)]
    rate_cells([int8], {int8.key: 651_000_000}, ceilings)
    assert int8.ceiling_precision == "int8" and int8.gflops == pytest.approx(2 * 651e6 * 200.5 / 1e9)
    assert int8.pct_of_ceiling == pytest.approx(100 * int8.gflops / 510) and int8.reliable and int8.noisy is None


def test_run_cells_interleaves_blocks_with_the_ceiling(monkeypatch) -> None:
    calls = []

    def fake_cell(spec, pair, threads, concurrency, seconds, warmup=5, min_runs=5, device_options=None):
        calls.append(f"{spec.key.label} {threads}T x{concurrency}")
        return _cell(VARIANT.name, threads, concurrency, [50.0] * concurrency)

    def kernels(names, threads):
        calls.append(f"ceiling {threads}T")
        return {"torch (MKL) fp32": 100.0}

    monkeypatch.setattr(bench, "run_cell", fake_cell)
    spec = RunnerSpec(ArtifactKey.for_runtime(VARIANT.name, "ncnn"), VARIANT)
    ceilings = []
    cells = bench.run_cells([(spec, PAIR)], [1], [2], 1.0, repeats=2, macs={("base-c128", "ncnn", "fp32", "local"): 651_000_000},
                            kernels=kernels, ceilings=ceilings)
    assert calls == ["ceiling 1T", "ncnn 1T x1", "ncnn 1T x2", "ceiling 1T", "ncnn 1T x2", "ncnn 1T x1"]
    assert [c.repeats for c in cells] == [2, 2] and len(ceilings) == 2
    assert all(c.ceiling_gflops == 100.0 and c.pct_of_ceiling is not None for c in cells)


def test_cli_repeats_give_spreads_and_ceilings(tmp_path) -> None:
    """PyTorch eager (no artifact to export) in 2 interleaved blocks: every output carries the
    spread, the interval, the ceiling of its precision and its noise verdict; 80 columns hold."""
    out, md, csv_file = tmp_path / "bench.json", tmp_path / "bench.md", tmp_path / "bench.csv"
    proc = zoo("bench", "base-c128", "--runtime", "pytorch", "--threads", "1", "--concurrency", "1", "--seconds", "0.2",
               "--warmup", "1", "--repeats", "2", "--out", str(tmp_path), "--json", str(out), "--markdown", str(md),
               "--csv", str(csv_file), env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    (cell,) = report["cells"]
    assert cell["repeats"] == 2 and len(cell["block_fps"]) + cell["blocks_left_out"] == 2
    assert cell["ceiling_precision"] == "fp32" and cell["ceiling_gflops"] > 0 and cell["pct_of_ceiling"] > 0
    assert "noisy" in cell and "ceiling_note" in cell and "spread_pct" in cell
    (ceiling,) = report["ceilings"]
    assert ceiling["precision"] == "fp32" and ceiling["blocks"] == 2 and len(report["ceiling_blocks"]) == 2
    assert "±%" in md.read_text() and "% ceil" in md.read_text() and "noisy" in md.read_text()
    header = csv_file.read_text().splitlines()[0].split(",")
    assert {"spread_pct", "fps_lo", "fps_hi", "ceiling_gflops", "pct_of_ceiling", "noisy", "gflops_lo"} <= set(header)
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80 and "…" not in proc.stdout
    assert "ceilings beside each block" in proc.stdout


def test_cli_scaling_and_concurrency_tables(artifacts, tmp_path) -> None:
    out = tmp_path / "bench.json"
    proc = zoo("bench", "base-c128", "--runtime", "ncnn", "--threads", "1", "2", "--concurrency", "2",
               "--seconds", "0.3", "--warmup", "1", "--out", str(artifacts), "--json", str(out),
               "--csv", str(tmp_path / "bench.csv"), "--markdown", str(tmp_path / "bench.md"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    cells = {(c["runtime"], c["threads"], c["concurrency"]): c for c in report["cells"]}
    assert set(cells) == {("ncnn", t, c) for t in (1, 2) for c in (1, 2)}
    for (runtime, threads, conc), c in cells.items():
        assert c["error"] is None and len(c["instances"]) == conc
        assert len({i["pid"] for i in c["instances"]}) == conc
        assert c["oversubscribed"] == (threads * conc > (os.cpu_count() or 1))
    scaling = {r["runtime"]: r for r in report["scaling"]}
    assert scaling["ncnn"]["fps_2t"] == cells[("ncnn", 2, 1)]["instance_fps_median"]
    assert scaling["ncnn"]["aggregate_fps_c2"] == cells[("ncnn", 1, 2)]["aggregate_fps"]
    assert 20 < scaling["ncnn"]["fusion_macs_pct"] < 80
    assert {r["runtime"] for r in report["speed_column"]} == {"ncnn"}
    assert "aggregate fps" in proc.stdout and "speed column" in proc.stdout
    assert (tmp_path / "bench.csv").read_text().startswith("table,")
    assert "| variant |" in (tmp_path / "bench.md").read_text()


def test_cli_sustained_run_writes_windows_and_a_plot(artifacts, tmp_path) -> None:
    """One instance, and two at once (--duration with --concurrency): windows per
    instance and an aggregate ("all") whose runs are every instance's."""
    out = tmp_path / "sustained.json"
    proc = zoo("bench", "base-c128", "--runtime", "ncnn", "--duration", "3", "--window", "1", "--warmup", "1",
               "--concurrency", "1", "2", "--out", str(artifacts), "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    runs = {(r["concurrency"], r["instance"]): r for r in report["sustained"]}
    assert set(runs) == {(1, "1"), (2, "1"), (2, "2"), (2, "all")}
    for (conc, instance), run in runs.items():
        assert run["error"] is None, run
        assert all(w["runs"] > 0 and w["fps"] == pytest.approx(w["runs"] / 1.0) for w in run["windows"])
        assert sum(w["runs"] for w in run["windows"]) <= run["runs"]
        if instance == "all":
            continue
        assert [w["index"] for w in run["windows"]] == [0, 1, 2]
        first, last = run["windows"][0]["fps"], run["windows"][-1]["fps"]
        assert run["drop_pct"] == pytest.approx((first - last) / first * 100)
    assert runs[(2, "1")]["pid"] != runs[(2, "2")]["pid"]
    assert runs[(2, "all")]["runs"] == runs[(2, "1")]["runs"] + runs[(2, "2")]["runs"]
    plot = Path(report["plot"])
    assert plot == out.with_suffix(".png") and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["base-c128", "--runtime", "tflitee", "--threads", "1", "--concurrency", "1"], "did you mean 'tflite'"),
    (["base-c12", "--runtime", "ncnn"], "did you mean"),
    (["base-c128", "--runtime", "ncnn", "--duration", "2", "--window", "5"], "longer than --duration"),
    (["base-c128", "--runtime", "ncnn", "--threads", "0"], "must be >= 1"),
    (["base-c128", "--runtime", "ncnn", "--duration", "2", "--repeats", "2"], "--repeats repeats cells"),
])
def test_bad_input_is_one_line_exit_2(args, message, tmp_path, zoo_here) -> None:
    proc = zoo_here("bench", *args, "--out", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing exported or written


@pytest.mark.parametrize("option", ["--json", "--csv", "--markdown", "--plot"])
def test_unwritable_report_path_fails_before_any_work(option, tmp_path, zoo_here) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    name = "report.png" if option == "--plot" else "report.out"  # a plot's suffix names its format
    proc = zoo_here("bench", "base-c128", "--runtime", "ncnn", option, str(blocker / name), "--out", str(tmp_path / "art"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot write" in proc.stderr and f"a-file/{name}: Not a directory" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "art").exists()  # refused before exporting anything
