"""exporters.executorch and compare.runners.executorch: torch.export -> XNNPACK -> ``.pte``, run in
ExecuTorch's own runtime (the pip wheel's ``executorch.runtime``), against PyTorch.

fgaf3 at fp32 and fp16 comes from the session's shared export (``tests.helpers.artifacts``); the runner is checked on another scene's pair, bound by name (a manifest whose order
changes keeps its outputs, one whose runtime names swap swaps them), with its thread count applied
to ExecuTorch's threadpool. The slow tier: base-c128, the split artifact (both graphs, one
``forward`` each) and int8 (pt2e, calibrated, through the tracker-level gate).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("executorch")

from compare.runners import PytorchRunner, open_artifact, runner_for  # noqa: E402
from compare.runners.split import SplitRunner  # noqa: E402
from compare.runners.executorch import position  # noqa: E402
from exporters.executorch import FP16_KEEP_FLOAT, runtime_name, shared_provenance  # noqa: E402
from tests.helpers.artifacts import FOREIGN_ENV  # noqa: E402
from tests.helpers.catalog import CATALOG  # noqa: E402
from tests.helpers.cli import run_main  # noqa: E402
from tests.helpers.export import assert_artifact_valid, json_rows, zoo  # noqa: E402
from zoo.artifacts import ArtifactKey  # noqa: E402
from zoo.errors import ZooError  # noqa: E402
from zoo.manifest import read_manifest  # noqa: E402
from zoo.parity import compare_output  # noqa: E402
from zoo.sample_inputs import sample_pairs  # noqa: E402

FLOAT = ("fp32", "fp16")


def _export(out: Path, *args: str) -> dict:
    report = out.parent / f"{out.name}.json"
    proc = zoo("export", *args, "--to", "executorch", "--out", str(out), "--json", str(report), timeout=1200, unset=FOREIGN_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json_rows(report)


@pytest.fixture(scope="module")
def et_float(exported, tmp_path_factory) -> tuple[Path, dict]:
    """fgaf3 at fp32 and fp16 as ExecuTorch programs: the session's shared export (every format),
    copied, since some tests edit a manifest."""
    out = tmp_path_factory.mktemp("executorch") / "art"
    return exported.copy(out, "fgaf3", "executorch", "executorch-fp16"), exported.rows


@pytest.mark.parametrize("precision", FLOAT)
def test_float_export_matches_pytorch(et_float, precision: str) -> None:
    out, rows = et_float
    assert rows[("fgaf3", "executorch", precision)]["status"] == "built"
    path = ArtifactKey("fgaf3", "executorch", precision).path(out)
    manifest = read_manifest(path)
    assert [f.path for f in manifest.files] == ["model.pte"] and manifest.converter.name == "executorch"
    assert manifest.converter.version == manifest.versions["executorch"] == "1.4.1"
    assert any("XnnpackPartitioner()" in f for f in manifest.converter.flags)
    assert any("delegated subgraphs" in n for n in manifest.notes)
    assert (any("half_model" in f for f in manifest.converter.flags)) == (precision == "fp16")
    assert [b.runtime_name for b in manifest.outputs] == ["forward:output:0", "forward:output:1", "forward:output:2"]
    figures = assert_artifact_valid(path, CATALOG.get("fgaf3"), scene=2)  # another scene than the export's
    tol = CATALOG.get("fgaf3").tolerances["executorch"][precision]
    assert all(p.max_abs_err <= tol.atol + tol.rtol * 2 for p in figures.values())
    if precision == "fp16":  # fp16 arithmetic really ran: not bit-identical to fp32
        assert max(p.max_abs_err for p in figures.values()) > 1e-5


def test_fp16_keeps_layernorm_float(et_float) -> None:
    out, _ = et_float
    manifest = read_manifest(ArtifactKey("fgaf3", "executorch", "fp16").path(out))
    assert FP16_KEEP_FLOAT == ("LayerNorm",)
    assert manifest.build_inputs["options"]["keep_float"] == ["LayerNorm"]
    assert manifest.size_bytes < read_manifest(out / "fgaf3" / "executorch").size_bytes  # fp16 weights


def _outputs(path: Path, manifest, pair: dict) -> dict[str, np.ndarray]:
    with runner_for(path, manifest) as runner:
        return runner.infer(pair)


def test_bindings_are_by_runtime_name_not_position(et_float) -> None:
    out, _ = et_float
    path = out / "fgaf3" / "executorch"
    manifest = read_manifest(path)
    pair = sample_pairs(CATALOG.get("fgaf3"), 2)[1]
    base = _outputs(path, manifest, pair)
    # the manifest's order reversed, names kept: every output still comes back under its own name
    reordered = manifest.model_copy(update={"outputs": list(reversed(manifest.outputs)), "inputs": list(reversed(manifest.inputs))})
    again = _outputs(path, reordered, pair)
    assert all(np.array_equal(base[k], again[k]) for k in base)
    # size and offset (same shape) given each other's runtime names: the runner follows the names
    size, offset = manifest.outputs[1], manifest.outputs[2]
    swapped = manifest.model_copy(update={"outputs": [manifest.outputs[0], size.model_copy(update={"runtime_name": offset.runtime_name}),
                                                     offset.model_copy(update={"runtime_name": size.runtime_name})]})
    crossed = _outputs(path, swapped, pair)
    assert np.array_equal(crossed["size"], base["offset"]) and np.array_equal(crossed["offset"], base["size"])
    assert not np.allclose(base["size"], base["offset"])


@pytest.mark.parametrize("bad,match", [("template", "not an ExecuTorch input binding"),
                                       ("forward:input:7", "the method has 2"),
                                       ("forward:output:0", "not an ExecuTorch input binding")])
def test_a_binding_the_program_lacks_is_one_line(et_float, bad: str, match: str) -> None:
    out, _ = et_float
    path = out / "fgaf3" / "executorch"
    manifest = read_manifest(path)
    broken = manifest.model_copy(update={"inputs": [manifest.inputs[0].model_copy(update={"runtime_name": bad}), manifest.inputs[1]]})
    with pytest.raises(ZooError, match=match):
        runner_for(path, broken).load()


def test_input_shape_is_checked_against_the_program(et_float) -> None:
    out, _ = et_float
    path = out / "fgaf3" / "executorch"
    manifest = read_manifest(path)
    a, b = manifest.inputs  # template and search swap positions: the program's shapes refuse it
    broken = manifest.model_copy(update={"inputs": [a.model_copy(update={"runtime_name": b.runtime_name}),
                                                    b.model_copy(update={"runtime_name": a.runtime_name})]})
    with pytest.raises(ZooError, match=r"input forward:input:1 \(template\) is \[1, 3, 256, 256\] in the program"):
        runner_for(path, broken).load()


def test_threads_set_executorch_threadpool(et_float) -> None:
    out, _ = et_float
    variant = CATALOG.get("fgaf3")
    pair = sample_pairs(variant, 1)[0]
    results = {}
    for threads in (2, 1):
        with open_artifact(out / "fgaf3" / "executorch", variant, threads=threads) as runner:
            assert runner.settings() == {"method": "forward", "threads": threads}
            assert runner.threads_in_use == threads
            results[threads] = runner.infer(pair)
            assert runner.last_inference_time > 0
    for name in results[1]:
        assert np.allclose(results[1][name], results[2][name], atol=1e-5)


def test_lowering_shares_provenance_records_only_inside_its_block() -> None:
    """Inside :func:`shared_provenance` a copied node's ``from_node`` history shares its records (the
    list is still a copy); outside, torch's deep copy is back."""
    import copy

    import torch.fx
    from torch.fx.traceback import NodeSource

    graph = torch.fx.Graph()
    node = graph.placeholder("x")
    record = NodeSource(node, "a_pass")
    history = [record]
    with shared_provenance():
        copied = copy.deepcopy(history)
        assert copied is not history and copied[0] is record
    assert copy.deepcopy(history)[0] is not record and "__deepcopy__" not in NodeSource.__dict__


