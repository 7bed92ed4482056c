"""Box decoding and the tracker contract on real photographs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers.catalog import CATALOG
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


def _scene(box: Box, shape=(600, 800)) -> np.ndarray:
    """A grey frame with one bright rectangle covering exactly ``box`` (whole pixels)."""
    image = np.full((*shape, 3), 40, np.uint8)
    x0, y0 = int(box.cx - box.w / 2), int(box.cy - box.h / 2)
    image[y0:y0 + int(box.h), x0:x0 + int(box.w)] = (230, 200, 180)
    return image


def _oracle(stride_cells: int = 16):
    """A stand-in network that finds the bright rectangle in the search crop by thresholding
    (independently of the tracker's geometry) and answers in the head's format: score peak at
    the rectangle's cell, offset within the cell, size as a fraction of the crop."""

    def infer(inputs):
        search = inputs["search"][0].mean(axis=0)  # the normalised crop, channels averaged
        ys, xs = np.nonzero(search > (search.min() + search.max()) / 2)
        size = search.shape[-1]
        cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2  # crop pixels
        w, h = xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()
        stride = size / stride_cells
        r, c = int(cy // stride), int(cx // stride)
        score = np.zeros((1, 1, stride_cells, stride_cells), np.float32)
        score[0, 0, r, c] = 1.0
        sizes = np.zeros((1, 2, stride_cells, stride_cells), np.float32)
        sizes[0, :, r, c] = (w / size, h / size)
        offset = np.zeros((1, 2, stride_cells, stride_cells), np.float32)
        offset[0, :, r, c] = (cx / stride - c, cy / stride - r)
        return {"score": score, "size": sizes, "offset": offset}

    return infer


def test_tracker_follows_a_moving_target_in_image_coordinates() -> None:
    """Ground truth by construction: a rectangle moves and changes shape over three frames; the
    tracker, fed by a network that only reports where the rectangle is in its search crop, must
    return the rectangle's true box in image pixels each time (crop, scale and map-back right,
    x and y not swapped, the previous box carried to the next frame)."""
    pre = CATALOG.get("base-c128").preprocessing
    path = [Box(300, 250, 60, 90), Box(360, 205, 72, 80), Box(400, 235, 66, 84)]
    tracker = NetTracker(_oracle(), pre)
    tracker.initialize(_scene(path[0]), path[0])
    for truth in path[1:]:
        box = tracker.track(_scene(truth))
        assert abs(box.cx - truth.cx) < 2 and abs(box.cy - truth.cy) < 2, (box, truth)
        assert abs(box.w - truth.w) < 3 and abs(box.h - truth.h) < 3, (box, truth)


def test_tracker_runs_the_real_network_on_a_real_image() -> None:
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
    tracker.initialize(image, Box(235.0, 130.0, 110.0, 140.0))
    box = tracker.track(image)
    assert all(np.isfinite([box.cx, box.cy, box.w, box.h])) and box.w > 0 and box.h > 0
    assert tracker.last is not None and 0 <= tracker.last.cell[0] < 16 and 0 <= tracker.last.cell[1] < 16
