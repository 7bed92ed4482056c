"""Box decoding and the tracker contract on real photographs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import CATALOG
from zoo.sample_inputs import _image
from zoo.tracking import Box, NetTracker, decode
from zoo.weights import load_model


def test_decode_reads_the_peak_cell() -> None:
    score = np.zeros((1, 1, 16, 16), np.float32)
    score[0, 0, 5, 9] = 0.9
    size = np.full((1, 2, 16, 16), 0.25, np.float32)
    offset = np.zeros((1, 2, 16, 16), np.float32)
    offset[0, :, 5, 9] = (0.5, 0.25)
    d = decode(score, size, offset, 256)
    assert d.cell == (5, 9) and d.score == pytest.approx(0.9)
    assert (d.box.cx, d.box.cy, d.box.w, d.box.h) == (pytest.approx(152.0), pytest.approx(84.0), 64.0, 64.0)


def test_box_iou_and_distance() -> None:
    a, b = Box(10, 10, 10, 10), Box(15, 10, 10, 10)
    assert a.iou(a) == 1.0 and a.iou(b) == pytest.approx(50 / 150)
    assert a.center_distance(b) == 5.0 and a.iou(Box(100, 100, 1, 1)) == 0.0


def test_tracker_runs_on_a_real_image_and_maps_back_to_image_coordinates() -> None:
    variant = CATALOG.get("base-c128")
    model = load_model(variant)

    def infer(inputs):
        with torch.no_grad():
            outs = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
        return {spec.name: o.numpy() for spec, o in zip(variant.io.outputs, outs)}

    image = np.asarray(_image("astronaut"))
    tracker = NetTracker(infer, variant.preprocessing)
    with pytest.raises(RuntimeError):
        tracker.track(image)
    start = Box(235.0, 130.0, 110.0, 140.0)
    tracker.initialize(image, start)
    box = tracker.track(image)
    d = tracker.last.box
    side = (start.w * start.h) ** 0.5 * variant.preprocessing.search_context
    scale = side / variant.preprocessing.search_size
    assert box.cx == pytest.approx(start.cx + (d.cx - 128) * scale)
    assert box.w == pytest.approx(d.w * scale) and box.h == pytest.approx(d.h * scale)
    assert all(np.isfinite([box.cx, box.cy, box.w, box.h]))
