"""Ctrl-C, SIGTERM and SIGKILL on real ``python -m zoo`` processes.

Each test starts the CLI in a session of its own, waits until its children are really working
(measurement workers busy, a converter process started, a file half-downloaded), records every
descendant, then signals it the way a user would:

- Ctrl-C: SIGINT to the whole process group (what a terminal does) -> exit 130, last stderr line
  ``interrupted``;
- ``kill PID``: SIGTERM to the zoo process only -> exit 143 (128 + 15), last line ``terminated``;
- ``kill -9 PID``: nothing runs in zoo, the children must die anyway (parent-death signal).

and asserts: prompt exit, the exit code, no traceback, one line about the interruption (other
stderr lines are progress lines), and no descendant left alive.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers.catalog import REPO
from tests.helpers.hub_server import HubServer

VARIANT = "base-c128"
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups / prctl: Linux")


def start(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, psutil.Process]:
    """``python -m zoo ARGS`` from the worktree, in a new session (so a group signal is ours only)."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    full_env.pop("ZOO_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "zoo", *args], cwd=REPO, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    return proc, psutil.Process(proc.pid)


def wait_for(predicate, timeout: float, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"zoo ended before {what}: exit {proc.returncode}\n{proc.stderr.read()}")
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"timed out waiting for {what}")


def descendants(parent: psutil.Process) -> list[psutil.Process]:
    try:
        return parent.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(procs: list[psutil.Process]) -> list[str]:
    left = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return left


