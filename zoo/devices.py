"""Where an artifact runs, declared once: one :class:`DeviceKind` row per kind of device.

A device is named on the command line (``--device``, ``--verify-on``) as one of the kinds'
syntaxes:

- ``local``: this machine, in zoo's own process (today's behaviour; parity and timing);
- ``arm64-emu[:CPU]``: an aarch64 CPU emulated on this machine by ``qemu-aarch64-static``, running
  the runtimes' own aarch64 wheels (``zoo device setup arm64-emu`` builds it). CPU is a qemu model:
  ``cortex-a76`` (a phone's big core, ARMv8.2 with fp16 arithmetic and dot-product, the default),
  ``cortex-a53`` (a little core, ARMv8.0), ``max`` (everything qemu implements). Parity only: an
  emulated CPU's time says nothing about a phone's;
- ``ssh://[user@]host[:port]``: an ARM Linux board (Raspberry Pi, RK3588, Jetson) with Python 3.11,
  numpy and the runtimes installed; parity and timing.

Everything else reads this table: the CLI's parsing and help texts, which commands may time on
a device, the transport that starts the device's worker (``"module:Class"``, imported on first
use). A new device kind is one row here and one transport module.

The **CPU family** of a device (:data:`FAMILIES`) picks the catalog's tolerance: fp16 artifacts
run fp16 *arithmetic* only on ARMv8.2+ cores (``arm64-fp16``); x86 and ARMv8.0 cores compute them
in fp32 from fp16 storage.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from zoo.errors import UsageError
from zoo.names import did_you_mean

#: CPU families a tolerance can be declared for (``zoo.yaml``: ``families:`` of a tolerance)
FAMILIES: tuple[str, ...] = ("x86-64", "arm64", "arm64-fp16")
#: the family whose figures the catalog's plain ``atol``/``rtol`` hold for
BASE_FAMILY = "x86-64"
#: qemu 7.2's aarch64 CPU models (``qemu-aarch64-static -cpu help``)
QEMU_CPUS: tuple[str, ...] = ("a64fx", "cortex-a35", "cortex-a53", "cortex-a57", "cortex-a72", "cortex-a76", "max",
                              "neoverse-n1")
#: the emulated CPU when ``arm64-emu`` names none: a phone's big core
DEFAULT_EMU_CPU = "cortex-a76"


@dataclass(frozen=True)
class DeviceKind:
    """One kind of place an artifact can run."""

    name: str
    #: how a user names one (help texts, error messages)
    syntax: str
    #: ``"module:Class"`` of the transport that starts the device's worker (None: zoo's own process)
    transport: str | None
    #: the device's timings are the speed of the CPU named (an emulated CPU's are not)
    timing: bool
    #: why timing is refused, when it is
    no_timing_reason: str = ""
    #: set up by ``zoo device setup NAME``
    setup: bool = False
    description: str = ""

    def transport_class(self) -> type:
        """The transport class (imports its module)."""
        module, name = self.transport.split(":")
        return getattr(importlib.import_module(module), name)


DEVICE_KINDS: tuple[DeviceKind, ...] = (
    DeviceKind("local", "local", None, timing=True, description="this machine, in zoo's process"),
    DeviceKind("arm64-emu", "arm64-emu[:CPU]", "compare.devices.emulator:EmulatorTransport", timing=False,
               no_timing_reason="an emulated CPU gives parity, never speed (qemu translates every instruction)",
               setup=True, description="an aarch64 CPU emulated here by qemu-aarch64-static (ARM kernels, no speed)"),
    DeviceKind("ssh", "ssh://[user@]host[:port]", "compare.devices.ssh:SshTransport", timing=True,
               description="an ARM Linux board over SSH with Python 3.11, numpy and the runtimes"),
)
KIND_NAMES: tuple[str, ...] = tuple(k.name for k in DEVICE_KINDS)
_BY_NAME = {k.name: k for k in DEVICE_KINDS}


def device_kind(name: str) -> DeviceKind:
    """The kind called ``name`` (UsageError with a did-you-mean when unknown)."""
    if name not in _BY_NAME:
        raise UsageError(f"unknown device kind {name!r}{did_you_mean(name, KIND_NAMES)}; choose from {', '.join(KIND_NAMES)}")
    return _BY_NAME[name]


@dataclass(frozen=True)
class Device:
    """One device a user named: its kind and the kind's parameters."""

    kind: DeviceKind
    cpu: str | None = None  # arm64-emu: the qemu CPU model
    host: str | None = None  # ssh
    user: str | None = None
    port: int | None = None

    @property
    def name(self) -> str:
        """The canonical spelling (``arm64-emu:cortex-a76``, ``ssh://pi@rpi5:22``)."""
        if self.kind.name == "arm64-emu":
            return f"arm64-emu:{self.cpu}"
        if self.kind.name == "ssh":
            user = f"{self.user}@" if self.user else ""
            port = f":{self.port}" if self.port else ""
            return f"ssh://{user}{self.host}{port}"
        return self.kind.name

    @property
    def is_local(self) -> bool:
        return self.kind.transport is None

    @property
    def loopback(self) -> bool:
        """An SSH device that is this machine (its timings are this machine's, and say so)."""
        return self.host in ("localhost", "127.0.0.1", "::1") or bool(self.host and self.host.startswith("127."))

    def refuse_timing(self) -> None:
        """A one-line UsageError when this device cannot give speed figures."""
        if not self.kind.timing:
            raise UsageError(f"no timing on {self.name}: {self.kind.no_timing_reason}")

    def transport(self) -> Any:
        """A new transport to this device (see :mod:`compare.devices`)."""
        return self.kind.transport_class()(self)

    def __str__(self) -> str:
        return self.name


