r"""Means over seeds, their confidence intervals, and paired comparisons: one rule for every chapter.

A result measured over :math:`n` seeds is a sample: its mean is an estimate, and the course reports it with
a Student-:math:`t` interval with :math:`n - 1` degrees of freedom,

.. math:: \bar x \pm t_{1 - \alpha/2,\, n-1} \, \frac{s}{\sqrt n},
    \qquad s^2 = \frac{1}{n-1} \sum_{i=1}^n (x_i - \bar x)^2 .

With few seeds :math:`t` is large: :math:`t_{0.975, 2} = 4.30` for three seeds. The rule of thumb "two
standard errors" (:math:`t = 2`) is then only an 82% interval, which is why the course never uses it.

Two methods trained on the same seeds are compared seed by seed: the interval of the *paired*
differences :math:`d_i = a_i - b_i` says whether one is better, since what the seed does to both (the
initial weights, the order of the batches) cancels. A table that makes :math:`k` comparisons at 95% each
gives about :math:`0.05 k` false verdicts by chance alone; :func:`compare` takes a ``confidence`` so that a
chapter can say so, or raise it to :math:`1 - 0.05 / k` (Bonferroni) when it draws one conclusion from many
comparisons.

Used in chapter 01 and every chapter that compares models over seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import scipy.stats

#: The verdicts of :func:`compare`.
VERDICTS = ("better", "worse", "no clear difference")


@dataclass(frozen=True)
class Interval:
    """A mean and the half-width of its confidence interval: ``mean ± half_width``.

    Attributes:
        mean: the sample mean.
        half_width: :math:`t_{1-\\alpha/2, n-1} \\, s / \\sqrt{n}` for the mean's interval
            (:func:`t_interval`), :math:`t_{1-\\alpha/2, n-1} \\, s \\sqrt{1 + 1/n}` for where one more
            run should fall (:func:`prediction_interval`); ``nan`` with a single value.
        n: the number of values.
        confidence: the confidence level, e.g. ``0.95``.
    """

    mean: float
    half_width: float
    n: int
    confidence: float

    @property
    def low(self) -> float:
        """The lower end of the interval."""
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        """The upper end of the interval."""
        return self.mean + self.half_width

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.half_width:.3f}"


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    r"""The mean of ``values`` with its Student-:math:`t` confidence interval (:math:`n - 1` degrees of freedom).

    Args:
        values: one number per seed (at least one; an interval needs at least two).
        confidence: the confidence level, in ``(0, 1)`` (default 0.95).

    Returns:
        An :class:`Interval`; its ``half_width`` is ``nan`` for a single value.

    Example:
        >>> interval = t_interval([0.80, 0.84, 0.82])
        >>> round(interval.mean, 3), round(interval.half_width, 3)  # 4.303 * 0.02 / sqrt(3)
        (0.82, 0.05)
        >>> str(interval)
        '0.820 ± 0.050'

    Used in chapter 01.
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("t_interval needs at least one value, got none")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = len(values)
    mean = statistics.fmean(values)
    if n == 1:
        return Interval(mean, math.nan, n, confidence)
    t = float(scipy.stats.t.ppf(0.5 + confidence / 2, df=n - 1))  # a plain float, not a NumPy scalar
    return Interval(mean, t * statistics.stdev(values) / math.sqrt(n), n, confidence)


def prediction_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    r"""Where one *new* run should fall, given ``values`` from earlier runs of the same experiment.

    A confidence interval (:func:`t_interval`) is about the mean and shrinks as runs accumulate; a single new
    run scatters as much as any earlier one did, around a mean that is itself uncertain, so its interval is
    wider (for normally distributed results):

    .. math:: \bar x \pm t_{1 - \alpha/2,\, n-1} \, s \sqrt{1 + 1/n}.

    The course uses it to check a stored result: a chapter re-runs one seed of a stored experiment and the
    new number must fall in the prediction interval of the stored seeds.

    Args:
        values: the earlier runs, one number each (at least two).
        confidence: the probability that the new run falls inside, in ``(0, 1)`` (default 0.95).

    Returns:
        An :class:`Interval` whose ``half_width`` is the prediction half-width.

    Example:
        >>> interval = prediction_interval([0.80, 0.84, 0.82])
        >>> round(interval.half_width, 3)  # 4.303 * 0.02 * sqrt(4 / 3)
        0.099

    Used in chapter 08.
    """
    if len(values) < 2:
        raise ValueError(f"a prediction interval needs at least 2 earlier runs, got {len(values)}")
    mean_interval = t_interval(values, confidence)
    n = mean_interval.n
    half_width = mean_interval.half_width * math.sqrt(n) * math.sqrt(1 + 1 / n)  # t s sqrt(1 + 1/n)
    return Interval(mean_interval.mean, half_width, n, confidence)


@dataclass(frozen=True)
class Comparison:
    """The paired difference between two sets of runs, signed so that positive means ``a`` is better.

    Attributes:
        difference: the interval of the signed paired differences.
        verdict: ``"better"`` or ``"worse"`` (``a`` against ``b``) when the interval excludes 0,
            ``"no clear difference"`` otherwise.
    """

    difference: Interval
    verdict: str

    def __str__(self) -> str:
        return f"{self.difference.mean:+.3f} ± {self.difference.half_width:.3f} -> {self.verdict}"


def compare(
    a: Sequence[float], b: Sequence[float], higher_is_better: bool = True, confidence: float = 0.95
) -> Comparison:
    """Compare runs ``a`` with runs ``b`` seed by seed (``a[i]`` and ``b[i]`` share seed ``i``).

    Args:
        a: the metric of the first model, one value per seed.
        b: the metric of the second model, on the same seeds and in the same order.
        higher_is_better: whether a larger metric is better (accuracy) or worse (an error, a loss).
        confidence: the confidence level of the interval (default 0.95).

    Returns:
        A :class:`Comparison`: positive differences mean ``a`` is better, whatever the metric's direction.

    Example:
        >>> print(compare([0.90, 0.88, 0.91], [0.85, 0.84, 0.86]))
        +0.047 ± 0.014 -> better
        >>> print(compare([0.10, 0.12, 0.09], [0.11, 0.10, 0.12], higher_is_better=False))
        +0.007 ± 0.063 -> no clear difference

    Used in chapter 02.
    """
    if len(a) != len(b):
        raise ValueError(f"compare needs one value per seed in both, got {len(a)} and {len(b)} values")
    if len(a) < 2:
        raise ValueError(f"a comparison over seeds needs at least 2 seeds, got {len(a)}")
    sign = 1.0 if higher_is_better else -1.0
    difference = t_interval([sign * (x - y) for x, y in zip(a, b)], confidence)
    if difference.low > 0:
        verdict = "better"
    elif difference.high < 0:
        verdict = "worse"
    else:
        verdict = "no clear difference"
    return Comparison(difference, verdict)


__all__ = ["VERDICTS", "Comparison", "Interval", "compare", "prediction_interval", "t_interval"]
