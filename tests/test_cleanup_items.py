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


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return ({n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names})


def test_dead_code_and_copied_constants_are_gone() -> None:
    """Issue 22 §9: dead names removed, the input roles and the optional-package helpers in core
    modules of their own, the OpenCV affine tolerance defined once."""
    import zoo
    from compare.tracking import evaluation
    from exporters import base, opencv_probe
    from zoo import io_roles, requirements, sample_inputs, version

    assert zoo.__version__ == version.__version__
    assert not {"_input_roles", "role_inputs"} & set(vars(sample_inputs))
    assert sample_inputs.input_roles is io_roles.input_roles  # used there, defined in zoo.io_roles
    assert callable(io_roles.role_inputs)
    assert not hasattr(evaluation, "read_run")
    assert base.MissingPackage is requirements.MissingPackage and not hasattr(base, "require")  # used there, defined in core
    assert issubclass(requirements.MissingPackage, zoo.errors.ZooError)
    with pytest.raises(requirements.MissingPackage, match=r"pip install 'zoo\[onnx\]'"):
        base.package_version("no-such-distribution-zoo", "onnx")
    # the runtime layer takes nothing from the export layer
    for path in sorted((REPO / "compare" / "runners").glob("*.py")):
        assert not any(m.split(".")[0] == "exporters" for m in _imported_modules(path)), path
    # exporters.opencv checks the measured affine against the probe's constant, not a copy of it
    src = (REPO / "exporters" / "opencv.py").read_text()
    assert opencv_probe.AFFINE_TOLERANCE == 1e-4 and "1e-4" not in src
    assert any(isinstance(n, ast.Name) and n.id == "AFFINE_TOLERANCE" for n in ast.walk(ast.parse(src)))
