"""ssh:// devices through a real sshd and the real ssh client (boards of ``conftest.py``): parity
on ARM kernels (the emulated aarch64 board), real timings of a loopback board recognised as
such behind a ``Host`` alias, and every failure as one line naming what to do."""
from __future__ import annotations

import json
import math
import platform
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from compare.devices.emulator import device_versions
from compare.devices.connection import DeviceConnection, DeviceError
from compare.devices.runner import runner_on
from compare.devices.ssh import SshTransport
from compare.parity.runtimes import reference_outputs
from tests.helpers.catalog import CATALOG
from tests.helpers.cli import zoo_as_user
from zoo.artifacts import verified_manifest
from zoo.devices import parse_device
from zoo.errors import UsageError
from zoo.parity import compare_output
from zoo.sample_inputs import sample_pairs

VARIANT = CATALOG.get("base-c128")


@pytest.fixture
def open_connection(boards):
    """``open_connection("ssh://alias")``: a private connection, closed after the test."""
    opened = []

    def open_(name: str) -> DeviceConnection:
        opened.append(DeviceConnection(parse_device(name)))
        return opened[-1]

    yield open_
    for conn in opened:
        conn.close()


def _runner(conn: DeviceConnection, artifact: Path):
    return runner_on(conn.device, artifact, verified_manifest(artifact, VARIANT), connection=conn)


def _one_line(exc: pytest.ExceptionInfo, *needles: str) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text, text
    for needle in needles:
        assert needle in text, text
    return text


def test_parity_on_arm_kernels_over_ssh(boards, open_connection, exported) -> None:
    """ONNX Runtime fp32 on the aarch64 board matches PyTorch within the catalog's fp32 tolerance;
    the board is an ARMv8.2 core with fp16 arithmetic, and the artifact is kept there by sha256."""
    conn = open_connection("ssh://arm-board")
    assert conn.info["machine"] == "aarch64" and conn.info["python"].startswith("3.11.")
    assert conn.fp16_arithmetic and conn.family == "arm64-fp16", conn.info["features"]
    # the host's own version, or the one known to run under qemu where the host's is newer
    assert conn.runtime_version("onnxruntime") == device_versions()["onnxruntime"]
    artifact = exported.path(VARIANT.name, "onnx")
    pair = sample_pairs(VARIANT, 1)[0]
    expected = reference_outputs(VARIANT, [pair])[0]
    runner = _runner(conn, artifact)
    with runner:
        actual = runner.infer(pair)
        assert runner.last_inference_time > 0
    tol = VARIANT.tolerance("onnx", "fp32")
    for spec in VARIANT.io.outputs:
        parity = compare_output(spec.name, actual[spec.name], expected[spec.name], tol.atol, tol.rtol)
        assert parity.passed, parity
    onnx_sha = next(f.sha256 for f in verified_manifest(artifact, VARIANT).files if f.path.endswith(".onnx"))
    assert (boards.homes["arm"] / ".cache" / "zoo-device" / onnx_sha).is_file()


def test_timing_on_a_loopback_board(open_connection, exported) -> None:
    """The board behind the alias ``native-board`` is this machine: it says so, and times real calls."""
    device = parse_device("ssh://native-board")
    assert not device.loopback  # the name alone does not tell ...
    conn = open_connection("ssh://native-board")
    assert conn.loopback  # ... ssh's config does (HostName 127.0.0.1)
    assert conn.info["machine"] == platform.machine() and conn.info["python"] == platform.python_version()
    runner = _runner(conn, exported.path(VARIANT.name, "onnx"))
    pair = sample_pairs(VARIANT, 1)[0]
    with runner:
        times = runner.measure(pair, warmup=1, runs=5)["times_s"]
        start = time.perf_counter()
        runner.infer(pair)
        round_trip = time.perf_counter() - start
        assert 0 < runner.last_inference_time < round_trip  # the board's own time of the call, no transfer
    assert len(times) == 5 and all(math.isfinite(t) and 0 < t < 60 for t in times), times
    sensors, _ = conn.request("sensors")
    assert isinstance(sensors["clock_khz"], dict) and isinstance(sensors["temp_c"], dict)


