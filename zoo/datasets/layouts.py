"""Ground truth from a dataset root or from an official toolkit's annotation-only layout.

Dataset roots (images optional, never read):

- LaSOT, LaSOT_ext: ``<root>/<class>/<seq>/groundtruth.txt`` + ``full_occlusion.txt`` +
  ``out_of_view.txt`` (``<root>/<seq>/...`` also accepted); frames in ``img/``.
- TNL2K: ``<root>/<seq>/groundtruth.txt``; frames in ``imgs/``.
- OTB: ``<root>/<Seq>/groundtruth_rect.txt`` (``groundtruth_rect.<k>.txt`` becomes ``<Seq>_<k>``,
  as pytracking names them); frames in ``img/``.

Annotation-only layouts (``--annotations DIR``):

- LaSOT toolkit: ``annos/<seq>.txt`` + ``annos/absent/<seq>.txt`` (+ ``annos/att/<seq>.txt``);
  DIR may be the toolkit root or its ``annos`` folder.
- TNL2K toolkit: ``gt_rect/<seq>.txt`` + ``absent/<seq>.txt`` (+ ``att/<seq>_attribute.txt``);
  DIR may also be the toolkit root holding ``annos/gt_rect``.
- Any flat folder of ``<seq>.txt`` (optionally with ``absent/``) works the same way (e.g. OTB).
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable
from collections.abc import Sequence as Seq
from pathlib import Path

import numpy as np

from zoo.catalog import did_you_mean
from zoo.datasets.sequence import Dataset, DatasetSpec, Sequence
from zoo.datasets.specs import dataset_spec, split_names
from zoo.datasets.textio import read_flags, read_table
from zoo.errors import UsageError

_FRAMES = {"lasot": "img", "lasot_ext": "img", "tnl2k": "imgs", "otb": "img"}
#: OTB sequences whose ground truth starts after the folder's first frame (as OTB-2015 ships them:
#: David's 471 boxes are frames 0300-0770 of 770). Where boxes end early (Diving, Football1,
#: Freeman3, Freeman4) the extra frames at the end are left out by the frame readers.
OTB_FIRST_FRAME = {"David": 300}


def _flags_for(path: Path, n: int, what: str) -> np.ndarray:
    flags = read_flags(path)
    if flags.shape[0] != n:
        raise UsageError(f"{path}:1: {flags.shape[0]} {what} flags for {n} ground-truth frames")
    return flags


def _attributes(path: Path, spec: DatasetSpec) -> np.ndarray | None:
    if not path.is_file():
        return None
    values = read_flags(path)
    if values.shape[0] != len(spec.attributes):
        raise UsageError(f"{path}:1: {values.shape[0]} attribute values, {spec.title} has {len(spec.attributes)}")
    return values > 0


def _root_sequence(spec: DatasetSpec, name: str, folder: Path, gt_file: Path) -> Sequence:
    gt = read_table(gt_file)
    visible = None
    if spec.name in ("lasot", "lasot_ext"):
        occ, oov = folder / "full_occlusion.txt", folder / "out_of_view.txt"
        for flag_file in (occ, oov):
            if not flag_file.is_file():
                raise UsageError(f"{flag_file}: missing (LaSOT sequences need full_occlusion.txt and out_of_view.txt)")
        visible = (_flags_for(occ, len(gt), "full-occlusion") == 0) & (_flags_for(oov, len(gt), "out-of-view") == 0)
    frames = folder / _FRAMES[spec.name]
    offset = OTB_FIRST_FRAME.get(name, 1) - 1 if spec.name == "otb" else 0
    return Sequence(name, gt, visible, frames if frames.is_dir() else None, None, gt_file, read_language(folder),
                    frame_offset=offset)


def read_language(folder: Path) -> str | None:
    """The sequence's description: LaSOT's ``nlp.txt`` or TNL2K's ``language.txt`` (None if absent)."""
    for name in ("nlp.txt", "language.txt"):
        path = folder / name
        if path.is_file():
            try:
                return path.read_text(encoding="utf-8", errors="replace").strip() or None
            except OSError:
                return None
    return None


def _scan_root(spec: DatasetSpec, root: Path) -> dict[str, tuple[Path, Path]]:
    """Every annotated sequence under ``root``: name -> (folder, ground-truth file)."""
    found: dict[str, tuple[Path, Path]] = {}
    if spec.name == "otb":
        for gt in sorted(root.glob("*/groundtruth_rect*.txt")):
            middle = gt.name[len("groundtruth_rect"):-len(".txt")].strip(".")
            name = gt.parent.name + (f"_{middle}" if middle else "")
            found[name] = (gt.parent, gt)
        return found
    for pattern in ("*/groundtruth.txt", "*/*/groundtruth.txt"):
        for gt in sorted(root.glob(pattern)):
            found.setdefault(gt.parent.name, (gt.parent, gt))
    return found


