"""Builds in worker processes (exporters.isolated): formats whose backend declares ``own_process``
build, under jobs > 1, in spawned workers that relay their progress; a worker that dies is one failed
row (nothing installed, the next run builds); a SIGKILLed export takes its workers along."""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time

import psutil
import pytest

import zoo.backends
from compare.parity.verify import Verifier
from exporters.pipeline import Pipeline
from tests.helpers.catalog import CATALOG, REPO
from tests.helpers.export import ZOO, assert_artifact_valid
from zoo.artifacts import ArtifactKey, Status
from zoo.backends import BACKENDS, by_format

OWN_PROCESS = [b.format for b in BACKENDS if b.own_process]


def _workers(parent: psutil.Process) -> list[psutil.Process]:
    """The spawned multiprocessing workers among ``parent``'s descendants."""
    found = []
    for child in parent.children(recursive=True):
        try:
            line = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "multiprocessing" in line and "resource_tracker" not in line:
            found.append(child)
    return found


@pytest.fixture
def onnx_in_a_worker(monkeypatch):
    """The ONNX backend declared own-process for the test (the cheapest real conversion to run in a worker)."""
    onnx = dataclasses.replace(by_format("onnx"), own_process=True)
    monkeypatch.setitem(zoo.backends._BY_FORMAT, "onnx", onnx)
    return onnx


def test_the_slow_pure_python_converters_build_in_their_own_processes() -> None:
    """The declaration the pipeline reads: litert-torch (not thread-safe) and ExecuTorch (GIL-bound lowering)."""
    assert OWN_PROCESS == ["tflite", "executorch"]


def test_own_process_builds_run_in_a_worker_and_relay_their_events(tmp_path, onnx_in_a_worker) -> None:
    events: list[tuple[ArtifactKey, str, str]] = []
    pipeline = Pipeline(tmp_path / "art", Verifier(CATALOG), CATALOG, jobs=2,
                        on_event=lambda key, stage: events.append((key, str(stage), threading.current_thread().name)))
    keys = [ArtifactKey("base-c128", "onnx", "fp32"), ArtifactKey("base-c128", "mnn", "fp32")]
    rows = pipeline.run(keys)
    assert [r.status for r in rows] == [Status.BUILT, Status.BUILT], [r.note for r in rows]
    for key in keys:
        assert_artifact_valid(key.path(tmp_path / "art"), CATALOG.get("base-c128"))
    onnx_events = [(stage, thread) for key, stage, thread in events if key == keys[0]]
    # the worker's stages reach the parent through the relay thread; mnn (converted from that ONNX
    # artifact, in this process) starts only once the worker has installed it
    assert [s for s, _ in onnx_events] == ["building", "converting", "verifying", "built"], onnx_events
    assert {t for _, t in onnx_events} == {"zoo-build-events"}
    mnn_events = [(stage, thread) for key, stage, thread in events if key == keys[1]]
    assert mnn_events and all(t != "zoo-build-events" for _, t in mnn_events)
    assert events.index((keys[0], "built", "zoo-build-events")) < events.index((keys[1], "building", mnn_events[0][1]))
    assert not _workers(psutil.Process()), "the run left its workers behind"


def test_a_worker_that_dies_is_one_failed_row_and_installs_nothing(tmp_path, onnx_in_a_worker) -> None:
    out = tmp_path / "art"
    key = ArtifactKey("base-c128", "onnx", "fp32")

    def kill_worker(k: ArtifactKey, stage: str) -> None:
        if k == key and stage == "converting":
            for worker in _workers(psutil.Process()):
                os.kill(worker.pid, signal.SIGKILL)

    rows = Pipeline(out, Verifier(CATALOG), CATALOG, jobs=2, on_event=kill_worker).run(
        [key, ArtifactKey("base-c128", "mnn", "fp32")])
    assert rows[0].status is Status.FAILED and "build process exited abruptly" in rows[0].note, rows[0].note
    assert rows[1].status is Status.FAILED and "needs the ONNX artifact" in rows[1].note
    assert not key.path(out).exists()
    again = Pipeline(out, Verifier(CATALOG), CATALOG, jobs=2).run([key])  # a fresh worker builds it
    assert again[0].status is Status.BUILT, again[0].note
    assert_artifact_valid(key.path(out), CATALOG.get("base-c128"))


def test_a_killed_export_takes_its_build_workers_along(tmp_path) -> None:
    """SIGKILL of ``zoo export --jobs 2`` while ExecuTorch lowers in a worker (started by one of the
    pipeline's threads, which has ended by then or not): the worker leaves too."""
    cmd = [*ZOO, "export", "fgaf3", "--to", "executorch", "--out", str(tmp_path / "art"), "--jobs", "2"]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO), "ZOO_CACHE_DIR": str(tmp_path / "cache")},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    parent, deadline, workers = psutil.Process(proc.pid), time.time() + 120, []
    while time.time() < deadline and not workers and proc.poll() is None:
        workers = _workers(parent)
        time.sleep(0.05)
    assert workers, "no build worker started"
    time.sleep(2)  # into the worker's imports or lowering
    proc.kill()
    proc.wait()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [p.pid for p in alive]
    assert not (tmp_path / "art" / "fgaf3" / "executorch").exists()


def test_the_build_a_killed_worker_left_is_swept_by_the_next_run(tmp_path) -> None:
    """The build directory a killed worker leaves in ``.build`` is swept by the next run of that artifact."""
    out = tmp_path / "art"
    stale = out / ".build" / "base-c128--onnx--leftover"
    stale.mkdir(parents=True)
    (stale / "model.onnx").write_bytes(b"half")
    rows = Pipeline(out, Verifier(CATALOG), CATALOG, jobs=1).run([ArtifactKey("base-c128", "onnx", "fp32")])
    assert rows[0].status is Status.BUILT and not stale.exists()
