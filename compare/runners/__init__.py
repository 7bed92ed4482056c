"""Runtimes behind one contract (:mod:`compare.runners.base`): ONNX Runtime, MNN, ncnn, TFLite
and the PyTorch eager reference. ``RUNNERS`` maps an artifact's format to its runner class;
:func:`open_artifact` picks the runner from an artifact directory's manifest."""
from __future__ import annotations

from pathlib import Path

from compare.runners.base import ArtifactRunner, BaseRunner, native_quiet, to_layout
from compare.runners.mnn import MnnRunner
from compare.runners.ncnn import NcnnRunner
from compare.runners.onnxruntime import OnnxRuntimeRunner
from compare.runners.pytorch import PytorchRunner
from compare.runners.tflite import TfliteRunner
from exporters.manifest import Manifest, read_manifest

RUNNERS: dict[str, type[ArtifactRunner]] = {
    "onnx": OnnxRuntimeRunner,
    "mnn": MnnRunner,
    "ncnn": NcnnRunner,
    "tflite": TfliteRunner,
}


def open_artifact(artifact_dir: Path | str, manifest: Manifest | None = None, threads: int = 1) -> ArtifactRunner:
    """An (unloaded) runner for the artifact in ``artifact_dir``, chosen by its manifest's format."""
    manifest = manifest or read_manifest(Path(artifact_dir))
    runner = RUNNERS[manifest.format](artifact_dir, manifest)
    runner.set_threads(threads)
    return runner


__all__ = ["RUNNERS", "ArtifactRunner", "BaseRunner", "PytorchRunner", "open_artifact", "native_quiet", "to_layout"]
