"""Calibration and held-out verification pairs for reduced precisions, cut the way the tracker cuts.

A pair is a template crop around a target box and a search crop around a *jittered* copy of the
box (the previous frame's estimate a tracker would crop around), both cut by
:meth:`zoo.tracking.TrackerLoop.crop` with the variant's tracking preset. Sources:

- ``bundled`` (default calibration): the bundled images of
  :data:`zoo.sample_inputs.CALIBRATION_IMAGES`, a random box in the middle half of each;
- a folder of sequence folders (a dataset root) or one sequence folder: template on a random
  annotated frame, search on a later frame around its jittered ground truth;
- a folder of images: the target box is a random box in the middle half of each image.

The tracker-level gate's held-out pairs (:func:`held_out_pairs`) never come from the calibration
source: they are cut from the scenes of :mod:`zoo.sample_inputs` (photographs with their target
boxes, none of them a calibration image), stream ``verification``, whatever ``--calibration`` says;
export and ``zoo compare`` judge the gate on the same pairs. Calibration pairs use draws ``0..n-1``
of stream ``calibration``, seeded differently (:func:`disjoint` checks the crops themselves); a
calibration set that cannot give the catalog's pair count of distinct crops is refused
(:func:`calibration_pairs`). :class:`CalibrationSource` carries the sha256 of what the crops were
cut from (file bytes, or the bundled images' pixels), recorded in the manifest.

Each image is decoded once per item of a source (not once per pair), reduced at decode time
(``cv2.IMREAD_REDUCED_COLOR_*``) while its long side stays at least :data:`DECODE_SIDE`, and
refused above :data:`MAX_PIXELS` (read from the header, before decoding).
"""
from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from zoo.datasets.frames import is_sequence_folder, list_frames, open_sequence_folder, read_frame, sequence_frames
from zoo.errors import UsageError, ZooError
from zoo.io_roles import role_inputs
from zoo.sample_inputs import CALIBRATION_IMAGES, SCENES, sample_image
from zoo.schema import QuantizationSpec, TrackingPreset, Variant
from zoo.tracking import TrackerLoop

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
STREAMS = {"calibration": 0x5A11, "verification": 0x7E51}
#: images above this many pixels are refused (read from the header, nothing decoded)
MAX_PIXELS = 150_000_000
#: an image is decoded at 1/2, 1/4 or 1/8 of its size while its long side stays at least this
#: (the crops are 128-256 px of a box at least 15% of the image's side: far coarser than this)
DECODE_SIDE = 2048
#: where crops repeat, calibration draws up to this many times the pairs it needs
DRAWS_PER_PAIR = 4
#: decoded frames kept at once while the pairs of one item are cut
_KEPT_FRAMES = 8
_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


@dataclass
class _Item:
    """One place crops come from: frames (paths or a bundled image name) and their boxes."""

    name: str
    frames: list  # Path or bundled image name, per frame
    boxes: np.ndarray  # (N, 4) x, y, w, h per frame


@dataclass
class CalibrationSource:
    """Where crops come from; ``sha256`` covers the bytes (or pixels) they are cut from."""

    kind: str  # bundled | held-out | sequences | images
    path: str | None
    sha256: str
    items: list[_Item] = field(repr=False, default_factory=list)
    #: pairs already cut, by (variant, preset, n, stream, jitter)
    cut: dict = field(repr=False, default_factory=dict)

    def describe(self) -> dict:
        """What the manifest records."""
        return {"kind": self.kind, "path": self.path, "sha256": self.sha256, "items": len(self.items)}


def _bundled() -> CalibrationSource:
    """The default calibration set: bundled images that are none of the held-out scenes."""
    digest = hashlib.sha256()
    for name in CALIBRATION_IMAGES:
        digest.update(name.encode() + sample_image(name).tobytes())
    items = [_Item(name, [name], np.zeros((1, 4))) for name in CALIBRATION_IMAGES]
    return CalibrationSource("bundled", None, digest.hexdigest(), items)


