"""zoo compare: parity of every runtime with PyTorch (default tier: base-c128 and fgaf3, on the
session's shared export; slow tier: every variant against ONNX), a corrupted artifact caught,
thread settings taking effect, the JSON/CSV/Markdown writers agreeing, and bad input as one-line
usage errors."""
from __future__ import annotations

import csv
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from compare.comparison import Options, run
from compare.inputs import pairs_from_arrays
from compare.measure.timing import time_spec
from compare.measure.worker import RunnerSpec
from compare.parity.runtimes import cosine_similarity, diff_output
from compare.provision import choose_runtimes
from compare.runners import open_artifact
from tests.helpers.catalog import CATALOG, DEFAULT_VARIANTS
from tests.helpers.cli import (
    one_line,
    zoo_here,  # noqa: F401 (fixture)
)
from tests.helpers.export import zoo
from zoo.artifacts import ArtifactKey
from zoo.backends import RUNTIMES as BACKEND_RUNTIMES
from zoo.errors import UsageError
from zoo.manifest import file_entry, read_manifest, write_manifest
from zoo.sample_inputs import sample_pairs

VARIANT = "base-c128"
RUNTIMES = list(BACKEND_RUNTIMES)  # onnxruntime mnn tflite ncnn


@pytest.fixture(scope="module")
def artifacts(exported) -> Path:
    """Every format and precision of the default variants: the session's shared export (read-only)."""
    return exported.out


@pytest.fixture(scope="module")
def report(artifacts):
    """Parity of every runtime and precision with PyTorch on 3 photo pairs (library API, no timing)."""
    opts = Options(runtimes=RUNTIMES, precisions=["fp32", "fp16"], samples=3, runs=0, out=artifacts)
    return run(CATALOG, CATALOG.select(DEFAULT_VARIANTS), opts)


#: the variant the CLI run times (every runtime x precision x 1, 2 threads)
CLI_VARIANTS = ("fgaf3",)