LOCAL = Device(_BY_NAME["local"])
_SSH = re.compile(r"^ssh://(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9._-]+|\[[0-9a-fA-F:]+\])(?::(?P<port>\d{1,5}))?/?$")


def parse_device(text: str) -> Device:
    """The device ``text`` names (one of :data:`DEVICE_KINDS`' syntaxes); a UsageError otherwise."""
    text = text.strip()
    if text.startswith("ssh:"):
        m = _SSH.match(text)
        if not m:
            raise UsageError(f"bad device {text!r}: write ssh://[user@]host[:port]")
        port = int(m["port"]) if m["port"] else None
        if port is not None and not 0 < port < 65536:
            raise UsageError(f"bad device {text!r}: port {port} is not in 1-65535")
        return Device(_BY_NAME["ssh"], host=m["host"].strip("[]"), user=m["user"], port=port)
    kind, _, cpu = text.partition(":")
    if kind not in _BY_NAME:
        syntaxes = [k.syntax for k in DEVICE_KINDS]
        raise UsageError(f"unknown device {text!r}{did_you_mean(kind, KIND_NAMES)}; devices: {', '.join(syntaxes)}")
    if kind == "arm64-emu":
        cpu = cpu or DEFAULT_EMU_CPU
        if cpu not in QEMU_CPUS:
            raise UsageError(f"unknown emulated CPU {cpu!r}{did_you_mean(cpu, QEMU_CPUS)}; choose from {', '.join(QEMU_CPUS)}")
        return Device(_BY_NAME["arm64-emu"], cpu=cpu)
    if cpu:
        raise UsageError(f"bad device {text!r}: {kind} takes no ':' parameter")
    return Device(_BY_NAME[kind])


def family_of(machine: str, fp16_arithmetic: bool) -> str:
    """The CPU family of a device from what its worker reports (``platform.machine()`` and whether
    the runtimes found fp16 arithmetic: ARMv8.2 ``asimdhp``)."""
    m = machine.lower()
    if m in ("aarch64", "arm64", "armv8l"):
        return "arm64-fp16" if fp16_arithmetic else "arm64"
    if m in ("x86_64", "amd64"):
        return "x86-64"
    return m


def local_family() -> str:
    """The CPU family of this machine (ARM: fp16 arithmetic when ``/proc/cpuinfo`` lists ``asimdhp``)."""
    import platform
    machine = platform.machine()
    fp16 = False
    if machine.lower() in ("aarch64", "arm64"):
        try:
            with open("/proc/cpuinfo") as f:
                fp16 = "asimdhp" in f.read()
        except OSError:
            pass
    return family_of(machine, fp16)
