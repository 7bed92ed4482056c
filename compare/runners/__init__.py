"""Runtimes behind one contract (:mod:`compare.runners.base`): the runner of each format is the
one :mod:`zoo.backends` declares; :class:`PytorchRunner` is the eager reference.

:func:`open_artifact` checks an artifact against its manifest and the catalog before loading it;
:func:`runner_for` opens a build directory the pipeline is verifying (no catalog check yet).
"""
from __future__ import annotations

from pathlib import Path

from compare.runners.base import ArtifactRunner, BaseRunner, native_quiet
from compare.runners.split import SplitRunner
from zoo.artifacts import verified_manifest
from zoo.backends import by_format, reference_runner_class
from zoo.manifest import Manifest, read_manifest
from zoo.schema import Variant


def runner_for(artifact_dir: Path | str, manifest: Manifest | None = None, threads: int = 1) -> ArtifactRunner:
    """An (unloaded) runner for the artifact in ``artifact_dir``, chosen by its manifest's format."""
    manifest = manifest or read_manifest(Path(artifact_dir))
    if manifest.graphs is not None:  # a split artifact: init + track graphs (compare.runners.split)
        runner = SplitRunner(artifact_dir, manifest, by_format(manifest.format).runner_class())
        runner.set_threads(threads)
        return runner
    runner = by_format(manifest.format).runner_class()(artifact_dir, manifest)
    runner.set_threads(threads)
    return runner


def open_artifact(artifact_dir: Path | str, variant: Variant, threads: int = 1) -> ArtifactRunner:
    """An (unloaded) runner for an installed artifact of ``variant``, after checking every file
    against the manifest (size, then sha256, cached) and the manifest's bindings against the
    catalog: a corrupt or stale artifact is a one-line error naming the file and how to rebuild."""
    manifest = verified_manifest(Path(artifact_dir), variant)
    return runner_for(artifact_dir, manifest, threads)


def __getattr__(name: str):
    # PyTorch is imported on first use of the reference runner, not by every runtime's process
    if name == "PytorchRunner":
        return reference_runner_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ArtifactRunner", "BaseRunner", "PytorchRunner", "open_artifact", "runner_for", "native_quiet"]
