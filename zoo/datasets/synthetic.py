"""Synthetic tracking sequences with exact ground truth, built from the photographs bundled with
scikit-image (no download), written in each benchmark's layout.

A textured target (a crop of one photograph) moves over a background (another photograph) along a
fixed path, changes scale and aspect, leaves the frame through the right edge (fully, when the
sequence is long enough) and comes back. The ground truth is the part of the target inside the
frame, in 0-based pixel coordinates (x, y, w, h; the target is pasted at integer positions and
sizes, so the box is exact); frames where none of it is inside are marked out of view (LaSOT's
``out_of_view.txt``) with a ``0,0,0,0`` box.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from zoo.datasets.specs import dataset_spec, split_names
from zoo.errors import UsageError
from zoo.fileio import atomic_write_bytes

#: (t, centre x / W, centre y / H, scale, aspect) keyframes of the target's path, t in [0, 1]
PATH = ((0.00, 0.35, 0.50, 1.00, 1.00), (0.30, 0.62, 0.38, 1.30, 0.90), (0.50, 0.95, 0.45, 1.10, 1.00),
        (0.60, 1.30, 0.50, 1.00, 1.10), (0.72, 0.90, 0.58, 0.85, 1.15), (1.00, 0.42, 0.55, 1.00, 1.00))
#: (background photograph, target photograph, target window y0, y1, x0, x1 in that photograph)
SCENES = (("coffee", "astronaut", 30, 230, 150, 330), ("rocket", "chelsea", 40, 250, 130, 360),
          ("coffee", "chelsea", 40, 250, 130, 360), ("rocket", "astronaut", 30, 230, 150, 330))
LAYOUTS = ("lasot", "lasot_ext", "tnl2k", "otb", "plain")


@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    import skimage.data

    image = getattr(skimage.data, name)()
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


@dataclass(frozen=True)
class SyntheticSequence:
    """Frames (RGB uint8) and exact ground truth of one synthetic sequence."""

    name: str
    frames: list[np.ndarray]
    ground_truth: np.ndarray  # (N, 4) float64 x, y, w, h (0-based), 0,0,0,0 when out of view
    visible: np.ndarray  # (N,) bool


def _interp(t: float) -> tuple[float, float, float, float]:
    keys = np.asarray(PATH)
    return tuple(float(np.interp(t, keys[:, 0], keys[:, i])) for i in range(1, 5))  # type: ignore[return-value]


def make_sequence(name: str = "synthetic", frames: int = 12, size: tuple[int, int] = (320, 240), scene: int = 0,
                  target: float = 0.22) -> SyntheticSequence:
    """A sequence of ``frames`` frames of ``size`` (W, H); ``scene`` picks the photographs,
    ``target`` the target's side as a fraction of the frame width at scale 1."""
    if frames < 2:
        raise UsageError("a synthetic sequence needs at least 2 frames")
    width, height = size
    bg_name, tg_name, y0, y1, x0, x1 = SCENES[scene % len(SCENES)]
    background = cv2.resize(_photo(bg_name), (width, height), interpolation=cv2.INTER_AREA)
    texture = _photo(tg_name)[y0:y1, x0:x1]
    base_w = target * width
    base_h = base_w * texture.shape[0] / texture.shape[1]
    images, boxes, visible = [], [], []
    for k in range(frames):
        cx, cy, scale, aspect = _interp(k / (frames - 1))
        w = max(4, int(round(base_w * scale * math.sqrt(aspect))))
        h = max(4, int(round(base_h * scale / math.sqrt(aspect))))
        x = int(round(cx * width - w / 2))
        y = int(round(cy * height - h / 2))
        frame = background.copy()
        patch = cv2.resize(texture, (w, h), interpolation=cv2.INTER_AREA)
        fx0, fy0, fx1, fy1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
        if fx1 > fx0 and fy1 > fy0:
            frame[fy0:fy1, fx0:fx1] = patch[fy0 - y:fy1 - y, fx0 - x:fx1 - x]
            boxes.append((fx0, fy0, fx1 - fx0, fy1 - fy0))
            visible.append(True)
        else:
            boxes.append((0, 0, 0, 0))
            visible.append(False)
        images.append(frame)
    return SyntheticSequence(name, images, np.asarray(boxes, np.float64), np.asarray(visible, bool))


