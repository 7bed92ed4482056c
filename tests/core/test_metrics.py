"""zoo.evaluation / zoo.datasets against pytracking's reference figures and hand-computed cases."""
from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.catalog import REPO
from zoo.datasets import Sequence, dataset_spec, load_dataset, open_results, read_flags, read_table, split_names
from zoo.errors import UsageError
from zoo.evaluation import metrics
from zoo.evaluation.analyze import evaluate
from zoo.evaluation.drift import agreement, drift
from zoo.evaluation.plots import evaluation_plots
from zoo.evaluation.protocols import pytracking_errors, toolkit_errors

DATA = REPO / "tests" / "data"
SHARED = REPO.parent / "shared" / "data"
LASOT_REF = json.loads((DATA / "lasot-sample" / "reference_metrics_SiamBAN.json").read_text())


def _otb_reference(path: Path) -> dict[tuple[str, str], tuple[float, float]]:
    ref = {}
    for line in path.read_text().splitlines():
        m = re.match(r"(\S+)\s+(\S+)\s+n=\d+.*AUC=\s*([\d.]+)\s+Prec@20=\s*([\d.]+)", line)
        if m:
            ref[(m[1], m[2])] = (float(m[3]), float(m[4]))
    return ref


def _check_lasot(root: Path) -> None:
    ds = load_dataset("lasot", root=root)
    ev = evaluate(ds, [open_results(str(root / "results" / "SiamBAN"), "lasot", ds.names())])
    overall = ev.rows()[0]
    ref = LASOT_REF["_overall"]
    for key in ("auc", "op50", "op75", "precision", "norm_precision"):
        assert overall[key] == pytest.approx(ref[key], abs=1e-3), key
    assert np.allclose(overall["success_curve"], ref["success_curve"], atol=1e-3)
    rows = {r["sequence"]: r for r in ev.sequence_rows()}
    assert set(rows) == set(LASOT_REF) - {"_overall"}
    for name, r in rows.items():
        want = LASOT_REF[name]
        assert (r["frames"], r["absent"]) == (want["frames"], want["absent"]), name
        for key in ("auc", "precision", "norm_precision"):
            assert r[key] == pytest.approx(want[key], abs=1e-3), (name, key)


def _check_otb(root: Path, results: Path, reference: Path) -> None:
    ds = load_dataset("otb", root=root)
    trackers = [open_results(str(p), "otb", ds.names()) for p in sorted(results.iterdir())]
    rows = {(r["sequence"], r["tracker"]): r for r in evaluate(ds, trackers).sequence_rows()}
    ref = _otb_reference(reference)
    assert len(ref) == 20 and set(ref) == set(rows)
    for key, (auc, prec) in ref.items():
        assert rows[key]["auc"] == pytest.approx(auc, abs=1e-3), key
        assert rows[key]["precision"] == pytest.approx(prec, abs=1e-3), key


def test_lasot_sample_matches_pytracking_reference() -> None:
    _check_lasot(DATA / "lasot-sample")


def test_otb_sample_matches_pytracking_reference() -> None:
    _check_otb(DATA / "otb", DATA / "otb" / "results", DATA / "otb" / "reference_metrics.txt")


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data folder {SHARED} absent (fresh clone)")
def test_shared_data_matches_reference_and_finds_frames() -> None:
    _check_lasot(SHARED / "lasot-sample")
    _check_otb(SHARED / "otb", SHARED / "otb" / "results", SHARED / "otb" / "reference_metrics.txt")
    crossing = next(s for s in load_dataset("otb", root=SHARED / "otb").sequences if s.name == "Crossing")
    assert crossing.frames_dir == SHARED / "otb" / "Crossing" / "img" and len(crossing) == 120