@pytest.fixture(scope="module")
def cli_run(artifacts, tmp_path_factory) -> dict:
    """The real CLI over one variant (the library run above covers both), every runtime, fp32+fp16,
    timed at 1 and 2 threads (every timed cell is a process of its own: about 2 s each)."""
    tmp = tmp_path_factory.mktemp("compare-cli")
    files = {k: tmp / f"rows.{k}" for k in ("json", "csv", "md")}
    proc = zoo("compare", *CLI_VARIANTS, "--runtimes", "all", "--precision", "fp32", "fp16", "--samples", "2",
               "--threads", "1", "2", "--runs", "5", "--warmup", "1", "--out", str(artifacts),
               "--json", str(files["json"]), "--csv", str(files["csv"]), "--markdown", str(files["md"]),
               "--save-inputs", str(tmp / "inputs.npz"), "--save-outputs", str(tmp / "outputs.npz"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"proc": proc, "tmp": tmp, **files}


# -- parity, default tier ------------------------------------------------------------------------
@pytest.mark.parametrize("name", DEFAULT_VARIANTS)
def test_every_runtime_matches_pytorch(report, artifacts, name: str) -> None:
    results = {(r.runtime, r.precision): r for r in report.parity if r.variant == name}
    expected = {(rt, p) for rt in RUNTIMES for p in ("fp32", "fp16") if not (rt == "onnxruntime" and p == "fp16")}
    assert set(results) == expected
    assert {(s["runtime"], s["precision"]) for s in report.rows()["skipped"] if s["variant"] == name} == {("onnxruntime", "fp16")}
    for (runtime, precision), r in results.items():
        assert r.passed and r.error is None, (runtime, precision, r.outputs)
        assert [o.output for o in r.outputs] == [s.name for s in CATALOG.get(name).io.outputs]
        # every figure recomputed here, in numpy, from the outputs the run kept
        got, ref = report.outputs[(name, runtime, precision)], report.outputs[(name, "pytorch", "fp32")]
        for o in r.outputs:
            assert o.samples == 3 and o.nan_count == 0 and o.inf_count == 0
            a = np.stack([s[o.output] for s in got]).astype(np.float64)
            b = np.stack([s[o.output] for s in ref]).astype(np.float64)
            diff = np.abs(a - b)
            cosines = [float(x.ravel() @ y.ravel() / np.linalg.norm(x) / np.linalg.norm(y)) for x, y in zip(a, b)]
            assert o.max_abs_err == pytest.approx(float(diff.max()), rel=1e-9, abs=1e-12), (runtime, precision, o)
            assert o.mean_abs_err == pytest.approx(float(diff.mean()), rel=1e-9, abs=1e-12), (runtime, precision, o)
            assert o.worst_ratio == pytest.approx(float((diff / (o.atol + o.rtol * np.abs(b))).max()), rel=1e-9)
            assert o.min_cosine == pytest.approx(min(cosines), abs=1e-6) and o.min_cosine > 0.9999
            assert o.worst_ratio <= 1
        assert len(r.tracking) == 3
        for t in r.tracking:
            assert t.same_cell and t.iou > 0.99 and t.center_px < 0.5, (runtime, precision, t)
    # each precision ran its own artifact: the kept outputs are those of the installed artifact of
    # that precision, run here, and not those of the other precision's
    variant, pair = CATALOG.get(name), report.inputs[name][0]
    direct = {}
    for p in ("fp32", "fp16"):
        with open_artifact(artifacts / name / ("mnn" if p == "fp32" else "mnn-fp16"), variant) as runner:
            direct[p] = runner.infer(pair)
    for p, other in (("fp32", "fp16"), ("fp16", "fp32")):
        kept = report.outputs[(name, "mnn", p)][0]
        for key in kept:
            assert np.abs(kept[key] - direct[p][key]).max() < np.abs(kept[key] - direct[other][key]).max(), (p, key)


def test_outputs_kept_per_runtime(report) -> None:
    keys = set(report.outputs)
    assert ("fgaf3", "pytorch", "fp32") in keys and ("fgaf3", "tflite", "fp16") in keys
    ref, tfl = report.outputs[("fgaf3", "pytorch", "fp32")], report.outputs[("fgaf3", "tflite", "fp32")]
    assert len(ref) == 3 and ref[0]["score"].shape == (1, 1, 16, 16)
    assert np.allclose(ref[1]["score"], tfl[1]["score"], atol=1e-3) and not np.allclose(ref[0]["score"], ref[1]["score"])


def test_nan_and_error_figures() -> None:
    good = [np.ones((1, 2, 4, 4), np.float32)]
    bad = [good[0].copy()]
    bad[0][0, 0, 0, 0] = np.nan
    bad[0][0, 1, 0, 0] = np.inf
    d = diff_output("v", "rt", "fp32", "x", bad, good, 1e-3, 1e-3)
    assert (d.nan_count, d.inf_count, d.passed) == (1, 1, False) and np.isnan(d.min_cosine)
    assert cosine_similarity(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == 0.0
    assert cosine_similarity(np.zeros(3), np.zeros(3)) == 1.0
    ok = diff_output("v", "rt", "fp32", "x", [good[0] + 1e-4], good, 1e-3, 0)
    assert ok.passed and ok.max_abs_err == pytest.approx(1e-4, rel=1e-3) and ok.min_cosine == pytest.approx(1.0)


# -- a corrupted artifact must fail ---------------------------------------------------------------
def _corrupt_onnx(src: Path, out: Path, variant: str) -> Path:
    """Copy the ONNX artifact to ``out`` with one weight perturbed and a manifest that matches the
    new bytes (so nothing but parity can tell)."""
    dest = out / variant / "onnx"
    shutil.copytree(src / variant / "onnx", dest)
    manifest = read_manifest(dest)
    model_path = dest / manifest.files[0].path
    model = onnx.load(str(model_path))
    init = next(i for i in model.graph.initializer if i.name.endswith("weight") and len(i.dims) == 4)
    weights = numpy_helper.to_array(init).copy()
    weights.flat[0] += 0.5
    init.CopyFrom(numpy_helper.from_array(weights, init.name))
    onnx.save(model, str(model_path))
    manifest.files = [file_entry(dest, f.path) for f in manifest.files]
    write_manifest(dest, manifest)
    return dest


def test_corrupted_artifact_is_caught(artifacts, tmp_path) -> None:
    dest = _corrupt_onnx(artifacts, tmp_path, "base-c128")
    before = read_manifest(dest).files[0].sha256
    report_file = tmp_path / "rows.json"
    proc = zoo("compare", "--pytorch-vs-onnx", "base-c128", "--out", str(tmp_path), "--json", str(report_file))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout and "failed: base-c128 onnxruntime fp32" in proc.stderr
    assert "Traceback" not in proc.stderr
    rows = json.loads(report_file.read_text())["parity"]
    assert any(r["status"] == "FAIL" and r["worst_ratio"] > 1 for r in rows)
    assert read_manifest(dest).files[0].sha256 == before  # compared as it is, not silently rebuilt


# -- threads ---------------------------------------------------------------------------------------
def _thread_cpu(process) -> dict[int, float]:
    return {t.id: t.user_time + t.system_time for t in process.threads()}


def test_thread_setting_takes_effect(artifacts) -> None:
    """ONNX Runtime at 1 thread starts no worker and only the calling thread computes (process CPU
    time ~ wall time); at 2 threads it starts one worker thread that takes part in the runs.

    Per-thread CPU times (psutil) make this robust on a shared machine, where another process may
    hold the second core and hide a 2-thread run's extra CPU time in the process total.
    """
    import threading

    import psutil

    variant = CATALOG.get("fgaf3")
    pair = sample_pairs(variant, 1)[0]
    process = psutil.Process()
    main_id = threading.get_native_id()
    for threads in (1, 2):
        runner = open_artifact(artifacts / "fgaf3" / "onnx", variant, threads=threads)
        before = set(_thread_cpu(process))
        runner.load()
        runner.infer(pair)
        new_threads = set(_thread_cpu(process)) - before
        cpu0, wall0, per_thread0 = time.process_time(), time.perf_counter(), _thread_cpu(process)
        for _ in range(15):
            runner.infer(pair)
        cpu, wall, per_thread = time.process_time() - cpu0, time.perf_counter() - wall0, _thread_cpu(process)
        runner.close()
        others = sum(per_thread[t] - per_thread0.get(t, 0.0) for t in per_thread if t != main_id)
        if threads == 1:
            assert not new_threads
            assert cpu / wall < 1.15 and others < 0.1 * wall, (cpu, wall, others)
        else:
            assert len(new_threads) == 1
            worker = new_threads.pop()
            assert per_thread[worker] - per_thread0[worker] > 0, "the ONNX Runtime worker never ran"


def test_oversubscribed_thread_count_runs_and_is_flagged(artifacts) -> None:
    import os

    variant = CATALOG.get("base-c128")
    n = (os.cpu_count() or 1) + 1
    spec = RunnerSpec(ArtifactKey.for_runtime(variant.name, "ncnn"), variant, artifacts / "base-c128" / "ncnn")
    row = time_spec(spec, sample_pairs(variant, 1)[0], n, warmup=0, runs=2)
    assert row.error is None and row.oversubscribed and row.threads == n and row.median_ms > 0
    assert row.pid != os.getpid()  # measured in a child process of its own


def test_timing_table_from_cli(cli_run) -> None:
    rows = json.loads(cli_run["json"].read_text())["timing"]
    runtimes = {(r["variant"], r["runtime"], r["precision"], r["threads"]) for r in rows}
    for name in CLI_VARIANTS:
        for threads in (1, 2):
            assert (name, "pytorch", "fp32", threads) in runtimes
            assert {(name, rt, p, threads) for rt in RUNTIMES for p in ("fp32", "fp16") if rt != "onnxruntime" or p == "fp32"} <= runtimes
    for r in rows:
        assert r["error"] is None and not r["oversubscribed"], r
        assert r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["p99_ms"] and r["fps"] == pytest.approx(1e3 / r["median_ms"])
        assert r["first_ms"] > 0 and r["gflops"] > 0 and r["sgemm_gflops"] > 0 and r["peak_mem_mb"] is not None
        assert r["pct_of_sgemm"] == pytest.approx(100 * r["gflops"] / r["sgemm_gflops"]) and r["sgemm_library"]
        assert r["peak_mem_mb"] > 1, "a runtime instance that loaded a model grew its process by more than 1 MB"
        # against the PyTorch row of the same variant and thread count, and the catalog's MAC count
        ref = next(p for p in rows if (p["variant"], p["runtime"], p["threads"]) == (r["variant"], "pytorch", r["threads"]))
        assert r["speedup_vs_pytorch"] == pytest.approx(ref["median_ms"] / r["median_ms"])
        assert r["gflops"] == pytest.approx(2 * CATALOG.get(r["variant"]).measured.macs_total / r["median_ms"] / 1e6)
        if r["threads"] == 1:  # a 1-thread run must not use more cores, in any runtime
            assert r["cpu_per_wall"] < 1.2, r
    pids = [r["pid"] for r in rows]
    assert len(set(pids)) == len(pids), "every runtime x thread count runs in a process of its own"


# -- writers ---------------------------------------------------------------------------------------
def _same(a, b) -> bool:
    if a is None or a == "":
        return b is None or b == ""
    if isinstance(b, bool) or isinstance(a, bool):
        return str(a) == str(b)
    if isinstance(b, (int, float)):
        return float(a) == pytest.approx(float(b), nan_ok=True)
    return str(a) == str(b)


def test_json_csv_markdown_hold_the_same_rows(cli_run) -> None:
    data = json.loads(cli_run["json"].read_text())
    assert data["machine"]["cpu_count"] >= 1 and data["samples"]
    header = cli_run["csv"].read_text().splitlines()[0].split(",")
    assert header[0] == "table" and len(header) == len(set(header))
    csv_rows = list(csv.DictReader(io.StringIO(cli_run["csv"].read_text())))
    markdown = cli_run["md"].read_text()
    for table in ("parity", "tracker", "timing", "skipped"):
        rows = data[table]
        assert rows, table
        mine = [r for r in csv_rows if r["table"] == table]
        assert len(mine) == len(rows), table
        for got, want in zip(mine, rows, strict=True):
            for key, value in want.items():
                assert _same(got[key], value), (table, key, got[key], value)
        section = markdown.split(f"<!-- table: {table} -->\n", 1)[1].split("\n## ", 1)[0]
        body = [line for line in section.splitlines() if line.startswith("| ")][1:]
        assert len(body) == len(rows), table
        assert [line.split(" | ")[0].lstrip("| ") for line in body] == [r["variant"] for r in rows]
    assert "parity vs PyTorch eager" in cli_run["proc"].stdout and "timing" in cli_run["proc"].stdout


def test_saved_inputs_reproduce_saved_outputs(cli_run, artifacts, tmp_path) -> None:
    inputs = np.load(cli_run["tmp"] / "inputs.npz")
    assert sorted(inputs.files) == ["search", "template"] and inputs["search"].shape == (2, 1, 3, 256, 256)
    again = tmp_path / "outputs.npz"
    proc = zoo("compare", "fgaf3", "--runtimes", "onnxruntime", "--runs", "0", "--out", str(artifacts),
               "--inputs", str(cli_run["tmp"] / "inputs.npz"), "--save-outputs", str(again))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first, second = np.load(cli_run["tmp"] / "outputs.npz"), np.load(again)
    for key in ("fgaf3/pytorch-fp32/score", "fgaf3/onnxruntime-fp32/offset"):
        assert second[key].shape == first[key].shape == ((2, 1, 1, 16, 16) if key.endswith("score") else (2, 1, 2, 16, 16))
        assert np.allclose(first[key], second[key], atol=1e-6)


def test_single_pair_npz_and_shape_checks() -> None:
    variant = CATALOG.get("fgaf3")
    pair = sample_pairs(variant, 1)[0]
    assert len(pairs_from_arrays(pair, variant)) == 1
    with pytest.raises(UsageError, match="shape"):
        pairs_from_arrays({**pair, "search": pair["search"][:, :, :128]}, variant)
    with pytest.raises(UsageError, match="sample counts"):
        pairs_from_arrays({"template": np.stack([pair["template"]] * 2), "search": pair["search"][None]}, variant)


def test_samples_are_distinct_held_out_pairs(tmp_path) -> None:
    """--samples N: N distinct pairs, the first N of the held-out pairs the export's gate judges; an
    .npz repeating a pair is refused, and so is asking the bundled scenes for more pairs than they give."""
    from compare.inputs import load_pairs, save_npz, stack_pairs
    from compare.parity.verify import Verifier
    from zoo.calibration import pair_digest

    variant = CATALOG.get(VARIANT)
    pairs = load_pairs(variant, 64, None, CATALOG.preset(variant), CATALOG.quantization)
    digests = [pair_digest(p) for p in pairs]
    assert len(set(digests)) == 64
    gate_pairs, _ = Verifier(CATALOG).held_out(variant, 8)
    assert [pair_digest(p) for p in gate_pairs] == digests[:8]
    repeated = tmp_path / "repeated.npz"
    save_npz(repeated, stack_pairs(pairs[:2] * 3))
    with pytest.raises(UsageError, match="6 pairs, of which only 2 distinct"):
        load_pairs(variant, 4, repeated, CATALOG.preset(variant))
    with pytest.raises(UsageError, match="4 distinct pairs"):
        load_pairs(variant, 5)


# -- bad input -------------------------------------------------------------------------------------
def _one_line_usage_error(proc, text: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert text in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_options_default_artifacts_folder_is_zoo_artifacts(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_ARTIFACTS", str(tmp_path / "env"))
    assert Options(runtimes=["onnxruntime"]).out == tmp_path / "env"
    monkeypatch.delenv("ZOO_ARTIFACTS")
    assert Options(runtimes=["onnxruntime"]).out == Path("artifacts")


def test_unknown_runtime_suggests(tmp_path) -> None:
    _one_line_usage_error(zoo("compare", "fgaf3", "--runtimes", "onnxruntim", "--out", str(tmp_path)),
                          "unknown runtime 'onnxruntim' (did you mean 'onnxruntime'")
    proc = zoo("compare", "fgaf3", "--runtimes", "tflit", "--out", str(tmp_path))
    _one_line_usage_error(proc, "did you mean 'tflite'")
    with pytest.raises(UsageError, match="did you mean 'ncnn'"):
        choose_runtimes(["ncn"])


def test_missing_inputs_file(tmp_path) -> None:
    _one_line_usage_error(zoo("compare", "fgaf3", "--inputs", str(tmp_path / "nope.npz"), "--out", str(tmp_path)),
                          "--inputs file not found")


def test_npz_with_wrong_keys(tmp_path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, template=np.zeros((1, 3, 128, 128), np.float32), query=np.zeros((1, 3, 256, 256), np.float32))
    _one_line_usage_error(zoo("compare", "fgaf3", "--runtimes", "onnxruntime", "--inputs", str(bad), "--out", str(tmp_path)),
                          "do not match fgaf3's inputs")
    assert not (tmp_path / "fgaf3").exists()  # inputs are checked before anything is exported


# -- slow tier: every variant against ONNX ---------------------------------------------------------
@pytest.mark.slow
def test_every_variant_pytorch_vs_onnx(tmp_path) -> None:
    report_file = tmp_path / "rows.json"
    start = time.perf_counter()
    proc = zoo("compare", "--pytorch-vs-onnx", "--out", str(tmp_path / "art"), "--json", str(report_file), timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(report_file.read_text())["parity"]
    assert {r["variant"] for r in rows} == set(CATALOG.names)
    assert len(rows) == sum(len(v.io.outputs) for v in CATALOG)
    assert all(r["status"] == "pass" and r["runtime"] == "onnxruntime" for r in rows)
    tracker = json.loads(report_file.read_text())["tracker"]
    assert all(t["same_cell"] == t["samples"] and t["min_iou"] > 0.999 for t in tracker)
    rerun = time.perf_counter()
    proc = zoo("compare", "--pytorch-vs-onnx", "--out", str(tmp_path / "art"))
    assert proc.returncode == 0 and "export " not in proc.stderr  # nothing re-exported
    print(f"first run (with exports) {rerun - start:.1f} s, rerun {time.perf_counter() - rerun:.1f} s")


def test_a_npy_given_to_inputs_is_one_line(zoo_here, tmp_path):
    bad = tmp_path / "pair.npy"
    np.save(bad, np.zeros((1, 3, 128, 128), np.float32))
    one_line(zoo_here("compare", VARIANT, "--runtimes", "onnxruntime", "--inputs", str(bad),
                      "--out", str(tmp_path / "a")), 2, "pair.npy", ".npz")