def _annotation_dirs(spec: DatasetSpec, directory: Path) -> tuple[Path, Path | None, Path | None]:
    """(boxes folder, absent folder, attribute folder) of an annotation-only layout."""
    for boxes in (directory / "annos" / "gt_rect", directory / "gt_rect", directory / "annos", directory):
        if boxes.is_dir() and any(boxes.glob("*.txt")):
            break
    else:
        raise UsageError(f"{directory}: no annotation files (<seq>.txt) here, in annos/ or in gt_rect/")
    absent = next((d for d in (boxes / "absent", boxes.parent / "absent") if d.is_dir()), None)
    att = next((d for d in (boxes / "att", boxes.parent / "att") if d.is_dir()), None)
    return boxes, absent, att


def is_pattern(text: str) -> bool:
    """Whether ``text`` is a shell wildcard pattern (``*``, ``?``, ``[...]``) rather than a name."""
    return any(c in text for c in "*?[")


def select(names: Seq[str], patterns: Seq[str] | None, dataset: str) -> list[str]:
    """The names matching any of ``patterns`` (shell globs, exact names too); no pattern: all."""
    if not patterns:
        return list(names)
    chosen: set[str] = set()
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise UsageError(f"--sequences {pattern!r} matches no sequence of {dataset}{did_you_mean(pattern, names)}")
        chosen.update(hits)
    return [n for n in names if n in chosen]


def load_dataset(name: str, *, root: Path | None = None, annotations: Path | None = None,
                 patterns: Seq[str] | None = None, all_sequences: bool = False,
                 on_sequence: Callable[[str], None] | None = None) -> Dataset:
    """Read the ground truth of ``name`` (lasot, lasot_ext, tnl2k, otb) from a dataset ``root`` or an
    ``annotations`` folder, restricted to the official test split (unless ``all_sequences``) and to
    ``patterns``. A pattern without a wildcard names one sequence, which is read even when it is not
    in the split; wildcards select within the split. Split sequences absent from the folder are
    listed in ``Dataset.missing``."""
    spec = dataset_spec(name)
    if (root is None) == (annotations is None):
        raise UsageError("give the ground truth with exactly one of --root DIR or --annotations DIR")
    source = Path(root if root is not None else annotations).expanduser()
    if not source.is_dir():
        raise UsageError(f"{source}: not a directory")
    if root is not None:
        entries = _scan_root(spec, source)
        if not entries:
            expected = "<Seq>/groundtruth_rect.txt" if spec.name == "otb" else "[<class>/]<seq>/groundtruth.txt"
            raise UsageError(f"{source}: no {spec.title} sequences ({expected}) under this root")
        boxes = absent = att = None
    else:
        boxes, absent, att = _annotation_dirs(spec, source)
        entries = {p.stem: (boxes, p) for p in sorted(boxes.glob("*.txt"))}
    split = None if all_sequences else split_names(spec)
    if split is None:
        candidates, missing = sorted(entries), []
    else:
        # a sequence named exactly (no wildcard) runs even outside the test split: the user asked for it
        named = [p for p in patterns or () if not is_pattern(p) and p in entries and p not in split]
        candidates = [n for n in split if n in entries] + sorted(set(named))
        missing = [n for n in split if n not in entries]
        if not candidates:
            raise UsageError(f"{source}: none of the {len(split)} {spec.title} test sequences is annotated here "
                             f"(found {len(entries)} others; --all-sequences evaluates every annotated sequence)")
    chosen = select(candidates, patterns, spec.title)
    if patterns:
        missing = []
    sequences = []
    for seq_name in chosen:
        if on_sequence is not None:
            on_sequence(seq_name)
        folder, gt_file = entries[seq_name]
        if root is not None:
            seq = _root_sequence(spec, seq_name, folder, gt_file)
        else:
            gt = read_table(gt_file)
            visible = None
            if absent is not None and (absent / gt_file.name).is_file():
                visible = _flags_for(absent / gt_file.name, len(gt), "absent") == 0
            attributes = _attributes(att / f"{seq_name}{spec.attribute_suffix}.txt", spec) if att and spec.attributes else None
            seq = Sequence(seq_name, gt, visible, None, attributes, gt_file)
        sequences.append(seq)
    return Dataset(spec, sequences, source, missing)
