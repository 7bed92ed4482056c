"""Input pairs for a comparison: the held-out pairs by default, or the user's ``.npz``.

By default ``--samples N`` gives the first ``N`` held-out pairs (:func:`zoo.calibration.held_out_pairs`,
the tracker-level gate's pairs): ``N`` distinct pairs, whatever ``N``. Without a tracking preset
(callers that need no more than the bundled scenes) only the :data:`zoo.sample_inputs.SCENES` pairs
exist, and asking for more is refused. Every pair judged is distinct: an ``.npz`` holding the same
pair twice is refused, naming how many distinct pairs it holds.

An ``.npz`` holds one array per catalog input name, either one pair (the catalog shape, e.g.
``1x3x256x256``) or several along a leading sample axis (``Nx1x3x256x256``); every input must
carry the same number of samples. :func:`save_npz` writes the same layout back, so a file saved
with ``--save-inputs`` is a valid ``--inputs`` file.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from zoo.calibration import held_out_pairs, pair_digest
from zoo.errors import UsageError
from zoo.fileio import atomic_path
from zoo.sample_inputs import SCENES, sample_pairs
from zoo.schema import QuantizationSpec, TrackingPreset, Variant

Pair = dict[str, np.ndarray]


def read_npz(path: Path | str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file; a missing or unreadable file is a usage error."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--inputs file not found: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy: one unnamed array
            raise UsageError(f"{path} holds a single unnamed array (.npy); --inputs needs an .npz with one array "
                             "per catalog input name (np.savez(f, template=..., search=...))")
        with loaded as data:
            return {key: np.asarray(data[key]) for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(f"cannot read {path} as .npz: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def pairs_from_arrays(arrays: dict[str, np.ndarray], variant: Variant, source: str = "inputs") -> list[Pair]:
    """Split named arrays into per-sample pairs for ``variant``, checking names and shapes.

    Keys must be exactly the variant's catalog input names (extra or missing keys are a usage
    error); each array is either the catalog shape or that shape with a leading sample axis.
    """
    expected = [spec.name for spec in variant.io.inputs]
    if sorted(arrays) != sorted(expected):
        raise UsageError(f"{source}: keys {sorted(arrays)} do not match {variant.name}'s inputs {sorted(expected)}")
    stacked: dict[str, np.ndarray] = {}
    for spec in variant.io.inputs:
        array = arrays[spec.name]
        if list(array.shape) == list(spec.shape):
            array = array[None]
        elif list(array.shape[1:]) != list(spec.shape):
            raise UsageError(f"{source}: {spec.name!r} has shape {list(array.shape)}; expected {spec.shape} "
                             f"or [N, {', '.join(map(str, spec.shape))}]")
        if not np.issubdtype(array.dtype, np.number):
            raise UsageError(f"{source}: {spec.name!r} is {array.dtype}, not numeric")
        stacked[spec.name] = array.astype(np.float32, copy=False)
    counts = {name: a.shape[0] for name, a in stacked.items()}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise UsageError(f"{source}: inputs carry different or zero sample counts {counts}")
    n = next(iter(counts.values()))
    return [{name: np.ascontiguousarray(a[i]) for name, a in stacked.items()} for i in range(n)]


def load_pairs(variant: Variant, samples: int, inputs_file: Path | str | None = None,
               preset: TrackingPreset | None = None, quantization: QuantizationSpec | None = None) -> list[Pair]:
    """The pairs to compare on, all distinct: ``inputs_file`` when given (all its samples), else with
    ``preset`` the first ``samples`` held-out pairs (:func:`zoo.calibration.held_out_pairs`, jittered as
    ``quantization`` says), else the bundled scenes' pairs (:func:`zoo.sample_inputs.sample_pairs`;
    at most one per scene)."""
    if inputs_file is not None:
        pairs = pairs_from_arrays(read_npz(inputs_file), variant, source=str(inputs_file))
        found = len({pair_digest(p) for p in pairs})
        if found < len(pairs):
            raise UsageError(f"{inputs_file}: {len(pairs)} pairs, of which only {found} distinct; "
                             "give each pair once (figures over repeated pairs would count them again)")
        return pairs
    if preset is not None:
        return held_out_pairs(variant, preset, samples, quantization)
    if samples > len(SCENES):
        raise UsageError(f"--samples {samples}: the bundled scenes give {len(SCENES)} distinct pairs")
    return sample_pairs(variant, samples)


def stack_pairs(pairs: list[Pair]) -> dict[str, np.ndarray]:
    """Per-sample pairs -> one array per name with a leading sample axis."""
    return {name: np.stack([p[name] for p in pairs]) for name in pairs[0]}


def save_npz(path: Path | str, arrays: dict[str, np.ndarray]) -> None:
    """Write named arrays to ``path`` (uncompressed ``.npz``); an unwritable path is a usage error."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object keeps numpy from appending ".npz"
            np.savez(fh, **arrays)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
