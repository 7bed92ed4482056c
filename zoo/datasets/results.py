"""Raw tracking results: a folder of ``<seq>.txt`` files (x,y,w,h per frame) per tracker.

The tracker's name is the folder's name, with these layouts recognised:

- ``DIR/<seq>.txt`` -> name ``DIR``'s name (a ``_tracking_result`` suffix, the LaSOT toolkit's
  convention, is dropped);
- ``<tracker>/<dataset>/<seq>.txt`` (``zoo eval run``'s layout): given ``<tracker>`` or
  ``<tracker>/<dataset>``, the name is ``<tracker>``;
- ``NAME=DIR`` names the tracker explicitly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.datasets.specs import ALIASES, DATASETS
from zoo.datasets.textio import read_table
from zoo.errors import UsageError

_DATASET_FOLDERS = {*DATASETS, *ALIASES}


@dataclass(frozen=True)
class TrackerResults:
    """One tracker's result files: ``files`` maps a sequence name to its ``.txt``."""

    name: str
    folder: Path
    files: dict[str, Path]

    def missing(self, names: list[str]) -> list[str]:
        """Sequences of ``names`` this tracker has no result for."""
        return [n for n in names if n not in self.files]

    def read(self, sequence: str) -> np.ndarray:
        """The raw boxes of ``sequence`` as an (N, 4) float64 array (bad lines: UsageError)."""
        return read_table(self.files[sequence])


def _txt_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.glob("*.txt")) if p.is_file()}


def open_results(argument: str, dataset: str, sequences: list[str] | None = None) -> TrackerResults:
    """Resolve a RESULTS argument (``DIR`` or ``NAME=DIR``) for ``dataset``.

    ``sequences`` (the dataset's names) lets files whose names differ only in case or in ``-``/``_``
    be matched. A folder with no ``.txt`` file raises :class:`UsageError`.
    """
    name = None
    path = Path(argument).expanduser()
    if not path.exists() and "=" in argument:
        name, _, rest = argument.partition("=")
        path = Path(rest).expanduser()
    if not path.is_dir():
        raise UsageError(f"{path}: results folder not found")
    files = _txt_files(path)
    folder = path
    if not files:
        sub = next((path / d for d in (dataset, *[a for a, c in ALIASES.items() if c == dataset]) if (path / d).is_dir()), None)
        if sub is not None and _txt_files(sub):
            folder, files = sub, _txt_files(sub)
    if not files:
        raise UsageError(f"{path}: no .txt result files (expected <seq>.txt, x,y,w,h per line)")
    if name is None:
        name = folder.name
        if name.lower() in _DATASET_FOLDERS and folder.parent.name:
            name = folder.parent.name
        name = name.removesuffix("_tracking_result")
    if sequences:
        def key(s: str) -> str:
            return s.lower().replace("-", "_")

        by_key = {key(s): s for s in sequences}
        for stem in list(files):
            canonical = by_key.get(key(stem))
            if stem not in by_key.values() and canonical and canonical not in files:
                files[canonical] = files.pop(stem)
    return TrackerResults(name, folder, files)
