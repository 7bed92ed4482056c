"""The tracker loop as data: geometry, decoding, presets, and agreement with OSTrack's own code."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from ruamel.yaml import YAML

from tests.helpers.catalog import CATALOG
from tests.helpers.tracking import OSTrackReference, ostrack_sample_target, run_cli
from zoo.catalog import Catalog
from zoo.datasets.synthetic import make_sequence
from zoo.errors import CatalogError, UsageError
from zoo.evaluation import metrics
from zoo.schema import TrackingPreset
from zoo.tracking import (Box, TrackerLoop, check_box, check_box_in_frame, check_frame, clip_box, crop_origin, crop_side, cut,
                          decode, hann, hann2d, to_input)
from zoo.weights import load_model

OSTRACK = CATALOG.preset("base-c128")


def fake_network(cell=(8, 8), offset=(0.0, 0.0), size=(0.25, 0.25), score=0.9, rows=16):
    """A network whose answer is fixed: the peak at ``cell`` with ``offset`` and ``size`` (crop fractions)."""
    def infer(inputs):
        assert inputs["template"].shape == (1, 3, 128, 128) and inputs["search"].shape == (1, 3, 256, 256)
        s = np.zeros((1, 1, rows, rows), np.float64)
        s[0, 0][cell] = score
        sz = np.zeros((1, 2, rows, rows), np.float64)
        off = np.zeros((1, 2, rows, rows), np.float64)
        sz[0, :, cell[0], cell[1]] = size
        off[0, :, cell[0], cell[1]] = offset
        return {"score": s, "size": sz, "offset": off}
    return infer


def test_hann_window_values() -> None:
    assert hann(1).tolist() == [1.0]  # 0.5 * (1 - cos(pi))
    assert hann(3) == pytest.approx([0.5, 1.0, 0.5])  # k/(n+1) = 1/4, 2/4, 3/4
    w = hann(16)
    assert w[0] == pytest.approx(0.03376, abs=1e-5) and w[0] > 0  # centred: no zero at the border
    assert np.allclose(w, w[::-1]) and w[7] == w[8] == w.max()
    assert hann2d(16, 16)[7, 8] == pytest.approx(w[7] * w[8]) and hann2d(16, 16).shape == (16, 16)


def test_crop_side_and_rounding() -> None:
    assert crop_side(10, 40, 2.0) == 40  # sqrt(400) * 2 exactly
    assert crop_side(30, 20, 4.0) == 98  # 97.98 rounds up
    assert crop_side(0.1, 0.1, 4.0) == 1
    with pytest.raises(UsageError):
        crop_side(0, 10, 4.0)
    # OSTrack: round(cx - side/2) with Python's round (half to even)
    assert crop_origin((0.0, 0.0, 5.0, 5.0), 0, "center_round") == (2.0, 2.0)  # 2.5 -> 2
    assert crop_origin((1.0, 1.0, 5.0, 5.0), 0, "center_round") == (4.0, 4.0)  # 3.5 -> 4
    assert crop_origin((10.0, 20.0, 30.0, 20.0), 98, "center_round") == (-24.0, -19.0)
    # OpenCV: x + (w - side) / 2 in C++ integer division (truncates toward zero)
    assert crop_origin((10.0, 20.0, 30.0, 20.0), 97, "box_trunc") == (10 - 33, 20 - 38)


def test_cut_copies_pads_and_drops_the_edge_pixel() -> None:
    frame = np.arange(20 * 30 * 3, dtype=np.uint32).reshape(20, 30, 3).astype(np.uint8)
    inside = cut(frame, 5, 4, 8, 8)
    assert np.array_equal(inside, frame[4:12, 5:13])  # same size: no resampling
    left = cut(frame, -3, 0, 8, 8)
    assert (left[:, :3] == 0).all() and np.array_equal(left[:, 3:], frame[0:8, 0:5])
    edge = cut(frame, 22, 0, 8, 8)  # reaches x = 30 = W: OSTrack pads the last column instead of copying it
    assert (edge[:, 7] == 0).all() and np.array_equal(edge[:, :7], frame[0:8, 22:29])
    exact = cut(frame, 22, 0, 8, 8, exclusive_edge=False)
    assert np.array_equal(exact, frame[0:8, 22:30])
    mean = cut(frame, -4, -4, 8, 8, pad_value=(10, 20, 30))
    assert (mean[0, 0] == (10, 20, 30)).all()
    away = cut(frame, 100, 100, 8, 4)  # entirely outside: all padding
    assert away.shape == (4, 4, 3) and (away == 0).all()


@pytest.mark.parametrize("box", [(40.3, 30.7, 50.2, 41.9), (-20.0, 5.0, 60.0, 40.0), (280.5, 200.5, 70.0, 55.0),
                                 (0.0, 0.0, 320.0, 240.0), (150.0, 100.0, 3.0, 2.5)])
def test_crop_matches_ostrack_sample_target(box) -> None:
    frame = make_sequence(frames=2).frames[0]
    loop = TrackerLoop(OSTRACK, fake_network())
    for factor, size in ((2.0, 128), (4.0, 256)):
        expected, resize_factor = ostrack_sample_target(frame, box, factor, size)
        tensor, origin, side = loop.crop(frame, box, factor, size)
        assert side == round(size / resize_factor)
        assert np.allclose(tensor, to_input(expected, OSTRACK.input), atol=0)
        back = (tensor[0].transpose(1, 2, 0) * np.float32(OSTRACK.input.std) + np.float32(OSTRACK.input.mean)) * 255
        assert np.abs(back - expected).max() < 1e-3


def test_centre_answer_maps_back_to_the_previous_box_exactly() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    prev = (100.0, 80.0, 64.0, 64.0)  # search side ceil(64 * 4) = 256
    loop = TrackerLoop(OSTRACK, fake_network(size=(0.25, 0.25)))
    loop.initialize(frame, prev)
    box, score = loop.track(frame)
    assert box == prev and score == pytest.approx(0.9)
    # any box: centre fraction 0.5 and size = previous size / side gives the previous box back
    for prev in ((37.3, 51.9, 41.7, 23.2), (300.25, 10.5, 90.0, 130.0), (0.0, 0.0, 15.0, 15.0)):
        side = crop_side(prev[2], prev[3], 4.0)
        loop = TrackerLoop(OSTRACK, fake_network(size=(prev[2] / side, prev[3] / side)))
        loop.initialize(frame, prev)
        assert loop.track(frame)[0] == pytest.approx(prev, abs=1e-9)
    # one cell right and an offset of half a cell down: (1 + 0.5 * 1j) * side / 16 pixels
    loop = TrackerLoop(OSTRACK, fake_network(cell=(8, 9), offset=(0.0, 0.5), size=(0.25, 0.25)))
    loop.initialize(frame, (100.0, 80.0, 64.0, 64.0))
    assert loop.track(frame)[0] == pytest.approx((116.0, 88.0, 64.0, 64.0))


def test_box_is_clipped_to_the_frame_with_a_margin() -> None:
    assert clip_box((-20.0, 5.0, 60.0, 40.0), 240, 320, 10) == (0.0, 5.0, 40.0, 40.0)
    assert clip_box((400.0, 300.0, 50.0, 50.0), 240, 320, 10) == (310.0, 230.0, 10.0, 10.0)  # outside: 10 px kept
    assert clip_box((10.0, 10.0, 2.0, 2.0), 240, 320, 10) == (10.0, 10.0, 10.0, 10.0)  # never below the margin
    frame = np.zeros((240, 320, 3), np.uint8)
    loop = TrackerLoop(OSTRACK, fake_network(cell=(8, 15), offset=(0.9, 0.0), size=(0.25, 0.25)))
    loop.initialize(frame, (250.0, 100.0, 64.0, 64.0))
    x, y, w, h = loop.track(frame)[0]  # the answer lies right of the frame
    assert x + w == 320.0 and x <= 310.0 and w >= 10.0


def test_window_picks_the_peak_and_scores() -> None:
    score = np.full((1, 1, 16, 16), 0.0, np.float32)
    score[0, 0, 0, 0], score[0, 0, 8, 8] = 0.9, 0.5  # a corner peak loses to the centre after the window
    size = np.full((1, 2, 16, 16), 0.25, np.float32)
    offset = np.zeros((1, 2, 16, 16), np.float32)
    assert decode(score, size, offset, 256).cell == (0, 0)
    d = decode(score, size, offset, 256, window=hann2d(16, 16))
    assert d.cell == (8, 8) and d.score == pytest.approx(0.5) and d.windowed_score == pytest.approx(0.5 * hann(16)[8] ** 2)
    assert (d.box.cx, d.box.cy, d.box.w, d.box.h) == (128.0, 128.0, 64.0, 64.0)


def test_box_iou_and_distance() -> None:
    a, b = Box(10, 10, 10, 10), Box(15, 10, 10, 10)
    assert a.iou(a) == 1.0 and a.iou(b) == pytest.approx(50 / 150)
    assert a.center_distance(b) == 5.0 and a.iou(Box(100, 100, 1, 1)) == 0.0
    a_rows, b_rows = np.array([[5, 5, 10, 10], [0, 0, 1, 1]]), np.array([[10, 5, 10, 10], [5, 5, 1, 1]])
    assert metrics.iou(a_rows, b_rows, pixels=False) == pytest.approx([50 / 150, 0])


def test_loop_equals_ostracks_code_on_a_moving_target() -> None:
    """The preset-driven loop and OSTrack's tracker code, transcribed, give the same boxes with the
    same network (PyTorch eager, reference weights) on a synthetic sequence."""
    variant = CATALOG.get("base-c128")
    model = load_model(variant)

    def network(inputs):
        with torch.inference_mode():
            outs = model(torch.from_numpy(inputs["template"]), torch.from_numpy(inputs["search"]))
        return {s.name: o.numpy() for s, o in zip(variant.io.outputs, outs, strict=True)}

    seq = make_sequence(frames=6)
    ours, theirs = TrackerLoop(OSTRACK, network), OSTrackReference(network)
    ours.initialize(seq.frames[0], seq.ground_truth[0])
    theirs.initialize(seq.frames[0], list(seq.ground_truth[0]))
    for frame in seq.frames[1:]:
        box, _ = ours.track(frame)
        assert box == pytest.approx(theirs.track(frame), abs=1e-3)


def test_tracking_before_initialize_and_bad_frames() -> None:
    loop = TrackerLoop(OSTRACK, fake_network())
    with pytest.raises(UsageError, match="initialize"):
        loop.track(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(UsageError, match="HxWx3 uint8"):
        loop.initialize(np.zeros((10, 10), np.uint8), (1, 1, 2, 2))
    with pytest.raises(UsageError, match="width and height"):
        loop.initialize(np.zeros((10, 10, 3), np.uint8), (1, 1, 0, 2))


@pytest.mark.parametrize("box", ["1234", b"1234", (True, True, True, True), (1, 2, 3), (1, 2, 3, "4"), None, 5,
                                 (0, 0, float("nan"), 2), (0, 0, float("inf"), 2), (0, 0, 0, 2), (0, 0, 2, -1),
                                 (np.bool_(True),) * 4])
def test_a_box_is_four_finite_numbers_with_a_positive_size(box) -> None:
    with pytest.raises(UsageError, match="box") as caught:
        check_box(box)
    assert "\n" not in str(caught.value)


def test_numpy_and_integer_boxes_are_boxes() -> None:
    assert check_box(np.array([1, 2, 3, 4], np.float32)) == (1.0, 2.0, 3.0, 4.0)
    assert check_box([np.int64(1), 2, 3.5, 4]) == (1.0, 2.0, 3.5, 4.0)


@pytest.mark.parametrize("frame", [np.zeros((0, 0, 3), np.uint8), np.zeros((0, 5, 3), np.uint8),
                                   np.zeros((5, 5, 3), np.float32), np.zeros((5, 5, 4), np.uint8), [[0, 0, 0]]])
def test_a_frame_is_a_nonempty_hxwx3_uint8_array(frame) -> None:
    with pytest.raises(UsageError, match="HxWx3 uint8"):
        check_frame(frame)


@pytest.mark.parametrize("box", [(5000, 5000, 20, 20), (-100, -100, 20, 20), (360, 0, 20, 20), (0, -20, 20, 20)])
def test_a_box_outside_the_first_frame_is_refused_naming_the_frame_size(box) -> None:
    loop = TrackerLoop(OSTRACK, fake_network())
    with pytest.raises(UsageError, match="does not overlap the first frame \\(360x240 pixels\\)"):
        loop.initialize(np.zeros((240, 360, 3), np.uint8), box)
    assert check_box_in_frame((-10, -10, 20, 20), (240, 360, 3)) == (-10, -10, 20, 20)  # partly inside: fine


@pytest.mark.parametrize("box", [(0, 0, 20000, 20000), (0, 0, 1e30, 1e30), (0, 0, 721, 10)])
def test_a_box_far_larger_than_the_frame_is_refused(box) -> None:
    loop = TrackerLoop(OSTRACK, fake_network())
    with pytest.raises(UsageError, match="more than 2x the first frame \\(360x240 pixels\\)"):
        loop.initialize(np.zeros((240, 360, 3), np.uint8), box)


def test_a_frame_of_another_size_than_the_first_is_refused() -> None:
    loop = TrackerLoop(OSTRACK, fake_network())
    loop.initialize(np.zeros((240, 360, 3), np.uint8), (100, 100, 40, 40))
    with pytest.raises(UsageError, match="a 180x120 frame after a 360x240 first frame"):
        loop.track(np.zeros((120, 180, 3), np.uint8))
    loop.track(np.zeros((240, 360, 3), np.uint8))  # the first frame's size still tracks


def test_a_huge_crop_allocates_the_output_only_and_keeps_the_geometry(monkeypatch) -> None:
    """A window far beyond the frame (a box grown during tracking) is resampled from the frame, not
    padded to side x side (4e9 px would be ~48 EB); on a window both paths can cut they agree."""
    yy, xx = np.mgrid[0:240, 0:360]
    frame = np.stack([xx * 255 // 359, yy, (xx + yy) // 3], -1).astype(np.uint8)
    huge = cut(frame, -2 * 10**9, -2 * 10**9, 4 * 10**9, 256, pad_value=(7, 8, 9))
    assert huge.shape == (256, 256, 3) and huge.dtype == np.uint8
    assert (huge[0, 0] == (7, 8, 9)).all()
    window = (-300, -200, 4 * 360 + 1)
    monkeypatch.setattr("zoo.tracking.EXACT_CROP_BYTES", 3 * (4 * 360) ** 2)  # just past the exact path
    warped = cut(frame, *window, 256, pad_value=(7, 8, 9)).astype(int)
    monkeypatch.setattr("zoo.tracking.EXACT_CROP_BYTES", 10**15)
    exact = cut(frame, *window, 256, pad_value=(7, 8, 9)).astype(int)
    assert np.abs(exact - warped).mean() < 0.5 and np.mean(np.abs(exact - warped) > 4) < 0.01


def test_a_second_preset_is_data(catalog_copy) -> None:
    """An OpenCV-TrackerVit-like loop (integer boxes, C++ rounding, no clipping, a score threshold,
    BGR input) is a preset in zoo.yaml, not code; variants pick it by name."""
    yaml = YAML()
    data = yaml.load(catalog_copy.read_text())
    opencv = {"description": "OpenCV TrackerVit's loop", "crop": {"template_factor": 2.0, "search_factor": 4.0,
              "origin": "box_trunc", "padding": "zero"},
              "input": {"color": "BGR", "scale": 1.0, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
              "decode": {"map_origin": "crop_rule", "map_side": "factor_floor_sqrt", "score": "windowed"},
              "state": {"clip_margin": None, "rounding": "floor", "score_threshold": 0.2}}
    data["tracking"]["presets"]["opencv-vit"] = opencv
    data["variants"][0]["tracking"] = "opencv-vit"
    with open(catalog_copy, "w") as fh:
        yaml.dump(data, fh)
    cat = Catalog.load(catalog_copy)
    preset = cat.preset(cat.names[0])
    assert cat.preset_name(cat.names[0]) == "opencv-vit" and cat.preset_name(cat.names[1]) == "ostrack"
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[..., 0] = 200  # red in RGB: the network must see it in the last channel (BGR)
    seen = {}

    def net(inputs):
        seen["search"] = inputs["search"]
        return fake_network(cell=(8, 9), offset=(0.3, 0.0), size=(0.2, 0.3))(inputs)

    loop = TrackerLoop(preset, net)
    loop.initialize(frame, (100.7, 80.2, 40.9, 30.5))
    assert loop.state == (100.0, 80.0, 40.0, 30.0)
    box, score = loop.track(frame)
    assert all(float(v).is_integer() for v in box) and score == pytest.approx(0.9 * hann(16)[8] * hann(16)[9])
    assert seen["search"][0, 2].max() == 200 and seen["search"][0, 0].max() == 0
    span = 4 * math.floor(math.sqrt(40 * 30))  # 4 * floor(34.64) = 136
    x0 = 100 + int((40 - span) / 2)
    assert box[0] == math.floor(x0 + (9.3 / 16 - 0.1) * span) and box[2] == math.floor(0.2 * span)
    low = TrackerLoop(preset, fake_network(score=0.1))  # below the threshold: the previous box is kept
    low.initialize(frame, (100.0, 80.0, 40.0, 30.0))
    assert low.track(frame)[0] == (100.0, 80.0, 40.0, 30.0) and not low.last.accepted
    TrackingPreset.model_validate(opencv)


def test_catalog_refuses_unknown_presets(catalog_copy) -> None:
    text = catalog_copy.read_text()
    catalog_copy.write_text(text.replace("  default: ostrack\n", "  default: siamfc\n", 1))
    with pytest.raises(CatalogError, match="default preset 'siamfc'"):
        Catalog.load(catalog_copy)
    catalog_copy.write_text(text.replace("    tolerances: *tolerances\n", "    tolerances: *tolerances\n    tracking: nope\n", 1))
    with pytest.raises(CatalogError, match="tracking preset 'nope'"):
        Catalog.load(catalog_copy)
    catalog_copy.write_text(text.replace("        padding: zero", "        padding: reflect", 1))
    with pytest.raises(CatalogError, match="padding"):
        Catalog.load(catalog_copy)
    with pytest.raises(UsageError, match="unknown tracking preset 'ostrak'.*did you mean"):
        CATALOG.preset("fgaf3", "ostrak")


@pytest.mark.parametrize("rule", [OSTRACK.input, TrackingPreset.model_validate(
    {"description": "x", "crop": {"template_factor": 2, "search_factor": 4},
     "input": {"color": "BGR", "scale": 1.0, "mean": [1, 2, 3], "std": [2, 3, -4]}}).input])
def test_normalisation_lookup_equals_the_arithmetic(rule) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    fast = to_input(pixels, rule)
    x = pixels.astype(np.float32)[..., ::-1] if rule.color == "BGR" else pixels.astype(np.float32)
    slow = ((x * np.float32(rule.scale) - np.float32(rule.mean)) / np.float32(rule.std)).transpose(2, 0, 1)[None]
    assert fast.shape == (1, 3, 32, 48) and fast.dtype == np.float32 and np.array_equal(fast, slow)
    assert np.array_equal(fast, to_input(pixels.astype(np.float32), rule))


def test_info_shows_the_variants_preset(capsys) -> None:
    code, stdout, stderr = run_cli(capsys, "info", "fgaf3", "--json", "-")
    assert code == 0, stderr
    tracking = json.loads(stdout)["tracking"]
    assert tracking["preset"] == "ostrack" and tracking["crop"]["search_factor"] == 4.0 and tracking["state"]["clip_margin"] == 10
