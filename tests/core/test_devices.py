"""``zoo.devices``: the device table, parsing what users type, CPU families and their tolerances."""
from __future__ import annotations

import pytest

from compare.measure.timing import slowest_rows
from zoo.devices import DEVICE_KINDS, FAMILIES, family_of, parse_device
from zoo.errors import UsageError, ZooError


@pytest.mark.parametrize("text, name, timing", [
    ("local", "local", True),
    ("arm64-emu", "arm64-emu:cortex-a76", False),
    ("arm64-emu:cortex-a53", "arm64-emu:cortex-a53", False),
    ("ssh://rpi5", "ssh://rpi5", True),
    ("ssh://pi@10.0.0.7:2222", "ssh://pi@10.0.0.7:2222", True),
])
def test_devices_parse_to_their_canonical_name(text, name, timing) -> None:
    d = parse_device(text)
    assert d.name == name and d.kind.timing is timing and parse_device(d.name) == d


@pytest.mark.parametrize("text, message", [
    ("arm-emu", "did you mean 'arm64-emu'"),
    ("arm64-emu:a76", "unknown emulated CPU 'a76'"),
    ("ssh://pi@", "write ssh://[user@]host[:port]"),
    ("ssh://host:70000", "port 70000 is not in 1-65535"),
    ("local:x", "local takes no ':' parameter"),
])
def test_bad_device_names_are_usage_errors(text, message) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        parse_device(text)


def test_every_kind_off_this_machine_names_a_transport_that_imports() -> None:
    for kind in DEVICE_KINDS:
        assert (kind.transport is None) == (kind.name == "local")
        if kind.transport:
            assert callable(kind.transport_class().command)
        assert kind.timing or kind.no_timing_reason


def test_emulated_devices_refuse_timing_with_the_reason() -> None:
    with pytest.raises(UsageError, match="no timing on arm64-emu:max: an emulated CPU gives parity, never speed"):
        parse_device("arm64-emu:max").refuse_timing()
    parse_device("ssh://board").refuse_timing()  # boards time


@pytest.mark.parametrize("machine, fp16, family", [("aarch64", True, "arm64-fp16"), ("aarch64", False, "arm64"),
                                                   ("x86_64", False, "x86-64")])
def test_cpu_family_follows_the_fp16_arithmetic_the_runtimes_detect(machine, fp16, family) -> None:
    assert family_of(machine, fp16) == family and family in FAMILIES


def test_a_family_tolerance_replaces_the_base_one_only_for_that_family(catalog_copy, monkeypatch) -> None:
    text = catalog_copy.read_text().replace("fp16: {atol: 0.01, rtol: 0.05}",
                                           "fp16: {atol: 0.01, rtol: 0.05, families: {arm64-fp16: {atol: 0.05, rtol: 0.2}}}", 1)
    catalog_copy.write_text(text)
    from zoo.catalog import Catalog
    v = Catalog.load(catalog_copy).get("base-c128")
    assert (v.tolerance("tflite", "fp16").atol, v.tolerance("tflite", "fp16", "arm64").atol) == (0.01, 0.01)
    arm = v.tolerance("tflite", "fp16", "arm64-fp16")
    assert (arm.atol, arm.rtol) == (0.05, 0.2)
    with pytest.raises(ZooError, match="unknown CPU family 'riscv'"):
        v.tolerance("tflite", "fp16", "riscv")


@pytest.mark.parametrize("fmt", ["mnn", "ncnn"])
def test_the_catalog_allows_fp16_arithmetic_more_than_fp16_storage(fmt) -> None:
    """zoo.yaml's arm64-fp16 allowance for the runtimes with ARMv8.2 fp16 kernels is wider than x86's
    (measured by benchmarks/arm_parity.py); families without fp16 arithmetic keep the base one."""
    from tests.helpers.catalog import CATALOG
    for v in CATALOG:
        base, arm = v.tolerance(fmt, "fp16"), v.tolerance(fmt, "fp16", "arm64-fp16")
        assert arm.atol > base.atol and arm.rtol >= base.rtol and v.tolerance(fmt, "fp16", "arm64") == base
        assert "arm_parity.py" in base.families["arm64-fp16"].measured


def test_slowest_device_per_row() -> None:
    rows = [{"variant": "v", "runtime": "mnn", "precision": "fp32", "threads": 1, "device": d, "fps": f, "error": None}
            for d, f in (("local", 1.0), ("ssh://a", 30.0), ("ssh://b", 20.0))]
    (row,) = slowest_rows(rows)
    assert row["slowest_device"] == "ssh://b" and row["fps"] == 20.0 and row["devices"] == 2
