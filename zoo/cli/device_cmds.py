"""``zoo device setup|list|check``: the devices artifacts can run on (:mod:`zoo.devices`)."""
from __future__ import annotations

import click
from rich.markup import escape

from compare.devices import emulator
from compare.devices.connection import DeviceConnection
from zoo.backends import BACKENDS
from zoo.cli.options import report_options
from zoo.cli.output import Column, View, emit, emit_rows, err, label, note, progress_bar, show
from zoo.devices import DEVICE_KINDS, QEMU_CPUS, device_kind, parse_device
from zoo.errors import UsageError, ZooError

LIST_COLUMNS = [
    label("device"), note("cpus", "CPUs", optional=True), note("timing"), note("state"), note("description", "what it is"),
]
CHECK_COLUMNS = [
    label("runtime"), Column("device_version", "there", justify="left"),
    Column("host_version", "here", justify="left"), note("features", "CPU features it detects"),
    label("status"),
]


@click.group("device")
def device_group() -> None:
    """Devices artifacts run on: this machine, an emulated ARM CPU, ARM boards over SSH."""


@device_group.command("setup")
@click.argument("kind")
@click.option("--force", is_flag=True, help="Rebuild it (downloads are checked and reused).")
def setup_cmd(kind: str, force: bool) -> None:
    """Build device KIND into zoo's cache (arm64-emu: a Debian arm64 userland and the runtimes'
    aarch64 wheels at this host's versions, each file recorded with its sha256)."""
    spec = device_kind(kind.partition(":")[0])
    if not spec.setup:
        raise UsageError(f"{spec.name} needs no setup here" + (
            ": install Python 3.11, numpy and the runtimes on the board, then zoo device check ssh://HOST" if spec.name == "ssh" else ""))
    with progress_bar() as progress:
        task = progress.add_task(f"{spec.name}: starting", total=None)
        record = emulator.setup(force=force, progress=lambda text: progress.update(task, description=f"{spec.name}: {text}"))
    rows = [{"item": "python", "version": record["python"], "file": record["machine"], "sha256": "-"},
            {"item": "qemu", "version": record["qemu"], "file": "-", "sha256": "-"}]
    rows += [{"item": w["dist"], "version": w["version"], "file": w["file"], "sha256": w["sha256"][:16]} for w in record["wheels"]]
    rows.append({"item": f"{len(record['debs'])} Debian packages", "version": "bookworm arm64", "file": "-", "sha256": "recorded"})
    columns = [label("item"), Column("version", "version", justify="left"), Column("file", "file", justify="left"),
               Column("sha256", "sha256", justify="left", drop=1)]
    show([View("setup", f"{spec.name} in {emulator.device_dir()}", rows, columns)])


@device_group.command("list")
@report_options("the devices")
def list_cmd(json_file, csv_file, markdown_file) -> None:
    """Every kind of device and whether it is ready here."""
    rows = []
    for k in DEVICE_KINDS:
        state = "ready"
        if k.setup:
            try:
                emulator.read_record()
            except ZooError as exc:
                state = str(exc)
        cpus = ", ".join(QEMU_CPUS) if k.name == "arm64-emu" else None
        rows.append({"device": k.syntax, "cpus": cpus, "timing": "yes" if k.timing else f"no: {k.no_timing_reason}", "state": state,
                     "description": k.description})
    emit_rows("devices", rows, LIST_COLUMNS, "zoo devices", (json_file, csv_file, markdown_file))


@device_group.command("check")
@click.argument("device")
@report_options("the runtimes")
def check_cmd(device: str, json_file, csv_file, markdown_file) -> None:
    """Start DEVICE's worker: its CPU, the features each runtime detects there and the runtime
    versions beside this host's. Exit 1 when a runtime differs from the host's version."""
    from importlib import metadata
    dev = parse_device(device)
    if dev.is_local:
        raise UsageError("local is this machine: zoo device check arm64-emu[:CPU] or ssh://HOST")
    with progress_bar() as progress:
        progress.add_task(f"starting {dev.name}", total=None)
        conn = DeviceConnection(dev)
    try:
        info = conn.info
        family = conn.family
    finally:
        conn.close()
    features = info.get("features", {})
    rows = []
    for b in BACKENDS:
        there = info["runtimes"].get(b.distribution)
        try:
            here = metadata.version(b.distribution)
        except metadata.PackageNotFoundError:
            here = None
        feat = features.get(b.runtime, "")
        if isinstance(feat, dict):
            feat = " ".join(name for name, on in feat.items() if on) or "none"
        if not feat and info.get("cpu", {}).get("hwcaps"):  # XNNPACK / MLAS pick kernels from the same HWCAP words
            feat = "HWCAP: " + " ".join(info["cpu"]["hwcaps"])
        status = "ok" if there and there == here else ("missing there" if not there else
                                                       "not installed here" if not here else "version differs")
        rows.append({"runtime": b.title, "device_version": there or info["errors"].get(b.distribution, "-"),
                     "host_version": here or "-", "features": feat or "-", "status": status})
    cpu = info.get("cpu", {})
    model = f"qemu {dev.cpu} (emulated; the host's /proc/cpuinfo shows through)" if dev.kind.name == "arm64-emu" \
        else (cpu.get("board") or cpu.get("model") or "?")
    title = f"{dev.name}: {info['machine']}, CPU family {family}, {cpu.get('count')} CPUs, {model}; Python {info['python']}, numpy {info['numpy']}"
    emit([View("runtimes", title, rows, CHECK_COLUMNS)], json_file, csv_file, markdown_file,
         payload={"device": dev.name, "family": family, **info, "runtimes_table": rows})
    bad = [r for r in rows if r["status"] == "version differs"]
    for r in bad:
        err().print(escape(f"{r['runtime']}: {r['device_version']} on {dev.name}, {r['host_version']} here: "
                           "parity there is of another build"), highlight=False)
    if bad:
        raise ZooError(f"{len(bad)} runtime(s) differ from this host's version")
