"""Helpers of the tracking tests: the CLI in-process, an independent OSTrack transcription, IoU."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from zoo.cli import main

REPO = Path(__file__).resolve().parents[2]
#: real OTB sequences (not part of a fresh clone): <repo>/../shared/data/otb
OTB_ROOT = REPO.parent / "shared" / "data" / "otb"
needs_otb = pytest.mark.skipif(not (OTB_ROOT / "Crossing" / "img").is_dir(),
                               reason=f"real OTB sequences not present at {OTB_ROOT} (../shared/data/otb: not in a fresh clone)")


def run_cli(capsys, *args: str, monkeypatch=None) -> tuple[int, str, str]:
    """``zoo ARGS`` in this process (imports already warm): (exit code, stdout, stderr)."""
    old = sys.argv
    sys.argv = ["zoo", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- OSTrack's test-time code, transcribed independently (lib/train/data/processing_utils.py,
#    lib/test/tracker/ostrack.py, lib/utils/box_ops.py, lib/test/utils/hann.py): the oracle the
#    preset-driven loop must reproduce. ------------------------------------------------------------
def ostrack_sample_target(im, target_bb, search_area_factor, output_sz):
    x, y, w, h = target_bb
    crop_sz = math.ceil(math.sqrt(w * h) * search_area_factor)
    x1 = round(x + 0.5 * w - crop_sz * 0.5)
    x2 = x1 + crop_sz
    y1 = round(y + 0.5 * h - crop_sz * 0.5)
    y2 = y1 + crop_sz
    x1_pad = max(0, -x1)
    x2_pad = max(x2 - im.shape[1] + 1, 0)
    y1_pad = max(0, -y1)
    y2_pad = max(y2 - im.shape[0] + 1, 0)
    im_crop = im[y1 + y1_pad:y2 - y2_pad, x1 + x1_pad:x2 - x2_pad, :]
    im_crop_padded = cv2.copyMakeBorder(im_crop, y1_pad, y2_pad, x1_pad, x2_pad, cv2.BORDER_CONSTANT)
    resize_factor = output_sz / crop_sz
    return cv2.resize(im_crop_padded, (output_sz, output_sz)), resize_factor


def ostrack_preprocess(img_arr):
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
    x = img_arr.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    return ((x - mean) / std).astype(np.float32)


def ostrack_hann2d(sz):
    def hann1d(n):
        return 0.5 * (1 - np.cos((2 * math.pi / (n + 1)) * np.arange(1, n + 1, dtype=np.float32)))
    return (hann1d(sz)[:, None] * hann1d(sz)[None, :]).astype(np.float32)


def ostrack_cal_bbox(score_map, size_map, offset_map, feat_sz=16):
    flat = score_map.reshape(-1)
    idx = int(np.argmax(flat))
    idx_y, idx_x = idx // feat_sz, idx % feat_sz
    size = size_map.reshape(2, -1)[:, idx]
    offset = offset_map.reshape(2, -1)[:, idx]
    return [(idx_x + offset[0]) / feat_sz, (idx_y + offset[1]) / feat_sz, size[0], size[1]]


def ostrack_clip_box(box, H, W, margin=0):
    x1, y1, w, h = box
    x2, y2 = x1 + w, y1 + h
    x1 = min(max(0, x1), W - margin)
    x2 = min(max(margin, x2), W)
    y1 = min(max(0, y1), H - margin)
    y2 = min(max(margin, y2), H)
    w = max(margin, x2 - x1)
    h = max(margin, y2 - y1)
    return [x1, y1, w, h]


class OSTrackReference:
    """OSTrack's tracker (``initialize``/``track``) around a network callable, as its code reads."""

    def __init__(self, network, template_factor=2.0, search_factor=4.0, template_size=128, search_size=256):
        self.network = network
        self.tf, self.sf, self.ts, self.ss = template_factor, search_factor, template_size, search_size
        self.window = ostrack_hann2d(search_size // 16)

    def initialize(self, image, bbox):
        z_patch, _ = ostrack_sample_target(image, bbox, self.tf, self.ts)
        self.z = ostrack_preprocess(z_patch)
        self.state = list(bbox)

    def track(self, image):
        H, W, _ = image.shape
        x_patch, resize_factor = ostrack_sample_target(image, self.state, self.sf, self.ss)
        out = self.network({"template": self.z, "search": ostrack_preprocess(x_patch)})
        response = self.window * out["score"].reshape(16, 16)
        cx, cy, w, h = ostrack_cal_bbox(response, out["size"], out["offset"])
        pred = [v * self.ss / resize_factor for v in (cx, cy, w, h)]
        cx_prev, cy_prev = self.state[0] + 0.5 * self.state[2], self.state[1] + 0.5 * self.state[3]
        half_side = 0.5 * self.ss / resize_factor
        cx_real, cy_real = pred[0] + (cx_prev - half_side), pred[1] + (cy_prev - half_side)
        box = [cx_real - 0.5 * pred[2], cy_real - 0.5 * pred[3], pred[2], pred[3]]
        self.state = ostrack_clip_box(box, H, W, margin=10)
        return self.state
