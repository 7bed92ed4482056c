"""Issue 11 §6 smaller things: no stray XNNPACK line, the export benchmark under benchmarks/,
native_quiet in the bottom layer, dead fields gone."""
from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

TINY_MODEL = """
import sys, tensorflow as tf
class M(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32, name="x")])
    def __call__(self, x):
        return {"y": tf.nn.relu(tf.nn.conv2d(x, tf.ones([3, 3, 3, 4]), 1, "SAME"))}
m = M()
conv = tf.lite.TFLiteConverter.from_concrete_functions([m.__call__.get_concrete_function()], m)
open(sys.argv[1], "wb").write(conv.convert())
"""

RUN = """
import sys, numpy as np
from exporters import tflite_convert as tc
perm = (0, 2, 3, 1)
b = {"x": tc.TfliteBinding("x", "input", "serving_default", "x", [1, 8, 8, 3], "float32", "NHWC", perm),
     "y": tc.TfliteBinding("y", "output", "serving_default", "y", [1, 8, 8, 4], "float32", "NHWC", perm)}
out = tc.invoke_signature(sys.argv[1], [b["x"]], {"x": np.ones((1, 3, 8, 8), np.float32)}, 1)
assert out["y"].shape == (1, 8, 8, 4), out["y"].shape
print("ran", float(out["y"].max()))
"""


def test_tflite_inference_in_the_exporter_prints_no_xnnpack_line(tmp_path) -> None:
    pytest.importorskip("onnx2tf")
    pytest.importorskip("tensorflow")
    model = tmp_path / "tiny.tflite"
    subprocess.run([sys.executable, "-c", TINY_MODEL, str(model)], check=True, capture_output=True, timeout=120)
    done = subprocess.run([sys.executable, "-c", RUN, str(model)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ran 27.0" in done.stdout  # the model really ran (3x3x3 ones)
    assert "XNNPACK" not in done.stderr + done.stdout, done.stderr


def test_native_quiet_lives_in_the_bottom_layer() -> None:
    from compare.runners import native_quiet as from_runners
    from zoo.native import native_quiet

    assert from_runners is native_quiet
    tree = ast.parse((REPO / "exporters" / "tflite_convert.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
               {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.split(".")[0] == "compare" for m in imported), imported


def test_export_benchmark_is_a_script_under_benchmarks() -> None:
    assert not (REPO / "exporters" / "bench.py").exists()
    done = subprocess.run([sys.executable, "benchmarks/export_cold.py", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "usage:" in done.stdout and "cold" in done.stdout
    assert "benchmarks/export_cold.py" in (REPO / "README.md").read_text()


def test_dead_fields_are_gone() -> None:
    from compare import inputs
    from compare.measure.worker import Measurement
    from exporters.tflite_convert import TfliteResult
    from zoo.hub.download import Outcome

    assert "attempts" not in {f.name for f in dataclasses.fields(Outcome)}
    assert "os_threads" not in {f.name for f in dataclasses.fields(Measurement)}
    assert "seconds" not in {f.name for f in dataclasses.fields(TfliteResult)}
    assert not hasattr(inputs, "default_pairs")


def test_pull_plan_items_are_named_fields() -> None:
    from zoo.release import pull

    src = (REPO / "zoo" / "release" / "pull.py").read_text()
    assert [f.name for f in dataclasses.fields(pull.PullItem)] == ["variant", "item", "artifact", "files", "blobs"]
    assert "plan: list[tuple" not in src