def test_only_a_loopback_hostname_is_loopback(boards) -> None:
    """ssh -G resolves an alias to the machine it reaches; a board elsewhere is not this machine."""
    assert SshTransport(parse_device("ssh://arm-board")).address.endswith(f"@127.0.0.1:{boards.server.port}")
    assert not SshTransport(parse_device("ssh://pi@rpi5.example:2222")).loopback
    assert SshTransport(parse_device("ssh://pi@127.0.0.1:2222")).loopback


@pytest.mark.parametrize("alias, needles", [
    ("closed-board", ("cannot reach ssh://", "@127.0.0.1:", "Connection refused")),
    ("stranger-board", ("refused the login", "Permission denied (publickey)")),
    ("unknown-board", ("host key of ssh://", "is not known", "ssh-keyscan -p ", " 127.0.0.1")),
])
def test_ssh_failures_are_one_line(boards, alias: str, needles: tuple[str, ...]) -> None:
    with pytest.raises(DeviceError) as exc:
        DeviceConnection(parse_device(f"ssh://{alias}"))
    _one_line(exc, f"ssh://{alias}: ", *needles)


def test_board_without_that_python(boards, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_SSH_PYTHON", "python3.99")
    with pytest.raises(DeviceError) as exc:
        DeviceConnection(parse_device("ssh://native-board"))
    _one_line(exc, "has no python3.99", "ZOO_SSH_PYTHON")


def test_board_without_numpy(boards) -> None:
    with pytest.raises(DeviceError) as exc:
        DeviceConnection(parse_device("ssh://empty-board"))
    _one_line(exc, "python3 has no numpy", f"pip install numpy=={np.__version__} ")


def test_board_without_the_runtime(open_connection, exported) -> None:
    """A board with numpy and no ONNX Runtime connects, then refuses ONNX artifacts in one line."""
    conn = open_connection("ssh://bare-board")
    assert conn.info["runtimes"] == {} and "onnxruntime" in conn.info["errors"]
    runner = _runner(conn, exported.path(VARIANT.name, "onnx"))
    with pytest.raises(DeviceError) as exc:
        runner.load()
    _one_line(exc, "ssh://bare-board has no ONNX Runtime", "onnxruntime", "No module named 'onnxruntime'")


def test_no_ssh_client(boards, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UsageError) as exc:
        DeviceConnection(parse_device("ssh://native-board"))
    _one_line(exc, "ssh is not installed", "apt-get install openssh-client")


def test_bench_on_a_board_gives_the_local_tables_labelled_with_the_board(boards, exported, tmp_path) -> None:
    """``zoo bench --device ssh://...``: the same cells as here, timed by the board (this machine
    behind an ssh alias, and labelled so); the emulated board refuses to time."""
    report = tmp_path / "bench.json"
    proc = zoo_as_user("bench", "base-c128", "--runtime", "onnxruntime", "--threads", "1", "--concurrency", "1", "2",
                       "--seconds", "0.5", "--warmup", "1", "--artifacts", str(exported.out), "--device", "ssh://native-board",
                       "--json", str(report))
    assert proc.returncode == 0, proc.stderr
    cells = json.loads(report.read_text())["cells"]
    assert [(c["device"], c["concurrency"]) for c in cells] == [("ssh://native-board (loopback: this machine)", 1),
                                                              ("ssh://native-board (loopback: this machine)", 2)]
    assert all(c["error"] is None and c["aggregate_fps"] > 0 and len(c["instances"]) == c["concurrency"] for c in cells)
    assert cells[1]["other_cores"] is not None  # the board's /proc/stat: what else ran there
    refused = zoo_as_user("bench", "base-c128", "--runtime", "onnxruntime", "--device", "ssh://native-board",
                          "--device", "arm64-emu", "--artifacts", str(exported.out))
    assert refused.returncode == 2 and "no timing on arm64-emu:cortex-a76" in refused.stderr
