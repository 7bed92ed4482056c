"""Tensor layouts: the one place NCHW <-> NHWC permutations are written.

zoo's arrays (the catalog's I/O spec, runners' inputs and outputs, tracker crops) are NCHW (3-D
tensors NLC); a converter may bind a tensor channels-last (onnx2tf, zoo's TFLite converter before 0.1, and artifacts
it published: NHWC). Runners, exporters,
taps and the manifest checks convert through these functions; a tensor that is not 4-D, or a
layout that is already NCHW, is left as is.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NCHW, NHWC = "NCHW", "NHWC"
#: axes of an NCHW array in NHWC order (``array.transpose(TO_NHWC)``)
TO_NHWC = (0, 2, 3, 1)
#: axes of an NHWC array in NCHW order (``array.transpose(TO_NCHW)``)
TO_NCHW = (0, 3, 1, 2)
#: each layout as the permutation of the logical (NCHW / NLC) axes, as graph bindings record it
PERMS: dict[str, tuple[int, ...]] = {NCHW: (0, 1, 2, 3), NHWC: TO_NHWC, "NLC": (0, 1, 2), "NCL": (0, 2, 1)}


def _channels_last(layout: str, ndim: int) -> bool:
    return layout == NHWC and ndim == 4


def to_layout(array: np.ndarray, layout: str) -> np.ndarray:
    """An NCHW ``array`` in ``layout`` (a contiguous copy when it moves; as is otherwise)."""
    if not _channels_last(layout, array.ndim):
        return array
    return np.ascontiguousarray(array.transpose(TO_NHWC))


def from_layout(array: np.ndarray, layout: str) -> np.ndarray:
    """An array in ``layout`` back in NCHW (a contiguous copy when it moves; as is otherwise)."""
    if not _channels_last(layout, array.ndim):
        return array
    return np.ascontiguousarray(array.transpose(TO_NCHW))


def shape_in(shape: Sequence[int], layout: str) -> list[int]:
    """An NCHW ``shape`` as a tensor in ``layout`` has it."""
    shape = list(shape)
    return [shape[i] for i in TO_NHWC] if _channels_last(layout, len(shape)) else shape


def shape_from(shape: Sequence[int], layout: str) -> list[int]:
    """A ``shape`` in ``layout`` as NCHW."""
    shape = list(shape)
    return [shape[i] for i in TO_NCHW] if _channels_last(layout, len(shape)) else shape
