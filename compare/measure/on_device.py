"""Measurements on a device (:mod:`zoo.devices`): the same :class:`compare.measure.worker.Measurement`
as a child process here gives, timed by the device's own worker.

Each task gets a connection of its own, so each instance is its own process on the device (``N``
trackers at once on a board are ``N`` workers there, started together: the requests go out at the
same moment from one thread per instance). The device times every call itself and reports its
CPU use, the whole board's busy time (``/proc/stat``), its peak RSS and its clock and temperature
samples, all in device time. Emulated devices refuse (their time is no device's speed).
"""
from __future__ import annotations

import threading

from compare.devices.connection import DeviceConnection, DeviceError
from compare.devices.runner import runner_on
from compare.measure.worker import MeasureTask, Measurement
from zoo.artifacts import verified_manifest
from zoo.errors import ZooError

#: seconds between clock/temperature samples on the device
SAMPLE_S = 1.0


def big_cores(info: dict) -> list[int]:
    """The device's fastest cores (the highest ``cpuinfo_max_freq``); a big.LITTLE phone or board
    has several kinds. An error when the device exposes no cpufreq."""
    cpus = [c for c in info.get("cpu", {}).get("cpus", []) if c.get("max_khz")]
    if not cpus:
        raise DeviceError("the device exposes no cpufreq (cpuinfo_max_freq): cannot tell its big cores")
    top = max(c["max_khz"] for c in cpus)
    return [c["cpu"] for c in cpus if c["max_khz"] == top]


def _one(task: MeasureTask, conn: DeviceConnection, start: threading.Barrier | None, out: list, i: int) -> None:
    spec = task.spec
    # a board that is this machine (an ssh alias of 127.0.0.1) says so in every row it gives
    name = spec.device.name + (" (loopback: this machine)" if conn.loopback else "")
    result = Measurement(pid=conn.info.get("pid", 0), threads=task.threads, device=name,  # the worker's pid on the device
                         device_cpus=conn.info.get("cpu", {}).get("count"))
    try:
        if spec.key.is_reference:
            raise ZooError("PyTorch eager is the reference here; devices run artifacts only")
        manifest = verified_manifest(spec.artifact, spec.variant)
        if manifest.graphs is not None:
            raise ZooError("split artifacts are timed on this machine only")
        runner = runner_on(spec.device, spec.artifact, manifest, task.threads, connection=conn)
        options = {"sample_s": SAMPLE_S}
        if task.big_cores:
            options["cpus"] = big_cores(conn.info)
        if task.cooldown_c is not None:
            options["cooldown_c"] = task.cooldown_c
        runner.load()
        if start is not None:
            start.wait(timeout=600)
        reply = runner.measure(task.inputs, task.warmup, task.runs, task.duration_s, **options)
        runner.close()
        result.first_s, result.times_s, result.ends = reply["first_s"], reply["times_s"], reply["ends"]
        result.start, result.cpu_s, result.wall_s = reply["start"], reply["cpu_s"], reply["wall_s"]
        result.machine_busy_s, result.samples = reply["machine_busy_s"], reply["samples"]  # peak RSS: not a delta there
    except threading.BrokenBarrierError:
        result.error = "another instance failed before the timed phase"
    except Exception as exc:  # noqa: BLE001 - the row's error, as a child's would be
        if start is not None:
            start.abort()
        result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    out[i] = result


def measure_on_devices(tasks: list[MeasureTask], concurrent: bool = False, timeout_s: float = 900.0) -> list[Measurement]:
    """:func:`compare.measure.worker.measure` for tasks whose spec names a device: one after
    another, or all at once (each on its own connection, behind a barrier)."""
    for t in tasks:
        t.spec.device.refuse_timing()
    batches = [list(range(len(tasks)))] if concurrent else [[i] for i in range(len(tasks))]
    out: list[Measurement | None] = [None] * len(tasks)
    for batch in batches:
        conns: dict[int, DeviceConnection] = {}
        try:
            for i in batch:
                try:
                    conns[i] = DeviceConnection(tasks[i].spec.device)
                except ZooError as exc:
                    out[i] = Measurement(pid=0, threads=tasks[i].threads, device=tasks[i].spec.device.name, error=str(exc))
            barrier = threading.Barrier(len(conns)) if len(conns) > 1 else None
            threads = [threading.Thread(target=_one, args=(tasks[i], c, barrier, out, i), daemon=True) for i, c in conns.items()]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout_s)
        finally:
            for c in conns.values():
                c.close()
        for i in batch:
            if out[i] is None:
                out[i] = Measurement(pid=0, threads=tasks[i].threads, device=tasks[i].spec.device.name,
                                     error=f"no answer within {timeout_s:.0f} s")
    return out  # type: ignore[return-value]
