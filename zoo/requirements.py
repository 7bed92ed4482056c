"""Optional packages (converters, runtimes): import one or say which pip extra installs it.

Both layers that need optional packages use it: the exporters (converters) and the runners
(runtimes), so neither imports the other for it.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from zoo.errors import ZooError


class MissingPackage(ZooError):
    """A converter or runtime package is not installed; the message names the pip extra."""


def require(module: str, extra: str, what: str | None = None) -> ModuleType:
    """Import ``module`` or raise a one-line :class:`MissingPackage` naming ``pip install 'zoo[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingPackage(
            f"{what or module} is not installed ({exc.name or module}): pip install 'zoo[{extra}]'"
        ) from None
