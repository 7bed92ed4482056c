"""Artifacts published before a converter change keep working: a TFLite artifact converted by onnx2tf
(NHWC bindings, outputs renamed ``output_0..2`` and bound by identity, converter recorded in its
manifest) verifies and runs in today's environment, which has no onnx2tf or TensorFlow."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from compare.runners import PytorchRunner, open_artifact  # noqa: E402
from tests.helpers.catalog import CATALOG, REPO  # noqa: E402
from zoo.artifacts import check_files  # noqa: E402
from zoo.errors import ZooError  # noqa: E402
from zoo.manifest import read_manifest  # noqa: E402
from zoo.sample_inputs import sample_pairs  # noqa: E402

LEGACY = REPO / "tests" / "data" / "legacy" / "base-c128" / "tflite-int8-dynamic"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    dest = tmp_path / "art" / "base-c128" / "tflite-int8-dynamic"
    shutil.copytree(LEGACY, dest)
    return dest


def test_onnx2tf_artifact_verifies_and_runs(legacy: Path) -> None:
    manifest = read_manifest(legacy)
    assert manifest.converter.name.startswith("onnx2tf") and manifest.versions["onnx2tf"] == "1.29.24"
    assert check_files(legacy, manifest) == []
    assert [b.layout for b in manifest.inputs] == ["NHWC", "NHWC"]
    v = CATALOG.get("base-c128")
    pair = sample_pairs(v, 3)[2]
    with open_artifact(legacy, v) as runner:
        got = runner.infer(pair)
    with PytorchRunner(v) as ref:
        expected = ref.infer(pair)
    for spec in v.io.outputs:  # NCHW again, each output where its binding says: int8 weights, same maps
        assert got[spec.name].shape == tuple(spec.shape)
        assert np.corrcoef(got[spec.name].ravel(), expected[spec.name].ravel())[0, 1] > 0.99, spec.name


def test_tampered_legacy_artifact_is_refused(legacy: Path) -> None:
    model = legacy / "model_int8_dynamic.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ZooError, match="model_int8_dynamic.tflite") as info:
        open_artifact(legacy, CATALOG.get("base-c128"))
    assert "\n" not in str(info.value)
