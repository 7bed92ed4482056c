"""The installed zoo's version (its own module so that no project module imports the package root,
whose ``__init__`` serves the Python API)."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("zoo")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"
