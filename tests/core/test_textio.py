"""zoo.datasets.textio: the one box-file writer and reader (results and track delimiters)."""
from __future__ import annotations

import numpy as np
import pytest

from zoo.datasets.textio import RESULTS_DELIMITER, TRACK_DELIMITER, boxes_text, read_table


def test_box_files_one_writer_two_delimiters(tmp_path) -> None:
    boxes = np.array([[1.0, 2.25, 30.5, 40.0], [3.1234, 4, 5, 6]])
    results, track = boxes_text(boxes, RESULTS_DELIMITER), boxes_text(boxes, TRACK_DELIMITER)
    assert results.splitlines()[0] == "1.000\t2.250\t30.500\t40.000" and track.splitlines()[1] == "3.123,4.000,5.000,6.000"
    for name, text in (("r.txt", results), ("t.txt", track)):
        (tmp_path / name).write_text(text)
        assert read_table(tmp_path / name) == pytest.approx(np.round(boxes, 3))
