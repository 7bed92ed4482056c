"""zoo.layouts: NCHW <-> NHWC tensors and shapes."""
from __future__ import annotations

import numpy as np

from zoo.layouts import NCHW, NHWC, PERMS, from_layout, shape_from, shape_in, to_layout


def test_layouts_round_trip_and_shapes() -> None:
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    nhwc = to_layout(x, NHWC)
    assert nhwc.shape == (2, 4, 5, 3) and nhwc.flags.c_contiguous and nhwc[1, 2, 3, 0] == x[1, 0, 2, 3]
    assert np.array_equal(from_layout(nhwc, NHWC), x) and from_layout(nhwc, NHWC).flags.c_contiguous
    tokens = x[0]  # 3-D (NLC): never moved
    assert to_layout(x, NCHW) is x and to_layout(tokens, NHWC) is tokens and from_layout(tokens, NHWC) is tokens
    assert shape_in([1, 3, 128, 128], NHWC) == [1, 128, 128, 3] and shape_from([1, 128, 128, 3], NHWC) == [1, 3, 128, 128]
    assert shape_in([1, 64, 96], NHWC) == [1, 64, 96] and shape_in([1, 3, 8, 8], NCHW) == [1, 3, 8, 8]
    assert x.transpose(PERMS[NHWC]).shape == nhwc.shape
