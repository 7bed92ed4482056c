"""zoo bench: N trackers really run as N processes at once, sustained runs give windows and a
plot, the speed column is relative to base-c128, and bad input is a one-line usage error."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from compare.bench import fill_ratios, run_cell, speed_column
from compare.worker import RunnerSpec, Task, measure
from export_fixtures import zoo
from compare.verify import Verifier
from exporters.pipeline import Pipeline, build_order
from zoo.catalog import Catalog
from zoo.sample_inputs import sample_pairs

CATALOG = Catalog.load()
VARIANT = CATALOG.get("base-c128")
PAIR = sample_pairs(VARIANT, 1)[0]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench-artifacts")
    targets, _ = build_order([VARIANT], ["onnx", "ncnn"], ["fp32"])
    rows = Pipeline(out, Verifier()).run(targets)
    assert all(r.status == "built" for r in rows), [(r.format, r.note) for r in rows]
    return out


def test_concurrent_instances_are_separate_processes_running_at_once(artifacts) -> None:
    spec = RunnerSpec("ncnn", "fp32", VARIANT, artifacts / "base-c128" / "ncnn")
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
    spec = RunnerSpec("onnxruntime", "fp32", VARIANT, tmp_path / "no-such-artifact")
    (m,) = measure([Task(spec, PAIR, 1, 0, 1)])
    assert not m.ok and m.error and "manifest" in m.error.lower()
    assert m.pid != os.getpid()


def test_ratios_and_speed_column(artifacts) -> None:
    spec = RunnerSpec("onnxruntime", "fp32", VARIANT, artifacts / "base-c128" / "onnx")
    one = run_cell(spec, PAIR, threads=1, concurrency=1, seconds=0.3, warmup=1)
    two = run_cell(spec, PAIR, threads=1, concurrency=2, seconds=0.3, warmup=1)
    fill_ratios([one, two])
    assert one.slowdown_median == pytest.approx(1.0) and one.thread_speedup == pytest.approx(1.0)
    assert two.single_fps == one.instance_fps_median
    assert two.slowdown_median == pytest.approx(one.instance_fps_median / two.instance_fps_median)
    (row,) = speed_column([one, two], {"base-c128": 65})
    assert row["measured_fps"] == one.instance_fps_median and row["reported_fps"] == 65
    assert row["measured_vs_base"] == pytest.approx(1.0) and row["reported_vs_base"] == pytest.approx(1.0)


def test_cli_scaling_and_concurrency_tables(artifacts, tmp_path) -> None:
    out = tmp_path / "bench.json"
    proc = zoo("bench", "base-c128", "--runtime", "ncnn", "pytorch", "--threads", "1", "2", "--concurrency", "2",
               "--seconds", "0.4", "--warmup", "1", "--out", str(artifacts), "--json", str(out),
               "--csv", str(tmp_path / "bench.csv"), "--markdown", str(tmp_path / "bench.md"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    cells = {(c["runtime"], c["threads"], c["concurrency"]): c for c in report["cells"]}
    assert set(cells) == {(r, t, c) for r in ("pytorch", "ncnn") for t in (1, 2) for c in (1, 2)}
    for (runtime, threads, conc), c in cells.items():
        assert c["error"] is None and len(c["instances"]) == conc
        assert len({i["pid"] for i in c["instances"]}) == conc
        assert c["oversubscribed"] == (threads * conc > (os.cpu_count() or 1))
    scaling = {r["runtime"]: r for r in report["scaling"]}
    assert scaling["ncnn"]["fps_2t"] == cells[("ncnn", 2, 1)]["instance_fps_median"]
    assert scaling["ncnn"]["aggregate_fps_c2"] == cells[("ncnn", 1, 2)]["aggregate_fps"]
    assert 20 < scaling["ncnn"]["fusion_macs_pct"] < 80
    assert {r["runtime"] for r in report["speed_column"]} == {"pytorch", "ncnn"}
    assert "aggregate fps" in proc.stdout and "speed column" in proc.stdout
    assert (tmp_path / "bench.csv").read_text().startswith("table,")
    assert "| variant |" in (tmp_path / "bench.md").read_text()


def test_cli_sustained_run_writes_windows_and_a_plot(artifacts, tmp_path) -> None:
    """One instance, and two at once (issue 11: --duration with --concurrency): windows per
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
])
def test_bad_input_is_one_line_exit_2(args, message, tmp_path) -> None:
    proc = zoo("bench", *args, "--out", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing exported or written


@pytest.mark.parametrize("option", ["--json", "--csv", "--markdown", "--plot"])
def test_unwritable_report_path_fails_before_any_work(option, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = zoo("bench", "base-c128", "--runtime", "ncnn", option, str(blocker / "report.out"), "--out", str(tmp_path / "art"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not a writable directory" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "art").exists()  # refused before exporting anything
