"""Intervals and paired comparisons over seeds, against SciPy as an oracle."""

import math

import pytest
import scipy.stats
import torch

from mtlcourse.stats import compare, prediction_interval, t_interval


@pytest.mark.parametrize("values", [[0.8, 0.84, 0.82], [1.0, 2.0, 4.0, 8.0], [0.5, 0.5]])
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_t_interval_matches_scipy(values, confidence):
    interval = t_interval(values, confidence)
    sem = scipy.stats.sem(values)
    low, high = scipy.stats.t.interval(
        confidence, df=len(values) - 1, loc=sum(values) / len(values), scale=sem
    )
    if sem == 0:  # SciPy returns nan for a zero spread; the interval is the mean itself
        assert interval.half_width == 0
    else:
        assert interval.low == pytest.approx(low) and interval.high == pytest.approx(high)
    assert interval.n == len(values)


def test_three_seeds_need_more_than_two_standard_errors():
    values = [0.80, 0.84, 0.82]
    se = scipy.stats.sem(values)
    assert t_interval(values).half_width == pytest.approx(4.303 * se, rel=1e-3)
    # the "two standard errors" rule is an 82% interval with three seeds
    assert t_interval(values, confidence=0.82).half_width == pytest.approx(2 * se, rel=0.02)


def test_a_single_value_has_no_interval_and_bad_input_is_refused():
    assert math.isnan(t_interval([0.5]).half_width)
    with pytest.raises(ValueError, match="at least one value"):
        t_interval([])
    with pytest.raises(ValueError, match="confidence must be in"):
        t_interval([1.0, 2.0], confidence=1.5)
    with pytest.raises(ValueError, match="one value per seed"):
        compare([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least 2 seeds"):
        compare([1.0], [2.0])


def test_compare_signs_the_difference_by_the_metric_direction():
    better = compare([0.9, 0.91, 0.92], [0.8, 0.8, 0.83])
    assert better.verdict == "better" and better.difference.mean == pytest.approx(0.1)
    worse = compare([0.9, 0.91, 0.92], [0.8, 0.8, 0.83], higher_is_better=False)  # an error metric
    assert worse.verdict == "worse" and worse.difference.mean == pytest.approx(-0.1)
    noisy = compare([0.9, 0.7, 0.95], [0.8, 0.85, 0.8])
    assert noisy.verdict == "no clear difference"
    # the differences are paired: a seed that is bad for both does not hide a consistent gain
    paired = compare([0.6, 0.9, 0.75], [0.58, 0.88, 0.73])
    assert paired.verdict == "better"


def test_prediction_interval_is_wider_than_the_mean_interval_by_sqrt_n_plus_one():
    values = [0.80, 0.84, 0.82, 0.79]
    mean_interval, new_run = t_interval(values), prediction_interval(values)
    assert new_run.mean == pytest.approx(mean_interval.mean)
    assert new_run.half_width == pytest.approx(mean_interval.half_width * math.sqrt(len(values) + 1))


def test_prediction_interval_covers_new_normal_draws_at_its_level():
    generator = torch.Generator().manual_seed(0)
    draws = torch.randn(4000, 4, generator=generator)  # 4000 experiments: 3 earlier runs and 1 new one
    inside = [
        prediction_interval(row[:3].tolist()).low <= row[3] <= prediction_interval(row[:3].tolist()).high
        for row in draws
    ]
    assert sum(inside) / len(inside) == pytest.approx(0.95, abs=0.015)


def test_prediction_interval_needs_two_runs():
    with pytest.raises(ValueError, match="at least 2"):
        prediction_interval([0.8])
