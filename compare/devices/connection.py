"""The host end of a device: start its worker through the device kind's transport, send it the
worker's source, then requests (:mod:`compare.devices.worker` defines the frames).

:func:`connect` gives one shared connection per device per process (the device side is a single
process; requests are serialised by a lock); :meth:`DeviceConnection.open` a private one (``N``
instances at once on a board). Files go to the device once, by sha256, after the host checked them
against the artifact's manifest; the worker checks them again on arrival and on load.
"""
from __future__ import annotations

import atexit
import os
import select
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from compare.devices import worker as proto
from zoo.devices import Device, family_of
from zoo.errors import ZooError
from zoo.manifest import Manifest

#: the bootstrap a device's Python runs: read the worker's source (length line, then bytes) from
#: stdin and serve on stdin/stdout
BOOTSTRAP = ("import sys;n=int(sys.stdin.buffer.readline());"
             "g={'__name__':'zoo_device_worker'};exec(compile(sys.stdin.buffer.read(n),'zoo-device-worker','exec'),g);g['main']()")
#: seconds a device may take to start its Python and import the runtimes (an emulated CPU: ~10 s)
START_TIMEOUT = float(os.environ.get("ZOO_DEVICE_START_TIMEOUT", "180"))


class DeviceError(ZooError):
    """A device could not be reached, refused a request or died; the message is one line."""


class DeviceConnection:
    """One running worker on one device."""

    def __init__(self, device: Device):
        self.device = device
        self.transport = device.transport()
        argv, env = self.transport.command(BOOTSTRAP)
        self._stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                         env=env, bufsize=0, start_new_session=True)
        except OSError as exc:
            raise DeviceError(f"{device.name}: cannot start {argv[0]}: {exc.strerror}") from None
        self._lock = threading.Lock()
        self._handles = 0
        source = Path(proto.__file__).read_bytes()
        try:
            self.proc.stdin.write(f"{len(source)}\n".encode() + source)
            self.proc.stdin.flush()
        except OSError:
            raise self._died() from None
        self.info = self.request("hello", timeout=START_TIMEOUT)[0]
        if self.info.get("protocol") != proto.PROTOCOL:
            self.close()
            raise DeviceError(f"{device.name}: worker protocol {self.info.get('protocol')}, this zoo speaks {proto.PROTOCOL}")

    # -- what the device is ------------------------------------------------------------------
    @property
    def fp16_arithmetic(self) -> bool:
        """The runtimes found ARMv8.2 fp16 arithmetic (``asimdhp``) on this CPU."""
        ncnn = self.info.get("features", {}).get("ncnn", {})
        mnn = self.info.get("features", {}).get("mnn", "")
        return bool(ncnn.get("arm_asimdhp")) or "fp16:1" in mnn.replace(" ", "")

    @property
    def family(self) -> str:
        """The CPU family (:data:`zoo.devices.FAMILIES`) the tolerances are read for."""
        return family_of(self.info.get("machine", "?"), self.fp16_arithmetic)

    @property
    def loopback(self) -> bool:
        """The device is this machine, so its timings are this machine's. The transport decides when
        it can (an alias in ssh's config resolved to 127.0.0.1); the device's name otherwise."""
        return bool(getattr(self.transport, "loopback", self.device.loopback))

    def runtime_version(self, runtime_dist: str) -> str | None:
        return self.info.get("runtimes", {}).get(runtime_dist)

    # -- requests ----------------------------------------------------------------------------
    def request(self, op: str, blobs: dict[str, bytes] | None = None, timeout: float | None = None, **fields):
        """Send one request; (reply header, reply blobs). A refused request is a :class:`DeviceError`."""
        with self._lock:
            if self.proc.poll() is not None:
                raise self._died()
            try:
                proto.send(self.proc.stdin, {"op": op, **fields}, blobs)
                if timeout is not None:
                    ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
                    if not ready:
                        self.close()
                        raise DeviceError(f"{self.device.name}: no answer within {timeout:.0f} s")
                reply, out = proto.receive(self.proc.stdout)
            except (OSError, proto.ProtocolError):
                raise self._died() from None
        if not reply.get("ok"):
            raise DeviceError(f"{self.device.name}: {reply.get('error', 'request refused')}")
        return reply, out

    def _died(self) -> DeviceError:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = None
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace")
        return DeviceError(f"{self.device.name}: {self.transport.explain(text, code)}")

    def new_handle(self) -> str:
        with self._lock:
            self._handles += 1
            return f"h{self._handles}"

    def send_files(self, artifact_dir: Path, manifest: Manifest, paths: list[str]) -> dict[str, str]:
        """Copy the manifest's files ``paths`` to the device (those it lacks); {path: sha256}."""
        wanted = {f.path: f.sha256 for f in manifest.files if f.path in paths}
        missing = set(self.request("missing", sha256=sorted(set(wanted.values())))[0]["missing"])
        for path, sha in wanted.items():
            if sha in missing:
                self.request("put", {"file": (Path(artifact_dir) / path).read_bytes()}, sha256=sha)
                missing.discard(sha)
        return wanted

    def infer(self, handle: str, feed: dict[str, np.ndarray], outputs: list[str] | None = None) -> tuple[dict[str, np.ndarray], float]:
        """Outputs of one call and the device's own seconds for it."""
        reply, blobs = self.request("infer", {k: proto.array_bytes(v) for k, v in feed.items()}, handle=handle,
                                    inputs=list(feed), outputs=outputs)
        return {name: proto.bytes_array(blobs[name]) for name in reply["outputs"]}, float(reply["seconds"])

    def close(self) -> None:
        """Say goodbye and stop the worker (killed if it does not leave)."""
        if self.proc.poll() is None:
            try:
                proto.send(self.proc.stdin, {"op": "bye"})
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


_SHARED: dict[str, DeviceConnection] = {}
_SHARED_LOCK = threading.Lock()


def connect(device: Device) -> DeviceConnection:
    """The process's connection to ``device`` (started on first use, closed at exit)."""
    with _SHARED_LOCK:
        conn = _SHARED.get(device.name)
        if conn is None or conn.proc.poll() is not None:
            conn = _SHARED[device.name] = DeviceConnection(device)
        return conn


def disconnect_all() -> None:
    """Close every shared connection (also run at exit)."""
    with _SHARED_LOCK:
        for conn in _SHARED.values():
            conn.close()
        _SHARED.clear()


atexit.register(disconnect_all)
