"""The Python API, for notebooks and scripts (re-exported by :mod:`zoo`).

In the spirit of torchvision's ``list_models``/``get_model`` and timm's ``create_model``::

    import zoo
    zoo.list_variants("fgaf*")                       # ['fgaf3', 'fgaf3-bn-c128', ...]
    model = zoo.get_model("fgaf3")                   # nn.Module, eval mode, verified weights
    manifests = zoo.export("fgaf3", ["onnx", "tflite"], ["fp32", "fp16"], out="artifacts")
    runner = zoo.load_runner("fgaf3", "tflite", "fp16", threads=2)
    outputs = runner.infer(zoo.sample_pair("fgaf3"))  # {'score': ..., 'size': ..., 'offset': ...}
    tracker = zoo.Tracker("fgaf3", runtime="tflite", precision="fp16")
    tracker.initialize(first_rgb_frame, (x, y, w, h))
    box, score = tracker.track(next_rgb_frame)

This module sits at the top of the layers (it drives exporters and compare) beside the CLI.
"""
from __future__ import annotations

import fnmatch
import warnings
from pathlib import Path

import numpy as np
import torch

from compare.devices.runner import device_runner
from compare.provision import ensure, keys_for
from compare.runners import ArtifactRunner, PytorchRunner, open_artifact
from compare.tracking import tracker as _tracker
from zoo.artifacts import ArtifactKey, Status, default_out_dir
from zoo.backends import DEFAULT_RUNTIME, FORMATS, PRECISIONS, REFERENCE_RUNTIME, RUNTIMES, by_runtime
from zoo.catalog import Catalog
from zoo.devices import LOCAL, parse_device
from zoo.errors import ExportError, UsageError, ZooWarning
from zoo.hub.resolve import resolve_hub
from zoo.manifest import Manifest, read_manifest
from zoo.models import build_model
from zoo.names import choose
from zoo.resources import check_count
from zoo.sample_inputs import sample_pairs
from zoo.weights import load_model


def _catalog(catalog: Catalog | str | Path | None) -> Catalog:
    return catalog if isinstance(catalog, Catalog) else Catalog.load(Path(catalog) if catalog else None)


def _artifacts(out: str | Path | None) -> Path:
    return Path(out) if out else default_out_dir()


def _name(value, what: str) -> str:
    """``value`` when it is a string (a variant, runtime, precision, pattern); a usage error otherwise."""
    if not isinstance(value, str):
        raise UsageError(f"{what} must be a string, got {value!r}")
    return value


def _threads(threads, allow_oversubscribe: bool = False) -> int:
    """The API's ``threads=``: the CLI's rule (:func:`zoo.resources.check_count`) on an ``int``."""
    return check_count(threads, "threads", allow_oversubscribe, lift="pass allow_oversubscribe=True to run it anyway")


def list_variants(pattern: str = "*", catalog: Catalog | str | Path | None = None) -> list[str]:
    """Names of the catalog's variants matching ``pattern`` (a name or a wildcard such as ``"fgaf*"``),
    in catalog order."""
    pattern = _name(pattern, "pattern")
    return [v.name for v in _catalog(catalog) if fnmatch.fnmatchcase(v.name, pattern)]


def get_model(name: str, weights: bool = True, catalog: Catalog | str | Path | None = None) -> torch.nn.Module:
    """The PyTorch model of variant ``name`` in eval mode; with ``weights`` its catalog weights,
    materialised (hub or regeneration) and verified by sha256, loaded strictly."""
    cat = _catalog(catalog)
    variant = cat.get(name)
    if not weights:
        return build_model(variant.arch)
    return load_model(variant, resolve_hub(catalog_hub=cat.hub))


def export(name: str, formats: str | list[str] = "onnx", precisions: str | list[str] = "fp32",
           out: str | Path | None = None, force: bool = False,
           catalog: Catalog | str | Path | None = None, split: bool = False) -> list[Manifest]:
    """Export variant ``name`` to each format x precision it offers, each verified against
    PyTorch in its runtime before it is installed under ``out`` (default ``$ZOO_ARTIFACTS`` or
    ``./artifacts``); existing identical artifacts are reused. Returns the manifests (the ONNX
    source artifact first when another format converts from it); raises :class:`ExportError`
    naming every failure. ``split``: init + track split artifacts (template caching) instead."""
    cat = _catalog(catalog)
    variant = cat.get(name)
    fmts = choose([formats] if isinstance(formats, str) else formats, FORMATS, "format")
    precs = choose([precisions] if isinstance(precisions, str) else precisions, PRECISIONS, "precision")
    provisioned = ensure(keys_for([variant], fmts, precs, split=split), _artifacts(out), cat, refresh=True, force=force)
    failed = [p for p in provisioned if p.status is Status.FAILED]
    if failed:
        raise ExportError("; ".join(f"{p.key.name}: {p.note}" for p in failed))
    for p in provisioned:  # the CLI's "skipped" rows: never dropped without a word
        if p.status is Status.SKIPPED:
            warnings.warn(f"{p.key.name}: skipped: {p.note}", ZooWarning, stacklevel=2)
    return [read_manifest(p.path) for p in provisioned if p.usable]


