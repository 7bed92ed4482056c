"""Exceptions the CLI turns into one clear line and an exit code."""
from __future__ import annotations


class ZooError(Exception):
    """A failure the user can act on; the CLI prints it as one line and exits ``exit_code``."""

    exit_code = 1


class UsageError(ZooError):
    """Bad input: unknown name, unreadable file, invalid option value (exit 2)."""

    exit_code = 2


class CatalogError(UsageError):
    """``zoo.yaml`` is missing, malformed or fails its schema."""


class WeightsError(ZooError):
    """Weights are missing or their bytes do not match the pinned sha256."""


class CheckpointMismatch(UsageError):
    """A checkpoint's tensors do not match the architecture it is registered for."""


class ExportError(ZooError):
    """One or more artifacts could not be exported or failed verification."""


class ZooWarning(UserWarning):
    """Something the API did not do that its caller asked for (e.g. a precision a format does not
    offer, skipped), said as a warning where the CLI shows a "skipped" row."""
