"""``arm64-emu``: an aarch64 Linux userland run by ``qemu-aarch64-static`` on this machine.

:func:`setup` builds it into zoo's cache (``zoo device setup arm64-emu``): Debian's own arm64
packages of Python 3.11 and the libraries it and the runtimes need, fetched with ``apt-get
download`` against a private package list (the host's apt configuration is not touched) and
unpacked with ``dpkg -x`` into a sysroot (README: "ARM devices"); then the cp311 aarch64 wheels of numpy and each runtime
at exactly the versions this host runs, fetched with ``pip download`` and unzipped into a site
folder. Every file is recorded with its sha256 (apt and pip check them against the signed package
index and the registry's hashes while downloading; zoo checks them again on every later use).
Downloads are kept and reused, so an interrupted setup resumes; the tree is built in a temporary
folder and renamed into place last, so a half-built device is never used.

:class:`EmulatorTransport` starts the device's worker: ``qemu-aarch64-static -cpu CPU -L SYSROOT
SYSROOT/usr/bin/python3.11``. There is no binfmt_misc here: the device side is one process.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from zoo.devices import Device
from zoo.errors import UsageError, ZooError
from zoo.fileio import atomic_write_bytes, sha256_file
from zoo.paths import cache_dir

QEMU = "qemu-aarch64-static"
#: Debian bookworm arm64 packages of the device's userland (Python 3.11 and the libraries its
#: standard library, numpy and the runtimes' wheels load): the set measured to start numpy and every runtime
DEBIAN_PACKAGES: tuple[str, ...] = (
    "libc6", "libgcc-s1", "libstdc++6", "libgomp1", "zlib1g", "libexpat1", "libffi8", "libssl3", "libbz2-1.0",
    "liblzma5", "libsqlite3-0", "libncursesw6", "libtinfo6", "libreadline8", "libuuid1", "libcrypt1", "libnsl2",
    "libtirpc3", "libgssapi-krb5-2", "libkrb5-3", "libk5crypto3", "libkrb5support0", "libcom-err2", "libkeyutils1",
    "libdb5.3", "libgdbm6", "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib",
)
#: the wheels of the device's site folder: numpy and every runtime installed on the host, at the host's versions
WHEELS: tuple[str, ...] = ("numpy", "onnxruntime", "MNN", "ncnn", "ai-edge-litert")
#: wheels whose host version does not run under qemu-user 7.2 (Debian's qemu-user-static): the emulated
#: device gets the newest version measured to run there instead, and its parity records say which ran
#: (``DeviceParity.runtime_version``). Real boards over SSH get the host's versions.
QEMU_VERSIONS: dict[str, tuple[str, str]] = {
    "ai-edge-litert": ("2.1.0", "2.2.0 and 2.3.0 aarch64 segfault in Interpreter() under qemu 7.2 (any -cpu)"),
    "onnxruntime": ("1.23.0", "1.32.0 aarch64 segfaults at import under qemu 7.2 (any -cpu)"),
}
PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
PYTHON = "usr/bin/python3.11"
#: where the device is kept (``$ZOO_CACHE_DIR/devices/arm64-emu``)
NAME = "arm64-emu"

Progress = Callable[[str], None]


def device_dir() -> Path:
    return cache_dir() / "devices" / NAME


def downloads_dir() -> Path:
    return cache_dir() / "devices" / "downloads" / NAME


def qemu_path() -> str:
    """The qemu user-mode emulator, or a one-line error naming the Debian package."""
    found = shutil.which(QEMU)
    if not found:
        raise UsageError(f"{QEMU} is not installed: apt-get install qemu-user-static")
    return found


def read_record(root: Path | None = None) -> dict:
    """The set-up device's record (``device.json``); a one-line error when it is missing or partial."""
    root = root or device_dir()
    record = root / "device.json"
    if not record.is_file():
        if root.exists():
            raise ZooError(f"{NAME} at {root} is incomplete (no device.json): run zoo device setup {NAME} --force")
        raise UsageError(f"{NAME} is not set up: run zoo device setup {NAME}")
    try:
        return json.loads(record.read_text())
    except ValueError:
        raise ZooError(f"{record} is unreadable: run zoo device setup {NAME} --force") from None


def check_downloads(record: dict) -> list[str]:
    """Every recorded download that is missing or no longer has its recorded sha256 (tampered)."""
    bad = []
    for item in record["debs"] + record["wheels"]:
        path = downloads_dir() / item["file"]
        if not path.is_file() or sha256_file(path) != item["sha256"]:
            bad.append(item["file"])
    return bad


