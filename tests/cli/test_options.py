"""Option and setting values the CLI refuses before any work starts: thread and instance counts
beyond the machine, non-finite numbers (options and ``ZOO_HUB_*``), empty paths. Each is one line
on stderr and exit 2."""
from __future__ import annotations

import time

import pytest

from tests.helpers.cli import (
    error_line,
    one_line,
    run,  # noqa: F401 (fixture)
    usage_line,
    zoo_here,  # noqa: F401 (fixture)
)
from zoo.errors import UsageError
from zoo.hub.resolve import resolve_hub

VARIANT = "base-c128"


@pytest.mark.parametrize("args, needle", [
    (("compare", VARIANT, "--runtimes", "onnxruntime", "--threads", "100000"), "--threads 100000"),
    (("compare", VARIANT, "--runtimes", "onnxruntime", "--threads", "1000"), "--threads 1000"),
    (("bench", VARIANT, "--runtime", "pytorch", "--concurrency", "10000"), "--concurrency 10000"),
    (("bench", VARIANT, "--runtime", "pytorch", "--threads", "8", "--concurrency", "8"), "= 64 threads"),
    (("profile", VARIANT, "--runtime", "onnxruntime", "--threads", "5000"), "--threads 5000"),
])
def test_threads_and_instances_are_bounded_by_the_machine(zoo_here, args, needle):
    one_line(zoo_here(*args), 2, needle, "--allow-oversubscribe")


@pytest.mark.parametrize("command", [("compare", VARIANT, "--runtimes", "onnxruntime"), ("bench", VARIANT, "--runtime", "pytorch")])
@pytest.mark.parametrize("value", ["0", "-3", "21", "1000000", "x", "2.5", "nan"])
def test_repeats_are_bounded_whole_numbers(zoo_here, command, value):
    one_line(zoo_here(*command, "--repeats", value), 2, "--repeats", value)


@pytest.mark.parametrize("args, needle", [
    (("compare", VARIANT, "--layers", "--repeats", "2"), "--layers compares tensors only"),
    (("compare", VARIANT, "--pytorch-vs-onnx", "--repeats", "2"), "--repeats repeats the timing"),
    (("compare", VARIANT, "--runs", "0", "--repeats", "2"), "--repeats repeats the timing"),
    (("bench", VARIANT, "--runtime", "pytorch", "--duration", "5", "--repeats", "2"), "--repeats repeats cells"),
])
def test_repeats_without_timing_to_repeat_are_refused(zoo_here, args, needle):
    one_line(zoo_here(*args), 2, needle)


@pytest.mark.parametrize("args, option", [
    (("bench", VARIANT, "--runtime", "pytorch", "--seconds", "nan"), "--seconds"),
    (("bench", VARIANT, "--runtime", "pytorch", "--duration", "nan"), "--duration"),
    (("bench", VARIANT, "--runtime", "pytorch", "--duration", "5", "--window", "inf"), "--window"),
    (("pull", VARIANT, "--timeout", "nan", "--offline"), "--timeout"),
    (("pull", VARIANT, "--timeout", "-inf", "--offline"), "--timeout"),
])
def test_float_options_refuse_nan_and_infinity(zoo_here, args, option):
    one_line(zoo_here(*args), 2, option)


@pytest.mark.parametrize("option", ["--atol", "--rtol"])
def test_a_negative_tolerance_is_refused_in_one_line(zoo_here, option) -> None:
    """A bound with no upper limit (``Finite(0.0)``) names the bound instead of crashing on ``None``."""
    assert "-1 is below 0" in one_line(zoo_here("compare", VARIANT, "--layers", option, "-1"), 2, option)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_pull_timeout_must_be_finite(run, value) -> None:
    code, _, err = run("pull", "fgaf3", "--hub", "http://127.0.0.1:9", "--timeout", value)
    assert code == 2 and "--timeout" in usage_line(err)


@pytest.mark.parametrize("name", ["ZOO_HUB_TIMEOUT", "ZOO_HUB_RETRIES", "ZOO_HUB_BACKOFF"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_hub_environment_numbers_must_be_finite(run, monkeypatch, name, value) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(UsageError, match=f"{name}='{value}' is not a (finite )?number"):
        resolve_hub("http://127.0.0.1:9")
    start = time.monotonic()
    code, _, err = run("pull", "fgaf3", "--hub", "http://127.0.0.1:9")
    assert code == 2 and f"error: {name}='{value}' is not a" in error_line(err)
    assert time.monotonic() - start < 2  # refused before any connection attempt


@pytest.mark.parametrize("args", [
    ("export", VARIANT, "--to", "onnx", "--out", ""),
    ("compare", VARIANT, "--out", ""),
    ("bench", VARIANT, "--runtime", "pytorch", "--out", ""),
    ("profile", VARIANT, "--out", ""),
    ("publish", VARIANT, "--to", ""),
    ("pull", VARIANT, "--out", "", "--offline"),
    ("list", "--json", ""),
])
def test_an_empty_path_is_a_usage_error(zoo_here, args):
    one_line(zoo_here(*args), 2, "empty path")


@pytest.mark.parametrize("args", [
    ["pull", "fgaf3", "--hub", "http://127.0.0.1:9", "--out", ""],
    ["publish", "fgaf3", "--formats", "onnx", "--to", ""],
    ["publish", "fgaf3", "--formats", "onnx", "--to", "x", "--artifacts", ""],
], ids=["pull --out", "publish --to", "publish --artifacts"])
def test_empty_path_is_a_usage_error(run, tmp_path, monkeypatch, args) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(*args)
    assert code == 2 and "empty path" in usage_line(err)
    assert list(tmp_path.iterdir()) == []
