"""An artifact run on a device, behind the same runner contract as zoo's local runners.

:class:`DeviceRunner` is an :class:`compare.runners.base.ArtifactRunner`: the manifest's bindings
map catalog names and NCHW arrays to the runtime's names and layouts on the host, exactly as for
a local run; only the runtime call itself (``_run``) happens on the device. The runtime settings
are the local runner's own (:meth:`ArtifactRunner.settings`), so the device runs what zoo would
run here. ``last_inference_time`` is the device's own time of the call (no transfer).

:func:`device_runner` opens any installed artifact (a split one too: both graphs on the device)
after checking it against its manifest and the catalog.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from compare.devices.connection import DeviceConnection, DeviceError, connect
from compare.devices import worker as proto
from compare.runners.base import ArtifactRunner
from compare.runners.split import SplitRunner
from compare.runners.taps import Tapped
from zoo.artifacts import verified_manifest
from zoo.backends import by_format
from zoo.devices import Device
from zoo.layouts import to_layout
from zoo.manifest import Manifest, read_manifest
from zoo.schema import Variant


class DeviceRunner(ArtifactRunner):
    """One artifact graph loaded in its runtime on a device."""

    def __init__(self, artifact_dir: Path | str, manifest: Manifest | None = None, *, connection: DeviceConnection):
        manifest = manifest or read_manifest(Path(artifact_dir))
        self.format = manifest.format
        super().__init__(artifact_dir, manifest)
        self.connection = connection
        self.name = f"{self.name}@{connection.device.name}"
        self.local = by_format(manifest.format).runner_class()(artifact_dir, manifest)
        self._handle: str | None = None
        self._device_seconds: float | None = None

    @property
    def device(self) -> Device:
        return self.connection.device

    def settings(self) -> dict:
        self.local.threads = self.threads
        return self.local.settings()

    def _load(self) -> None:
        backend = by_format(self.manifest.format)
        if self.connection.runtime_version(backend.distribution) is None:
            why = self.connection.info.get("errors", {}).get(backend.distribution, "not installed")
            raise DeviceError(f"{self.device.name} has no {backend.title} ({backend.distribution}: {why})")
        paths = [f.path for f in self.manifest.files if any(f.path.endswith(s) for s in backend.suffixes)]
        files = self.connection.send_files(self.artifact_dir, self.manifest, paths)
        handle = self.connection.new_handle()
        self.connection.request("load", handle=handle, runtime=backend.runtime, files=files,
                                inputs=[b.runtime_name for b in self.manifest.inputs],
                                outputs=[b.runtime_name for b in self.manifest.outputs], options=self.settings(),
                                layouts={b.runtime_name: b.layout for b in self.manifest.inputs})
        self._handle = handle

    def _close(self) -> None:
        if self._handle is not None and self.connection.proc.poll() is None:
            try:
                self.connection.request("unload", handle=self._handle)
            except DeviceError:
                pass
        self._handle = None

    def _timed(self, fn, *args):
        result = fn(*args)
        self.last_inference_time = self._device_seconds
        return result

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out, self._device_seconds = self.connection.infer(self._handle, {k: np.ascontiguousarray(v, np.float32) for k, v in feed.items()})
        return out

    def time(self, feed: dict[str, np.ndarray], warmup: int, runs: int) -> list[float]:
        """``runs`` call times on the device (seconds) after ``warmup`` calls, inputs in the runtime layout."""
        self.load()
        reply, _ = self.connection.request("time", {k: proto.array_bytes(v) for k, v in feed.items()}, handle=self._handle,
                                           inputs=list(feed), warmup=warmup, runs=runs)
        return [float(s) for s in reply["seconds"]]

    def sustained(self, feed: dict[str, np.ndarray], duration_s: float, window_s: float) -> list[dict]:
        """Windows of back-to-back calls: each with its call times, the clocks and temperatures at its end."""
        self.load()
        reply, _ = self.connection.request("time", {k: proto.array_bytes(v) for k, v in feed.items()}, handle=self._handle,
                                           inputs=list(feed), warmup=1, duration_s=duration_s, window_s=window_s)
        return reply["windows"]

    def runtime_feed(self, pair: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A catalog-named NCHW pair as the runtime's feed (names and layouts of the manifest)."""
        return {b.runtime_name: np.ascontiguousarray(to_layout(pair[b.name], b.layout), np.float32) for b in self.manifest.inputs}

    def tensor_tap(self):
        if self.format not in ("mnn", "ncnn"):
            return super().tensor_tap()
        return DeviceTap(self)


class DeviceTap:
    """Every intermediate tensor of one run on the device (MNN: each op's outputs; ncnn: each blob)."""

    def __init__(self, runner: DeviceRunner):
        self.runner = runner

    def run(self, pair: dict[str, np.ndarray]) -> list[Tapped]:
        r = self.runner
        r.load()
        feed = r.runtime_feed(pair)
        reply, blobs = r.connection.request("tap", {k: proto.array_bytes(v) for k, v in feed.items()}, handle=r._handle,
                                            inputs=list(feed))
        return [Tapped(name, proto.bytes_array(blobs[str(i)])) for i, name in enumerate(reply["names"])]


def runner_on(device: Device, artifact_dir: Path | str, manifest: Manifest, threads: int = 1,
              connection: DeviceConnection | None = None) -> ArtifactRunner:
    """An (unloaded) runner of the artifact on ``device`` (the process's shared connection unless given)."""
    conn = connection or connect(device)
    if manifest.graphs is not None:
        runner = SplitRunner(artifact_dir, manifest, partial(DeviceRunner, connection=conn))
        runner.name = f"{runner.name}@{device.name}"
    else:
        runner = DeviceRunner(artifact_dir, manifest, connection=conn)
    runner.set_threads(threads)
    return runner


def device_runner(device: Device, artifact_dir: Path | str, variant: Variant, threads: int = 1) -> ArtifactRunner:
    """:func:`runner_on` after checking the installed artifact against its manifest and the catalog."""
    return runner_on(device, artifact_dir, verified_manifest(Path(artifact_dir), variant), threads)