def test_iou_plus_one_convention_by_hand() -> None:
    a = np.array([[0.0, 0, 10, 10]] * 4)
    b = np.array([[5.0, 0, 10, 10], [10, 0, 10, 10], [9, 0, 10, 10], [0, 0, 10, 10]])
    # side 5 x 10 = 50 of 150; touching boxes share nothing; one pixel column 10 of 190; identical.
    assert metrics.iou(a, b) == pytest.approx([1 / 3, 0.0, 10 / 190, 1.0])
    assert metrics.centers(np.array([[0.0, 0, 10, 20]])).tolist() == [[4.5, 9.5]]


def test_normalized_error_divides_each_centre_first() -> None:
    # 1 px shift of a 5 px box: 0.2 exactly in arithmetic, but pytracking's order (each centre
    # divided by w, then the difference) gives 0.20000000000000007: a miss at threshold 0.20.
    gt = np.array([[1.0, 10, 5, 5], [1.0, 10, 5, 5]])
    seq = Sequence("s", gt)
    err = pytracking_errors(np.array([[1.0, 10, 5, 5], [2.0, 10, 5, 5]]), seq, "default")
    _, prec, norm = err.curves()
    assert norm[20] == 0.5 and norm[21] == 1.0
    assert prec[1] == 1.0 and err.overlap[1] == pytest.approx(2 / 3)


def _four_frames() -> tuple[Sequence, np.ndarray]:
    gt = np.array([[10.0, 10, 10, 10]] * 4)
    seq = Sequence("s", gt, visible=np.array([True, True, True, False]))
    pred = np.array([[500.0, 500, 3, 3], [10, 10, 10, 10], [200, 200, 10, 10], [10, 10, 10, 10]])
    return seq, pred


def test_lasot_rule_counts_absent_frames_as_misses_over_all_frames() -> None:
    seq, pred = _four_frames()
    succ, prec, norm = pytracking_errors(pred, seq, "lasot").curves()
    assert succ[:20].tolist() == [0.5] * 20 and succ[20] == 0.0  # frames 1, 2 above every threshold < 1
    assert metrics.auc(succ) * 100 == pytest.approx(47.6190, abs=1e-4)
    assert prec[20] == 0.5 and norm[20] == 0.5


def test_default_rule_counts_absent_frames_as_normalized_hits() -> None:
    seq, pred = _four_frames()
    succ, prec, norm = pytracking_errors(pred, seq, "default").curves()
    assert metrics.auc(succ) * 100 == pytest.approx(47.6190, abs=1e-4)  # every frame in the denominator
    assert prec[20] == 0.5 and norm[20] == 0.75  # pytracking's -1 normalized error for the absent frame


def test_toolkit_rules() -> None:
    seq, pred = _four_frames()
    pred[2] = [np.nan, 1, 1, 1]  # NaN takes the previous box (frame 2 = exact) instead of an error
    succ, prec, _ = toolkit_errors(pred, seq).curves(metrics.matlab_colon(0, 0.05, 1))
    assert succ[0] == pytest.approx(0.75) and prec[20] == pytest.approx(0.75)  # absent frame: out of numerator
    with pytest.raises(UsageError, match="NaN"):
        pytracking_errors(pred, seq, "lasot")
    # ground truth with x = 0 is invalid for the toolkit: overlap -1 (miss), centre error -1 (hit)
    seq2 = Sequence("t", np.array([[5.0, 5, 10, 10], [0.0, 5, 10, 10]]))
    far = np.array([[5.0, 5, 10, 10], [300, 300, 10, 10]])
    succ, prec, _ = toolkit_errors(far, seq2).curves()
    assert succ[0] == pytest.approx(0.5) and prec[0] == pytest.approx(1.0)
    succ, prec, _ = pytracking_errors(far, seq2, "default").curves()
    assert succ[0] == 0.5 and prec[50] == 0.5  # valid for pytracking (w, h > 0): a plain miss


