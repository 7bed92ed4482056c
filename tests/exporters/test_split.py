"""Split export: init graph (template -> cache) + track graph (search + cache -> maps).

PyTorch exactness over the whole catalog (cheap); the runtimes' exactness per format and
precision on the session's split export (fgaf3: asymmetric attention, base-c128: joint); the
tracker's boxes with and without ``--split``; a corrupted cache name in a manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from compare.runners import PytorchRunner, open_artifact
from compare.runners.split import SplitRunner
from compare.tracking.tracker import Tracker
from tests.helpers.catalog import CATALOG, DEFAULT_VARIANTS, VARIANTS
from tests.helpers.split import SLOW_SPLIT, SPLIT_PRECISIONS
from tests.helpers.tracking import run_cli
from zoo.backends import FORMATS, offered
from zoo.datasets.synthetic import make_sequence, write_sequence
from zoo.manifest import MANIFEST_NAME, CorruptArtifact, CorruptSplitManifest, read_manifest
from zoo.models.fold import fold_batchnorm
from zoo.models.fusion import BLOCK_DESIGNS
from zoo.models.split import cache_kind, cache_tensors, split_model
from zoo.parity import compare_output
from zoo.sample_inputs import sample_pairs
from zoo.split_figures import split_figures, split_summary
from zoo.weights import load_model

SPLIT_TARGETS = [pytest.param(f, p, marks=pytest.mark.slow) if (f, p) in SLOW_SPLIT else (f, p)
                 for f in FORMATS for p in offered(f) if p in SPLIT_PRECISIONS]


@pytest.mark.parametrize("name", VARIANTS)
def test_pytorch_split_is_exact(name: str) -> None:
    variant = CATALOG.get(name)
    tol = variant.tolerances["onnx"]["fp32"]
    model = load_model(variant)
    pairs = sample_pairs(variant, 2)
    for net, pair in ((model, pairs[0]), (fold_batchnorm(model), pairs[1])):  # as trained / as exported
        init, track = split_model(net, variant)
        with torch.no_grad():
            cache = init(torch.from_numpy(pairs[0]["template"]))
            assert [tuple(c.shape) for c in cache] == [t.shape for t in cache_tensors(variant)]
            # the cache of one template, the search crop of another scene
            full = net(torch.from_numpy(pairs[0]["template"]), torch.from_numpy(pair["search"]))
            split = track(torch.from_numpy(pair["search"]), *cache)
        for a, b in zip(split, full, strict=True):
            assert float((a - b).abs().max()) <= tol.atol + tol.rtol * float(b.abs().max())


@pytest.mark.parametrize("name", VARIANTS)
def test_cache_follows_the_block_design(name: str) -> None:
    variant = CATALOG.get(name)
    attention = BLOCK_DESIGNS[variant.arch.fusion.kind].attention
    tensors = cache_tensors(variant)
    figures = split_figures(variant)
    if attention == "asymmetric":  # every block's template K and V: the track graph computes 256 tokens only
        assert cache_kind(variant) == "template_kv" and len(tensors) == 2 * variant.arch.fusion.depth
        fusion_full = figures.full.parts["fusion"].macs
        assert figures.track.parts["fusion"].macs == pytest.approx(fusion_full * 256 / 320, rel=1e-6)
    else:  # joint attention: only the template's backbone output
        assert cache_kind(variant) == "template_tokens" and len(tensors) == 1
        assert figures.track.parts["fusion"].macs == figures.full.parts["fusion"].macs
    assert all(t.shape == (1, 64, variant.arch.width) for t in tensors)
    assert figures.track.parts["backbone"].macs < figures.full.parts["backbone"].macs
    assert figures.track.macs + figures.init.macs >= figures.full.macs
    assert figures.cache_bytes == sum(t.bytes for t in tensors) == len(tensors) * 64 * variant.arch.width * 4


@pytest.mark.parametrize("fmt,precision", SPLIT_TARGETS)
@pytest.mark.parametrize("name", DEFAULT_VARIANTS)
def test_split_artifact_matches_full_model(split_exported, name: str, fmt: str, precision: str) -> None:
    variant = CATALOG.get(name)
    row = split_exported.row(name, fmt, precision)
    assert row["status"] == "built" and row["split"] is True
    path = split_exported.path(name, fmt, precision)
    manifest = read_manifest(path)
    assert manifest.graphs is not None and manifest.parity.passed
    assert [c.name for c in manifest.graphs.cache] == [t.name for t in cache_tensors(variant)]
    assert manifest.graphs.attention == BLOCK_DESIGNS[variant.arch.fusion.kind].attention
    assert set(manifest.graphs.init.files) | set(manifest.graphs.track.files) == {f.path for f in manifest.files}
    tol = variant.tolerances[fmt][precision]
    pairs = sample_pairs(variant, 3)
    template = pairs[1]["template"]
    with PytorchRunner(variant) as ref, open_artifact(path, variant) as runner:
        assert isinstance(runner, SplitRunner)
        for pair in pairs:  # one init, then a track call per search crop
            expected = ref.infer({"template": template, "search": pair["search"]})
            actual = runner.infer({"template": template, "search": pair["search"]})
            for spec in variant.io.outputs:
                parity = compare_output(spec.name, actual[spec.name], expected[spec.name], tol.atol, tol.rtol)
                assert parity.passed, (name, fmt, precision, parity)
        assert runner.init_calls == 1
        other = pairs[2]["template"].copy()  # a new template object: the init graph runs again
        runner.infer({"template": other, "search": pairs[0]["search"]})
        assert runner.init_calls == 2


#: format -> the type the track runner keeps a cache tensor as (numpy only where the runtime reads it in place)
KEPT_AS = {"onnx": "ndarray", "tflite": "_Kept", "mnn": "Var", "ncnn": "Mat", "executorch": "Tensor"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_cache_stays_in_the_runtime_between_frames(split_exported, fmt: str) -> None:
    name = DEFAULT_VARIANTS[0]
    variant = CATALOG.get(name)
    a, b = sample_pairs(variant, 2)
    with open_artifact(split_exported.path(name, fmt, "fp32"), variant) as runner:
        first = runner.infer(a)
        assert {type(v).__name__ for v in runner._cache.values()} == {KEPT_AS[fmt]}
        runner.infer({"template": a["template"], "search": b["search"]})  # another crop, same kept cache
        again = runner.infer(a)
        assert runner.init_calls == 1
    for spec in variant.io.outputs:  # nothing the track graph did to its inputs changed the kept cache
        assert np.array_equal(first[spec.name], again[spec.name]), (fmt, spec.name)


def test_tflite_refuses_an_input_never_kept(split_exported) -> None:
    from compare.runners.tflite import KEPT

    name = DEFAULT_VARIANTS[0]
    variant = CATALOG.get(name)
    with open_artifact(split_exported.path(name, "tflite", "fp32"), variant) as runner:
        track = runner.track_runner
        feed = {b.runtime_name: KEPT for b in runner.graphs.track.inputs}
        with pytest.raises(RuntimeError, match="never kept"):
            track._run(feed)


def _iou(a, b) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = max(0.0, min(ax2, bx2) - max(a[0], b[0])), max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
@pytest.mark.parametrize("name", DEFAULT_VARIANTS)
def test_tracker_same_boxes_with_and_without_split(exported, split_exported, name: str, fmt: str) -> None:
    variant = CATALOG.get(name)
    seq = make_sequence("Split", frames=10)
    boxes = {}
    for label, path in (("full", exported.path(name, fmt)), ("split", split_exported.path(name, fmt))):
        with Tracker(open_artifact(path, variant).load(), variant, CATALOG.preset(variant)) as tracker:
            tracker.initialize(seq.frames[0], seq.ground_truth[0])
            boxes[label] = [tracker.track(f)[0] for f in seq.frames[1:]]
            if label == "split":
                assert tracker.runner.init_calls == 1  # init at initialisation, track per frame
    assert all(_iou(a, b) >= 0.999 for a, b in zip(boxes["full"], boxes["split"], strict=True))


def test_track_cli_split(split_exported, tmp_path, capsys) -> None:
    seq = make_sequence("Split", frames=6)
    from zoo.datasets.synthetic import write_sequence

    folder = write_sequence(seq, tmp_path / "seq", "otb")
    report = tmp_path / "track.json"
    code, stdout, stderr = run_cli(
        capsys, "track", "fgaf3", str(folder), "--runtime", "onnxruntime", "--split", "--artifacts", str(split_exported.out), "--json", str(report)
    )
    assert code == 0, stderr
    assert "fgaf3@onnxruntime-fp32-split" in stdout.replace("\n", " ")
    assert json.loads(report.read_text())["summary"]["frames"] == 6


@pytest.mark.parametrize("where", ["cache", "init_output"])
def test_corrupted_cache_name_is_one_line(split_exported, tmp_path, capsys, where: str) -> None:
    src = split_exported.path("fgaf3", "onnx")
    dest = tmp_path / "fgaf3" / src.name
    shutil.copytree(src, dest)
    data = json.loads((dest / MANIFEST_NAME).read_text())
    if where == "cache":
        data["graphs"]["cache"][1]["name"] = "cache_kX"
    else:
        data["graphs"]["init"]["outputs"][0]["name"] = "cache_q0"
    (dest / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(CorruptSplitManifest, match="cache"):
        open_artifact(dest, CATALOG.get("fgaf3"))
    seq = make_sequence("Split", frames=3)
    from zoo.datasets.synthetic import write_sequence

    folder = write_sequence(seq, tmp_path / "seq", "otb")
    code, _, stderr = run_cli(capsys, "track", "fgaf3", str(folder), "--runtime", "onnxruntime", "--split", "--artifacts", str(tmp_path))
    assert code == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "cache" in lines[0] and "Traceback" not in stderr
    assert (dest / MANIFEST_NAME).exists()


def test_split_export_rerun_reuses(split_exported) -> None:
    from tests.helpers.export import zoo

    proc = zoo("export", "fgaf3", "--to", "onnx", "--split", "--out", str(split_exported.out), "--json", "-")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)["artifacts"]
    assert row["status"] == "reused" and row["split"] is True


def test_publish_and_pull_carry_split_artifacts(exported, split_exported, tmp_path, monkeypatch, capsys) -> None:
    from tests.helpers.hub_server import HubServer
    from zoo.release.publish import publish

    src = tmp_path / "src"
    shutil.copytree(exported.path("fgaf3", "onnx"), src / "fgaf3" / "onnx")
    shutil.copytree(split_exported.path("fgaf3", "onnx"), src / "fgaf3" / "onnx-split")
    publish([CATALOG.get("fgaf3")], ["onnx"], ["fp32"], src, tmp_path / "release", split=True)
    index = json.loads((tmp_path / "release" / "index.json").read_text())
    urls = {f["url"] for a in index["variants"]["fgaf3"]["artifacts"] for f in a["files"]}
    assert {"artifacts/fgaf3/onnx-split/init/model.onnx", "artifacts/fgaf3/onnx-split/track/model.onnx"} <= urls
    for key in ("ZOO_HUB", "ZOO_OFFLINE", "ZOO_ALLOW_HTTP"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "pulled"
    with HubServer(tmp_path / "release") as server:
        code, stdout, stderr = run_cli(capsys, "pull", "fgaf3", "--hub", server.url, "--split", "--out", str(out), "--json", "-")
    assert code == 0, stderr
    assert {r["item"] for r in json.loads(stdout)["pulled"]} == {"weights", "onnx-split"}
    variant = CATALOG.get("fgaf3")
    pair = sample_pairs(variant, 1)[0]
    with open_artifact(out / "fgaf3" / "onnx-split", variant) as runner, PytorchRunner(variant) as ref:
        assert isinstance(runner, SplitRunner)
        actual, expected = runner.infer(pair), ref.infer(pair)
    assert all(np.abs(actual[k] - expected[k]).max() < 1e-4 for k in expected)


def test_info_shows_track_graph_macs_and_cache_bytes(capsys) -> None:
    code, stdout, stderr = run_cli(capsys, "info", "fgaf3", "--json", "-")
    assert code == 0, stderr
    split = json.loads(stdout)["split"]
    figures = split_figures(CATALOG.get("fgaf3"))
    assert split["macs_track"] == figures.track.macs < split["macs_full"] == figures.full.macs
    assert split["cache_bytes"] == 6 * 64 * 256 * 4 and split["cache_kind"] == "template_kv"


@pytest.fixture
def onnx_pair_dir(exported, split_exported, tmp_path):
    """fgaf3's full and split ONNX artifacts side by side in a writable artifacts directory."""
    out = tmp_path / "art"
    shutil.copytree(exported.path("fgaf3", "onnx"), out / "fgaf3" / "onnx")
    shutil.copytree(split_exported.path("fgaf3", "onnx"), out / "fgaf3" / "onnx-split")
    return out


