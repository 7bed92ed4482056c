"""Frames of a sequence: image folders (dataset layouts or a plain folder) and video files.

- :func:`sequence_frames`: the frame files of an annotated :class:`Sequence` (one per ground-truth
  line; a folder with fewer frames than ground-truth lines is an error naming it);
- :func:`open_sequence_folder`: one sequence folder as the benchmarks ship it (LaSOT/LaSOT_ext
  ``img/`` + ``groundtruth.txt`` + flags, TNL2K ``imgs/`` + ``groundtruth.txt``, OTB ``img/`` +
  ``groundtruth_rect.txt``) or a plain folder of frames beside one ground-truth file;
- :func:`read_frame`: one image as an ``H x W x 3`` uint8 **RGB** array;
- :class:`VideoFrames`: frames of a video file (``cv2.VideoCapture``), RGB.

Frames are sorted by name with numbers compared as numbers (``frame2`` before ``frame10``).
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from zoo.datasets.layouts import read_language
from zoo.datasets.sequence import Sequence
from zoo.datasets.textio import read_flags, read_table
from zoo.errors import UsageError
from zoo.native import native_stderr

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: ground-truth file names of the layouts zoo reads, in the order they are looked for
GROUND_TRUTH_FILES = ("groundtruth.txt", "groundtruth_rect.txt")
#: frame folders of the layouts (LaSOT/OTB ``img``, TNL2K ``imgs``); else the folder itself
FRAME_FOLDERS = ("img", "imgs")
_DIGITS = re.compile(r"(\d+)")


def natural_key(path: Path) -> list:
    """Sort key comparing digit runs as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(path.name)]


def list_frames(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, in natural name order."""
    folder = Path(folder)
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise UsageError(f"{folder}: cannot list frames: {exc.strerror or exc}") from None
    return sorted((p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")), key=natural_key)


def read_frame(path: Path, notes: list[str] | None = None) -> np.ndarray:
    """The image at ``path`` as ``H x W x 3`` uint8 RGB (grey images are expanded); an unreadable
    or missing file is a :class:`UsageError` naming it. What the decoder prints (libjpeg's "Corrupt
    JPEG data: ...") never reaches the terminal: it is appended to ``notes`` as ``"path: message"``
    when given, for the caller's one-line summary."""
    data = None
    try:
        raw = np.fromfile(str(path), dtype=np.uint8)
        if raw.size:
            with native_stderr() as said:
                data = cv2.imdecode(raw, cv2.IMREAD_COLOR)
            if said.first and notes is not None:
                notes.append(f"{path.name}: {said.first}")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read frame: {exc.strerror or exc}") from None
    if data is None:
        raise UsageError(f"{path}: not a readable image")
    return cv2.cvtColor(data, cv2.COLOR_BGR2RGB)


def frames_folder(folder: Path) -> Path:
    """Where a sequence folder keeps its frames: ``img/``, ``imgs/`` or the folder itself."""
    for name in FRAME_FOLDERS:
        if (folder / name).is_dir():
            return folder / name
    return folder


def sequence_frames(seq: Sequence) -> list[Path]:
    """One frame file per ground-truth line of ``seq``, from its ``frame_offset`` (extra frames after
    the last annotated one are left out); no frame folder, or fewer frames than ground-truth lines,
    is a :class:`UsageError`."""
    if seq.frames_dir is None:
        where = seq.annotation.parent if seq.annotation else seq.name
        raise UsageError(f"{where}: no frames for sequence {seq.name} (expected img/ or imgs/ beside the ground truth)")
    frames = list_frames(seq.frames_dir)[seq.frame_offset:]
    if len(frames) < len(seq):
        start = f" from frame {seq.frame_offset + 1}" if seq.frame_offset else ""
        raise UsageError(f"{seq.frames_dir}: {len(frames)} frames{start} for {len(seq)} ground-truth lines"
                         f"{f' in {seq.annotation}' if seq.annotation else ''}")
    return frames[:len(seq)]


def find_ground_truth(folder: Path, named_only: bool = False) -> Path | None:
    """The sequence's ground-truth file: ``groundtruth.txt``/``groundtruth_rect.txt``, else (unless
    ``named_only``) the folder's only ``.txt`` file that is not a flag, language or result file;
    ``None`` if none."""
    for name in GROUND_TRUTH_FILES:
        if (folder / name).is_file():
            return folder / name
    if named_only:
        return None
    skip = {"full_occlusion.txt", "out_of_view.txt", "nlp.txt", "language.txt", "absent.txt"}
    candidates = [p for p in folder.glob("*.txt") if p.name not in skip and not p.name.startswith(".")]
    return candidates[0] if len(candidates) == 1 else None


def is_sequence_folder(folder: Path, named_only: bool = False) -> bool:
    """Whether ``folder`` holds frames and a ground-truth file (a sequence :func:`open_sequence_folder`
    reads). ``named_only``: only a file named as ground truth counts (with a box given on the command
    line a stray ``notes.txt`` beside the frames is not an annotation)."""
    folder = Path(folder)
    return (folder.is_dir() and find_ground_truth(folder, named_only) is not None
            and bool(list_frames(frames_folder(folder))))


def open_sequence_folder(folder: Path) -> Sequence:
    """One sequence folder: frames in ``img/``, ``imgs/`` or the folder itself, ground truth in
    ``groundtruth.txt``, ``groundtruth_rect.txt`` or the folder's one other ``.txt``; LaSOT's
    ``full_occlusion.txt``/``out_of_view.txt`` give the visibility when present."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a directory")
    gt_file = find_ground_truth(folder)
    if gt_file is None:
        raise UsageError(f"{folder}: no ground-truth file (groundtruth.txt, groundtruth_rect.txt or a single .txt)")
    gt = read_table(gt_file)
    visible = None
    flags = [folder / "full_occlusion.txt", folder / "out_of_view.txt"]
    if all(f.is_file() for f in flags):
        values = []
        for f in flags:
            v = read_flags(f)
            if v.shape[0] != len(gt):
                raise UsageError(f"{f}:1: {v.shape[0]} flags for {len(gt)} ground-truth frames")
            values.append(v)
        visible = (values[0] == 0) & (values[1] == 0)
    seq = Sequence(folder.name, gt, visible, frames_folder(folder), None, gt_file, read_language(folder))
    sequence_frames(seq)  # fewer frames than ground truth: an error now, not mid-run
    return seq


class VideoFrames:
    """Frames of a video file as RGB arrays (``cv2.VideoCapture``); ``len()`` is the container's
    frame count (an estimate for some codecs; iteration stops at the real end)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        #: what ffmpeg printed while decoding (damaged frames), one ``"frame N: message"`` per frame
        self.notes: list[str] = []
        if not self.path.is_file():
            raise UsageError(f"{self.path}: no such video file")
        with native_stderr() as said:
            capture = cv2.VideoCapture(str(self.path))
            opened = capture.isOpened()
        if not opened:
            why = f"ffmpeg: {said.first}" if said.first else "cv2.VideoCapture"
            raise UsageError(f"{self.path}: cannot open as a video ({why})")
        self.count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        capture.release()

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[np.ndarray]:
        with native_stderr():  # one decoding thread: ffmpeg then reports a damaged frame inside read(), where
            # it is caught, not later from its own threads onto the terminal (nor competes with the runtime's threads)
            capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        try:
            for index in itertools.count(1):
                with native_stderr() as said:
                    ok, frame = capture.read()
                if said.first:
                    self.notes.append(f"frame {index}: {said.first}")
                if not ok:
                    break
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()
