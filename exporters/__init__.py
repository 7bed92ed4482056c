"""Exporters: one module per format behind :class:`exporters.base.Exporter`.

``zoo export`` drives them through :mod:`exporters.pipeline` (build order, verification in the
target runtime, manifest, atomic install, locking, reuse). Which exporter serves which format is
declared in :mod:`zoo.backends`; converters and runtimes are imported lazily, so a missing one is
reported when a format needs it, naming its pip extra.
"""
from __future__ import annotations

from exporters.base import Exporter
from zoo.backends import by_flavour, by_format


def get_exporter(fmt: str) -> Exporter:
    """The exporter of format ``fmt`` (one of :data:`zoo.backends.FORMATS`)."""
    return by_format(fmt).exporter_class()()


def get_flavour_exporter(flavour: str) -> Exporter:
    """The exporter of flavour ``flavour`` (one of :data:`zoo.backends.FLAVOUR_NAMES`)."""
    return by_flavour(flavour).exporter_class()()
