"""zoo: model zoo and export/compilation toolchain for lightweight single-object trackers.

The Python API (:mod:`zoo.api`) is available from the package itself::

    import zoo
    zoo.list_variants("fgaf*")
    model = zoo.get_model("fgaf3")
    zoo.export("fgaf3", ["onnx", "tflite"], ["fp32", "fp16"])
    runner = zoo.load_runner("fgaf3", "tflite", "fp16", threads=2)
    tracker = zoo.Tracker("fgaf3", runtime="tflite")   # initialize(frame, box), track(frame) -> (box, score)

It is imported on first use, so ``import zoo`` stays light (no torch, no runtimes).
"""
from importlib import import_module

from zoo.version import __version__

#: the public API, served lazily from zoo.api (PEP 562)
__all__ = ["list_variants", "get_model", "export", "load_runner", "sample_pair", "Tracker", "__version__"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(import_module("zoo.api"), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API (tab completion; listing it does not import it), the module's dunders and the
    submodules already imported: not the helpers this file imports for itself."""
    own = {n for n, v in globals().items() if n.startswith("__") or getattr(v, "__name__", None) == f"{__name__}.{n}"}
    return sorted(own | set(__all__))
