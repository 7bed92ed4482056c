"""``zoo track``: run one tracker over a video, a folder of frames or a dataset sequence."""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

import click
import cv2
import numpy as np

from compare.tracking.tracker import Tracker, track_sequence
from zoo.api import Tracker as ApiTracker
from zoo.backends import DEFAULT_RUNTIME, PRECISIONS, REFERENCE_RUNTIME, RUNTIMES, describe
from zoo.catalog import Catalog
from zoo.cli.caveats import untrained_note
from zoo.cli.options import (DEVICE_SYNTAX, REPORT_FILE, AliasedOption, ReportPath, artifacts_option, counts, distinct_outputs,
                             oversubscribe_option)
from zoo.cli.output import Column, View, err, out, progress_bar, report_json, show, to_json, write_text
from zoo.cli.tables import label as label_column
from zoo.datasets.frames import VideoFrames, frames_folder, is_sequence_folder, list_frames, open_sequence_folder, read_frame, sequence_frames
from zoo.datasets.textio import TRACK_DELIMITER, boxes_text
from zoo.devices import LOCAL, parse_device
from zoo.errors import UsageError, ZooError
from zoo.fileio import file_kind
from zoo.evaluation import metrics
from zoo.names import choose
from zoo.tracking import check_box
from zoo.videofile import VideoFile

SUMMARY_COLUMNS = [label_column("tracker"), Column("frames", "frames"),
                   Column("network_ms_mean", "net ms mean", ".2f", drop=2), Column("network_ms_median", "net ms median", ".2f"),
                   Column("loop_ms_mean", "loop ms mean", ".2f", drop=1), Column("loop_ms_median", "loop ms median", ".2f"),
                   Column("fps", "fps", ".1f"), Column("mean_iou", "mean IoU", ".3f"),
                   Column("iou_ge_0.5", "IoU≥0.5 %", ".1f")]