def test_zero_size_takes_previous_box_and_lengths() -> None:
    gt = np.array([[10.0, 10, 10, 10]] * 3)
    seq = Sequence("s", gt, visible=np.ones(3, bool))
    pred = np.array([[10.0, 10, 10, 10], [12, 10, 10, 10], [0, 0, 0, 0], [1, 1, 1, 1]])  # one row too many
    err = pytracking_errors(pred, seq, "lasot")
    assert err.boxes[2].tolist() == [12, 10, 10, 10]  # frame 3 repeats frame 2; the extra row is cut
    with pytest.raises(UsageError, match="never shorter"):
        pytracking_errors(pred[:2], seq, "lasot")
    padded = pytracking_errors(pred[:2], seq, "default")  # other datasets: padded with empty boxes
    assert padded.overlap.tolist() == pytest.approx([1.0, 8 * 10 / 120, 0.0])


def test_matlab_colon_thresholds() -> None:
    t = metrics.matlab_colon(0.0, 0.05, 1.0)
    assert len(t) == 21 and t[10] == 0.5 and t[20] == 1.0 and t[15] == 0.75
    assert np.abs(t - np.arange(21) / 20).max() < 1e-15


def test_attribute_table_from_toolkit_layout(tmp_path: Path) -> None:
    annos = tmp_path / "annos"
    (annos / "absent").mkdir(parents=True)
    (annos / "att").mkdir()
    src = DATA / "lasot-sample"
    for gt in src.glob("*/*/groundtruth.txt"):
        name = gt.parent.name
        shutil.copy(gt, annos / f"{name}.txt")
        flags = read_flags(gt.parent / "full_occlusion.txt").astype(int)
        (annos / "absent" / f"{name}.txt").write_text("\n".join(map(str, flags)) + "\n")
        att = [0] * 14
        att[0] = int(name in ("car-2", "tiger-6"))  # IV on two sequences
        att[13] = 1  # ARC on all
        (annos / "att" / f"{name}.txt").write_text(",".join(map(str, att)) + "\n")
    ds = load_dataset("lasot", annotations=tmp_path)
    ev = evaluate(ds, [open_results(str(src / "results" / "SiamBAN"), "lasot", ds.names())])
    assert ev.rows()[0]["auc"] == pytest.approx(LASOT_REF["_overall"]["auc"], abs=1e-3)
    att = {r["attribute"]: r for r in ev.attribute_rows()}
    assert set(att) == {"IV", "ARC"}  # attributes on no sequence are left out
    expected = (LASOT_REF["car-2"]["auc"] + LASOT_REF["tiger-6"]["auc"]) / 2
    assert att["IV"]["sequences"] == 2 and att["IV"]["SiamBAN"] == pytest.approx(expected, abs=1e-3)
    assert att["ARC"]["SiamBAN"] == pytest.approx(LASOT_REF["_overall"]["auc"], abs=1e-3)
    written = {p.name for p in evaluation_plots(ev, tmp_path / "plots")}
    assert {"success_IV.png", "success_ARC.pdf", "norm_precision.png"} <= written


def test_official_split_lists_are_packaged() -> None:
    counts = {name: len(split_names(dataset_spec(name))) for name in ("lasot", "lasot_ext", "tnl2k")}
    assert counts == {"lasot": 280, "lasot_ext": 150, "tnl2k": 700}
    assert split_names(dataset_spec("otb")) is None and dataset_spec("LaSOT_extension_subset").name == "lasot_ext"


