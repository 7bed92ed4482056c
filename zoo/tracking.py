"""The tracker contract (after pytracking's BaseTracker) and box decoding of the head.

A tracker is tiny and typed: :meth:`Tracker.initialize` with the first frame and the target
box, then :meth:`Tracker.track` per frame returning the new box. :class:`NetTracker` drives any
``infer`` callable (PyTorch eager or a runtime runner: named NCHW inputs -> named NCHW outputs),
so the same tracking loop runs on every exported artifact.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from zoo.sample_inputs import crop, normalize
from zoo.schema import Preprocessing

Infer = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class Box:
    """Axis-aligned box: centre x/y, width, height, in pixels."""

    cx: float
    cy: float
    w: float
    h: float

    def iou(self, other: "Box") -> float:
        ix = max(0.0, min(self.cx + self.w / 2, other.cx + other.w / 2) - max(self.cx - self.w / 2, other.cx - other.w / 2))
        iy = max(0.0, min(self.cy + self.h / 2, other.cy + other.h / 2) - max(self.cy - self.h / 2, other.cy - other.h / 2))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0

    def center_distance(self, other: "Box") -> float:
        return math.hypot(self.cx - other.cx, self.cy - other.cy)


@dataclass(frozen=True)
class Decoded:
    """The head's answer on one search crop: the peak cell, its score and the box (crop px)."""

    cell: tuple[int, int]  # (row, col) of the score-map argmax
    score: float
    box: Box


def decode(score: np.ndarray, size: np.ndarray, offset: np.ndarray, crop_size: int) -> Decoded:
    """Box at the score-map peak: centre = (cell + offset) * stride, size = size map * crop size.

    ``score`` is 1x1xHxW, ``size`` and ``offset`` 1x2xHxW (NCHW); the box is in pixels of the
    ``crop_size`` search crop.
    """
    _, _, rows, cols = score.shape
    flat = int(np.argmax(score[0, 0]))
    r, c = divmod(flat, cols)
    stride = crop_size / cols
    cx = (c + float(offset[0, 0, r, c])) * stride
    cy = (r + float(offset[0, 1, r, c])) * stride
    w, h = float(size[0, 0, r, c]) * crop_size, float(size[0, 1, r, c]) * crop_size
    return Decoded((r, c), float(score[0, 0, r, c]), Box(cx, cy, w, h))


class Tracker(Protocol):
    def initialize(self, image: np.ndarray, box: Box) -> None: ...

    def track(self, image: np.ndarray) -> Box: ...


class NetTracker:
    """Single-object tracker around a template/search network.

    The template crop is cut once at initialisation; each frame's search crop is centred on
    the previous box, ``search_context`` times its geometric-mean side.
    """

    def __init__(self, infer: Infer, preprocessing: Preprocessing, template_input: str = "template", search_input: str = "search"):
        self._infer = infer
        self._pre = preprocessing
        self._names = (template_input, search_input)
        self._template: np.ndarray | None = None
        self._box: Box | None = None
        self.last: Decoded | None = None

    def initialize(self, image: np.ndarray, box: Box) -> None:
        side = math.sqrt(box.w * box.h) * self._pre.template_context
        self._template = normalize(crop(image, (box.cx, box.cy), side, self._pre.template_size), self._pre)
        self._box = box

    def track(self, image: np.ndarray) -> Box:
        if self._template is None or self._box is None:
            raise RuntimeError("initialize() must be called before track()")
        prev, size = self._box, self._pre.search_size
        side = math.sqrt(prev.w * prev.h) * self._pre.search_context
        search = normalize(crop(image, (prev.cx, prev.cy), side, size), self._pre)
        out = self._infer({self._names[0]: self._template, self._names[1]: search})
        self.last = decode(out["score"], out["size"], out["offset"], size)
        scale = side / size
        b = self.last.box
        self._box = Box(prev.cx + (b.cx - size / 2) * scale, prev.cy + (b.cy - size / 2) * scale, b.w * scale, b.h * scale)
        return self._box
