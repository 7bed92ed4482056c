"""``zoo track``: a dataset sequence folder, a folder of frames, a video file; outputs and errors."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from compare.tracking.tracker import Tracker
from tests.helpers.tracking import run_cli
from zoo.datasets.sequence import Sequence
from zoo.datasets.synthetic import make_sequence, write_sequence
from zoo.evaluation.protocols import pytracking_errors

FRAMES = 10


@pytest.fixture(scope="module")
def clip():
    return make_sequence("Clip", frames=FRAMES)


def png_frames(clip, folder: Path, count: int) -> Path:
    """A plain folder of ``count`` of ``clip``'s frames as lossless PNGs (0001.png ...)."""
    folder.mkdir()
    for k, frame in enumerate(clip.frames[:count]):
        cv2.imwrite(str(folder / f"{k + 1:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def otb_folder(clip, tmp_path_factory) -> Path:
    return write_sequence(clip, tmp_path_factory.mktemp("otb"), "otb")


def test_sequence_folder_prints_iou_and_writes_boxes_video_json(otb_folder, clip, tmp_path, capsys) -> None:
    boxes, video, report = tmp_path / "boxes.txt", tmp_path / "out" / "tracked.mp4", tmp_path / "track.json"
    code, stdout, stderr = run_cli(capsys, "track", "base-c128", str(otb_folder), "--runtime", "pytorch", "--out", str(boxes),
                                   "--video", str(video), "--json", str(report))
    assert code == 0, stderr
    text = stdout.replace("\n", " ")
    assert "base-c128@pytorch-fp32" in text and "IoU to the ground truth: mean" in text and "untrained" in text
    lines = boxes.read_text().splitlines()
    assert len(lines) == FRAMES and [float(v) for v in lines[0].split(",")] == clip.ground_truth[0].tolist()
    data = json.loads(report.read_text())
    assert data["kind"] == "sequence" and len(data["frames"]) == FRAMES
    assert all("iou" in f for f in data["frames"][1:] if clip.visible[f["frame"]])
    summary = data["summary"]
    assert summary["frames"] == FRAMES and summary["loop_ms_median"] >= summary["network_ms_median"] > 0
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    ok, first = capture.read()
    capture.release()
    assert ok and first.shape == (240, 320, 3)
    x, y, w, h = (int(v) for v in clip.ground_truth[0])
    drawn = first[y, x + w // 2].astype(int)  # on the box's top edge: green
    assert drawn[1] > 150 and drawn[0] < 100 and drawn[2] < 100
    assert not list(video.parent.glob(".*"))  # no temporary left beside it


def test_folder_of_frames_and_video_need_init(clip, tmp_path, capsys) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, frame in enumerate(clip.frames):
        cv2.imwrite(str(folder / f"frame{k + 1}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))  # frame10 after frame9
    code, _, stderr = run_cli(capsys, "track", "base-c128", str(folder), "--runtime", "pytorch")
    assert code == 2 and "--init" in stderr and len(stderr.strip().splitlines()) == 1
    init = ",".join(str(int(v)) for v in clip.ground_truth[0])
    out_frames = tmp_path / "frames.json"
    code, _, stderr = run_cli(capsys, "track", "base-c128", str(folder), "--runtime", "pytorch", "--init", init,
                              "--json", str(out_frames))
    assert code == 0, stderr
    movie = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(movie), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for frame in clip.frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    out_video = tmp_path / "video.json"
    code, _, stderr = run_cli(capsys, "track", "base-c128", str(movie), "--runtime", "pytorch", "--init", init,
                              "--json", str(out_video))
    assert code == 0, stderr
    from_frames = json.loads(out_frames.read_text())
    from_video = json.loads(out_video.read_text())
    assert from_frames["kind"] == "frames" and from_video["kind"] == "video"
    assert len(from_frames["frames"]) == len(from_video["frames"]) == FRAMES
    # mp4v is lossy: the trajectories are close, not equal; the lossless PNGs match the sequence exactly
    a = np.asarray([f["box"] for f in from_frames["frames"]])
    b = np.asarray([f["box"] for f in from_video["frames"]])
    assert np.abs(a[:3] - b[:3]).max() < 8


@pytest.mark.parametrize("args, message", [
    (["--init", "1,2,3"], "expected four numbers"),
    (["--init", "1,2,0,4"], "width and height must be > 0"),
    (["--runtime", "tflit"], "unknown runtime 'tflit'"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--threads", "1.5"], "--threads must be whole numbers"),
    (["--init", "5000,5000,20,20"], "does not overlap the first frame (320x240 pixels)"),
    (["--init", "-100,-100,20,20"], "does not overlap the first frame (320x240 pixels)"),
    (["--init", "0,0,20000,20000"], "more than 2x the first frame (320x240 pixels)"),
    (["--init", "0,0,1e30,1e30"], "more than 2x the first frame (320x240 pixels)"),
])
def test_bad_arguments_are_one_line(otb_folder, args, message, capsys) -> None:
    code, _, stderr = run_cli(capsys, "track", "base-c128", str(otb_folder), "--runtime", "pytorch", *args)
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1


def test_frames_of_another_size_than_the_first_are_one_line(clip, tmp_path, capsys) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for k, frame in enumerate(clip.frames[:3]):
        frame = frame if k != 2 else cv2.resize(frame, (160, 120))
        cv2.imwrite(str(folder / f"frame{k + 1}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    init = ",".join(str(int(v)) for v in clip.ground_truth[0])
    code, _, stderr = run_cli(capsys, "track", "base-c128", str(folder), "--runtime", "pytorch", "--init", init)
    assert code == 2 and "a 160x120 frame after a 320x240 first frame" in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1


def test_missing_source_and_unreadable_frame(otb_folder, tmp_path, capsys) -> None:
    code, _, stderr = run_cli(capsys, "track", "base-c128", str(tmp_path / "nope.mp4"), "--runtime", "pytorch")
    assert code == 2 and "nope.mp4: no such file or folder" in stderr
    broken = tmp_path / "Broken"
    write_sequence(make_sequence("Broken", frames=4), tmp_path, "otb")
    (broken / "img" / "0003.jpg").write_bytes(b"garbage")
    video = tmp_path / "never.mp4"
    code, _, stderr = run_cli(capsys, "track", "base-c128", str(broken), "--runtime", "pytorch", "--video", str(video))
    assert code == 2 and "0003.jpg: not a readable image" in stderr.replace("\n", "")
    assert not video.exists() and not list(tmp_path.glob(".never*"))


#: ground truth and tracked boxes (one decimal, as some annotations are) on which a continuous-box
#: IoU and pytracking's +1 pixel one round differently (in the last bit)
_TRUTH = [[11.2, 7.2, 54.0, 34.8], [7.8, 23.1, 33.8, 57.0], [34.5, 3.4, 21.0, 35.2], [9.6, 6.7, 39.5, 33.6]]
_TRACKED = [[8.7, 4.6, 56.0, 35.5], [6.2, 24.9, 33.9, 58.3], [35.8, 5.7, 20.5, 37.7], [10.6, 5.3, 39.4, 33.6]]


def test_track_reports_the_iou_eval_analyze_computes(otb_folder, clip, tmp_path, capsys, monkeypatch) -> None:
    """The same boxes against the same ground truth give the same IoU, to the last bit, in ``zoo
    track``'s report and in ``zoo eval analyze``'s path (pytracking's protocol, whose success
    thresholds compare exactly). The untrained network's boxes would not overlap the target:
    each tracked box is replaced by one of ``_TRACKED``, its ground truth by ``_TRUTH``."""
    folder = tmp_path / "Clip"
    shutil.copytree(otb_folder, folder)
    truth = np.asarray([clip.ground_truth[0].tolist()] + _TRUTH * 2, np.float64)
    (folder / "groundtruth_rect.txt").write_text("".join(",".join(f"{v:g}" for v in row) + "\n" for row in truth))
    real_track = Tracker.track

    def tracked(self, frame):
        _, score = real_track(self, frame)
        return tuple(_TRACKED[(len(self.loop_times) - 1) % len(_TRACKED)]), score

    monkeypatch.setattr(Tracker, "track", tracked)
    report = tmp_path / "track.json"
    code, _, stderr = run_cli(capsys, "track", "base-c128", str(folder), "--runtime", "pytorch", "--json", str(report))
    assert code == 0, stderr
    data = json.loads(report.read_text())
    boxes = np.asarray([f["box"] for f in data["frames"]], np.float64)
    errors = pytracking_errors(boxes, Sequence("Clip", truth), "default")
    reported = {f["frame"]: f["iou"] for f in data["frames"] if "iou" in f}
    assert sorted(reported) == list(range(1, len(truth)))
    assert [reported[k] for k in sorted(reported)] == errors.overlap[1:].tolist()
    assert data["summary"]["mean_iou"] == float(np.mean(errors.overlap[1:]))


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_a_special_file_as_source_is_named_for_what_it_is(tmp_path, kind, capsys) -> None:
    """``/dev/null`` exists: "no such file" would send the user looking for a typo."""
    source = Path("/dev/null") if kind == "device" else tmp_path / "pipe"
    if kind == "fifo":
        os.mkfifo(source)
    code, _, stderr = run_cli(capsys, "track", "base-c128", str(source), "--runtime", "pytorch", "--init", "1,1,5,5")
    expected = "a character device" if kind == "device" else "a FIFO"
    assert code == 2 and f"is {expected}, not a video file or a folder of frames" in stderr, stderr


def test_a_stray_text_file_does_not_make_frames_a_sequence_when_init_is_given(clip, tmp_path, capsys) -> None:
    folder = png_frames(clip, tmp_path / "frames", 3)
    (folder / "notes.txt").write_text("shot on a windy day\n")
    init = ",".join(str(int(v)) for v in clip.ground_truth[0])
    code, stdout, stderr = run_cli(capsys, "track", "base-c128", str(folder), "--runtime", "pytorch", "--init", init)
    assert code == 0, stderr
    code, _, stderr = run_cli(capsys, "track", "base-c128", str(folder), "--runtime", "pytorch")
    assert code == 2 and "notes.txt" in stderr  # without --init the lone .txt is read as the ground truth


@pytest.mark.parametrize("first", ["0,0,0,0", "10,10,20,0", "nan,1,2,3"])
def test_an_empty_first_ground_truth_box_names_the_file(clip, tmp_path, first, capsys) -> None:
    folder = write_sequence(clip, tmp_path, "otb")
    gt = folder / "groundtruth_rect.txt"
    lines = gt.read_text().splitlines()
    gt.write_text("\n".join([first, *lines[1:]]) + "\n")
    code, _, stderr = run_cli(capsys, "track", "base-c128", str(folder), "--runtime", "pytorch")
    assert code == 2 and "groundtruth_rect.txt:1: the first ground-truth box is" in stderr.replace("\n", ""), stderr
    assert "--init" in stderr and len(stderr.strip().splitlines()) == 1


def _damaged_copy(data: bytes) -> bytes:
    damaged = bytearray(data)
    for k in range(2000, len(damaged) - 2000, 97):  # flip bits inside the coded frames, not the container
        damaged[k] ^= 0x5A
    return bytes(damaged)


def test_a_damaged_or_cut_video_is_one_line_not_ffmpegs_dozens(clip, tmp_path, capfd) -> None:
    """ffmpeg prints two lines per damaged macroblock from its own threads, and "moov atom not
    found" before VideoCapture fails: the command says one line of its own instead (fd 2 checked)."""
    good = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(good), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for frame in clip.frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    data = good.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "damaged.mp4").write_bytes(_damaged_copy(data))
    init = ",".join(str(int(v)) for v in clip.ground_truth[0])
    code, _, stderr = run_cli(capfd, "track", "base-c128", str(tmp_path / "cut.mp4"), "--runtime", "pytorch", "--init", init)
    assert code == 2 and stderr.strip().splitlines() == [f"error: {tmp_path / 'cut.mp4'}: cannot open as a video (ffmpeg: moov atom not found)"]
    code, _, stderr = run_cli(capfd, "track", "base-c128", str(tmp_path / "damaged.mp4"), "--runtime", "pytorch", "--init", init)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 0 and not [line for line in lines if line.startswith("[")], stderr  # no "[mpeg4 @ 0x...]" line
    (warning,) = [line for line in lines if line.startswith("warning:")]
    assert "the decoder reported damage in" in warning and "damaged.mp4: frame " in warning


def test_a_jpeg_libjpeg_complains_about_is_tracked_with_one_warning(clip, tmp_path, capfd) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, frame in enumerate(clip.frames[:3]):
        data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))[1].tobytes()
        if k == 1:  # cut short, then ended: it decodes (grey at the bottom), and libjpeg warns on stderr
            data = data[: len(data) * 9 // 10] + b"\xff\xd9"
        (folder / f"{k + 1:04d}.jpg").write_bytes(data)
    init = ",".join(str(int(v)) for v in clip.ground_truth[0])
    code, _, stderr = run_cli(capfd, "track", "base-c128", str(folder), "--runtime", "pytorch", "--init", init)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 0 and not [line for line in lines if line.startswith("Corrupt JPEG")], stderr
    (warning,) = [line for line in lines if line.startswith("warning:")]
    assert "damage in 1 frame of" in warning and "0002.jpg: Corrupt JPEG data" in warning


def test_tracking_without_ground_truth_still_says_the_weights_are_untrained(clip, tmp_path, capsys) -> None:
    """A plain folder of frames gives no IoU, and its boxes are as easy to mistake for skill."""
    folder = png_frames(clip, tmp_path / "frames", 3)
    init = ",".join(str(int(v)) for v in clip.ground_truth[0])
    code, stdout, stderr = run_cli(capsys, "track", "base-c128", str(folder), "--runtime", "pytorch", "--init", init)
    text = " ".join(stdout.split())
    assert code == 0, stderr
    assert "base-c128 ran the catalog's untrained reference weights" in text and "not tracking skill" in text


def test_the_annotated_video_has_a_legend_and_a_header(otb_folder, tmp_path, capsys) -> None:
    """Swatches for the tracker (green) and the ground truth (blue) at the bottom left, and the
    header text (white on black) at the top left, in every frame of the mp4."""
    video = tmp_path / "tracked.mp4"
    code, _, stderr = run_cli(capsys, "track", "base-c128", str(otb_folder), "--runtime", "pytorch", "--video", str(video))
    assert code == 0, stderr
    capture = cv2.VideoCapture(str(video))
    capture.read()
    ok, frame = capture.read()  # BGR
    assert ok
    h = frame.shape[0]
    tracker_swatch = frame[h - 10 - 16 - 6:h - 10 - 16 - 1, 8:16].reshape(-1, 3).mean(0)
    truth_swatch = frame[h - 16:h - 11, 8:16].reshape(-1, 3).mean(0)
    assert tracker_swatch[1] > 150 and tracker_swatch[0] < 90 and tracker_swatch[2] < 90, tracker_swatch
    assert truth_swatch[0] > 150 and truth_swatch[2] < 90, truth_swatch
    header = frame[4:40, 6:150]
    assert (header > 200).all(axis=2).mean() > 0.02 and (header < 40).all(axis=2).mean() > 0.05  # text with its outline
