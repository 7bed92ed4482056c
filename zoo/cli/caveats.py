"""The untrained-weights caveat, said wherever tracking figures are shown.

The catalog's reference weights are deterministic and untrained: they check that a conversion
tracks like PyTorch, not how well the tracker tracks. A reader of "fp16 splits off at frame 48"
must not blame fp16 for the flat score maps of untrained weights.
"""
from __future__ import annotations

from zoo.catalog import Catalog
from zoo.errors import ZooError


def untrained(tracker_names: list[str], catalog: Catalog | None) -> list[str]:
    """The names among ``tracker_names`` (``<variant>@<runtime>-<precision>`` or a variant) whose
    variant runs the catalog's reference (untrained) weights."""
    if catalog is None:
        return []
    found = []
    for name in tracker_names:
        variant = name.split("@", 1)[0]
        if variant in catalog.names and catalog.get(variant).weights.provenance.kind == "reference":
            found.append(name)
    return found


def untrained_note(tracker_names: list[str], catalog: Catalog | None) -> str | None:
    """One line naming the trackers that ran untrained reference weights (None when none did)."""
    names = untrained(tracker_names, catalog)
    if not names:
        return None
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return (f"note: {shown} ran the catalog's untrained reference weights: these figures check the pipeline "
            "(runtime vs PyTorch), not tracking skill; 'zoo register VARIANT CKPT' adds trained weights")


def plot_caption(tracker_names: list[str], catalog: Catalog | None) -> str | None:
    """The caveat as a plot's caption (short: it sits under the axes), None when no tracker ran
    untrained weights."""
    names = untrained(tracker_names, catalog)
    if not names:
        return None
    shown = ", ".join(names[:2]) + (f" +{len(names) - 2}" if len(names) > 2 else "")
    return f"untrained reference weights ({shown}): these curves check the pipeline, not tracking skill"


def catalog_or_none() -> Catalog | None:
    """The catalog in use, or None where there is none (``eval analyze`` needs no catalog)."""
    try:
        return Catalog.load()
    except ZooError:
        return None
