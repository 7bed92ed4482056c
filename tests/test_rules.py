"""Issue 22 item 6, one rule in one home: layouts, IoU, box files, machine info, the export
progress callback and the per-frame loop each have one definition, and its callers use it."""
from __future__ import annotations

import ast
import re

import numpy as np
import pytest

from compare.measure.machine import machine_info
from tests.helpers.catalog import REPO
from zoo.datasets.textio import RESULTS_DELIMITER, TRACK_DELIMITER, boxes_text, read_table
from zoo.layouts import NCHW, NHWC, PERMS, from_layout, shape_from, shape_in, to_layout

SOURCES = sorted(p for pkg in ("zoo", "compare", "exporters") for p in (REPO / pkg).rglob("*.py"))


def _defs(name: str) -> list[str]:
    """Modules defining a function ``name`` at module level or in a function (not as a method)."""
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        methods = {id(f) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for f in c.body}
        if any(isinstance(n, ast.FunctionDef) and n.name == name and id(n) not in methods for n in ast.walk(tree)):
            found.append(str(path.relative_to(REPO)))
    return found


@pytest.mark.parametrize(("name", "home"), [
    ("iou", ["zoo/evaluation/metrics.py"]), ("iou_xywh", []),
    ("to_layout", ["zoo/layouts.py"]), ("_expected_shape", []),
    ("machine_info", ["compare/measure/machine.py"]),
    ("on_event", ["zoo/cli/output.py"]),  # export_reporter's callback
    ("track_sequence", ["compare/tracking/tracker.py"]),
])
def test_each_rule_is_defined_once(name, home) -> None:
    assert _defs(name) == home


def test_no_layout_permutation_outside_its_home() -> None:
    """NCHW <-> NHWC axes are written in zoo/layouts.py only (zoo/models' torch token reshapes
    are the network's own arithmetic, not a tensor layout)."""
    perm = re.compile(r"\(\s*0,\s*2,\s*3,\s*1\s*\)|\(\s*0,\s*3,\s*1,\s*2\s*\)|\[\s*0,\s*3,\s*1,\s*2\s*\]")
    offenders = [str(p.relative_to(REPO)) for p in SOURCES
                 if perm.search(p.read_text()) and p.name != "layouts.py" and "models" not in p.parts]
    assert offenders == []


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


def test_box_files_one_writer_two_delimiters(tmp_path) -> None:
    boxes = np.array([[1.0, 2.25, 30.5, 40.0], [3.1234, 4, 5, 6]])
    results, track = boxes_text(boxes, RESULTS_DELIMITER), boxes_text(boxes, TRACK_DELIMITER)
    assert results.splitlines()[0] == "1.000\t2.250\t30.500\t40.000" and track.splitlines()[1] == "3.123,4.000,5.000,6.000"
    for name, text in (("r.txt", results), ("t.txt", track)):
        (tmp_path / name).write_text(text)
        assert read_table(tmp_path / name) == pytest.approx(np.round(boxes, 3))


def test_machine_info_sections() -> None:
    plain, timed = machine_info(), machine_info("peak RSS", timed=True)
    assert "memory" not in plain and "latency" not in plain
    assert timed == {**plain, "memory": "peak RSS", "latency": timed["latency"], "isolation": timed["isolation"]}
    assert list(timed)[-3:] == ["memory", "latency", "isolation"]
