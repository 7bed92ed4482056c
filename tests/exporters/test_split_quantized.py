"""Split artifacts at the reduced precisions (int8, int8-dynamic, bf16): each graph is quantized on
its own feeds (the track graph on real caches, :func:`exporters.split.graph_feeds`), the whole
split passes the tracker-level gate through :class:`compare.runners.split.SplitRunner`, and it runs.

One session fixture exports fgaf3 (asymmetric attention: the cache is every block's template keys
and values, the case where quantizing the track graph's cache inputs matters) at every reduced
precision of every format with ``zoo export --split``.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from compare.diagnose.layers_split import layers_split
from compare.runners import open_artifact
from compare.runners.split import SplitRunner
from exporters.split import graph_feeds
from tests.helpers.artifacts import FOREIGN_ENV
from tests.helpers.catalog import CATALOG
from tests.helpers.export import zoo
from zoo.artifacts import ArtifactKey, check_files
from zoo.backends import FORMATS, REDUCED_PRECISIONS, offered
from zoo.manifest import read_manifest
from zoo.models.split import cache_tensors
from zoo.sample_inputs import sample_pairs
from zoo.tracker_parity import tracker_parity

NAME = "fgaf3"
REDUCED = [(f, p) for f in FORMATS for p in offered(f) if p in REDUCED_PRECISIONS]
#: formats whose reduced split artifacts the default tier builds; TFLite's (two calibrations per
#: int8 precision) are in the slow tier
DEFAULT_FORMATS = ("onnx", "ncnn")


def _export_reduced(tmp_path_factory, formats: list[str]):
    out = tmp_path_factory.mktemp("split-quantized") / "art"
    wanted = [(f, p) for f, p in REDUCED if f in formats]
    proc = zoo("export", NAME, "--to", *sorted({f for f, _ in wanted}), "--precision", *sorted({p for _, p in wanted}),
               "--split", "--out", str(out), "--jobs", "2", "--json", "-", timeout=2400, unset=FOREIGN_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {(r["format"], r["precision"]): r for r in json.loads(proc.stdout)["artifacts"] if r["split"]}
    return out, rows


@pytest.fixture(scope="session")
def split_quantized(isolated_cache, tmp_path_factory):
    return _export_reduced(tmp_path_factory, list(DEFAULT_FORMATS))


@pytest.fixture(scope="session")
def split_quantized_tflite(isolated_cache, tmp_path_factory):
    return _export_reduced(tmp_path_factory, ["tflite"])


def _tiered(cases, fmt_of=lambda c: c[0]):
    return [c if fmt_of(c) in DEFAULT_FORMATS else pytest.param(*([c] if isinstance(c, str) else c), marks=pytest.mark.slow)
            for c in cases]


def _exported(request, fmt: str):
    return request.getfixturevalue("split_quantized" if fmt in DEFAULT_FORMATS else "split_quantized_tflite")


@pytest.mark.parametrize("fmt,precision", _tiered(REDUCED))
def test_split_reduced_precision_passes_the_tracker_gate_and_runs(request, fmt: str, precision: str) -> None:
    out, rows = _exported(request, fmt)
    assert rows[(fmt, precision)]["status"] == "built", rows[(fmt, precision)]
    variant = CATALOG.get(NAME)
    path = ArtifactKey(NAME, fmt, precision, split=True).path(out)
    manifest = read_manifest(path)
    assert check_files(path, manifest) == [] and manifest.graphs is not None
    assert [c.name for c in manifest.graphs.cache] == [t.name for t in cache_tensors(variant)]
    gate, t = variant.tolerances[fmt][precision].tracker, manifest.parity.tracker
    assert gate is not None and t is not None and t.passed and manifest.parity.passed
    assert t.pairs == gate.pairs and t.mean_iou >= gate.mean_iou and t.peak_agreement_all >= gate.peak_agreement_all
    q = manifest.quantization
    if q["recipe"]["method"] == "static":
        assert q["calibration"]["pairs"] >= 64
    # it runs as a split: one init, a track call per crop, outputs near float32 at tracker level
    pairs = sample_pairs(variant, 4)[1:]
    template = pairs[0]["template"]
    with open_artifact(path, variant) as runner, open_artifact(ArtifactKey(NAME, "onnx", "fp32", split=True).path(out), variant) as ref:
        assert isinstance(runner, SplitRunner)
        got = [runner.infer({"template": template, "search": p["search"]}) for p in pairs]
        want = [ref.infer({"template": template, "search": p["search"]}) for p in pairs]
        assert runner.init_calls == 1
    assert all(np.isfinite(v).all() for g in got for v in g.values())
    figures = tracker_parity(want, got, CATALOG.preset(variant), variant.preprocessing.search_size, gate.model_copy(update={"pairs": 3}))
    assert figures.mean_iou > 0.3


@pytest.mark.parametrize("fmt", _tiered(sorted({f for f, p in REDUCED if p.startswith("int8")}), fmt_of=lambda c: c))
def test_split_int8_graphs_are_quantized(request, fmt: str) -> None:
    """Both graphs really hold int8 weights: each file is well under the fp32 graph's size."""
    out, _ = _exported(request, fmt)
    fp32 = read_manifest(ArtifactKey(NAME, "onnx", "fp32", split=True).path(out))
    int8 = read_manifest(ArtifactKey(NAME, fmt, "int8", split=True).path(out))
    def sizes(m):
        return {g: sum(f.bytes for f in m.files if f.path.startswith(f"{g}/")) for g in ("init", "track")}

    size, ref = sizes(int8), sizes(fp32)
    assert all(0 < size[g] < 0.4 * ref[g] for g in ("init", "track")), (size, ref)


def test_track_graph_calibration_feeds_are_real_caches() -> None:
    """The track graph's feeds carry the init graph's cache of the same pair's template."""
    variant = CATALOG.get(NAME)
    pairs = sample_pairs(variant, 2)
    feeds = graph_feeds(variant, pairs)
    names = [c.name for c in cache_tensors(variant)]
    assert [set(f) for f in feeds["track"]] == [{"search", *names}] * 2
    assert all(f["template"] is p["template"] for f, p in zip(feeds["init"], pairs, strict=True))
    first, second = feeds["track"]
    assert not np.allclose(first[names[0]], second[names[0]])  # a different template, a different cache
    assert all(first[n].shape == tuple(c.shape) for n, c in zip(names, cache_tensors(variant), strict=True))


def test_split_int8_layers(split_quantized) -> None:
    """``zoo compare --layers --split`` at int8: both graphs named through the fp32 split ONNX, figures only
    (int8 is gated at tracker level), the track graph's quantization error far above fp32's yet bounded."""
    out, _ = split_quantized
    variant = CATALOG.get(NAME)
    reports = layers_split(CATALOG, variant, ["onnxruntime"], ["int8"], sample_pairs(variant, 1), out)
    assert sorted(r.graph for r in reports) == ["init", "track"]
    for r in reports:
        assert not r.skipped and r.error is None, (r.graph, r.error)
        assert r.tolerance == "tracker" and r.first_divergent is None and r.computed >= 40, r.summary()
        assert r.named_tensors + len(r.unmatched_tensors) + len(r.inserted_tensors) == r.tensors
        assert 1e-3 < max(d.rel_err for d in r.layers) < 0.5, r.graph
        assert all(d.cosine > 0.9 for d in r.layers), [d.module for d in r.layers if d.cosine <= 0.9]