def assert_none_survive(procs: list[psutil.Process], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = alive(procs)
    for p in procs:  # never leave a spinning worker behind, even when the test fails
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    assert not left, f"children survived: {left}"


def signal_and_check(proc: subprocess.Popen, sig: int, group: bool, code: int, line: str,
                     kids: list[psutil.Process], within: float = 10.0) -> tuple[float, str]:
    """Send ``sig``; assert the exit code, a single interruption line and no survivors."""
    t0 = time.monotonic()
    (os.killpg if group else os.kill)(proc.pid, sig)
    try:
        _, err = proc.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        assert_none_survive(kids, 1)
        raise AssertionError(f"zoo did not exit within {within:g} s of the signal; stderr:\n{err}")
    elapsed = time.monotonic() - t0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err and "Error" not in err, err
    assert proc.returncode == code, (proc.returncode, err)
    assert lines and lines[-1] == line, err
    assert sum(ln.strip() in ("interrupted", "terminated", "aborted", "Aborted!") for ln in lines) == 1, err
    assert_none_survive(kids)
    return elapsed, err


# -- zoo bench: measurement children --------------------------------------------------------------

def _busy_workers(parent: psutil.Process, n: int = 1):
    def ready() -> bool:
        try:  # loaded and running: well into the timed loop
            workers = [p for p in descendants(parent) if "spawn_main" in " ".join(p.cmdline())]
            return len(workers) >= n and all(p.cpu_times().user > 1.5 for p in workers)
        except psutil.NoSuchProcess:
            return False
    return ready


#: the concurrency-1 cell (always measured first) runs 30 s: the signal arrives in the middle of it
BENCH = ("bench", VARIANT, "--runtime", "pytorch", "--threads", "1", "--concurrency", "2", "--seconds", "30")


@pytest.mark.parametrize("sig, group, code, line", [
    (signal.SIGINT, True, 130, "interrupted"),  # Ctrl-C in a terminal: the whole foreground group
    (signal.SIGTERM, False, 143, "terminated"),  # kill PID: zoo alone
], ids=["ctrl-c", "sigterm"])
def test_bench_interrupted_stops_its_workers(sig, group, code, line) -> None:
    proc, parent = start(*BENCH)
    wait_for(_busy_workers(parent), 60, proc, "a busy measurement worker")
    kids = descendants(parent)
    elapsed, _ = signal_and_check(proc, sig, group, code, line, kids)
    assert elapsed < 6, f"took {elapsed:.1f} s to stop"


def test_bench_workers_die_with_a_killed_parent() -> None:
    proc, parent = start(*BENCH)
    wait_for(_busy_workers(parent), 60, proc, "a busy measurement worker")
    # the workers are picked before the kill: a dead one's command line can no longer be read (zombie)
    workers = [k for k in descendants(parent) if "spawn_main" in " ".join(k.cmdline())]
    assert workers
    os.kill(proc.pid, signal.SIGKILL)  # no handler runs: only the kernel's parent-death signal
    proc.communicate(timeout=10)
    assert_none_survive(workers)


# -- zoo export: a converter process ------------------------------------------------------------
#: MNN's converter runs as a child process (``python -c "... _tools.mnnconvert ..."``); TFLite and
#: ONNX convert in-process, so they have no child to take along
CONVERTER_MARK = "_tools.mnnconvert"


def _converter_started(parent: psutil.Process):
    def ready() -> bool:
        try:
            return any(CONVERTER_MARK in " ".join(p.cmdline()) for p in descendants(parent))
        except psutil.NoSuchProcess:
            return False
    return ready


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_killed_export_takes_the_converter_along(sig, tmp_path) -> None:
    proc, parent = start("export", "fgaf3", "--to", "mnn", "--precision", "fp32", "--out", str(tmp_path / "art"),
                         env={"ZOO_CACHE_DIR": str(tmp_path / "cache")})
    wait_for(_converter_started(parent), 120, proc, "the MNN converter")
    kids = [k for k in descendants(parent) if CONVERTER_MARK in " ".join(k.cmdline())]
    assert alive(kids)  # still converting when the signal goes: the test is not vacuous
    if sig == signal.SIGKILL:
        os.kill(proc.pid, sig)
        proc.communicate(timeout=10)
        assert_none_survive(kids)
        return
    signal_and_check(proc, sig, False, 143, "terminated", kids)
    assert not (tmp_path / "art" / "fgaf3" / "mnn").exists()  # nothing half-written became visible


# -- zoo pull: in-flight transfers ------------------------------------------------------------------

@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """base-c128's ONNX artifact published as a release tree."""
    root = tmp_path_factory.mktemp("signals-hub")
    env = {**os.environ, "COLUMNS": "200"}
    for args in (["export", VARIANT, "--to", "onnx", "--precision", "fp32", "--out", str(root / "art")],
                 ["publish", VARIANT, "--formats", "onnx", "--precision", "fp32", "--artifacts", str(root / "art"),
                  "--to", str(root / "v1")]):
        done = subprocess.run([sys.executable, "-m", "zoo", *args], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
    return root / "v1"


def test_ctrl_c_during_pull_does_not_wait_for_the_transfer(release, tmp_path) -> None:
    onnx = f"artifacts/{VARIANT}/onnx/model.onnx"
    with HubServer(release) as hub:
        hub.fault(onnx, "slow:30", repeat=True)  # the file takes 30 s to arrive
        proc, parent = start("pull", VARIANT, "--hub", hub.url, "--format", "onnx", "--precision", "fp32",
                             env={"ZOO_CACHE_DIR": str(tmp_path / "cache"), "ZOO_HUB_TIMEOUT": "60"})
        wait_for(lambda: bool(hub.hits(onnx)), 60, proc, "the ONNX transfer to start")
        time.sleep(1.0)
        elapsed, _ = signal_and_check(proc, signal.SIGINT, True, 130, "interrupted", descendants(parent), within=20)
    assert elapsed < 2.0, f"Ctrl-C took {elapsed:.1f} s: it waited for the transfer in flight"
    assert not list((tmp_path / "cache").rglob("model.onnx"))  # nothing unverified became visible


@pytest.mark.parametrize("args", [("list",), pytest.param(("track", VARIANT, "missing-folder", "--init", "1,1,2,2"),
                                                         marks=pytest.mark.slow)])
def test_ctrl_c_in_the_first_second_is_one_line(args) -> None:
    """Ctrl-C while the CLI is still importing (click, rich, numpy, the commands) or just starting
    ends as every Ctrl-C does: exit 130 and "interrupted", never an import traceback. A run that
    finished before the signal arrived exits as it would have; one signalled before the interpreter
    installed its handler dies of it (-2) having printed nothing."""
    for delay in (0.1, 0.25, 0.5):
        proc, _ = start(*args)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, f"after {delay}s:\n{err}"
        assert proc.returncode in (130, 0, 2) or (proc.returncode == -signal.SIGINT and not err), \
            f"after {delay}s: exit {proc.returncode}\n{err}"
        if proc.returncode == 130:
            assert err.strip().splitlines()[-1] == "interrupted", err
