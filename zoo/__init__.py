"""zoo: model zoo and export/compilation toolchain for lightweight single-object trackers."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("zoo")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"