def _apt_options(state: Path) -> list[str]:
    """apt-get options for a private arm64 package list (the host's apt state is left alone)."""
    for sub in ("lists/partial", "cache/archives/partial"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "status").touch()
    return ["-o", f"Dir::State::Lists={state / 'lists'}", "-o", f"Dir::Cache={state / 'cache'}",
            "-o", f"Dir::State::status={state / 'status'}", "-o", "APT::Architecture=arm64",
            "-o", "APT::Architectures::=arm64", "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root", "-q"]


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise UsageError(f"{what} needs {argv[0]}, which is not installed (a Debian host with apt is required)") from None
    if done.returncode != 0:
        last = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise ZooError(f"{what} failed: {last[-1] if last else f'exit {done.returncode}'}")
    return done.stdout


def _debs(progress: Progress) -> list[dict]:
    """Download (or reuse) every Debian package; each with the sha256 the signed index gives."""
    dl = downloads_dir()
    dl.mkdir(parents=True, exist_ok=True)
    opts = _apt_options(dl / "apt")
    progress("apt-get update (arm64 package lists)")
    _run(["apt-get", *opts, "update"], "apt-get update for arm64")
    uris = _run(["apt-get", *opts, "--print-uris", "download", *DEBIAN_PACKAGES], "apt-get download --print-uris")
    debs = []
    for line in uris.splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[3].startswith("SHA256:"):
            continue
        name, sha = parts[1], parts[3].removeprefix("SHA256:")
        debs.append({"file": name, "sha256": sha, "bytes": int(parts[2])})
    if len(debs) != len(DEBIAN_PACKAGES):
        raise ZooError(f"apt-get resolved {len(debs)} of {len(DEBIAN_PACKAGES)} arm64 packages")
    todo = [d for d in debs if not (dl / d["file"]).is_file() or sha256_file(dl / d["file"]) != d["sha256"]]
    if todo:
        progress(f"apt-get download: {len(todo)} arm64 package(s)")
        for d in todo:
            (dl / d["file"]).unlink(missing_ok=True)
        _run(["apt-get", *opts, "download", *[_package(d["file"]) for d in todo]], "apt-get download", cwd=dl)
    for d in debs:
        if sha256_file(dl / d["file"]) != d["sha256"]:
            raise ZooError(f"{d['file']} does not match the sha256 of Debian's signed package index")
    return debs


def _package(deb_file: str) -> str:
    """``libc6_2.36-9_arm64.deb`` -> ``libc6:arm64=2.36-9`` (the exact version the index listed)."""
    name, version, _ = deb_file.removesuffix(".deb").split("_")
    return f"{name}:arm64={version.replace('%3a', ':')}"


def host_versions() -> dict[str, str]:
    """The host's version of each wheel the device gets (runtimes not installed here are left out)."""
    versions = {}
    for dist in WHEELS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    if "numpy" not in versions:
        raise ZooError("numpy is not installed on the host")
    return versions


def device_versions() -> dict[str, str]:
    """The version of each wheel the emulated device gets: the host's, except :data:`QEMU_VERSIONS`
    where the host's is newer than the version known to run under qemu."""
    out = {}
    for dist, version in host_versions().items():
        pinned = QEMU_VERSIONS.get(dist)
        out[dist] = pinned[0] if pinned and _newer(version, pinned[0]) else version
    return out


def _newer(a: str, b: str) -> bool:
    key = lambda v: tuple(int(x) if x.isdigit() else 0 for x in v.split("+")[0].split("."))  # noqa: E731
    return key(a) > key(b)


def _wheels(progress: Progress) -> list[dict]:
    dl = downloads_dir()
    wheels = []
    for dist, version in device_versions().items():
        have = [p for p in dl.glob("*.whl") if _wheel_matches(p.name, dist, version)]
        if not have:
            progress(f"pip download {dist}=={version} (cp311 aarch64)")
            argv = ["python", "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
                    "--implementation", "cp", "--abi", "cp311", "--disable-pip-version-check", "-q", "-d", str(dl)]
            for plat in PLATFORMS:
                argv += ["--platform", plat]
            argv[0] = _python()
            _run([*argv, f"{dist}=={version}"], f"pip download {dist}=={version} for aarch64")
            have = [p for p in dl.glob("*.whl") if _wheel_matches(p.name, dist, version)]
        if len(have) != 1:
            raise ZooError(f"expected one aarch64 wheel of {dist}=={version} in {dl}, found {len(have)}")
        wheels.append({"dist": dist, "version": version, "file": have[0].name, "sha256": sha256_file(have[0])})
    return wheels


def _python() -> str:
    import sys
    return sys.executable


def _wheel_matches(file: str, dist: str, version: str) -> bool:
    parts = file.split("-")
    norm = lambda s: s.lower().replace("-", "_").replace(".", "_")  # noqa: E731
    return len(parts) >= 5 and norm(parts[0]) == norm(dist) and parts[1] == version and "aarch64" in parts[-1]


