"""The tracker loop, every rule of it read from a tracking preset (``tracking:`` in ``zoo.yaml``).

A single-object tracker of this family is a network plus a loop: cut a template crop around the
first box once, then per frame cut a search crop around the previous box, run the network, pick
the peak of the (windowed) score map, decode the box there and map it back to the frame. A trained
checkpoint only tracks well when inference crops exactly as training did, so each rule is a field
of :class:`zoo.schema.TrackingPreset` (crop side and rounding, padding, interpolation, channel order,
normalisation, window, decode, map-back, clipping, state rounding); the catalog's default preset is
OSTrack's (``lib/test/tracker/ostrack.py`` with ``sample_target``, ``hann2d``, ``cal_bbox``,
``map_box_back`` and ``clip_box``). Another loop (e.g. OpenCV's TrackerVit) is another preset.

Pure geometry and array code: :class:`TrackerLoop` drives any ``infer`` callable (catalog-named
NCHW float32 arrays in, ``score``/``size``/``offset`` out), so the same loop runs on PyTorch eager
and every exported artifact (``compare.tracking.tracker.Tracker`` binds it to a runner and times it).

Conventions: frames are ``H x W x 3`` uint8 **RGB** arrays; boxes are ``(x, y, w, h)`` in frame
pixels, ``(x, y)`` the top-left corner (OSTrack's and pytracking's convention).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from zoo.errors import UsageError
from zoo.evaluation.metrics import iou
from zoo.schema import InputRule, Preprocessing, TrackingPreset

Infer = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
XYWH = tuple[float, float, float, float]

_INTERPOLATION = {"linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA,
                  "cubic": cv2.INTER_CUBIC}


@dataclass(frozen=True)
class Box:
    """Axis-aligned box: centre x/y, width, height, in pixels."""

    cx: float
    cy: float
    w: float
    h: float

    def iou(self, other: "Box") -> float:
        """IoU of two continuous boxes (:func:`zoo.evaluation.metrics.iou` with ``pixels=False``:
        agreement between two trackers' boxes, not accuracy against ground truth)."""
        return float(iou(np.asarray(self.xywh()), np.asarray(other.xywh()), pixels=False)[0])

    def center_distance(self, other: "Box") -> float:
        return math.hypot(self.cx - other.cx, self.cy - other.cy)

    @classmethod
    def from_xywh(cls, box: XYWH) -> "Box":
        x, y, w, h = box
        return cls(x + w / 2, y + h / 2, w, h)

    def xywh(self) -> XYWH:
        return (self.cx - self.w / 2, self.cy - self.h / 2, self.w, self.h)


# -- geometry ------------------------------------------------------------------------------------
def crop_side(w: float, h: float, factor: float) -> int:
    """The crop's side in frame pixels: ``ceil(sqrt(w*h) * factor)``."""
    side = math.ceil(math.sqrt(w * h) * factor)
    if side < 1:
        raise UsageError(f"box {w:g}x{h:g} is too small to crop (side {side})")
    return side


def crop_origin(box: XYWH, side: float, rule: str) -> tuple[float, float]:
    """Top-left of a ``side`` crop around ``box``: ``center_round`` = ``round(cx - side/2)`` (Python's
    round, half to even, as OSTrack), ``box_trunc`` = ``x + trunc((w - side)/2)`` (C++ integer division,
    on an integer box and side), ``exact`` = ``cx - side/2`` (no rounding; the map-back of OSTrack)."""
    x, y, w, h = box
    if rule == "center_round":
        return float(round(x + 0.5 * w - side * 0.5)), float(round(y + 0.5 * h - side * 0.5))
    if rule == "box_trunc":
        return float(int(x) + int((int(w) - int(side)) / 2)), float(int(y) + int((int(h) - int(side)) / 2))
    if rule == "exact":
        return x + 0.5 * w - side * 0.5, y + 0.5 * h - side * 0.5
    raise ValueError(f"unknown crop origin rule {rule!r}")


#: a crop whose padded side x side x 3 copy fits in this many bytes is cut exactly as OSTrack's
#: ``sample_target`` (a padded copy, then ``cv2.resize``: what OpenCV's TrackerVit does too, so an
#: ``--for opencv`` artifact's check compares like with like); a larger one (a box grown far beyond
#: the frame) is resampled straight from the frame into the output, so no crop ever allocates more
#: than this budget plus the output (8192 x 8192 pixels)
EXACT_CROP_BYTES = 3 * 8192 * 8192


def cut(frame: np.ndarray, x1: int, y1: int, side: int, out_size: int, *, exclusive_edge: bool = True,
        pad_value: tuple[float, float, float] = (0, 0, 0), interpolation: str = "linear") -> np.ndarray:
    """The ``side`` x ``side`` window at ``(x1, y1)`` of ``frame``, padded with ``pad_value`` outside the
    frame (``copyMakeBorder``, constant) and resized to ``out_size`` (``cv2.resize``): OSTrack's
    ``sample_target``. With ``exclusive_edge`` a window reaching the right/bottom edge pads the last
    column/row instead of copying it, as ``max(x2 - W + 1, 0)`` does there. Returns HxWx3 uint8.

    A window whose padded copy would exceed :data:`EXACT_CROP_BYTES` is resampled by :func:`_warp_cut`
    (same geometry, memory bounded by the frame and the output)."""
    H, W = frame.shape[:2]
    x1, y1, side = int(x1), int(y1), int(side)
    if 3 * side * side > EXACT_CROP_BYTES:
        return _warp_cut(frame, x1, y1, side, out_size, exclusive_edge=exclusive_edge, pad_value=pad_value,
                         interpolation=interpolation)
    x2, y2 = x1 + side, y1 + side
    edge = 1 if exclusive_edge else 0
    x1_pad, y1_pad = max(0, -x1), max(0, -y1)
    x2_pad, y2_pad = max(x2 - W + edge, 0), max(y2 - H + edge, 0)
    value = [float(v) for v in pad_value]
    if x1 + x1_pad >= x2 - x2_pad or y1 + y1_pad >= y2 - y2_pad:  # the window misses the frame entirely
        padded = np.empty((side, side, 3), np.uint8)
        padded[:] = np.clip(np.rint(value), 0, 255).astype(np.uint8)
    else:
        inner = frame[y1 + y1_pad:y2 - y2_pad, x1 + x1_pad:x2 - x2_pad]
        padded = cv2.copyMakeBorder(inner, y1_pad, y2_pad, x1_pad, x2_pad, cv2.BORDER_CONSTANT, value=value)
    if padded.shape[0] == out_size and padded.shape[1] == out_size:
        return np.ascontiguousarray(padded)
    return cv2.resize(padded, (out_size, out_size), interpolation=_INTERPOLATION[interpolation])


def _warp_cut(frame: np.ndarray, x1: int, y1: int, side: int, out_size: int, *, exclusive_edge: bool,
              pad_value: tuple[float, float, float], interpolation: str) -> np.ndarray:
    """:func:`cut` of a huge window without its padded copy: each output pixel is sampled from the
    frame at the position ``cv2.resize`` maps it to (pixel centres aligned), ``pad_value`` outside
    the frame. Allocates the ``out_size`` output only (area interpolation falls back to linear)."""
    H, W = frame.shape[:2]
    if exclusive_edge:  # the last column/row counts as padding once the window reaches it
        frame = frame[:H - 1 if y1 + side >= H else H, :W - 1 if x1 + side >= W else W]
    scale = side / out_size
    inverse = np.array([[scale, 0.0, x1 + 0.5 * scale - 0.5], [0.0, scale, y1 + 0.5 * scale - 0.5]], np.float64)
    flags = _INTERPOLATION["linear" if interpolation == "area" else interpolation] | cv2.WARP_INVERSE_MAP
    value = tuple(float(v) for v in pad_value)
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        out = np.empty((out_size, out_size, 3), np.uint8)
        out[:] = np.clip(np.rint(value), 0, 255).astype(np.uint8)
        return out
    return cv2.warpAffine(np.ascontiguousarray(frame), inverse, (out_size, out_size), flags=flags,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=value)


def _affine(x: np.ndarray, rule: InputRule | Preprocessing) -> np.ndarray:
    return (x * np.float32(rule.scale) - np.asarray(rule.mean, np.float32)) / np.asarray(rule.std, np.float32)


@lru_cache(maxsize=16)
def _lookup(scale: float, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, 256) float32: the normalised value of every uint8 level per channel, computed with the
    same float32 operations as the arithmetic path (so both give identical bits)."""
    levels = np.repeat(np.arange(256, dtype=np.float32)[:, None], 3, axis=1)
    x = (levels * np.float32(scale) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.T, dtype=np.float32)


def to_input(crop_hwc: np.ndarray, rule: InputRule | Preprocessing) -> np.ndarray:
    """An RGB crop (HWC, 0..255) -> ``1x3xHxW`` float32: channel order, ``(px * scale - mean) / std``.

    uint8 crops go through a per-channel lookup table (same values, ~10x faster than the arithmetic)."""
    bgr = getattr(rule, "color", "RGB") == "BGR"
    if crop_hwc.dtype == np.uint8:
        lut = _lookup(float(rule.scale), tuple(rule.mean), tuple(rule.std))
        h, w, _ = crop_hwc.shape
        out = np.empty((1, 3, h, w), np.float32)
        for c in range(3):  # the network's channel c is the crop's channel c (RGB) or 2 - c (BGR)
            src = 2 - c if bgr else c
            np.take(lut[c], crop_hwc[:, :, src], out=out[0, c])
        return out
    x = np.asarray(crop_hwc, dtype=np.float32)
    if bgr:
        x = x[..., ::-1]
    return np.ascontiguousarray(_affine(x, rule).transpose(2, 0, 1)[None], dtype=np.float32)


def hann(n: int) -> np.ndarray:
    """OSTrack's centred Hann window: ``0.5 * (1 - cos(2*pi*k/(n+1)))`` for k = 1..n (float32)."""
    k = np.arange(1, n + 1, dtype=np.float64)
    return (0.5 * (1.0 - np.cos(2.0 * math.pi * k / (n + 1)))).astype(np.float32)


def hann2d(rows: int, cols: int) -> np.ndarray:
    """Outer product of two Hann windows (``rows`` x ``cols``), as multiplied onto the score map."""
    return np.outer(hann(rows), hann(cols)).astype(np.float32)


def clip_box(box: XYWH, frame_h: int, frame_w: int, margin: float = 0) -> XYWH:
    """OSTrack's ``clip_box``: corners into the frame keeping at least ``margin`` pixels of box."""
    x1, y1, w, h = box
    x2, y2 = x1 + w, y1 + h
    x1 = min(max(0, x1), frame_w - margin)
    x2 = min(max(margin, x2), frame_w)
    y1 = min(max(0, y1), frame_h - margin)
    y2 = min(max(margin, y2), frame_h)
    return (float(x1), float(y1), float(max(margin, x2 - x1)), float(max(margin, y2 - y1)))


@dataclass(frozen=True)
class Decoded:
    """The head's answer on one search crop: the peak cell, its score and the box (crop px)."""

    cell: tuple[int, int]  # (row, col) of the score-map argmax
    score: float
    box: Box
    #: the score after the window (the value the argmax compared); ``score`` is the network's
    windowed_score: float = float("nan")


def peak(score: np.ndarray, window: np.ndarray | None = None) -> tuple[int, int, float, float]:
    """``(row, col, raw score, windowed score)`` of the argmax of ``score * window`` (first on ties)."""
    s = np.asarray(score, dtype=np.float32).reshape(score.shape[-2:])
    response = s * window if window is not None else s
    r, c = divmod(int(np.argmax(response)), s.shape[1])
    return r, c, float(s[r, c]), float(response[r, c])


def decode_fractions(score: np.ndarray, size: np.ndarray, offset: np.ndarray,
                     window: np.ndarray | None = None) -> tuple[tuple[int, int], float, float, tuple[float, float, float, float]]:
    """OSTrack's ``cal_bbox``: at the peak cell ``(row, col)`` of the windowed score, centre
    ``((col + offset_x)/n, (row + offset_y)/n)`` and size ``(size_w, size_h)``, fractions of the crop.
    Returns ``(cell, raw score, windowed score, (cx, cy, w, h))``."""
    rows, cols = score.shape[-2:]
    r, c, raw, windowed = peak(score, window)
    size, offset = np.asarray(size).reshape(2, rows, cols), np.asarray(offset).reshape(2, rows, cols)
    cx = (c + float(offset[0, r, c])) / cols
    cy = (r + float(offset[1, r, c])) / rows
    return (r, c), raw, windowed, (cx, cy, float(size[0, r, c]), float(size[1, r, c]))


def decode(score: np.ndarray, size: np.ndarray, offset: np.ndarray, crop_size: int,
           window: np.ndarray | None = None) -> Decoded:
    """Box at the (windowed) score-map peak, in pixels of the ``crop_size`` search crop.

    ``score`` is 1x1xHxW, ``size`` and ``offset`` 1x2xHxW (NCHW)."""
    cell, raw, windowed, (cx, cy, w, h) = decode_fractions(score, size, offset, window)
    return Decoded(cell, raw, Box(cx * crop_size, cy * crop_size, w * crop_size, h * crop_size), windowed)


# -- the loop ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """What one :meth:`TrackerLoop.track` call saw: the crop it cut and the answer it decoded."""

    crop_origin: tuple[float, float]
    crop_side: int
    cell: tuple[int, int]
    score: float  # the score the preset reports (raw or windowed)
    raw_score: float
    windowed_score: float
    fractions: tuple[float, float, float, float]
    accepted: bool


#: an initial box may be at most this many times the frame's width / height
MAX_BOX_SCALE = 2


def check_frame(frame: np.ndarray) -> np.ndarray:
    """A frame must be an ``H x W x 3`` uint8 array (RGB) with ``H, W >= 1``."""
    if (not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8
            or frame.shape[0] < 1 or frame.shape[1] < 1):
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", type(frame).__name__)
        raise UsageError(f"a frame must be an HxWx3 uint8 RGB array with H, W >= 1, got shape {shape} dtype {dtype}")
    return frame


def _is_number(value) -> bool:
    """A real number that is not a bool (``True`` is an int to Python, never a coordinate)."""
    return isinstance(value, (numbers.Real, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_box(box) -> XYWH:
    """An initial box ``(x, y, w, h)``: a sequence of four finite numbers (not a string, not bools),
    positive width and height."""
    if isinstance(box, (str, bytes)) or not hasattr(box, "__iter__"):
        raise UsageError(f"a box is four numbers x,y,w,h, got {box!r}")
    items = list(box)
    if len(items) != 4 or not all(_is_number(v) for v in items):
        raise UsageError(f"a box is four numbers x,y,w,h, got {box!r}")
    values = tuple(float(v) for v in items)
    if not all(math.isfinite(v) for v in values):
        raise UsageError(f"a box is four finite numbers x,y,w,h, got {box!r}")
    if values[2] <= 0 or values[3] <= 0:
        raise UsageError(f"box {box!r}: width and height must be > 0")
    return values  # type: ignore[return-value]


def _size(shape: tuple[int, ...]) -> str:
    """``WxH`` of an array shape ``(H, W, ...)``."""
    return f"{shape[1]}x{shape[0]}"


def check_box_in_frame(box: XYWH, frame_shape: tuple[int, ...]) -> XYWH:
    """``box`` (checked by :func:`check_box`) must overlap the frame of ``frame_shape`` (H, W, ...) and
    be at most :data:`MAX_BOX_SCALE` times its width and height: the crops around it stay bounded."""
    x, y, w, h = box
    H, W = frame_shape[:2]
    if not (x < W and x + w > 0 and y < H and y + h > 0):
        raise UsageError(f"box {_fmt(box)} (x,y,w,h) does not overlap the first frame ({_size(frame_shape)} pixels)")
    if w > MAX_BOX_SCALE * W or h > MAX_BOX_SCALE * H:
        raise UsageError(f"box {_fmt(box)} (x,y,w,h) is more than {MAX_BOX_SCALE}x the first frame ({_size(frame_shape)} pixels)")
    return box


def _fmt(box: XYWH) -> str:
    """``x,y,w,h`` as the user wrote it."""
    return ",".join(f"{v:g}" for v in box)


class TrackerLoop:
    """The tracker loop of one preset around an ``infer`` callable.

    ``initialize(frame, box)`` cuts and keeps the template; ``track(frame)`` returns ``(box, score)``
    with ``box`` = ``(x, y, w, h)`` in frame pixels. ``last`` holds the last :class:`Step`.
    """

    def __init__(self, preset: TrackingPreset, infer: Infer, template_size: int = 128, search_size: int = 256,
                 template_input: str = "template", search_input: str = "search"):
        self.preset = preset
        self._infer = infer
        self.template_size, self.search_size = int(template_size), int(search_size)
        self._names = (template_input, search_input)
        self._template: np.ndarray | None = None
        self._window: np.ndarray | None = None
        self.state: XYWH | None = None
        self.last: Step | None = None
        self._frame_shape: tuple[int, ...] = ()

    def _state(self, box: XYWH) -> XYWH:
        if self.preset.state.rounding == "floor":
            return tuple(float(math.floor(v)) for v in box)  # type: ignore[return-value]
        return tuple(float(v) for v in box)  # type: ignore[return-value]

    def _pad_value(self, frame: np.ndarray) -> tuple[float, float, float]:
        if self.preset.crop.padding == "mean":
            return tuple(float(v) for v in frame.reshape(-1, 3).mean(axis=0, dtype=np.float64))  # type: ignore[return-value]
        return (0.0, 0.0, 0.0)

    def crop(self, frame: np.ndarray, box: XYWH, factor: float, out_size: int) -> tuple[np.ndarray, tuple[float, float], int]:
        """``(network input 1x3xSxS, crop top-left, crop side)`` of a ``factor`` crop around ``box``."""
        rule = self.preset.crop
        side = crop_side(box[2], box[3], factor)
        x1, y1 = crop_origin(box, side, rule.origin)
        pixels = cut(frame, int(x1), int(y1), side, out_size, exclusive_edge=rule.exclusive_edge,
                     pad_value=self._pad_value(frame), interpolation=rule.interpolation)
        return to_input(pixels, self.preset.input), (x1, y1), side

    @property
    def template(self) -> np.ndarray | None:
        """The network input of the kept template (the same array object until the next initialize)."""
        return self._template

    def initialize(self, frame: np.ndarray, box) -> None:
        """Cut the template around ``box`` (x, y, w, h) in ``frame`` (HxWx3 uint8 RGB) and keep it."""
        frame = check_frame(frame)
        state = self._state(check_box_in_frame(check_box(box), frame.shape))
        self._template, _, _ = self.crop(frame, state, self.preset.crop.template_factor, self.template_size)
        self.state = state
        self.last = None
        self._frame_shape = frame.shape

    def map_back(self, previous: XYWH, crop_origin_xy: tuple[float, float], side: int,
                 fractions: tuple[float, float, float, float]) -> XYWH:
        """A box given as fractions of the search crop (centre x, y, size w, h) in frame pixels."""
        rule = self.preset.decode
        x, y, w, h = previous
        if rule.map_side == "crop":
            span = float(side)
        else:  # factor_floor_sqrt: OpenCV's returnfromcrop
            span = float(self.preset.crop.search_factor * math.floor(math.sqrt(w * h)))
        fx, fy, fw, fh = fractions
        bw, bh = fw * span, fh * span
        if rule.map_origin == "previous_center":
            # the crop taken as centred on the previous box (OSTrack's map_box_back)
            cx = (x + 0.5 * w) + (fx - 0.5) * span
            cy = (y + 0.5 * h) + (fy - 0.5) * span
        else:  # crop_rule: the crop origin rule applied to the mapping side
            ox, oy = (crop_origin_xy if span == side else crop_origin(previous, span, self.preset.crop.origin))
            cx, cy = ox + fx * span, oy + fy * span
        return (cx - 0.5 * bw, cy - 0.5 * bh, bw, bh)

    def track(self, frame: np.ndarray) -> tuple[XYWH, float]:
        """The target's box ``(x, y, w, h)`` in ``frame`` and the score the preset reports."""
        if self._template is None or self.state is None:
            raise UsageError("call initialize(frame, box) before track(frame)")
        frame = check_frame(frame)
        if frame.shape != self._frame_shape:
            raise UsageError(f"a {_size(frame.shape)} frame after a {_size(self._frame_shape)} first frame: "
                             "every frame must have the first frame's size")
        previous = self.state
        search, origin, side = self.crop(frame, previous, self.preset.crop.search_factor, self.search_size)
        out = self._infer({self._names[0]: self._template, self._names[1]: search})
        score = out["score"]
        rows, cols = score.shape[-2:]
        window = None
        if self.preset.decode.window == "hann":
            if self._window is None or self._window.shape != (rows, cols):
                self._window = hann2d(rows, cols)
            window = self._window
        cell, raw, windowed, fractions = decode_fractions(score, out["size"], out["offset"], window)
        reported = raw if self.preset.decode.score == "raw" else windowed
        threshold = self.preset.state.score_threshold
        accepted = threshold is None or reported >= threshold
        box = previous
        if accepted:
            box = self.map_back(previous, origin, side, fractions)
            margin = self.preset.state.clip_margin
            if margin is not None:
                box = clip_box(box, frame.shape[0], frame.shape[1], margin)
            box = self._state(box)
            self.state = box
        self.last = Step(origin, side, cell, reported, raw, windowed, fractions, accepted)
        return box, reported