def test_tnl2k_toolkit_layout(tmp_path: Path) -> None:
    names = ["Assian_video_Z03_done", "BF5_Blade_video_01-Done"]  # real TNL2K test names
    for sub in ("gt_rect", "absent", "att"):
        (tmp_path / sub).mkdir()
    for name in names:
        (tmp_path / "gt_rect" / f"{name}.txt").write_text("10,10,20,20\n10,10,20,20\n10,10,20,20\n")
        (tmp_path / "absent" / f"{name}.txt").write_text("0\n0\n1\n")
        (tmp_path / "att" / f"{name}_attribute.txt").write_text(",".join(["1"] + ["0"] * 16) + "\n")
    ds = load_dataset("tnl2k", annotations=tmp_path)
    assert ds.names() == names and len(ds.missing) == 698
    assert ds.sequences[0].attributes.shape == (17,) and ds.sequences[0].absent == 1
    res = tmp_path / "res" / "T"
    res.mkdir(parents=True)
    for name in names:
        (res / f"{name}.txt").write_text("10\t10\t20\t20\n10\t10\t20\t20\n300\t300\t20\t20\n")
    tracker = open_results(str(res), "tnl2k", names)
    # pytracking's TNL2K reader ignores the absent flags: the third frame is a valid miss
    assert evaluate(ds, [tracker]).rows()[0]["op50"] == pytest.approx(200 / 3)
    # the toolkit drops the absent frame from the numerator, all frames in the denominator
    assert evaluate(ds, [tracker], "toolkit").rows()[0]["op50"] == pytest.approx(200 / 3)
    assert [r["attribute"] for r in evaluate(ds, [tracker]).attribute_rows()] == ["CM"]


def test_drift_identical_and_diverging(tmp_path: Path) -> None:
    src = DATA / "lasot-sample"
    ds = load_dataset("lasot", root=src, patterns=["car-2", "bear-4"])
    a = open_results(str(src / "results" / "SiamBAN"), "lasot", ds.names())
    b_dir = tmp_path / "B"
    b_dir.mkdir()
    for name in ds.names():
        boxes = read_table(a.files[name])
        if name == "car-2":
            boxes[100:, 0] += 10_000  # far away from frame 101 on
        np.savetxt(b_dir / f"{name}.txt", boxes, delimiter=",")
    d = drift(ds, a, open_results(str(b_dir), "lasot", ds.names()))
    rows = {r["sequence"]: r for r in d.rows()}
    assert rows["bear-4"]["mean_iou"] == pytest.approx(1.0) and rows["bear-4"]["first_below_0.5"] is None
    assert rows["bear-4"]["auc_diff"] == pytest.approx(0.0)
    assert rows["car-2"]["first_below_0.5"] == 101 and rows["car-2"]["iou_ge_0.5"] == pytest.approx(100 / 2046 * 100)
    assert rows["car-2"]["auc_a"] == pytest.approx(LASOT_REF["car-2"]["auc"], abs=1e-3)
    assert rows["ALL"]["diverged"] == 1 and d.worst(1) == ["car-2"]
    assert agreement(np.zeros((1, 4)), np.zeros((1, 4))).tolist() == [1.0]


@pytest.mark.parametrize(("content", "message"), [
    ("1,2,3,4\n1,2,3\n", r"bad\.txt:2: expected 4 numbers"),
    ("1,2,3,4\n1,2,x,4\n", r"bad\.txt:2: not a number"),
    ("", r"bad\.txt:1: empty file"),
])
def test_malformed_files_name_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "bad.txt").write_text(content)
    with pytest.raises(UsageError, match=message):
        read_table(tmp_path / "bad.txt")


@pytest.mark.parametrize(("line", "message"), [("nan,nan,nan,nan", "NaN"), ("1,1,-3,4", "negative width")])
def test_invalid_prediction_names_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "s.txt"
    path.write_text(f"10,10,10,10\n\n10,10,10,10\n{line}\n")  # the blank line 2 is not a row
    seq = Sequence("s", np.array([[10.0, 10, 10, 10]] * 3))
    with pytest.raises(UsageError, match=rf"s\.txt:4: {message}"):
        pytracking_errors(read_table(path), seq, "default", path=path)


def test_bad_dataset_and_results_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown dataset 'lasott'.*did you mean 'lasot'"):
        load_dataset("lasott", root=tmp_path)
    with pytest.raises(UsageError, match="no .txt result files"):
        open_results(str(tmp_path), "lasot")


