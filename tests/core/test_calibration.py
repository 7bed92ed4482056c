"""zoo.calibration: calibration sources (refused when they cannot give the catalog's count of
distinct crops, images decoded once and reduced, oversized images refused) and the held-out pairs
of the tracker-level gate, which never come from the calibration source."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from compare.parity.verify import Verifier
from tests.helpers.catalog import CATALOG
from tests.helpers.cli import run_main
from zoo import calibration
from zoo.calibration import disjoint, make_pairs, open_source, pair_digest
from zoo.errors import UsageError
from zoo.sample_inputs import SCENES, sample_image

VARIANT = CATALOG.get("base-c128")
PRESET = CATALOG.preset(VARIANT)
SPEC = CATALOG.quantization


def _write(path, image: np.ndarray) -> None:
    assert cv2.imwrite(str(path), image)


def _textured(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x // 7) % 256, (y // 5) % 256, ((x + y) // 11) % 256], -1).astype(np.uint8)


def test_a_one_pixel_calibration_set_is_refused_in_one_line(capsys, monkeypatch, tmp_path) -> None:
    images = tmp_path / "one"
    images.mkdir()
    _write(images / "px.png", np.full((1, 1, 3), 120, np.uint8))
    out = tmp_path / "art"
    code, _, err = run_main(capsys, monkeypatch, "export", "base-c128", "--to", "onnx", "--precision", "int8",
                            "--calibration", str(images), "--out", str(out))
    assert code == 2, err
    assert err.strip().startswith("error: --calibration") and "distinct" in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and not (out / "base-c128").exists()


def test_calibration_pairs_need_the_catalogs_count_of_distinct_crops(tmp_path) -> None:
    from zoo.calibration import calibration_pairs, distinct

    tiny = tmp_path / "tiny"
    tiny.mkdir()
    _write(tiny / "3x3.png", _textured(3, 3))  # jittered boxes of a 3x3 image: many crops alike
    with pytest.raises(UsageError, match=r"gives \d+ distinct crop pair\(s\) of the 64"):
        calibration_pairs(VARIANT, PRESET, open_source(tiny), SPEC)
    _write(tiny / "big.png", _textured(240, 320))  # one textured image more: every crop differs
    assert distinct(calibration_pairs(VARIANT, PRESET, open_source(tiny), SPEC)) == SPEC.calibration_pairs
    pairs = calibration_pairs(VARIANT, PRESET, open_source(None), SPEC)
    assert len(pairs) == SPEC.calibration_pairs == distinct(pairs)


def test_held_out_pairs_never_come_from_the_calibration_source(tmp_path) -> None:
    """The gate's pairs are cut from the held-out scenes whatever --calibration is; the default
    calibration images are none of them."""
    from zoo.calibration import distinct, held_out_pairs
    from zoo.sample_inputs import CALIBRATION_IMAGES

    assert not {s.image for s in SCENES} & set(CALIBRATION_IMAGES)
    scene_pixels = {sample_image(s.image).tobytes() for s in SCENES}
    assert not scene_pixels & {sample_image(name).tobytes() for name in CALIBRATION_IMAGES}
    images = tmp_path / "images"
    images.mkdir()
    _write(images / "a.png", _textured(240, 320))
    held = held_out_pairs(VARIANT, PRESET, 16, SPEC)
    assert distinct(held) == 16
    for source in (open_source(None), open_source(images)):
        assert disjoint(held, make_pairs(VARIANT, PRESET, source, 64, "calibration"))
        assert disjoint(held, make_pairs(VARIANT, PRESET, source, 16, "verification"))  # not the source's own stream
    pairs, refs = Verifier(CATALOG).held_out(VARIANT, 16)  # what the export's gate judges
    assert [pair_digest(p) for p in pairs] == [pair_digest(p) for p in held] and len(refs) == 16


def test_each_image_is_decoded_once(tmp_path, monkeypatch) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        _write(images / f"{i}.png", _textured(200 + 10 * i, 300))
    calls = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: calls.append(1) or real(*a))
    pairs = make_pairs(VARIANT, PRESET, open_source(images), 64, "calibration")
    assert len(pairs) == 64 and len(calls) == 3


def test_a_large_image_is_decoded_reduced(tmp_path, monkeypatch) -> None:
    images = tmp_path / "images"
    images.mkdir()
    _write(images / "big.jpg", _textured(4400, 4200))
    shapes = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: (lambda d: shapes.append(d.shape) or d)(real(*a)))
    pairs = make_pairs(VARIANT, PRESET, open_source(images), 16, "calibration")
    assert len({pair_digest(p) for p in pairs}) == 16
    assert shapes == [(2200, 2100, 3)]  # 1/2: the long side stays >= DECODE_SIDE


def test_an_image_above_the_pixel_limit_is_refused_in_one_line(capsys, monkeypatch, tmp_path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    _write(images / "wide.png", _textured(1000, 1500))
    monkeypatch.setattr(calibration, "MAX_PIXELS", 1_000_000)
    decoded = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(1) or real(*a))
    out = tmp_path / "art"
    code, _, err = run_main(capsys, monkeypatch, "export", "base-c128", "--to", "onnx", "--precision", "int8",
                            "--calibration", str(images), "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "wide.png is 1500x1000" in err and "megapixels" in err and "Traceback" not in err
    assert not decoded and not (out / "base-c128").exists()
