"""Sequences and datasets: ground truth, visibility and attributes, image-free.

A :class:`Sequence` carries what evaluation needs (ground-truth boxes, a visibility mask) and,
when the dataset root holds them, where the frames are (``frames_dir``), so the tracking issue can
run a tracker over the same objects without re-reading annotations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.errors import UsageError


@dataclass(frozen=True)
class DatasetSpec:
    """What zoo knows about a benchmark: its test split, attributes and evaluation rule.

    ``rule`` is pytracking's dataset rule: ``"lasot"`` (a shorter result is an error, invisible
    frames get infinite centre errors) or ``"default"`` (shorter results are padded).
    ``uses_visibility``: whether pytracking's reader for this dataset passes the visibility mask
    (its TNL2K reader does not).
    """

    name: str
    title: str
    split: str | None
    rule: str
    uses_visibility: bool
    attributes: tuple[tuple[str, str], ...] = ()
    attribute_suffix: str = ""  # attribute file: <seq><suffix>.txt


@dataclass(frozen=True)
class Sequence:
    """One annotated sequence: ``ground_truth`` (N, 4) float64 x,y,w,h (1-based pixels),
    ``visible`` (N,) bool or ``None`` when the dataset has no visibility labels, and optional
    ``frames_dir`` (image folder) and ``attributes`` (0/1 vector, the dataset's attribute order)."""

    name: str
    ground_truth: np.ndarray
    visible: np.ndarray | None = None
    frames_dir: Path | None = None
    attributes: np.ndarray | None = None
    annotation: Path | None = None
    #: the target described in words (LaSOT ``nlp.txt``, TNL2K ``language.txt``), when present
    language: str | None = None
    #: frames of ``frames_dir`` before the first annotated one (OTB's David is annotated from 0300.jpg)
    frame_offset: int = 0

    def __len__(self) -> int:
        return int(self.ground_truth.shape[0])

    def initial_box(self) -> tuple[float, float, float, float]:
        """The first ground-truth box (x, y, w, h), where a tracker starts; a one-line
        :class:`UsageError` naming the annotation file when it is empty or not finite."""
        box = tuple(float(v) for v in self.ground_truth[0]) if len(self) else ()
        if len(box) != 4 or not all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
            where = f"{self.annotation}:1" if self.annotation is not None else f"sequence {self.name}, frame 1"
            shown = ",".join(f"{v:g}" for v in box) or "nothing"
            raise UsageError(f"{where}: the first ground-truth box is {shown}: a tracker starts from a box with "
                             "width and height > 0 there")
        return box  # type: ignore[return-value]

    @property
    def absent(self) -> int:
        """Frames where the target is not visible."""
        return 0 if self.visible is None else int((~self.visible).sum())


@dataclass
class Dataset:
    """Sequences of one benchmark as found on disk. ``missing`` lists split sequences with no
    annotation under the given root (evaluation runs on those present)."""

    spec: DatasetSpec
    sequences: list[Sequence]
    source: Path
    missing: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def frames(self) -> int:
        return sum(len(s) for s in self.sequences)

    def names(self) -> list[str]:
        """Sequence names in evaluation order."""
        return [s.name for s in self.sequences]

    def has_attributes(self) -> bool:
        return bool(self.spec.attributes) and all(s.attributes is not None for s in self.sequences) and bool(self.sequences)

    def subset(self, names: list[str]) -> "Dataset":
        """The same dataset restricted to ``names`` (order kept)."""
        keep = set(names)
        return Dataset(self.spec, [s for s in self.sequences if s.name in keep], self.source, list(self.missing))
