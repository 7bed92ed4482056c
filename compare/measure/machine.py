"""What the machine says about itself: CPU clock and temperature (where exposed), for reports,
and how busy it was while something was timed (:func:`cpu_busy_seconds`, :func:`contention`).

The clock comes from cpufreq (``scaling_cur_freq``, the real current frequency) when the kernel
exposes it, else from ``/proc/cpuinfo``'s ``cpu MHz`` on bare metal. Under a hypervisor without
cpufreq that figure is the nominal clock and does not move with boost or throttling, so no clock
is reported there (:func:`clock_source` says why). Temperature comes from ``/sys/class/thermal`` zones; many VMs expose none (``None``).
"""
from __future__ import annotations

import glob
import math
import os
import platform
import re
from dataclasses import dataclass

_CPUFREQ = "/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq"
_THERMAL = "/sys/class/thermal/thermal_zone*/temp"


def _read_numbers(pattern: str) -> list[float]:
    values = []
    for path in glob.glob(pattern):
        try:
            with open(path) as fh:
                values.append(float(fh.read().strip()))
        except (OSError, ValueError):
            continue
    return values


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return fh.read()
    except OSError:
        return ""


def under_hypervisor() -> bool:
    """The CPU flags say a hypervisor runs this machine (its /proc/cpuinfo MHz is then nominal)."""
    return bool(re.search(r"^flags\s*:.*\bhypervisor\b", _cpuinfo(), re.M))


def cpu_mhz() -> float | None:
    """Mean current clock over the CPUs in MHz, or ``None`` when the machine does not say: cpufreq
    first; /proc/cpuinfo only on bare metal (under a hypervisor it repeats the nominal clock)."""
    khz = _read_numbers(_CPUFREQ)
    if khz:
        return sum(khz) / len(khz) / 1e3
    if under_hypervisor():
        return None
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([0-9.]+)", _cpuinfo(), re.M)]
    return sum(mhz) / len(mhz) if mhz else None


def temperature_c() -> float | None:
    """Hottest thermal zone in degrees Celsius, or ``None`` when none is exposed."""
    milli = [v for v in _read_numbers(_THERMAL) if v > 0]
    return max(milli) / 1e3 if milli else None


def sample_clock() -> tuple[float | None, float | None]:
    """``(cpu_mhz, temperature_c)`` right now."""
    return cpu_mhz(), temperature_c()


def clock_source() -> str:
    """Where :func:`cpu_mhz` reads from, and what that is worth."""
    if glob.glob(_CPUFREQ):
        return "cpufreq scaling_cur_freq"
    if under_hypervisor():
        return "not exposed (no cpufreq; a hypervisor's /proc/cpuinfo MHz is nominal, not measured)"
    return "/proc/cpuinfo cpu MHz (no cpufreq)"


#: how a comparison's latency figures are taken (``machine_info(timed=True)``)
LATENCY_METHOD = "runtime call only (runner.last_inference_time), no layout conversion"
ISOLATION_METHOD = "one process per runtime x thread count x block; blocks interleaved, the ceilings beside each"


def machine_info(memory: str | None = None, *, timed: bool = False) -> dict:
    """The ``machine`` section of every report (``zoo compare``, ``zoo bench``, ``zoo profile``):
    CPU count, processor, Python and where clock/temperature come from; with ``memory`` (how peak
    memory was measured: ``compare.measure.worker.memory_method()``) that too, and ``timed`` adds
    how latency was measured and isolated (``zoo compare``'s timing)."""
    info = {"cpu_count": os.cpu_count(), "machine": platform.machine(), "processor": _cpu_model(),
            "python": platform.python_version(), "clock": clock_source(),
            "temperature": "thermal zones" if glob.glob(_THERMAL) else "not exposed"}
    if memory is not None:
        info["memory"] = memory
    if timed:
        info.update(latency=LATENCY_METHOD, isolation=ISOLATION_METHOD)
    return info


def _cpu_model() -> str:
    found = re.search(r"^model name\s*:\s*(.+)$", _cpuinfo(), re.M)
    return found.group(1).strip() if found else platform.processor()


# -- contention: other processes competing for the CPUs during a timed phase ------------------------
#: /proc/stat columns counted as busy: user nice system idle iowait irq softirq steal (guest is in
#: user already). Steal is time the hypervisor gave to other machines: taken from us as well.
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)
#: cores of other processes' work tolerated beyond the cores the measurement leaves free
TOLERANCE_CORES = 0.25


def cpu_busy_seconds() -> float | None:
    """CPU seconds all CPUs of the machine have spent busy (or stolen) since boot; ``None`` when
    the machine does not say (no ``/proc/stat`` and no psutil)."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
        if fields and fields[0] == "cpu":
            ticks = [int(x) for x in fields[1:9]]
            return sum(ticks[i] for i in _BUSY_FIELDS if i < len(ticks)) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        pass
    try:
        import psutil

        t = psutil.cpu_times()
    except Exception:  # noqa: BLE001 - no way to tell
        return None
    return sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal"))


@dataclass(frozen=True)
class Contention:
    """How much of the machine other processes used while a measurement ran."""

    other_cores: float  # CPU seconds of everything but the measurement, per wall second
    free_cores: float  # CPUs the measurement left free (CPU count - threads x instances, at least 0)
    contended: bool  # other_cores > free_cores + TOLERANCE_CORES

    @property
    def reason(self) -> str | None:
        """One phrase for the report, or None when the measurement had the CPUs it asked for."""
        if not self.contended:
            return None
        return f"other processes used {self.other_cores:.1f} CPUs while {self.free_cores:g} were free"


def contention(machine_busy_s: float | None, own_cpu_s: float, wall_s: float, cores_used: int,
               cpu_count: int | None = None, tolerance: float = TOLERANCE_CORES) -> Contention | None:
    """Contention over a timed phase of ``wall_s`` seconds during which the machine was busy for
    ``machine_busy_s`` CPU seconds, ``own_cpu_s`` of them the measurement's own (every instance's),
    which asked for ``cores_used`` CPUs. ``None`` when the inputs do not allow a verdict."""
    cpus = cpu_count or os.cpu_count() or 1
    if machine_busy_s is None or not all(math.isfinite(x) for x in (machine_busy_s, own_cpu_s, wall_s)) or wall_s <= 0:
        return None
    other = max(0.0, machine_busy_s - own_cpu_s) / wall_s
    free = float(max(0, cpus - cores_used))
    return Contention(other, free, other > free + tolerance)
