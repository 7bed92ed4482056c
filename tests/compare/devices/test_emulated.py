"""Parity on ARM kernels: base-c128's artifacts run on an emulated Cortex-A76 (ARMv8.2, fp16
arithmetic) next to this machine, one pair each; the verdict uses the ARM family's tolerance."""
from __future__ import annotations

import pytest

from compare.devices.connection import DeviceConnection, connect
from compare.parity.runtimes import compare_variant, device_rows
from compare.inputs import load_pairs
from tests.helpers.catalog import CATALOG
from zoo.devices import parse_device

VARIANT = "base-c128"
BIG_CORE = parse_device("arm64-emu:cortex-a76")
#: what the issue asks the default tier to run on ARM (format dir, runtime label)
ON_ARM = (("onnx", "onnxruntime", "fp32"), ("mnn", "mnn", "fp16"), ("ncnn", "ncnn", "fp16"), ("tflite", "tflite", "fp32"))


@pytest.fixture(scope="module")
def results(arm64_emu, exported):
    """PyTorch vs each artifact here and on the emulated big core, on the same pair."""
    v = CATALOG.get(VARIANT)
    artifacts = [(label, exported.path(VARIANT, fmt, precision)) for fmt, label, precision in ON_ARM]
    family = connect(BIG_CORE).family
    return compare_variant(v, artifacts, load_pairs(v, 1), CATALOG.preset(v), devices=((BIG_CORE, family),))


def _result(results, device: str, runtime: str, precision: str):
    return next(r for r in results if (r.device, r.runtime, r.precision) == (device, runtime, precision))


def test_the_big_core_is_an_armv82_with_fp16_arithmetic(results) -> None:
    conn = connect(BIG_CORE)
    assert conn.info["machine"] == "aarch64" and conn.family == "arm64-fp16"
    assert conn.info["features"]["ncnn"]["arm_asimdhp"] and "fp16:1" in conn.info["features"]["mnn"].replace(" ", "")
    hw = set(conn.info["cpu"]["hwcaps"])  # what XNNPACK and ONNX Runtime choose kernels by
    assert {"asimdhp", "asimddp"} <= hw and not hw & {"i8mm", "sve2"}, hw
    assert {r.family for r in results if r.device == BIG_CORE.name} == {"arm64-fp16"}


@pytest.mark.parametrize("runtime", ["onnxruntime", "tflite"])
def test_fp32_on_arm_kernels_is_within_the_arm_fp32_tolerance(results, runtime) -> None:
    there = _result(results, BIG_CORE.name, runtime, "fp32")
    tol = CATALOG.get(VARIANT).tolerance(there.format, "fp32", "arm64-fp16")
    assert there.error is None and there.passed, there
    assert all(o.max_abs_err <= tol.atol for o in there.outputs)
    assert there.tracking[0].same_cell and there.tracking[0].iou > 0.999


@pytest.mark.parametrize("runtime", ["mnn", "ncnn"])
def test_fp16_on_arm_runs_the_fp16_arithmetic_path(results, runtime) -> None:
    """x86 computes fp16 artifacts in fp32 from fp16 storage; ARMv8.2 in fp16: several times the error."""
    here, there = _result(results, "local", runtime, "fp16"), _result(results, BIG_CORE.name, runtime, "fp16")
    assert here.error is None and there.error is None
    worst_here = max(o.max_abs_err for o in here.outputs)
    worst_there = max(o.max_abs_err for o in there.outputs)
    assert worst_there > 3 * worst_here, (worst_here, worst_there)  # measured 9-37x on base-c128
    assert there.passed  # and still within the arm64-fp16 tolerance


def test_device_rows_put_this_machines_figure_beside_the_devices(results) -> None:
    rows = device_rows(results)
    assert {r["device"] for r in rows} == {BIG_CORE.name} and len(rows) == 4 * 3
    ncnn = [r for r in rows if r["runtime"] == "ncnn"]
    assert all(r["local_max_abs_err"] is not None and r["ratio"] == pytest.approx(r["max_abs_err"] / r["local_max_abs_err"])
               for r in ncnn)


def test_a_little_core_has_no_fp16_arithmetic(arm64_emu) -> None:
    conn = DeviceConnection(parse_device("arm64-emu:cortex-a53"))
    try:
        assert conn.family == "arm64" and not conn.fp16_arithmetic
        assert "fp16:0" in conn.info["features"]["mnn"].replace(" ", "")
        assert not set(conn.info["cpu"]["hwcaps"]) & {"asimdhp", "asimddp", "i8mm"}
    finally:
        conn.close()


@pytest.mark.slow
def test_layers_name_where_the_arm_kernels_depart(arm64_emu, exported, capsys, monkeypatch) -> None:
    """ncnn fp16 on the big core departs from this machine's figures at the first convolution:
    fp16 arithmetic from the first op on."""
    from tests.helpers.cli import run_main
    code, _, err = run_main(capsys, monkeypatch, "compare", VARIANT, "--layers", "--runtime", "ncnn", "--precision", "fp16",
                            "--samples", "1", "--device", BIG_CORE.name, "--artifacts", str(exported.out))
    assert code == 0, err
    assert f"{VARIANT} ncnn fp16 on {BIG_CORE.name}: departs from this machine at backbone." in err