def test_runtime_names_round_trip() -> None:
    assert [position(runtime_name(kind, i), kind) for kind in ("input", "output") for i in (0, 2)] == [0, 2, 0, 2]
    for bad in ("forward:weights:1", "init:input:0", "forward:input:x", "forward:input"):
        with pytest.raises(ZooError, match="is not an ExecuTorch input binding"):
            position(bad, "input")


def test_an_unoffered_precision_is_one_line_exit_2(capsys, monkeypatch, tmp_path) -> None:
    code, out, err = run_main(capsys, monkeypatch, "export", "fgaf3", "--to", "executorch", "--precision", "bf16",
                              "--out", str(tmp_path / "o"))
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "executorch offers fp32, fp16, int8 only" in err
    assert not (tmp_path / "o").exists()


# -- slow tier ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_base_c128_fp32_matches_pytorch(tmp_path) -> None:
    out = tmp_path / "art"
    rows = _export(out, "base-c128", "--precision", "fp32")
    assert rows[("base-c128", "executorch", "fp32")]["status"] == "built"
    assert_artifact_valid(out / "base-c128" / "executorch", CATALOG.get("base-c128"), scene=2)


@pytest.mark.slow
def test_split_runs_both_graphs(tmp_path) -> None:
    out = tmp_path / "art"
    _export(out, "fgaf3", "--precision", "fp32", "--split")
    variant = CATALOG.get("fgaf3")
    path = ArtifactKey("fgaf3", "executorch", "fp32", split=True).path(out)
    manifest = read_manifest(path)
    assert sorted(f.path for f in manifest.files) == ["init/model.pte", "track/model.pte"]
    assert [b.runtime_name for b in manifest.graphs.track.inputs] == [f"forward:input:{i}" for i in range(1 + len(manifest.graphs.cache))]
    tol = variant.tolerances["executorch"]["fp32"]
    pairs = sample_pairs(variant, 3)
    with PytorchRunner(variant) as ref, open_artifact(path, variant) as runner:
        assert isinstance(runner, SplitRunner)
        for pair in pairs[1:]:
            feed = {"template": pairs[0]["template"], "search": pair["search"]}
            expected, actual = ref.infer(feed), runner.infer(feed)
            for spec in variant.io.outputs:
                assert compare_output(spec.name, actual[spec.name], expected[spec.name], tol.atol, tol.rtol).passed
        assert runner.init_calls == 1 and runner.last_init_time > 0 and runner.last_inference_time > 0


@pytest.mark.slow
def test_int8_passes_the_tracker_gate(tmp_path) -> None:
    out = tmp_path / "art"
    rows = _export(out, "fgaf3", "--precision", "int8")
    assert rows[("fgaf3", "executorch", "int8")]["status"] == "built"
    path = out / "fgaf3" / "executorch-int8"
    manifest = read_manifest(path)
    gate = CATALOG.get("fgaf3").tolerances["executorch"]["int8"].tracker
    t = manifest.parity.tracker
    assert gate is not None and t is not None and t.passed and t.pairs == gate.pairs
    assert t.mean_iou >= gate.mean_iou and t.peak_agreement_all >= gate.peak_agreement_all
    q = manifest.quantization
    assert q["recipe"]["method"] == "static" and q["calibration"]["pairs"] >= 64
    assert any("MinMaxObserver" in f and "<64 calibration pairs>" in f for f in manifest.converter.flags)
    assert manifest.size_bytes <= 0.35 * CATALOG.get("fgaf3").weights.bytes  # int8 weights (fp32 safetensors beside)
    assert "quantize/dequantize nodes" in json.dumps(manifest.notes)