def load_runner(name: str, runtime: str = DEFAULT_RUNTIME, precision: str = "fp32", threads: int = 1,
                out: str | Path | None = None, catalog: Catalog | str | Path | None = None, split: bool = False,
                device: str | None = None, allow_oversubscribe: bool = False) -> ArtifactRunner:
    """A loaded runner of variant ``name``'s artifact for ``runtime`` (``onnxruntime``, ``mnn``,
    ``tflite``, ``ncnn``; default :data:`zoo.backends.DEFAULT_RUNTIME`) at ``precision``: exported first when missing, checked against its manifest
    and the catalog. ``runner.infer({"template": ..., "search": ...})`` takes catalog-named NCHW
    float32 arrays; close it with ``runner.close()`` or use it as a context manager. ``split``: the
    split artifact (init graph when the template changes, track graph every call). ``device``: where
    it runs (``arm64-emu:cortex-a76``, ``ssh://pi@rpi5``; default this process, see ``zoo device list``).
    ``threads`` is a whole number from 1 to 8 x the CPUs (more with ``allow_oversubscribe``)."""
    cat = _catalog(catalog)
    variant = cat.get(_name(name, "variant"))
    (runtime,) = choose([_name(runtime, "runtime")], RUNTIMES, "runtime")
    backend = by_runtime(runtime)
    if precision not in backend.precisions:
        raise UsageError(f"{runtime} offers {', '.join(backend.precisions)} only, not {precision!r}")
    threads = _threads(threads, allow_oversubscribe)
    where = parse_device(device) if device else LOCAL
    (provisioned,) = ensure([ArtifactKey.for_runtime(name, runtime, precision, split)], _artifacts(out), cat)
    if not provisioned.usable:
        raise ExportError(f"{provisioned.key.name}: {provisioned.note}")
    if not where.is_local:
        return device_runner(where, provisioned.path, variant, threads=threads).load()
    return open_artifact(provisioned.path, variant, threads=threads).load()


def sample_pair(name: str, index: int = 0, catalog: Catalog | str | Path | None = None) -> dict[str, np.ndarray]:
    """A realistic template/search pair for variant ``name`` (crops of bundled photographs),
    catalog-named NCHW float32 arrays, preprocessed as the network expects."""
    return sample_pairs(_catalog(catalog).get(name), index + 1)[index]


class Tracker(_tracker.Tracker):
    """A single-object tracker: variant ``variant``'s network in ``runtime`` at ``precision``, driven
    by the catalog's tracking loop (``preset``: a name under ``tracking.presets`` in ``zoo.yaml``;
    default the variant's own, OSTrack's conventions).

    ``runtime`` is ``pytorch`` (eager, fp32) or one of ``onnxruntime``, ``mnn``, ``tflite``, ``ncnn``
    (default :data:`zoo.backends.DEFAULT_RUNTIME`);
    the artifact is exported first when missing (under ``out``, default ``$ZOO_ARTIFACTS`` or
    ``./artifacts``) and checked against its manifest. Use it as::

        tracker = zoo.Tracker("fgaf3", runtime="tflite", precision="fp32", threads=1)
        tracker.initialize(frame, (x, y, w, h))       # the target in the first frame
        for frame in frames:
            (x, y, w, h), score = tracker.track(frame)
        tracker.network_times, tracker.loop_times       # seconds per track() call
        tracker.close()

    Frames are ``H x W x 3`` uint8 **RGB** arrays. OpenCV gives BGR: pass
    ``cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)`` (or ``frame[..., ::-1]``). Boxes are ``(x, y, w, h)``
    in frame pixels with ``(x, y)`` the top-left corner. Per :meth:`track` call the network time (the
    runtime call itself) goes to ``network_times`` and the whole loop (crop, resize, normalise,
    network, window, decode) to ``loop_times``. ``threads`` is the runtime's (a whole number from 1 to
    8 x the CPUs, more with ``allow_oversubscribe``); OpenCV's own pool (the
    crop's resize) follows ``cv2.setNumThreads`` (``zoo track`` and ``zoo eval run`` set it to the same).
    """

    def __init__(self, variant: str, runtime: str = DEFAULT_RUNTIME, precision: str = "fp32", threads: int = 1,
                 preset: str | None = None, out: str | Path | None = None, catalog: Catalog | str | Path | None = None,
                 split: bool = False, device: str | None = None, allow_oversubscribe: bool = False):
        cat = _catalog(catalog)
        v = cat.get(_name(variant, "variant"))
        _name(runtime, "runtime")
        _name(precision, "precision")
        if preset is not None:
            _name(preset, "preset")
        threads = _threads(threads, allow_oversubscribe)
        preset_name = cat.preset_name(v, preset)
        where = parse_device(device) if device else LOCAL
        if runtime == REFERENCE_RUNTIME and not where.is_local:
            raise UsageError(f"{REFERENCE_RUNTIME} runs on this machine only; devices run artifacts")
        if runtime == REFERENCE_RUNTIME:
            if precision != "fp32":
                raise UsageError(f"pytorch runs fp32 only, not {precision!r}")
            ensure([ArtifactKey.for_runtime(v.name, REFERENCE_RUNTIME)], _artifacts(out), cat)  # the catalog's weights, via its hub
            runner = PytorchRunner(v)
            runner.set_threads(threads)
            runner.load()
        else:
            runner = load_runner(variant, runtime, precision, threads, out=out, catalog=cat, split=split, device=device,
                                 allow_oversubscribe=allow_oversubscribe)
        own = v.tracking or cat.tracking.default
        key = ArtifactKey.for_runtime(v.name, runtime, precision, split)
        name = _tracker.tracker_name(key, preset_name if preset_name != own else None)
        if not where.is_local:
            name += f"@{where.name}"
        super().__init__(runner, v, cat.tracking.presets[preset_name], name=name)
