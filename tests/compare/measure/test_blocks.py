"""compare.measure.blocks: the spread of a figure over interleaved blocks, which blocks a row keeps,
and the verdict that names the noisy figure (the row's or its ceiling's) -- on figures chosen by hand."""
from __future__ import annotations

import pytest

from compare.measure.blocks import NOISY_SPREAD_PCT, Spread, block_order, judge, kept_blocks, rate_row, spread
from compare.measure.timing import Timing


def test_block_order_alternates() -> None:
    assert block_order(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert block_order(["a", "b", "c"], 1) == ["c", "b", "a"]
    assert block_order(["a", "b", "c"], 2) == ["a", "b", "c"]


def test_spread_is_the_range_of_the_block_figures_over_their_median() -> None:
    s = spread([63.0, 87.0, 96.0])  # the sgemm ceiling, run after run
    assert (s.median, s.lo, s.hi, s.blocks) == (87.0, 63.0, 96.0, 3)
    assert s.pct == pytest.approx(100 * 33 / 87) and s.noisy
    steady = spread([10.0, 10.2, 9.9])
    assert steady.pct == pytest.approx(3.0) and not steady.noisy
    one = spread([12.0])
    assert one.pct is None and not one.noisy  # one block: nothing to compare
    assert spread([]) is None and spread([float("nan")]) is None


def test_contended_blocks_are_left_out_only_when_a_clean_one_remains() -> None:
    assert kept_blocks([False, True, False]) == ([0, 2], 1)
    assert kept_blocks([True, True]) == ([0, 1], 0)  # nothing clean: every block counts (and the row is flagged)
    assert kept_blocks([False]) == ([0], 0)


def _s(*values: float) -> Spread:
    return spread(list(values))


def test_beyond_a_noisy_ceiling_the_ceiling_is_blamed_not_the_row() -> None:
    v = judge(_s(10.0, 10.1, 10.2), _s(63.0, 87.0, 96.0), 129.0, "fp32")
    assert v.noisy == "ceiling" and v.row_reason is None
    assert v.ceiling_note == "129% of the fp32 ceiling: noisy ceiling, spread 38% (the row's: 2%)"


def test_a_noisy_row_is_blamed_and_named() -> None:
    v = judge(_s(8.0, 10.0, 9.0), _s(100.0, 101.0, 99.0), 80.0, "int8")
    assert v.noisy == "row" and v.ceiling_note is None
    assert v.row_reason == "noisy row: block medians 8.00-10.00 ms, spread 22% (the int8 ceiling's: 2%)"
    beyond = judge(_s(8.0, 10.0, 9.0), _s(100.0, 101.0, 99.0), 120.0, "int8")
    assert beyond.row_reason.startswith("120% of the int8 ceiling: noisy row")
    both = judge(_s(8.0, 10.0, 9.0), _s(60.0, 100.0, 90.0), 70.0, "fp32")
    assert both.noisy == "row and ceiling" and both.row_reason and "rough" in both.ceiling_note


def test_beyond_the_ceiling_from_one_block_asks_for_repeats() -> None:
    v = judge(_s(10.0), _s(100.0), 129.0, "fp32")
    assert v.noisy is None and v.ceiling_note is None
    assert "129% of the fp32 ceiling from 1 block" in v.row_reason and "--repeats" in v.row_reason


def test_steady_figures_beyond_the_ceiling_say_the_runtime_beats_its_kernels() -> None:
    v = judge(_s(10.0, 10.1), _s(100.0, 101.0), 110.0, "fp32")
    assert v.noisy is None and v.row_reason is None and "beats this ceiling" in v.ceiling_note
    quiet = judge(_s(10.0, 10.1), _s(100.0, 101.0), 60.0, "fp32")
    assert quiet == type(quiet)(None, None, None)
    assert NOISY_SPREAD_PCT == 10.0


def test_rate_row_fills_the_ceiling_fields_and_flags_only_the_row_to_blame() -> None:
    row = Timing("v", "tflite", "int8", 1, False, 0, 5, 0.1, 6.0, 5.64, 5.7, 5.8, 5.6, 177.3, 1.0, 10.0)
    rate_row(row, 230.0, _s(5.6, 5.64, 5.7), _s(400.0, 408.0, 410.0), "onnxruntime MatMulInteger u8s8", "int8")
    assert row.reliable and row.ceiling_precision == "int8" and row.ceiling_gflops == 408.0
    assert row.pct_of_ceiling == pytest.approx(100 * 230 / 408) and row.noisy is None and row.ceiling_note is None
    noisy = Timing("v", "tflite", "fp32", 1, False, 0, 5, 0.1, 6.0, 12.8, 13, 13, 12, 78.0, 1.0, 10.0)
    rate_row(noisy, 90.0, _s(12.0, 12.8, 15.0), _s(100.0, 101.0), "torch (MKL) fp32", "fp32")
    assert not noisy.reliable and noisy.noisy == "row 23%" and noisy.contention.startswith("noisy row")
