"""An mp4 written so that a failure never passes for a video and never costs the old one.

:class:`VideoFile` writes the frames into a temporary file (:func:`zoo.fileio.atomic_path`:
beside a regular destination, in the temporary folder for a device, a FIFO or stdout). When the
frames are done the temporary file is checked: ``cv2.VideoWriter`` opened it, it is not empty,
``cv2.VideoCapture`` opens it again, its container counts every frame written and the last one
decodes. Only then does it replace the destination (or go through into the device); otherwise the
destination is left as it was and the failure is one :class:`ZooError` line. OpenCV's writer
reports nothing itself: on a full disk it writes a file without its index ("moov atom not found").
"""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from zoo.errors import ZooError
from zoo.fileio import atomic_path
from zoo.native import native_quiet

#: OpenCV's codec for ``.mp4`` (MPEG-4 part 2: in every OpenCV build)
FOURCC = "mp4v"
#: below this many free bytes a failed video is put down to a full file system
_NEARLY_FULL = 1 << 20


class VideoFile:
    """Frames (``H x W x 3`` BGR uint8, one size) written to ``path`` at ``fps``: :meth:`write`
    each, then :meth:`finish` (check, then replace ``path``) or :meth:`abandon`."""

    def __init__(self, path: Path, fps: float):
        self.path = Path(path)
        self.fps = fps
        self.frames = 0
        self.writer: cv2.VideoWriter | None = None
        self._commit = atomic_path(self.path, suffix=self.path.suffix or ".mp4")  # the container follows the suffix
        self.tmp = self._commit.__enter__()
        self._open = True

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            h, w = image.shape[:2]
            with native_quiet((2,)):  # OpenCV's own lines on a container it cannot fill
                self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*FOURCC), self.fps, (w, h))
            if not self.writer.isOpened():
                self.abandon()
                raise ZooError(f"cannot write video {self.path}: cv2.VideoWriter cannot write {FOURCC} "
                               f"into a {self.path.suffix or 'suffix-less'} file (use .mp4)")
        self.writer.write(image)
        self.frames += 1

    def finish(self) -> None:
        """Close the video, check it and put it at its destination; a video that does not read
        back completely is a :class:`ZooError` and the destination keeps what it held."""
        if self.writer is not None:
            self.writer.release()
        problem = self._problem()
        if problem is not None:
            reason = problem
            try:
                if shutil.disk_usage(self.tmp.parent).free < _NEARLY_FULL:
                    reason += "; its file system is full"
            except OSError:
                pass
            self.abandon()
            kept = " (the file there is unchanged)" if self.path.exists() else ""
            raise ZooError(f"cannot write video {self.path}: {reason}{kept}")
        self._open = False
        try:
            self._commit.__exit__(None, None, None)
        except OSError as exc:
            raise ZooError(f"cannot write video {self.path}: {exc.strerror or exc}") from None

    def abandon(self) -> None:
        """Drop the temporary file; the destination is left as it was."""
        if self.writer is not None:
            self.writer.release()
        if self._open:
            self._open = False
            self._commit.__exit__(ZooError, ZooError("abandoned"), None)

    def _problem(self) -> str | None:
        """What is wrong with the written file, ``None`` when it holds every frame."""
        if self.frames == 0:
            return "no frames were written"
        try:
            size = self.tmp.stat().st_size
        except OSError as exc:
            return exc.strerror or str(exc)
        if size == 0:
            return "the video writer wrote nothing"
        with native_quiet((2,)):  # ffmpeg's own lines ("moov atom not found") stay out of the one-line error
            capture = cv2.VideoCapture(str(self.tmp))
            try:
                if not capture.isOpened():
                    return f"the file written ({size} bytes) is not a readable video"
                count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
                last_ok = False
                if count == self.frames:
                    capture.set(cv2.CAP_PROP_POS_FRAMES, count - 1)
                    last_ok = capture.read()[0]
            finally:
                capture.release()
        if count != self.frames:
            return f"the file written holds {count} of {self.frames} frames"
        if not last_ok:
            return f"the last of its {count} frames does not decode"
        return None
