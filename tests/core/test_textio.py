"""zoo.datasets.textio: the one box-file writer and reader (results and track delimiters)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from zoo.datasets.textio import RESULTS_DELIMITER, TRACK_DELIMITER, boxes_text, read_table
from zoo.errors import UsageError


def test_box_files_one_writer_two_delimiters(tmp_path) -> None:
    boxes = np.array([[1.0, 2.25, 30.5, 40.0], [3.1234, 4, 5, 6]])
    results, track = boxes_text(boxes, RESULTS_DELIMITER), boxes_text(boxes, TRACK_DELIMITER)
    assert results.splitlines()[0] == "1.000\t2.250\t30.500\t40.000" and track.splitlines()[1] == "3.123,4.000,5.000,6.000"
    for name, text in (("r.txt", results), ("t.txt", track)):
        (tmp_path / name).write_text(text)
        assert read_table(tmp_path / name) == pytest.approx(np.round(boxes, 3))


@pytest.mark.parametrize("kind", ["fifo", "zero", "null", "dir"])
def test_special_files_are_refused_in_one_line_not_read(tmp_path, kind) -> None:
    """A FIFO would hang the reader, /dev/zero would be read until memory runs out: refused up front."""
    path = tmp_path / "groundtruth.txt"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    else:
        os.symlink(f"/dev/{kind}", path)
    expected = {"fifo": "is a FIFO", "zero": "is a character device", "null": "is a character device", "dir": "is a directory"}[kind]
    with pytest.raises(UsageError, match=expected):
        read_table(path)


def test_a_utf8_byte_order_mark_is_read_past(tmp_path) -> None:
    """Notepad saves UTF-8 with a byte-order mark: the first box must still parse."""
    path = tmp_path / "boxes.txt"
    path.write_bytes(b"\xef\xbb\xbf1,2,3,4\n5,6,7,8\n")
    assert read_table(path).tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]


@pytest.mark.parametrize("encoding, name", [("utf-16", "UTF-16-LE"), ("utf-32", "UTF-32-LE")])
def test_a_wide_encoding_is_named_by_its_byte_order_mark(tmp_path, encoding, name) -> None:
    path = tmp_path / "boxes.txt"
    path.write_bytes("1,2,3,4\n".encode(encoding))
    with pytest.raises(UsageError, match=f"is {name} text .*save it as UTF-8"):
        read_table(path)
