"""Measure the input transform ``cv2.TrackerVit`` applies, with probe models fed known images.

TrackerVit turns each crop into a blob with ``dnn::blobFromImageWithParams`` before the network
sees it. Which affine that is per channel, and in which channel order, depends on the OpenCV
version (from 4.11 the scale is ``1.0 / stdvalue`` on a ``Scalar``, which OpenCV divides as a
quaternion), so it is measured, not taken from the docs.

A probe model reads one value of the search blob, channel ``k`` at the crop's centre, and returns
``exp(value)`` in one cell of the score map (every other cell 0); TrackerVit reports the windowed
maximum, so ``value = log(score / window[cell])``. Uniform frames (all channels 0, then one channel
at 255 at a time) give the 3x3 matrix and the offset of ``blob = A @ frame_pixel + b`` (frame
channels as given to TrackerVit, i.e. BGR from cv2); a fourth colour checks the map is affine.

:func:`measure` needs only ``cv2`` and ``numpy`` (it runs the probe files :func:`write_probes`
wrote), so it also runs under another OpenCV installed in a separate directory
(``PYTHONPATH=/tmp/cv410 python -m exporters.opencv_probe PROBE_DIR``).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

#: the score cell the probe writes into and TrackerVit's centred 16x16 Hann window there
CELL = (7, 7)
GRID = 16
#: frame, box and crop of a probe run: the 64x64 box gives a 256-pixel search crop (no resize)
FRAME_SIDE = 512
BOX = (224, 224, 64, 64)
#: colours (frame channel order) fed; the last checks that the transform is affine
LEVELS = ((0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255), (37, 142, 219))
#: the largest disagreement of the check colour with the fitted affine (blob units)
AFFINE_TOLERANCE = 1e-4
OPSET = 11


def _hann(n: int) -> np.ndarray:
    k = np.arange(1, n + 1, dtype=np.float32)
    return (0.5 * (1.0 - np.cos(np.float32(2 * math.pi / (n + 1)) * k))).astype(np.float32)


def probe_model(channel: int, row: int = 128, col: int = 128):
    """An ONNX model with TrackerVit's I/O that puts ``exp(search[0, channel, row, col])`` into
    score cell :data:`CELL` (0 elsewhere) and constant size/offset maps that keep the box still."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    mask = np.zeros((1, 1, GRID, GRID), np.float32)
    mask[0, 0, CELL[0], CELL[1]] = 1.0
    size = np.full((1, 2, GRID, GRID), BOX[2] / 256.0, np.float32)
    # centre (col + off) / 16 = 0.5 at the probe cell: the box comes back where it was
    offset = np.full((1, 2, GRID, GRID), GRID / 2 - CELL[1], np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((mask, "mask"), (size, "size_c"), (offset, "offset_c"),
             (np.array([0, channel, row, col], np.int64), "starts"), (np.array([1, channel + 1, row + 1, col + 1], np.int64), "ends"),
             (np.zeros((1,), np.float32), "zero"))]
    nodes = [
        helper.make_node("Slice", ["search", "starts", "ends"], ["pixel"]),
        helper.make_node("Exp", ["pixel"], ["e"]),
        helper.make_node("Mul", ["e", "mask"], ["output1"]),
        # the template must be an input TrackerVit can set; it contributes 0 to the size map
        helper.make_node("ReduceMean", ["template"], ["t"], keepdims=1),
        helper.make_node("Mul", ["t", "zero"], ["t0"]),
        helper.make_node("Add", ["size_c", "t0"], ["output2"]),
        helper.make_node("Add", ["offset_c", "t0"], ["output3"]),
    ]
    graph = helper.make_graph(
        nodes, f"trackervit_probe_c{channel}",
        [helper.make_tensor_value_info("template", TensorProto.FLOAT, [1, 3, 128, 128]),
         helper.make_tensor_value_info("search", TensorProto.FLOAT, [1, 3, 256, 256])],
        [helper.make_tensor_value_info("output1", TensorProto.FLOAT, [1, 1, GRID, GRID]),
         helper.make_tensor_value_info("output2", TensorProto.FLOAT, [1, 2, GRID, GRID]),
         helper.make_tensor_value_info("output3", TensorProto.FLOAT, [1, 2, GRID, GRID])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="zoo-probe")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def write_probes(directory: Path) -> list[Path]:
    """Write the three probe models (one per blob channel) into ``directory``; their paths."""
    import onnx

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for c in range(3):
        path = directory / f"probe_c{c}.onnx"
        onnx.save(probe_model(c), str(path))
        paths.append(path)
    return paths


def _blob_value(cv2, probe: Path, colour: tuple[int, int, int]) -> float:
    params = cv2.TrackerVit_Params()
    params.net = str(probe)
    tracker = cv2.TrackerVit.create(params)
    frame = np.empty((FRAME_SIDE, FRAME_SIDE, 3), np.uint8)
    frame[:] = colour
    tracker.init(frame, BOX)
    tracker.update(frame)
    window = float(_hann(GRID)[CELL[0]]) * float(_hann(GRID)[CELL[1]])
    return math.log(float(tracker.getTrackingScore()) / window)


def measure(probes: list[Path]) -> dict:
    """Run the probes in the installed ``cv2.TrackerVit``: ``{opencv, matrix (3x3), offset (3),
    scale (diagonal), channel_order, affine_residual}``; ``blob = matrix @ frame_pixel + offset``."""
    import cv2

    values = np.array([[_blob_value(cv2, p, colour) for p in probes] for colour in LEVELS], np.float64)
    offset = values[0]
    matrix = np.stack([(values[1 + j] - offset) / 255.0 for j in range(3)], axis=1)  # column j: frame channel j
    check = matrix @ np.asarray(LEVELS[-1], np.float64) + offset
    residual = float(np.abs(check - values[-1]).max())
    order = [int(np.argmax(np.abs(matrix[k]))) for k in range(3)]
    return {
        "opencv": cv2.__version__,
        "matrix": matrix.tolist(),
        "offset": offset.tolist(),
        "scale": [float(matrix[k, order[k]]) for k in range(3)],
        "channel_order": "".join("BGR"[j] for j in order),  # which frame channel (cv2's BGR) feeds blob channel k
        "affine_residual": residual,
    }


def main(argv: list[str]) -> int:
    """``python -m exporters.opencv_probe PROBE_DIR``: measure with the cv2 on ``sys.path``; JSON on stdout."""
    directory = Path(argv[0])
    probes = sorted(directory.glob("probe_c*.onnx"))
    if len(probes) != 3:
        probes = write_probes(directory)
    print(json.dumps(measure(probes)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