def setup(force: bool = False, progress: Progress | None = None) -> dict:
    """Build the emulated device (see the module docstring); its record. An existing complete
    device is kept unless ``force``; its downloads are checked again either way."""
    say = progress or (lambda text: None)
    qemu = qemu_path()
    root = device_dir()
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one setup at a time; a second one then finds the device built
        for stale in root.parent.glob(f".{NAME}-building-*"):  # left by a setup that was killed
            shutil.rmtree(stale, ignore_errors=True)
        return _setup_locked(qemu, root, force, say)


def _setup_locked(qemu: str, root: Path, force: bool, say: Progress) -> dict:
    if root.exists() and not force:
        record = read_record(root)
        bad = check_downloads(record)
        if bad:
            raise ZooError(f"{NAME}: {bad[0]} in {downloads_dir()} does not match its recorded sha256: "
                           f"run zoo device setup {NAME} --force")
        return record
    debs = _debs(say)
    wheels = _wheels(say)
    root.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{NAME}-building-", dir=root.parent))
    try:
        say(f"unpacking {len(debs)} package(s) and {len(wheels)} wheel(s)")
        for d in debs:
            _run(["dpkg", "-x", str(downloads_dir() / d["file"]), str(work / "sysroot")], f"dpkg -x {d['file']}")
        for w in wheels:
            with zipfile.ZipFile(downloads_dir() / w["file"]) as z:
                _safe_extract(z, work / "site")
        say("starting the emulated Python")
        probe = subprocess.run([qemu, "-L", str(work / "sysroot"), str(work / "sysroot" / PYTHON), "-c",
                                "import platform, numpy; print(platform.machine(), platform.python_version())"],
                               capture_output=True, text=True, env={"PYTHONPATH": str(work / "site"), "PATH": "/usr/bin:/bin"})
        if probe.returncode != 0 or not probe.stdout.startswith("aarch64"):
            raise ZooError(f"the emulated Python does not start: {(probe.stderr or probe.stdout).strip().splitlines()[-1:]}")
        machine, python = probe.stdout.split()
        record = {"kind": NAME, "python": python, "machine": machine, "qemu": _run([qemu, "--version"], QEMU).splitlines()[0],
                  "debs": debs, "wheels": wheels}
        atomic_write_bytes(work / "device.json", json.dumps(record, indent=2).encode())
        if root.exists():
            shutil.rmtree(root)
        os.replace(work, root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return record


def _safe_extract(z: zipfile.ZipFile, dest: Path) -> None:
    """Unzip a wheel, refusing members that would land outside ``dest``."""
    dest = dest.resolve()
    for member in z.infolist():
        target = (dest / member.filename).resolve()
        if not target.is_relative_to(dest):
            raise ZooError(f"{member.filename}: a wheel member outside its folder")
    z.extractall(dest)
    for member in z.infolist():  # keep the executable bits of shared objects
        mode = member.external_attr >> 16
        if mode:
            os.chmod(dest / member.filename, mode & 0o777 | 0o600)


class EmulatorTransport:
    """Starts the worker on the emulated CPU ``device.cpu`` (see :mod:`compare.devices.connection`)."""

    def __init__(self, device: Device):
        self.device = device

    def command(self, bootstrap: str) -> tuple[list[str], dict[str, str]]:
        """(argv, environment) of a Python that runs ``bootstrap``."""
        qemu = qemu_path()
        root = device_dir()
        record = read_record(root)
        bad = [w["file"] for w in record["wheels"]
               if not (downloads_dir() / w["file"]).is_file() or sha256_file(downloads_dir() / w["file"]) != w["sha256"]]
        if bad:
            raise ZooError(f"{NAME}: {bad[0]} in {downloads_dir()} does not match its recorded sha256 "
                           f"(tampered or truncated): run zoo device setup {NAME} --force")
        env = {"PATH": "/usr/bin:/bin", "HOME": str(root), "PYTHONPATH": str(root / "site"),
               "ZOO_DEVICE_STORE": str(root / "store"), "PYTHONDONTWRITEBYTECODE": "1"}
        return [qemu, "-cpu", self.device.cpu, "-L", str(root / "sysroot"), str(root / "sysroot" / PYTHON),
                "-u", "-c", bootstrap], env

    def explain(self, stderr: str, returncode: int | None) -> str:
        """One line on why the worker did not start or died."""
        lines = [line for line in stderr.splitlines() if line.strip()]
        return f"the emulated Python ({self.device.name}) exited {returncode}: {lines[-1] if lines else 'no message'}"
