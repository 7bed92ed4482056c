"""What the machine says about itself: CPU clock and temperature (where exposed), for reports.

The clock comes from cpufreq (``scaling_cur_freq``, the real current frequency) when the kernel
exposes it, else from ``/proc/cpuinfo``'s ``cpu MHz`` -- under a hypervisor without cpufreq that
is the nominal clock and does not move with boost or throttling, which :func:`clock_source`
says. Temperature comes from ``/sys/class/thermal`` zones; many VMs expose none (``None``).
"""
from __future__ import annotations

import glob
import os
import platform
import re

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


def cpu_mhz() -> float | None:
    """Mean current clock over the CPUs in MHz, or ``None`` when the machine does not say."""
    khz = _read_numbers(_CPUFREQ)
    if khz:
        return sum(khz) / len(khz) / 1e3
    try:
        with open("/proc/cpuinfo") as fh:
            mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([0-9.]+)", fh.read(), re.M)]
    except OSError:
        return None
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
    return "/proc/cpuinfo cpu MHz (no cpufreq: nominal clock under a hypervisor)"


def machine_info() -> dict:
    """CPU count, processor, Python and where clock/temperature come from (for reports)."""
    return {"cpu_count": os.cpu_count(), "machine": platform.machine(), "processor": _cpu_model(),
            "python": platform.python_version(), "clock": clock_source(),
            "temperature": "thermal zones" if glob.glob(_THERMAL) else "not exposed"}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            found = re.search(r"^model name\s*:\s*(.+)$", fh.read(), re.M)
    except OSError:
        found = None
    return found.group(1).strip() if found else platform.processor()
