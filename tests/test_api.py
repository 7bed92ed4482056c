"""The Python API (zoo.api): the README's example runs as written, and the functions check
their input like the CLI does."""
from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import zoo
from tests.helpers.catalog import REPO
from zoo.backends import DEFAULT_RUNTIME
from zoo.cli import cli
from zoo.errors import UsageError


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_as_written(tmp_path):
    code = readme_example() + (
        "\nimport json, pathlib\n"
        "pathlib.Path('result.json').write_text(json.dumps({'variants': zoo.list_variants('fgaf*'),"
        " 'manifests': [(m.format, m.precision, m.parity.passed) for m in manifests],"
        " 'outputs': {k: list(v.shape) for k, v in outputs.items()}, 'model': type(model).__name__,"
        " 'training': model.training}))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    result = json.loads((tmp_path / "result.json").read_text())
    assert result["variants"] == ["fgaf3", "fgaf4", "fgaf2", "fgaf5", "fgaf3-bn-c128"]
    assert result["manifests"] == [["onnx", "fp32", True], ["ncnn", "fp32", True], ["ncnn", "fp16", True]]
    assert result["outputs"] == {"score": [1, 1, 16, 16], "size": [1, 2, 16, 16], "offset": [1, 2, 16, 16]}
    assert result["model"] == "TrackerNet" and result["training"] is False
    assert (tmp_path / "artifacts" / "fgaf3" / "mnn-fp16" / "manifest.json").is_file()  # exported on demand


def test_get_model_loads_the_pinned_weights():
    model = zoo.get_model("base-c128")
    bare = zoo.get_model("base-c128", weights=False)
    loaded, fresh = model.state_dict(), bare.state_dict()
    assert loaded.keys() == fresh.keys()
    assert any(not np.array_equal(loaded[k].numpy(), fresh[k].numpy()) for k in loaded)


def test_load_runner_matches_pytorch(tmp_path):
    import torch

    pair = zoo.sample_pair("base-c128")
    with zoo.load_runner("base-c128", "onnxruntime", out=tmp_path) as runner:
        got = runner.infer(pair)
    with torch.inference_mode():
        want = zoo.get_model("base-c128")(torch.from_numpy(pair["template"]), torch.from_numpy(pair["search"]))
    for name, ref in zip(("score", "size", "offset"), want, strict=True):
        np.testing.assert_allclose(got[name], ref.numpy(), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("call, message", [
    (lambda: zoo.get_model("fgaf33"), "did you mean 'fgaf3'"),
    (lambda: zoo.load_runner("fgaf3", "tflit"), "did you mean 'tflite'"),
    (lambda: zoo.load_runner("fgaf3", "onnxruntime", "fp16"), "offers fp32, int8 only"),
    (lambda: zoo.load_runner("fgaf3", "onnxruntime", threads=0), "threads must be >= 1"),
    (lambda: zoo.export("fgaf3", "coreml"), "unknown format 'coreml'"),
])
def test_bad_arguments_are_usage_errors(call, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        call()


def test_import_zoo_is_light():
    proc = subprocess.run([sys.executable, "-c", "import sys, zoo; print('torch' in sys.modules, zoo.__version__)"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.stdout.split()[0] == "False", proc.stdout


def test_one_default_runtime_for_the_cli_and_the_api():
    assert inspect.signature(zoo.load_runner).parameters["runtime"].default == DEFAULT_RUNTIME
    assert inspect.signature(zoo.Tracker).parameters["runtime"].default == DEFAULT_RUNTIME
    assert next(p for p in cli.commands["track"].params if p.name == "runtime").default == DEFAULT_RUNTIME
    with pytest.raises(UsageError, match=f"^{DEFAULT_RUNTIME} offers "):  # refused before any export
        zoo.load_runner("fgaf3", precision="fp61")


def test_dir_lists_the_public_api_without_importing_it():
    code = ("import sys, zoo; names = dir(zoo); "
            "print(all(n in names for n in zoo.__all__), 'zoo.api' in sys.modules, 'torch' in sys.modules, 'import_module' in names)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert proc.stdout.split() == ["True", "False", "False", "False"], proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def eager_tracker(tmp_path_factory):
    """A PyTorch-eager tracker (no export): the API's input checks run before any network."""
    with zoo.Tracker("fgaf3", runtime="pytorch", out=tmp_path_factory.mktemp("artifacts")) as tracker:
        yield tracker


FRAME = np.zeros((240, 360, 3), np.uint8)


@pytest.mark.parametrize("frame, box, message", [
    (FRAME, "1234", "a box is four numbers"),
    (FRAME, (True,) * 4, "a box is four numbers"),
    (FRAME, (0, 0, float("nan"), 4), "four finite numbers"),
    (FRAME, (0, 0, 0, 4), "width and height must be > 0"),
    (FRAME, (5000, 5000, 20, 20), "does not overlap the first frame (360x240 pixels)"),
    (FRAME, (-100, -100, 20, 20), "does not overlap the first frame (360x240 pixels)"),
    (FRAME, (0, 0, 20000, 20000), "more than 2x the first frame (360x240 pixels)"),
    (FRAME, (0, 0, 1e30, 1e30), "more than 2x the first frame (360x240 pixels)"),
    (np.zeros((0, 0, 3), np.uint8), (1, 2, 3, 4), "HxWx3 uint8 RGB array with H, W >= 1"),
    (FRAME.astype(np.float32), (1, 2, 3, 4), "HxWx3 uint8"),
])
def test_initialize_refuses_bad_frames_and_boxes(eager_tracker, frame, box, message):
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        eager_tracker.initialize(frame, box)
    assert "\n" not in str(caught.value)


def test_track_needs_initialize_and_frames_of_the_first_frames_size(tmp_path):
    tracker = zoo.Tracker("fgaf3", runtime="pytorch", out=tmp_path)
    with pytest.raises(UsageError, match=re.escape("call initialize(frame, box) before track(frame)")):
        tracker.track(FRAME)
    tracker.initialize(FRAME, (100, 100, 40, 40))
    with pytest.raises(UsageError, match="a 180x120 frame after a 360x240 first frame"):
        tracker.track(np.zeros((120, 180, 3), np.uint8))
    box, _ = tracker.track(FRAME)
    assert len(box) == 4


@pytest.mark.parametrize("kwargs, message", [
    ({"runtime": None}, "runtime must be a string, got None"),
    ({"runtime": 123}, "runtime must be a string, got 123"),
    ({"runtime": "pytorch", "precision": None}, "precision must be a string"),
    ({"runtime": "pytorch", "threads": "2"}, "threads must be a whole number, got '2'"),
    ({"runtime": "pytorch", "threads": 1.5}, "threads must be a whole number, got 1.5"),
    ({"runtime": "pytorch", "threads": True}, "threads must be a whole number, got True"),
    ({"runtime": "pytorch", "threads": 0}, "threads must be >= 1"),
    ({"runtime": "pytorch", "threads": 10**6}, "threads 1000000 is more than this machine can run"),
])
def test_tracker_refuses_bad_arguments_before_loading(kwargs, message):
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        zoo.Tracker("fgaf3", **kwargs)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("call, message", [
    (lambda: zoo.Tracker(None, runtime="pytorch"), "variant must be a string, got None"),
    (lambda: zoo.list_variants(123), "pattern must be a string, got 123"),
    (lambda: zoo.load_runner("fgaf3", None), "runtime must be a string"),
    (lambda: zoo.load_runner(None), "variant must be a string"),
    (lambda: zoo.load_runner("fgaf3", "onnxruntime", threads=10**6), "threads 1000000 is more than this machine can run"),
    (lambda: zoo.load_runner("fgaf3", "onnxruntime", threads=1.5), "threads must be a whole number"),
])
def test_bad_argument_types_are_usage_errors(call, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        call()


@pytest.mark.parametrize("inputs, message", [
    (None, "infer() takes a dict of the inputs"),
    ([1, 2], "infer() takes a dict of the inputs"),
    ({"template": "x", "search": "y"}, "input 'template' must be a numeric array"),
])
def test_infer_refuses_what_is_not_a_dict_of_arrays(eager_tracker, inputs, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        eager_tracker.runner.infer(inputs)


def test_every_api_error_is_a_zoo_error():
    assert issubclass(UsageError, zoo.errors.ZooError)


def test_export_says_which_precisions_a_format_does_not_offer(exported, tmp_path) -> None:
    """``zoo.export(v, ["onnx"], ["fp32", "fp16"])`` used to drop onnx-fp16 without a word (the
    CLI shows a "skipped" row): the API warns, naming it and what the format offers."""
    out = exported.copy(tmp_path / "art", "base-c128", "onnx")
    with pytest.warns(zoo.errors.ZooWarning, match=r"base-c128 onnx-fp16: skipped: onnx offers fp32, int8 only"):
        manifests = zoo.export("base-c128", ["onnx"], ["fp32", "fp16"], out=out)
    assert [(m.format, m.precision) for m in manifests] == [("onnx", "fp32")]