def test_compare_split_rows_beside_full(onnx_pair_dir, tmp_path, capsys) -> None:
    report = tmp_path / "compare.json"
    code, _, stderr = run_cli(
        capsys, "compare", "fgaf3",
        "--runtimes", "onnxruntime", "--split", "--samples", "2", "--threads", "1", "--runs", "3",
        "--warmup", "1", "--out", str(onnx_pair_dir), "--json", str(report),
    )
    assert code == 0, stderr
    data = json.loads(report.read_text())
    assert {r["runtime"] for r in data["parity"]} == {"onnxruntime", "onnxruntime-split"}
    assert all(r["status"] == "pass" for r in data["parity"])
    timing = {r["runtime"]: r for r in data["timing"]}
    assert timing["onnxruntime-split"]["median_ms"] > 0 and timing["onnxruntime"]["median_ms"] > 0
    # GFLOP/s of each row counts the work its graph does per call: the track graph's MACs for the split row
    macs = {"onnxruntime": CATALOG.get("fgaf3").measured.macs_total, "onnxruntime-split": split_summary(CATALOG.get("fgaf3"))["macs_total_track"]}
    assert macs["onnxruntime-split"] < macs["onnxruntime"]
    for runtime, row in timing.items():
        if runtime in macs:
            assert row["gflops"] == pytest.approx(2 * macs[runtime] / row["median_ms"] / 1e6), runtime


