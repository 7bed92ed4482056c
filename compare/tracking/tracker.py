"""The tracker loop (:mod:`zoo.tracking`) bound to a runner, timed per frame, and run over sequences.

:class:`Tracker` = a loaded runner (PyTorch eager or an exported artifact) + a
:class:`zoo.tracking.TrackerLoop` of one preset. Per tracked frame it records the network time
(the runtime call itself, ``runner.last_inference_time``) and the whole-loop time (crop, resize,
normalisation, network, window, decode, map-back). :class:`TrackerSpec` is its picklable recipe
(worker processes and Ray actors build their own); :func:`track_sequence` runs one over a
sequence of frames and returns a :class:`SequenceRun`.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compare.runners import BaseRunner, open_artifact
from zoo.artifacts import SPLIT_SUFFIX, ArtifactKey
from zoo.backends import reference_runner_class
from zoo.io_roles import role_inputs
from zoo.schema import TrackingPreset, Variant
from zoo.tracking import XYWH, TrackerLoop, check_box

#: the tracker name in result folders: ``<variant>@<runtime>-<precision>``, e.g. ``fgaf3@tflite-fp16``
NAME_FORMAT = "{variant}@{runtime}-{precision}"


def tracker_name(key: ArtifactKey, preset: str | None = None) -> str:
    """``fgaf3@tflite-fp16``; a split artifact adds ``-split`` (``fgaf3@tflite-fp16-split``), a preset
    other than the variant's own is appended as ``+<preset>``."""
    name = NAME_FORMAT.format(variant=key.variant, runtime=key.runtime, precision=key.precision) + (SPLIT_SUFFIX if key.split else "")
    return f"{name}+{preset}" if preset else name


@dataclass(frozen=True)
class TrackerSpec:
    """A picklable recipe for a :class:`Tracker`: the artifact (its key and directory; the reference
    key for PyTorch eager), the variant, the tracking preset and the runtime's thread count."""

    key: ArtifactKey
    variant: Variant
    preset: TrackingPreset
    artifact: Path | None = None  # the artifact directory (None for pytorch)
    threads: int = 1
    #: the preset's name when it is not the variant's own (goes into the tracker's name)
    preset_suffix: str | None = None

    @property
    def name(self) -> str:
        return tracker_name(self.key, self.preset_suffix)

    def runner(self) -> BaseRunner:
        """The (unloaded) runner: PyTorch eager, or the artifact checked against its manifest."""
        if self.key.is_reference:
            runner: BaseRunner = reference_runner_class()(self.variant)
            runner.set_threads(self.threads)
            return runner
        return open_artifact(self.artifact, self.variant, threads=self.threads)

    def build(self) -> "Tracker":
        """A :class:`Tracker` with its runner loaded."""
        return Tracker(self.runner().load(), self.variant, self.preset, name=self.name)


class Tracker:
    """A single-object tracker on one runtime: ``initialize(frame, box)``, then
    ``track(frame) -> (box, score)`` per frame (frames HxWx3 uint8 RGB, boxes x,y,w,h in pixels).

    ``network_times`` and ``loop_times`` hold the seconds of every :meth:`track` call (the runtime
    call alone / the whole loop); ``init_time`` the seconds of the last :meth:`initialize`.

    The runner gets ``{template, search}`` every frame, the template being the same array object
    from one :meth:`initialize` to the next: a runner of a split artifact (an init graph and a
    track graph) can run its init graph when that object changes and only the track graph otherwise.
    """

    def __init__(self, runner: BaseRunner, variant: Variant, preset: TrackingPreset, name: str | None = None):
        self.runner = runner
        self.variant = variant
        self.preset = preset
        self.name = name or runner.name
        roles = role_inputs(variant)
        self._template_input = roles["template"]
        pre = variant.preprocessing
        self.loop = TrackerLoop(preset, self._infer, pre.template_size, pre.search_size, roles["template"], roles["search"])
        self.network_times: list[float] = []
        self.loop_times: list[float] = []
        self.init_time: float = float("nan")

    def _infer(self, inputs):
        out = self.runner.infer(dict(inputs))
        self.network_times.append(float(self.runner.last_inference_time or 0.0))
        return out

    def initialize(self, frame: np.ndarray, box) -> None:
        """Start tracking the target at ``box`` = (x, y, w, h) in ``frame``; clears the timings.

        A split artifact's runner (``prime``) runs its init graph here, so each :meth:`track` runs
        only the track graph."""
        start = time.perf_counter()
        self.loop.initialize(frame, box)
        prime = getattr(self.runner, "prime", None)
        if prime is not None:
            prime({self._template_input: self.loop.template})
        self.init_time = time.perf_counter() - start
        self.network_times.clear()
        self.loop_times.clear()

    def track(self, frame: np.ndarray) -> tuple[XYWH, float]:
        """The target's box (x, y, w, h) in ``frame`` and the frame's score."""
        start = time.perf_counter()
        box, score = self.loop.track(frame)
        self.loop_times.append(time.perf_counter() - start)
        return box, score

    @property
    def state(self) -> XYWH | None:
        return self.loop.state

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class SequenceRun:
    """One One-Pass-Evaluation run: a box, score and times per frame (frame 0 = the initial box)."""

    tracker: str
    sequence: str
    boxes: np.ndarray  # (N, 4) x, y, w, h
    scores: np.ndarray  # (N,), 1.0 for the initial frame
    loop_s: np.ndarray  # (N,) whole-loop seconds (frame 0: initialisation)
    network_s: np.ndarray  # (N,) network seconds (frame 0: 0, the template is only cropped)
    extra: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return int(self.boxes.shape[0])


def track_sequence(tracker: Tracker, frames: Iterable[np.ndarray], init_box, sequence: str = "",
                   on_frame: Callable[[int, np.ndarray, XYWH, float], None] | None = None) -> SequenceRun:
    """Run ``tracker`` over ``frames`` from ``init_box`` (frame 0's box): One-Pass Evaluation.

    The one per-frame loop of zoo (``zoo eval run``'s sequences and ``zoo track``): initialise on
    the first frame, track every later one, record box, score and times. ``on_frame(k, frame, box,
    score)`` is called after each frame (frame 0 with the initial box and score 1)."""
    boxes, scores, loop_s, net_s = [], [], [], []
    for k, frame in enumerate(frames):
        if k == 0:
            box = check_box(init_box)
            tracker.initialize(frame, box)
            boxes.append(box)
            scores.append(1.0)
            loop_s.append(tracker.init_time)
            net_s.append(0.0)
        else:
            box, score = tracker.track(frame)
            boxes.append(box)
            scores.append(score)
            loop_s.append(tracker.loop_times[-1])
            net_s.append(tracker.network_times[-1])
        if on_frame is not None:
            on_frame(k, frame, boxes[-1], scores[-1])
    return SequenceRun(tracker.name, sequence, np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64),
                       np.asarray(loop_s, np.float64), np.asarray(net_s, np.float64))