@lru_cache(maxsize=1)
def held_out_source() -> CalibrationSource:
    """Where the tracker-level gate's pairs come from: the scenes of :mod:`zoo.sample_inputs` with
    their target boxes (never a calibration source)."""
    digest = hashlib.sha256()
    items = []
    for scene in SCENES:
        image = sample_image(scene.image)
        digest.update(scene.image.encode() + repr(scene.box).encode() + image.tobytes())
        cx, cy, w, h = scene.box
        items.append(_Item(scene.image, [scene.image], np.array([[cx - w / 2, cy - h / 2, w, h]])))
    return CalibrationSource("held-out", None, digest.hexdigest(), items)


def _hash_files(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for p in paths:
        digest.update(str(p.relative_to(root)).encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return digest.hexdigest()


def open_source(path: "str | Path | CalibrationSource | None") -> CalibrationSource:
    """The calibration source ``path`` names (None: the bundled calibration images; an opened source
    is returned as it is); bad paths are usage errors."""
    if isinstance(path, CalibrationSource):
        return path
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


def reduction(pixels: int | None, long_side: int | None = None) -> int:
    """The decode reduction (1, 2, 4 or 8) for an image of ``pixels`` (its long side, when known)."""
    if not pixels:
        return 1
    side = long_side or math.isqrt(pixels)
    k = 1
    while k < 8 and side / (k * 2) >= DECODE_SIDE:
        k *= 2
    return k


def decode_frame(path: Path) -> tuple[np.ndarray, float]:
    """``(HxWx3 uint8 RGB, scale)`` of the image at ``path``, reduced at decode time (``scale``: the
    decoded size over the file's); above :data:`MAX_PIXELS` a usage error naming it."""
    from PIL import Image

    pixels, side, w = None, None, 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                pixels, side = int(w) * int(h), max(int(w), int(h))
    except Image.DecompressionBombError:  # PIL's own limit (above ours): far too large
        raise UsageError(f"--calibration: {path} has more than {MAX_PIXELS / 1e6:.0f} megapixels, "
                         f"the limit for calibration images (downscale it)") from None
    except Exception:  # noqa: BLE001 - PIL raises anything on a file it cannot parse; cv2 then says why
        pass
    if pixels is not None and pixels > MAX_PIXELS:
        raise UsageError(f"--calibration: {path} is {w}x{h} ({pixels / 1e6:.0f} megapixels); "
                         f"images above {MAX_PIXELS / 1e6:.0f} megapixels are refused (downscale it)")
    k = reduction(pixels, side)
    if k == 1:
        return read_frame(path), 1.0
    data = None
    try:
        raw = np.fromfile(str(path), dtype=np.uint8)
        data = cv2.imdecode(raw, _REDUCED[k]) if raw.size else None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read frame: {exc.strerror or exc}") from None
    if data is None:
        raise UsageError(f"{path}: not a readable image")
    return cv2.cvtColor(data, cv2.COLOR_BGR2RGB), data.shape[1] / w


def _read(frame) -> tuple[np.ndarray, float]:
    if isinstance(frame, str):
        return sample_image(frame), 1.0
    return decode_frame(frame)


def _frame_box(item: _Item, index: int, image: np.ndarray, scale: float, rng: np.random.Generator) -> tuple[float, ...]:
    if item.boxes[index, 2] > 0:
        return tuple(float(v) * scale for v in item.boxes[index])
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
    """``n`` pairs of ``stream`` (``calibration`` or ``verification``), keyed by the catalog's input names.

    Draw ``d`` uses item ``d % items`` and a generator seeded ``(stream, d)``; the pairs of one item
    are cut together, so each of its frames is decoded once (a few kept at a time)."""
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}")
    pre = variant.preprocessing
    loop = TrackerLoop(preset, infer=None, template_size=pre.template_size, search_size=pre.search_size)
    names = role_inputs(variant)
    plan: dict[int, list] = {}
    for draw in range(n):
        rng = np.random.default_rng([STREAMS[stream], draw])
        item_index = draw % len(source.items)
        frames = len(source.items[item_index].frames)
        t_idx = int(rng.integers(frames))
        s_idx = min(frames - 1, t_idx + int(rng.integers(1, 11))) if frames > 1 else t_idx
        plan.setdefault(item_index, []).append((t_idx, s_idx, draw, rng))
    pairs: list = [None] * n
    for item_index, draws in plan.items():
        item, kept = source.items[item_index], {}

        def load(index: int, item=item, kept=kept):
            if index not in kept:
                if len(kept) >= _KEPT_FRAMES:
                    kept.pop(next(iter(kept)))
                kept[index] = _read(item.frames[index])
            return kept[index]

        for t_idx, s_idx, draw, rng in sorted(draws, key=lambda d: (d[0], d[1], d[2])):
            t_img, t_scale = load(t_idx)
            s_img, s_scale = load(s_idx)
            t_box = _frame_box(item, t_idx, t_img, t_scale, rng)
            if len(item.frames) == 1:  # one photograph: annotation noise stands in for another frame's template
                t_box = _jitter(t_box, rng, 0.05, 0.05)
            s_box = t_box if s_idx == t_idx and item.boxes[s_idx, 2] <= 0 else _frame_box(item, s_idx, s_img, s_scale, rng)
            template, _, _ = loop.crop(t_img, t_box, preset.crop.template_factor, pre.template_size)
            search, _, _ = loop.crop(s_img, _jitter(s_box, rng, shift, scale), preset.crop.search_factor, pre.search_size)
            pairs[draw] = {names["template"]: template, names["search"]: search}
    return pairs


def _jitters(spec: QuantizationSpec | None) -> tuple[float, float]:
    spec = spec or QuantizationSpec.model_validate({"recipes": {}})  # the schema's jitter defaults
    return spec.jitter_shift, spec.jitter_scale


def distinct_key(pair: dict[str, np.ndarray]) -> str:
    """What tells calibration pairs apart: the content digest; every pair with a uniform crop is one ``blank``."""
    return "blank" if any(float(np.ptp(a)) == 0.0 for a in pair.values()) else pair_digest(pair)


def distinct(pairs: list[dict[str, np.ndarray]]) -> int:
    """How many different pairs ``pairs`` holds (:func:`distinct_key`)."""
    return len({distinct_key(p) for p in pairs})


def _cached(source: CalibrationSource, variant: Variant, preset: TrackingPreset, n: int, stream: str,
            spec: QuantizationSpec | None) -> list[dict[str, np.ndarray]]:
    shift, scale = _jitters(spec)
    key = (variant.name, preset.model_dump_json(), n, stream, shift, scale)
    if key not in source.cut:
        source.cut[key] = make_pairs(variant, preset, source, n, stream, shift, scale)
    return source.cut[key]


def calibration_pairs(variant: Variant, preset: TrackingPreset, source: CalibrationSource,
                      spec: QuantizationSpec) -> list[dict[str, np.ndarray]]:
    """The catalog's ``calibration_pairs`` distinct pairs of ``source`` (cut once per source): draws
    ``0..n-1``, or, where some crops repeat (a tiny image), the first ``n`` distinct ones of up to
    :data:`DRAWS_PER_PAIR` x ``n`` draws. A source that cannot give that many is a usage error."""
    n = spec.calibration_pairs
    pairs = _cached(source, variant, preset, n, "calibration", spec)
    if distinct(pairs) == n:
        return pairs
    key = (variant.name, "distinct", n)
    if key not in source.cut:
        seen, kept = set(), []
        for p in _cached(source, variant, preset, n * DRAWS_PER_PAIR, "calibration", spec):
            mark = distinct_key(p)
            if mark not in seen and len(kept) < n:
                seen.add(mark)
                kept.append(p)
        source.cut[key] = kept
    kept = source.cut[key]
    if len(kept) < n:
        where = source.path or "bundled"
        raise UsageError(f"--calibration {where}: gives {len(kept)} distinct crop pair(s) of the {n} the catalog asks "
                         f"for (quantization.calibration_pairs; {n * DRAWS_PER_PAIR} tried); give more or larger images")
    return kept


def held_out_pairs(variant: Variant, preset: TrackingPreset, n: int,
                   spec: QuantizationSpec | None = None) -> list[dict[str, np.ndarray]]:
    """The first ``n`` held-out pairs (:func:`held_out_source`, stream ``verification``), all distinct:
    the tracker-level gate's pairs, and ``zoo compare``'s default inputs."""
    pairs = _cached(held_out_source(), variant, preset, n, "verification", spec)
    if distinct(pairs) < n:
        raise ZooError(f"the held-out scenes give {distinct(pairs)} distinct pairs, not {n}")
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
