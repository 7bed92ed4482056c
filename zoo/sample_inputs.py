"""Deterministic, realistic tracker inputs: template/search crops of real photographs.

The photographs are the sample images bundled inside scikit-image (no download). Each scene
names a target box in its image; the template is a crop of ``template_context`` times the
box's geometric-mean side around the box, the search crop ``search_context`` times, centred a
little off the target the way a tracker's previous-frame estimate would be. Crops are padded
with the image's mean colour where they leave the image, resized bilinearly to the catalog's
sizes, scaled, mean/std normalised and returned as NCHW float32, exactly the preprocessing of
the catalog (``Variant.preprocessing``). Same arguments, same bytes, on every machine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from zoo.errors import UsageError, ZooError
from zoo.io_roles import input_roles
from zoo.schema import Preprocessing, Variant


@dataclass(frozen=True)
class Scene:
    """A bundled image and a target box in it: centre x/y, width, height (pixels)."""

    image: str
    box: tuple[float, float, float, float]
    #: search-crop centre offset from the target, as a fraction of the box size
    shift: tuple[float, float]


SCENES: tuple[Scene, ...] = (
    Scene("astronaut", (235.0, 130.0, 110.0, 140.0), (0.20, -0.15)),  # face and helmet
    Scene("chelsea", (250.0, 125.0, 120.0, 110.0), (-0.15, 0.10)),  # the cat's head
    Scene("coffee", (290.0, 180.0, 170.0, 140.0), (0.10, 0.20)),  # the cup
    Scene("rocket", (310.0, 210.0, 60.0, 260.0), (-0.25, 0.05)),  # the rocket on the pad
)
#: other bundled images, none of them a scene's: the default int8 calibration set (:mod:`zoo.calibration`),
#: so that the scenes stay held out for the tracker-level gate
CALIBRATION_IMAGES: tuple[str, ...] = ("camera", "coins", "clock", "immunohistochemistry", "hubble_deep_field",
                                       "colorwheel", "page", "moon")


@lru_cache(maxsize=None)
def sample_image(name: str) -> np.ndarray:
    """The bundled image ``name`` as read-only ``H x W x 3`` uint8 RGB (grey images expanded, alpha dropped)."""
    try:
        import skimage.data
    except ImportError:
        raise ZooError("scikit-image is not installed (sample images): pip install 'scikit-image<0.26'") from None
    image = getattr(skimage.data, name)()
    if image.ndim == 2 and image.dtype == np.uint8:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = np.ascontiguousarray(image[:, :, :3])
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ZooError(f"sample image {name!r} is not RGB uint8")
    image.setflags(write=False)
    return image


def crop(image: np.ndarray, center: tuple[float, float], side: float, out_size: int) -> np.ndarray:
    """Square ``side``-pixel crop around ``center`` resized to ``out_size`` (HWC float32, 0..255).

    Bilinear sampling at pixel centres; outside the image the image's mean colour is used.
    """
    h, w, _ = image.shape
    pad_value = image.reshape(-1, 3).mean(axis=0, dtype=np.float64).astype(np.float32)
    step = side / out_size
    coords = (np.arange(out_size, dtype=np.float64) + 0.5) * step - side / 2 - 0.5
    ys, xs = center[1] + coords, center[0] + coords
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    src = image.astype(np.float32)

    def tap(yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
        inside = ((yi >= 0) & (yi < h))[:, None] & ((xi >= 0) & (xi < w))[None, :]
        vals = src[np.clip(yi, 0, h - 1)[:, None], np.clip(xi, 0, w - 1)[None, :]]
        return np.where(inside[..., None], vals, pad_value)

    top = tap(y0, x0) * (1 - wx) + tap(y0, x0 + 1) * wx
    bottom = tap(y0 + 1, x0) * (1 - wx) + tap(y0 + 1, x0 + 1) * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def normalize(crop_hwc: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """0..255 HWC RGB -> scaled, mean/std-normalised 1xCxHxW float32."""
    x = crop_hwc * np.float32(pre.scale)
    x = (x - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def scene_pair(scene: Scene, pre: Preprocessing) -> dict[str, np.ndarray]:
    """``{"template": ..., "search": ...}`` for one scene (NCHW float32)."""
    image = sample_image(scene.image)
    cx, cy, bw, bh = scene.box
    base = math.sqrt(bw * bh)
    search_center = (cx + scene.shift[0] * bw, cy + scene.shift[1] * bh)
    return {
        "template": normalize(crop(image, (cx, cy), base * pre.template_context, pre.template_size), pre),
        "search": normalize(crop(image, search_center, base * pre.search_context, pre.search_size), pre),
    }


def sample_pairs(source: Variant | Preprocessing, n: int = 1) -> list[dict[str, np.ndarray]]:
    """``n`` deterministic input pairs (cycling through :data:`SCENES`).

    With a :class:`Variant` the dicts are keyed by its catalog input names (matched to the
    template/search crop by shape); with a bare :class:`Preprocessing` by ``template``/``search``.
    """
    if n < 1:
        raise UsageError("n must be at least 1")
    pre = source.preprocessing if isinstance(source, Variant) else source
    pairs = [scene_pair(SCENES[i % len(SCENES)], pre) for i in range(n)]
    if isinstance(source, Variant):
        roles = input_roles(source)
        batch = {spec.name: spec.shape[0] for spec in source.io.inputs}
        pairs = [{name: np.repeat(p[role], batch[name], axis=0) for name, role in roles.items()} for p in pairs]
    return pairs
