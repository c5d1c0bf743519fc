"""Export's before-and-after table: a latency is never a measurement set against a prediction."""

import itertools

import pytest

from ui.before_after import latency_row
from vitcore.playground import KeepSetFigures
from vitcore.pruning.latency import SpeedUp


def figures(kept: int, latency=None, speedup=None, predicted=None) -> KeepSetFigures:
    timed = {"latency_b1_ms": latency, "speedup": speedup, "predicted_b1_ms": predicted}
    return KeepSetFigures(kept, 1000, 10**6, 0.5, 0.1, **timed)


QUIET = SpeedUp(1.64, 1.60, 1.68, 10.10, 6.16, 15)
BUSY = SpeedUp(1.5, 0.9, 2.4, 10.0, 6.7, 15)


def test_a_paired_measurement_gives_both_sides_from_the_same_pairs():
    full, pruned = figures(216, latency=13.09, predicted=14.5), figures(120, latency=6.16, speedup=QUIET, predicted=9.0)
    before, after = latency_row(full, pruned)
    assert before == "10.10 ms measured (15 interleaved pairs)"  # the pairs' full model, not the separate 13.09 ms
    assert after == "6.16 ms measured (1.64x faster)"


def test_without_a_quiet_pair_both_sides_are_predictions():
    full = figures(216, latency=13.09, predicted=12.0)
    for speedup in (None, BUSY):
        before, after = latency_row(full, figures(120, speedup=speedup, predicted=8.0))
        assert before == "≈ 12.00 ms predicted" and after.startswith("≈ 8.00 ms predicted (1.50x;")


@pytest.mark.parametrize(
    "speedup, full_latency, predicted, kept",
    list(itertools.product([None, BUSY, QUIET], [None, 13.09], [None, 9.0], [216, 120])),
)
def test_never_a_measurement_against_a_prediction(speedup, full_latency, predicted, kept):
    full = figures(216, latency=full_latency, predicted=None if predicted is None else 12.0)
    before, after = latency_row(full, figures(kept, speedup=speedup, predicted=predicted))
    assert ("measured" in before) == ("measured" in after)
    assert ("predicted" in before) == ("predicted" in after)