def _encode(frame: np.ndarray, suffix: str) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix == ".jpg" else []
    ok, data = cv2.imencode(suffix, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params)
    if not ok:  # pragma: no cover - cv2 always encodes these
        raise UsageError(f"cannot encode a {suffix} frame")
    return data.tobytes()


def _boxes_text(boxes: np.ndarray, sep: str) -> str:
    return "".join(sep.join(str(int(v)) for v in row) + "\n" for row in boxes)


def write_sequence(seq: SyntheticSequence, root: Path, layout: str) -> Path:
    """Write ``seq`` under ``root`` as ``layout`` lays a sequence out; returns its folder.

    - ``lasot`` / ``lasot_ext``: ``<class>/<name>/img/00000001.jpg``, ``groundtruth.txt`` (comma),
      ``full_occlusion.txt`` and ``out_of_view.txt`` (one comma-separated line), ``nlp.txt``;
      ``<name>`` is ``<class>-<N>``;
    - ``tnl2k``: ``<name>/imgs/00001.png``, ``groundtruth.txt``, ``language.txt``;
    - ``otb``: ``<name>/img/0001.jpg``, ``groundtruth_rect.txt`` (tab separated);
    - ``plain``: ``<name>/0001.png`` ... beside ``groundtruth.txt``.
    """
    root = Path(root)
    if layout in ("lasot", "lasot_ext"):
        cls = seq.name.rsplit("-", 1)[0]
        folder = root / cls / seq.name
        frame_dir, pattern, suffix = folder / "img", "{:08d}", ".jpg"
        hidden = ",".join(str(int(not v)) for v in seq.visible)
        atomic_write_bytes(folder / "full_occlusion.txt", (",".join("0" for _ in seq.visible) + "\n").encode())
        atomic_write_bytes(folder / "out_of_view.txt", (hidden + "\n").encode())
        atomic_write_bytes(folder / "nlp.txt", b"the textured patch moving over the photograph\n")
        atomic_write_bytes(folder / "groundtruth.txt", _boxes_text(seq.ground_truth, ",").encode())
    elif layout == "tnl2k":
        folder = root / seq.name
        frame_dir, pattern, suffix = folder / "imgs", "{:05d}", ".png"
        atomic_write_bytes(folder / "language.txt", b"the textured patch moving over the photograph\n")
        atomic_write_bytes(folder / "groundtruth.txt", _boxes_text(seq.ground_truth, ",").encode())
    elif layout == "otb":
        folder = root / seq.name
        frame_dir, pattern, suffix = folder / "img", "{:04d}", ".jpg"
        atomic_write_bytes(folder / "groundtruth_rect.txt", _boxes_text(seq.ground_truth, "\t").encode())
    elif layout == "plain":
        folder = root / seq.name
        frame_dir, pattern, suffix = folder, "{:04d}", ".png"
        atomic_write_bytes(folder / "groundtruth.txt", _boxes_text(seq.ground_truth, ",").encode())
    else:
        raise UsageError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    for k, frame in enumerate(seq.frames, start=1):
        atomic_write_bytes(frame_dir / (pattern.format(k) + suffix), _encode(frame, suffix))
    return folder


def sequence_names(layout: str, count: int) -> list[str]:
    """Names for ``count`` synthetic sequences: the first names of the dataset's official test
    split (so the split selection finds them), ``Synthetic<k>`` for OTB and plain folders."""
    if layout in ("otb", "plain"):
        return [f"Synthetic{k + 1}" for k in range(count)]
    names = split_names(dataset_spec(layout)) or []
    return names[:count]


def write_dataset(root: Path, layout: str, count: int = 2, frames: int = 12, size: tuple[int, int] = (320, 240),
                  lengths: list[int] | None = None) -> list[SyntheticSequence]:
    """``count`` synthetic sequences in ``layout`` under ``root`` (``lengths`` per sequence, else
    ``frames`` each); returns them (frames and exact ground truth)."""
    out = []
    for k, name in enumerate(sequence_names(layout, count)):
        seq = make_sequence(name, lengths[k] if lengths else frames, size, scene=k)
        write_sequence(seq, root, layout)
        out.append(seq)
    return out