#: ``--boxes`` (old name ``--out``, hidden) is a file: a directory there is most likely meant as
#: the artifacts folder, which is ``--artifacts``
BOXES_FILE = ReportPath("--boxes/--out is the boxes file; the artifacts folder is --artifacts DIR")


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``x,y,w,h`` (commas or spaces) -> four floats; a usage error otherwise."""
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise UsageError(f"--init {text!r}: expected four numbers x,y,w,h") from None
    if len(values) != 4:
        raise UsageError(f"--init {text!r}: expected four numbers x,y,w,h, got {len(values)}")
    try:
        return check_box(values)
    except UsageError as exc:
        raise UsageError(f"--init {text!r}: {exc}") from None


class _Source:
    """Frames to track, their count, an initial box, optional ground truth and the files read
    (``inputs``: the video or folder, its frames, its ground truth; no output may be one of them)."""

    def __init__(self, path: Path, init: str | None):
        self.ground_truth: np.ndarray | None = None
        self.fps = 30.0
        self.inputs: dict[str, list[Path]] = {"SOURCE": [path]}
        #: what the decoders said about damaged frames (libjpeg, ffmpeg), summarised in one line
        self.notes: list[str] = []
        init_box = parse_box(init) if init else None
        if path.is_file():
            video = VideoFrames(path)
            self.kind, self.count, self._frames = "video", len(video), video
            self.notes = video.notes
            self.fps = video.fps or 30.0
        elif path.is_dir() and is_sequence_folder(path, named_only=init_box is not None):
            seq = open_sequence_folder(path)
            files = sequence_frames(seq)
            self.kind, self.count, self._frames = "sequence", len(files), (read_frame(f, self.notes) for f in files)
            self.ground_truth = seq.ground_truth
            self.inputs["one of SOURCE's frames"] = files
            self.inputs["SOURCE's ground truth"] = [seq.annotation, *(path / n for n in ("full_occlusion.txt", "out_of_view.txt"))]
            if init_box is None:
                try:
                    init_box = seq.initial_box()
                except UsageError as exc:
                    raise UsageError(f"{exc}; or give --init x,y,w,h") from None
        elif path.is_dir():
            files = list_frames(frames_folder(path))
            if not files:
                raise UsageError(f"{path}: no frames (.jpg, .png, ...) in this folder, in img/ or in imgs/")
            self.kind, self.count, self._frames = "frames", len(files), (read_frame(f, self.notes) for f in files)
            self.inputs["one of SOURCE's frames"] = files
        elif path.exists():
            raise UsageError(f"{path}: is {file_kind(path.stat().st_mode)}, not a video file or a folder of frames")
        else:
            raise UsageError(f"{path}: no such file or folder")
        if init_box is None:
            raise UsageError(f"{path}: give the target in the first frame with --init x,y,w,h "
                             "(only a sequence folder with ground truth initialises itself)")
        self.init_box = init_box

    def __iter__(self):
        return iter(self._frames)


class _VideoOut:
    """The annotated mp4: each frame with the tracker's box (green), the ground truth (blue) when
    known, a header naming the tracker and the frame (score, IoU to the ground truth) and a legend,
    plus "untrained weights" when the catalog's reference weights ran; written by
    :class:`zoo.videofile.VideoFile` (checked before it replaces its destination)."""

    BOX, TRUTH = (0, 220, 0), (255, 160, 0)  # BGR

    def __init__(self, path: Path, fps: float, tracker: str = "", untrained: bool = False):
        self.tracker, self.untrained = tracker, untrained
        try:
            self.file = VideoFile(path, fps)
        except OSError as exc:
            raise ZooError(f"cannot write video {path}: {exc.strerror or exc}") from None

    @staticmethod
    def _text(image: np.ndarray, text: str, xy: tuple[int, int], colour=(255, 255, 255), scale: float = 0.45) -> None:
        cv2.putText(image, text, xy, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, text, xy, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)

    def write(self, frame: np.ndarray, box, score: float, index: int, truth=None, iou: float | None = None) -> None:
        image = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        has_truth = truth is not None and truth[2] > 0 and truth[3] > 0
        if has_truth:
            x, y, w, h = (int(round(v)) for v in truth)
            cv2.rectangle(image, (x, y), (x + w, y + h), self.TRUTH, 1)
        x, y, w, h = (int(round(v)) for v in box)
        cv2.rectangle(image, (x, y), (x + w, y + h), self.BOX, 2)
        self._text(image, self.tracker, (6, 16))
        self._text(image, f"#{index}  score {score:.3f}" + (f"  IoU {iou:.2f}" if iou is not None else ""), (6, 34))
        height = image.shape[0]
        legend = [("tracker", self.BOX)] + ([("ground truth", self.TRUTH)] if truth is not None else [])
        for k, (label, colour) in enumerate(legend):
            y0 = height - 10 - 16 * (len(legend) - 1 - k)
            cv2.rectangle(image, (6, y0 - 8), (18, y0), colour, -1)
            self._text(image, label, (24, y0), scale=0.4)
        if self.untrained:
            self._text(image, "untrained weights: not tracking skill", (6, 52), (0, 200, 255), 0.4)
        self.file.write(image)

    def finish(self) -> None:
        self.file.finish()

    def abandon(self) -> None:
        self.file.abandon()


def truth_iou(box, truth) -> float | None:
    """The IoU of ``box`` to the ground-truth box ``truth`` (``None`` without one, or when it is
    empty: an absent target), in the pixel convention ``zoo eval analyze`` uses
    (:func:`zoo.evaluation.metrics.iou`), so both report the same figure for the same boxes."""
    if truth is None or not (truth[2] > 0 and truth[3] > 0):
        return None
    return float(metrics.iou(np.asarray(box, np.float64), np.asarray(truth, np.float64))[0])


def summary_row(tracker: Tracker, frames: int, ious: list[float] | None) -> dict:
    net = [t * 1000 for t in tracker.network_times]
    loop = [t * 1000 for t in tracker.loop_times]
    row = {"tracker": tracker.name, "frames": frames,
           "network_ms_mean": statistics.fmean(net) if net else None, "network_ms_median": statistics.median(net) if net else None,
           "loop_ms_mean": statistics.fmean(loop) if loop else None, "loop_ms_median": statistics.median(loop) if loop else None,
           "fps": 1000 * len(loop) / sum(loop) if loop and sum(loop) > 0 else None, "mean_iou": None, "iou_ge_0.5": None}
    if ious:
        row["mean_iou"] = float(np.mean(ious))
        row["iou_ge_0.5"] = 100.0 * float(np.mean(np.asarray(ious) >= 0.5))
    return row


@click.command("track")
@click.argument("variant")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--init", "init", metavar="X,Y,W,H", help="The target in the first frame (pixels; default: a sequence folder's first ground-truth box).")
@click.option("--runtime", default=DEFAULT_RUNTIME, show_default=True, metavar="RUNTIME", help=f"{REFERENCE_RUNTIME} {describe(RUNTIMES)}.")
@click.option("--precision", default="fp32", show_default=True, metavar="PRECISION", help=f"{describe(PRECISIONS)} (as the runtime offers).")
@click.option("--threads", default="1", show_default=True, metavar="N", help="Threads of the runtime.")
@click.option("--preset", default=None, metavar="NAME", help="Tracking preset of zoo.yaml (default: the variant's own).")
@click.option("--boxes", "boxes_file", cls=AliasedOption, hidden_aliases=("--out",), type=BOXES_FILE, default=None,
              help="Write the boxes (x,y,w,h per frame, comma separated) to FILE.")
@click.option("--video", "video_file", type=REPORT_FILE, default=None, help="Write the frames with the box and score drawn (mp4).")
@click.option("--json", "json_file", type=REPORT_FILE, default=None, help="Per-frame boxes, scores, times (and IoU) and the summary as JSON ('-': stdout).")
@artifacts_option("artifacts_dir", hidden_aliases=())
@click.option("--split", is_flag=True, help="Use the split artifact: its init graph (template -> cache) at initialisation, "
              "its track graph (search + cache) per frame; exported first when missing.")
@click.option("--device", default=None, metavar="DEVICE",
              help=f"Run the network on DEVICE ({DEVICE_SYNTAX}); the tracking loop stays here. Emulated devices: "
                   "the boxes (ARM kernels), never the speed.")
@oversubscribe_option
def track_cmd(variant, source, init, runtime, precision, threads, preset, boxes_file, video_file, json_file, artifacts_dir,
              allow_oversubscribe, split=False, device=None) -> None:
    """Track the target of SOURCE with VARIANT's network in one runtime: a video file, a folder of
    frames, or a dataset sequence folder (LaSOT/TNL2K/OTB layout or frames beside one ground-truth
    file: the first box initialises, and the IoU to the ground truth is printed). Examples:

      zoo track fgaf3 clip.mp4 --init 120,80,60,90 --video tracked.mp4

      zoo track base-c128 ~/data/OTB/Crossing --runtime mnn --boxes boxes.txt
    """
    (runtime,) = choose([runtime], (REFERENCE_RUNTIME, *RUNTIMES), "runtime")
    (threads_n,) = counts([threads], "--threads", allow_oversubscribe=allow_oversubscribe)
    cv2.setNumThreads(threads_n)  # OpenCV's pool (decoding, crop resize) within the same thread budget as the runtime
    src = _Source(source, init)
    distinct_outputs({"--boxes": boxes_file, "--video": video_file, "--json": json_file}, src.inputs)
    if video_file is not None and str(video_file) == "-" and sys.stdout.isatty():
        raise UsageError("--video -: stdout is a terminal; redirect it (--video - > tracked.mp4, or into a player) or name a file")
    where = parse_device(device) if device else LOCAL
    catalog = Catalog.load()
    tracker = ApiTracker(variant, runtime=runtime, precision=precision, threads=threads_n, preset=preset, out=artifacts_dir, split=split,
                         device=device, allow_oversubscribe=allow_oversubscribe, catalog=catalog)
    caveat = untrained_note([variant], catalog)
    video = _VideoOut(video_file, src.fps, tracker.name, untrained=caveat is not None) if video_file is not None else None
    rows, ious = [], []
    gt = src.ground_truth
    try:
        with tracker, progress_bar(counted=True, info=True) as progress:
            task = progress.add_task(f"track {tracker.name}", total=src.count or None)

            def on_frame(k, frame, box, score) -> None:
                if k == 0:
                    net_ms, loop_ms = None, tracker.init_time * 1000
                else:
                    net_ms, loop_ms = tracker.network_times[-1] * 1000, tracker.loop_times[-1] * 1000
                if not where.kind.timing:
                    net_ms = loop_ms = None
                row = {"frame": k, "box": [float(v) for v in box], "score": float(score), "network_ms": net_ms, "loop_ms": loop_ms}
                truth = gt[k] if gt is not None and k < len(gt) else None
                iou = truth_iou(box, truth) if k > 0 else None
                if iou is not None:
                    row["iou"] = iou
                    ious.append(iou)
                rows.append(row)
                if video is not None:
                    video.write(frame, box, score, k, truth, iou)
                loops = tracker.loop_times
                fps = len(loops) / sum(loops) if loops and sum(loops) > 0 else 0.0
                speed = [f"{fps:.1f} fps"] if where.kind.timing else []
                progress.update(task, advance=1, info=", ".join(speed + ([f"IoU {iou:.2f}"] if iou is not None else [])))

            track_sequence(tracker, src, src.init_box, on_frame=on_frame)
        if not rows:
            raise UsageError(f"{source}: no frames could be read")
        if boxes_file is not None:
            write_text(boxes_file, boxes_text([r["box"] for r in rows], TRACK_DELIMITER))
        summary = summary_row(tracker, len(rows), ious)
        console = out()
        title = f"zoo track {tracker.name} on {source} ({src.kind}, {len(rows)} frames, {threads_n} thread{'s' if threads_n > 1 else ''})"
        if not where.kind.timing:  # an emulated CPU's milliseconds are the emulator's, not a device's
            summary.update(network_ms_mean=None, network_ms_median=None, loop_ms_mean=None, loop_ms_median=None, fps=None)
            title += f"; no timing: {where.kind.no_timing_reason}"
        lines = [f"IoU to the ground truth: mean {summary['mean_iou']:.3f}, {summary['iou_ge_0.5']:.1f}% of frames >= 0.5"] if ious else []
        views = [View("summary", title, [summary], SUMMARY_COLUMNS, caption="\n".join(lines + ([caveat] if caveat else [])))]
        show(views, console)
        if src.notes:
            more = f" (and {len(src.notes) - 1} more)" if len(src.notes) > 1 else ""
            err().print(f"warning: the decoder reported damage in {len(src.notes)} frame{'s' if len(src.notes) > 1 else ''} "
                        f"of {source}: {src.notes[0]}{more}", markup=False, highlight=False, soft_wrap=True)
        if json_file is not None:
            write_text(json_file, to_json(report_json(views, {"tracker": tracker.name, "source": str(source), "kind": src.kind,
                                                              "init": list(src.init_box), "summary": summary, "frames": rows})))
        if video is not None:  # last: a video that fails its check costs neither the boxes nor the report
            video.finish()
            console.print(f"video: {video_file}", markup=False, highlight=False)
    except BaseException:
        if video is not None:
            video.abandon()
        raise
