"""Calibration and held-out verification pairs for reduced precisions, cut the way the tracker cuts.

A pair is a template crop around a target box and a search crop around a *jittered* copy of the
box (the previous frame's estimate a tracker would crop around), both cut by
:meth:`zoo.tracking.TrackerLoop.crop` with the variant's tracking preset. Sources:

- ``bundled`` (default): the photographs of :mod:`zoo.sample_inputs` with their target boxes;
- a folder of sequence folders (a dataset root) or one sequence folder: template on a random
  annotated frame, search on a later frame around its jittered ground truth;
- a folder of images: the target box is a random box in the middle half of each image.

Every pair has a key ``(item, draw)``; calibration pairs use draws ``0..n-1`` of stream
``calibration`` and verification pairs of stream ``verification``, seeded differently, so the two
sets never share a pair (:func:`disjoint` checks the crops themselves). :class:`CalibrationSource`
carries the sha256 of what the crops were cut from (file bytes, or the bundled images' pixels),
recorded in the manifest.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.datasets.frames import is_sequence_folder, list_frames, open_sequence_folder, read_frame, sequence_frames
from zoo.errors import UsageError
from zoo.io_roles import role_inputs
from zoo.sample_inputs import SCENES, sample_image
from zoo.schema import TrackingPreset, Variant
from zoo.tracking import TrackerLoop

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
STREAMS = {"calibration": 0x5A11, "verification": 0x7E51}


@dataclass
class _Item:
    """One place crops come from: frames (paths or a bundled image name) and their boxes."""

    name: str
    frames: list  # Path or bundled image name, per frame
    boxes: np.ndarray  # (N, 4) x, y, w, h per frame


@dataclass
class CalibrationSource:
    """Where crops come from; ``sha256`` covers the bytes (or pixels) they are cut from."""

    kind: str  # bundled | sequences | images
    path: str | None
    sha256: str
    items: list[_Item] = field(repr=False, default_factory=list)

    def describe(self) -> dict:
        """What the manifest records."""
        return {"kind": self.kind, "path": self.path, "sha256": self.sha256, "items": len(self.items)}


def _bundled() -> CalibrationSource:
    digest = hashlib.sha256()
    items = []
    for scene in SCENES:
        image = sample_image(scene.image)
        digest.update(scene.image.encode() + repr(scene.box).encode() + image.tobytes())
        cx, cy, w, h = scene.box
        items.append(_Item(scene.image, [scene.image], np.array([[cx - w / 2, cy - h / 2, w, h]])))
    return CalibrationSource("bundled", None, digest.hexdigest(), items)


def _hash_files(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for p in paths:
        digest.update(str(p.relative_to(root)).encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return digest.hexdigest()


def open_source(path: str | Path | None) -> CalibrationSource:
    """The calibration source ``path`` names (None: the bundled photographs); bad paths are usage errors."""
    if path is None or str(path) == "bundled":
        return _bundled()
    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"--calibration {path}: not a directory (a dataset root, a sequence folder or a folder of images)")
    folders = [root] if is_sequence_folder(root) else sorted(p for p in root.iterdir() if is_sequence_folder(p))
    if folders:
        items, files = [], []
        for folder in folders:
            seq = open_sequence_folder(folder)
            frames = sequence_frames(seq)[: len(seq)]
            ok = np.isfinite(seq.ground_truth).all(axis=1) & (seq.ground_truth[:, 2] > 1) & (seq.ground_truth[:, 3] > 1)
            idx = np.flatnonzero(ok)
            if len(idx) >= 2:
                items.append(_Item(seq.name, [frames[i] for i in idx], seq.ground_truth[idx] - [1, 1, 0, 0]))
                files.extend([frames[i] for i in idx] + [seq.annotation])
        if not items:
            raise UsageError(f"--calibration {path}: no sequence with two annotated frames")
        return CalibrationSource("sequences", str(root), _hash_files(sorted(set(files)), root), items)
    images = [p for p in list_frames(root) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise UsageError(f"--calibration {path}: neither sequence folders nor images ({', '.join(IMAGE_SUFFIXES)})")
    items = [_Item(p.name, [p], np.zeros((1, 4))) for p in images]  # boxes drawn per pair (see _frame_box)
    return CalibrationSource("images", str(root), _hash_files(images, root), items)


def _read(frame) -> np.ndarray:
    if isinstance(frame, str):
        return sample_image(frame)
    return read_frame(frame)


def _frame_box(item: _Item, index: int, image: np.ndarray, rng: np.random.Generator) -> tuple[float, ...]:
    if item.boxes[index, 2] > 0:
        return tuple(float(v) for v in item.boxes[index])
    h, w = image.shape[:2]
    bw, bh = rng.uniform(0.15, 0.4) * w, rng.uniform(0.15, 0.4) * h
    cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
    return (cx - bw / 2, cy - bh / 2, bw, bh)


def _jitter(box: tuple[float, ...], rng: np.random.Generator, shift: float, scale: float) -> tuple[float, ...]:
    x, y, w, h = box
    s = math.exp(rng.uniform(-scale, scale))
    side = math.sqrt(w * h)
    cx, cy = x + w / 2 + rng.uniform(-shift, shift) * side, y + h / 2 + rng.uniform(-shift, shift) * side
    return (cx - w * s / 2, cy - h * s / 2, w * s, h * s)


def make_pairs(variant: Variant, preset: TrackingPreset, source: CalibrationSource, n: int, stream: str,
               shift: float = 0.3, scale: float = 0.2) -> list[dict[str, np.ndarray]]:
    """``n`` pairs of ``stream`` (``calibration`` or ``verification``), keyed by the catalog's input names."""
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}")
    pre = variant.preprocessing
    loop = TrackerLoop(preset, infer=None, template_size=pre.template_size, search_size=pre.search_size)
    names = role_inputs(variant)
    pairs = []
    for draw in range(n):
        rng = np.random.default_rng([STREAMS[stream], draw])
        item = source.items[draw % len(source.items)]
        t_idx = int(rng.integers(len(item.frames)))
        s_idx = min(len(item.frames) - 1, t_idx + int(rng.integers(1, 11))) if len(item.frames) > 1 else t_idx
        t_img = _read(item.frames[t_idx])
        s_img = t_img if s_idx == t_idx else _read(item.frames[s_idx])
        t_box = _frame_box(item, t_idx, t_img, rng)
        if len(item.frames) == 1:  # one photograph: annotation noise stands in for another frame's template
            t_box = _jitter(t_box, rng, 0.05, 0.05)
        s_box = t_box if s_idx == t_idx and item.boxes[s_idx, 2] <= 0 else _frame_box(item, s_idx, s_img, rng)
        template, _, _ = loop.crop(t_img, t_box, preset.crop.template_factor, pre.template_size)
        search, _, _ = loop.crop(s_img, _jitter(s_box, rng, shift, scale), preset.crop.search_factor, pre.search_size)
        pairs.append({names["template"]: template, names["search"]: search})
    return pairs


def pair_digest(pair: dict[str, np.ndarray]) -> str:
    """sha256 of a pair's arrays (names sorted)."""
    digest = hashlib.sha256()
    for name in sorted(pair):
        digest.update(name.encode() + np.ascontiguousarray(pair[name]).tobytes())
    return digest.hexdigest()


def disjoint(a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]]) -> bool:
    """Whether no pair of ``a`` equals a pair of ``b`` (compared by content)."""
    return not ({pair_digest(p) for p in a} & {pair_digest(p) for p in b})