def test_bench_split_rows_beside_full(onnx_pair_dir, tmp_path, capsys) -> None:
    report = tmp_path / "bench.json"
    code, _, stderr = run_cli(
        capsys, "bench", "fgaf3",
        "--runtime", "onnxruntime", "--split", "--threads", "1", "--concurrency", "1", "--seconds", "0.3",
        "--warmup", "1", "--out", str(onnx_pair_dir), "--json", str(report),
    )
    assert code == 0, stderr
    cells = {c["runtime"] for c in json.loads(report.read_text())["cells"]}
    assert cells == {"onnxruntime", "onnxruntime-split"}


def test_split_with_a_client_flavour_is_refused(tmp_path, capsys) -> None:
    """--for builds a client's single graph: with --split it is one line, exit 2, nothing written."""
    code, _, stderr = run_cli(capsys, "export", "fgaf3", "--to", "onnx", "--for", "opencv", "--split", "--out", str(tmp_path / "art"))
    assert code == 2 and "does not combine with --split" in stderr and "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert not any((tmp_path / "art").glob("fgaf3/*")), "nothing is built for a refused request"


def test_profile_split_times_the_track_graph(onnx_pair_dir, tmp_path, capsys) -> None:
    """``zoo profile --split``: the track graph's ops, every one assigned to a part with all fusion
    blocks found (its block code runs outside the block modules), and the track graph's MACs."""
    report = tmp_path / "profile.json"
    code, _, stderr = run_cli(capsys, "profile", "fgaf3", "--runtime", "onnxruntime", "--split", "--runs", "3", "--warmup", "1",
                              "--out", str(onnx_pair_dir), "--json", str(report))
    assert code == 0, stderr
    data = json.loads(report.read_text())
    t = data["totals"]
    variant = CATALOG.get("fgaf3")
    assert t["runtime"] == "onnxruntime-split/track" and t["unassigned_ops"] == 0
    assert t["fusion_blocks"] == variant.arch.fusion.depth
    macs = {p["part"]: p["macs"] for p in data["parts"]}
    track = split_figures(variant).track
    assert macs == {part: f.macs for part, f in track.parts.items()}
    assert sum(macs.values()) < split_figures(variant).full.macs


def _edited_split_copy(split_exported, tmp_path, edit) -> Path:
    src = split_exported.path("fgaf3", "onnx")
    dest = tmp_path / "fgaf3" / src.name
    shutil.copytree(src, dest)
    data = json.loads((dest / MANIFEST_NAME).read_text())
    edit(data)
    (dest / MANIFEST_NAME).write_text(json.dumps(data))
    return dest


def _swap_size_and_offset(data) -> None:
    outputs = {b["name"]: b for b in data["graphs"]["track"]["outputs"]}
    outputs["size"]["runtime_name"], outputs["offset"]["runtime_name"] = outputs["offset"]["runtime_name"], outputs["size"]["runtime_name"]


def _swap_graph_files(data) -> None:
    g = data["graphs"]
    g["init"]["files"], g["track"]["files"] = g["track"]["files"], g["init"]["files"]


@pytest.mark.parametrize("edit", [_swap_size_and_offset, _swap_graph_files], ids=["size-offset-swapped", "graphs-swapped"])
def test_a_plausible_edit_of_a_split_manifest_is_refused_everywhere(split_exported, tmp_path, capsys, edit) -> None:
    """Every field of these edits still fits the architecture (both maps are 1x2x16x16; both files
    exist), so only the manifest's digest can tell: ``track --split`` and ``compare --layers --split``
    refuse it in one line (before: boxes from swapped maps, or an internal error), export rebuilds it."""
    dest = _edited_split_copy(split_exported, tmp_path, edit)
    folder = write_sequence(make_sequence("Split", frames=3), tmp_path / "seq", "otb")
    for args in (("track", "fgaf3", str(folder), "--runtime", "onnxruntime", "--split"),
                 ("compare", "fgaf3", "--layers", "--split", "--runtime", "onnxruntime", "--samples", "1")):
        code, _, stderr = run_cli(capsys, *args, "--artifacts", str(tmp_path))
        errors = [line for line in stderr.splitlines() if line.startswith("error")]  # other lines: progress
        assert code == 1 and len(errors) == 1 and errors[0] == stderr.strip().splitlines()[-1] and "Traceback" not in stderr, stderr
        assert "manifest.json was changed after export" in errors[0] and "--split" in errors[0] and "--force" in errors[0]
    with pytest.raises(CorruptArtifact, match="digest"):
        open_artifact(dest, CATALOG.get("fgaf3"))
    code, stdout, stderr = run_cli(capsys, "export", "fgaf3", "--to", "onnx", "--split", "--artifacts", str(tmp_path), "--json", "-")
    assert code == 0, stderr
    (row,) = json.loads(stdout)["artifacts"]
    assert row["status"] == "rebuilt" and "changed after export" in row["note"]
    open_artifact(dest, CATALOG.get("fgaf3"))  # usable again


def test_a_bad_manifest_field_is_named(split_exported, tmp_path) -> None:
    dest = _edited_split_copy(split_exported, tmp_path, lambda d: d["graphs"]["track"].update(files=[3]))
    with pytest.raises(CorruptArtifact, match=r"field graphs\.track\.files\.0: Input should be a valid string \(got 3\)"):
        open_artifact(dest, CATALOG.get("fgaf3"))