def test_dataset_root_layouts_and_result_names(tmp_path: Path) -> None:
    # TNL2K root: <seq>/groundtruth.txt, frames in imgs/
    seq_dir = tmp_path / "tnl2k" / "Assian_video_Z03_done"
    (seq_dir / "imgs").mkdir(parents=True)
    (seq_dir / "groundtruth.txt").write_text("1,1,5,5\n2,2,5,5\n")
    tnl = load_dataset("tnl2k", root=tmp_path / "tnl2k")
    assert tnl.names() == ["Assian_video_Z03_done"] and tnl.sequences[0].frames_dir == seq_dir / "imgs"
    assert tnl.sequences[0].visible is None
    # LaSOT root without the class level, and a missing flag file named in the error
    flat = tmp_path / "lasot" / "car-2"
    flat.mkdir(parents=True)
    shutil.copy(DATA / "lasot-sample" / "car" / "car-2" / "groundtruth.txt", flat)
    with pytest.raises(UsageError, match=r"full_occlusion\.txt: missing"):
        load_dataset("lasot", root=tmp_path / "lasot")
    for flags in ("full_occlusion.txt", "out_of_view.txt"):
        shutil.copy(DATA / "lasot-sample" / "car" / "car-2" / flags, flat)
    assert len(load_dataset("lasot", root=tmp_path / "lasot").sequences[0]) == 2046
    # result layouts: <tracker>/<dataset>/<seq>.txt and the LaSOT toolkit's <name>_tracking_result/
    run = tmp_path / "runs" / "fgaf3@tflite-int8" / "lasot"
    run.mkdir(parents=True)
    shutil.copy(DATA / "lasot-sample" / "results" / "SiamBAN" / "car-2.txt", run)
    assert open_results(str(run.parent), "lasot").name == "fgaf3@tflite-int8"
    assert open_results(str(run), "lasot").name == "fgaf3@tflite-int8"
    toolkit = tmp_path / "DiMP50_tracking_result"
    toolkit.mkdir()
    shutil.copy(DATA / "lasot-sample" / "results" / "SiamBAN" / "car-2.txt", toolkit / "CAR-2.txt")
    res = open_results(str(toolkit), "lasot", ["car-2"])
    assert res.name == "DiMP50" and res.missing(["car-2"]) == []


def test_boxes_near_the_float_limit_are_misses_without_warnings() -> None:
    """A result file with 1e308 boxes: IoU 0 and an infinite centre error, and no numpy
    RuntimeWarning lines on the terminal (they are errors here)."""
    gt = np.array([[10.0, 10.0, 20.0, 20.0]] * 2)
    pred = np.array([[10.0, 10.0, 20.0, 20.0], [1e308, 1e308, 1e308, 1e308]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        overlaps = metrics.iou(pred, gt)
        errors = metrics.center_error(pred, gt)
        normalized = metrics.center_error(pred, gt, normalized=True)
    assert overlaps.tolist() == [1.0, 0.0]
    assert errors[0] == 0 and np.isinf(errors[1]) and np.isinf(normalized[1])


def test_twenty_curves_get_distinct_colours_and_styles_and_the_legend_stays_off_them() -> None:
    """13 trackers used to repeat an orange with no line style; the legend covered the curves."""
    from zoo.evaluation import plots

    styles = [plots.draw_style(rank) for rank in range(40)]
    assert len(set(styles)) == 40
    for style in {s for _, s in styles}:  # within one line style no two curves share a colour
        colours = [c for c, s in styles if s == style]
        assert len(set(colours)) == len(colours)
    assert min(np.linalg.norm(np.subtract(a, b)) for i, a in enumerate(plots._COLORS) for b in plots._COLORS[i + 1:]) > 0.2
    fig, ax = plots._figure(10.0, 5.5)
    for rank in range(20):
        colour, style = plots.draw_style(rank)
        ax.plot([0, 1], [rank, rank + 1], color=colour, linestyle=style, label=f"tracker {rank}")
    plots._legend_outside(ax, 20)
    fig.tight_layout()
    fig.canvas.draw()
    legend, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= axes.x1 and legend.x1 <= fig.bbox.x1 + 1  # beside the axes, inside the figure
