"""Calibration: ECE by hand, 0 when calibrated by construction, a loop as oracle, the bins, errors, the plot."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from mtlcourse.metrics import CALIBRATION_BINS, expected_calibration_error, reliability_bins
from mtlcourse.plots import plot_reliability

nan = math.nan

# Four examples, three classes: confidences 0.9, 0.7, 0.4, 0.45; predictions 0, 0, 0, 1: right, wrong, right,
# wrong
PROBS = torch.tensor(
    [[0.9, 0.05, 0.05], [0.7, 0.2, 0.1], [0.4, 0.3, 0.3], [0.2, 0.45, 0.35]], dtype=torch.float64
)  # exact
TARGET = torch.tensor([0, 1, 0, 2])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")  # the figures these tests made


def calibrated_probabilities():
    """Rows of confidence 0.8 (8 of 10 right), 0.6 (3 of 5 right) and 0.95 (19 of 20 right): ECE 0 exactly."""
    rows, target = [], []
    for confidence, n, right in [(0.8, 10, 8), (0.6, 5, 3), (0.95, 20, 19)]:
        rows += [[confidence, 1 - confidence]] * n
        target += [0] * right + [1] * (n - right)
    return torch.tensor(rows, dtype=torch.float64), torch.tensor(target)


def ece_oracle(probs: np.ndarray, target: np.ndarray, num_bins: int) -> float:
    """ECE with a plain loop over the bins (m - 1)/M < confidence <= m/M, labelled examples only."""
    keep = target != -1
    confidence, predicted, y = probs[keep].max(1), probs[keep].argmax(1), target[keep]
    total = 0.0
    for m in range(1, num_bins + 1):
        low, high = (m - 1) / num_bins, m / num_bins
        inside = (confidence > low) & (confidence <= high)
        if m == 1:
            inside |= confidence == 0
        if inside.any():
            gap = abs((predicted[inside] == y[inside]).mean() - confidence[inside].mean())
            total += inside.sum() / len(y) * gap
    return total


def test_ece_by_hand():
    # bin (0, 0.5]: 0.4 right, 0.45 wrong -> accuracy 1/2, confidence 0.425
    # bin (0.5, 1]: 0.9 right, 0.7 wrong -> accuracy 1/2, confidence 0.8
    ece = expected_calibration_error(PROBS, TARGET, num_bins=2, from_logits=False)
    assert float(ece) == pytest.approx(2 / 4 * abs(0.5 - 0.425) + 2 / 4 * abs(0.5 - 0.8))
    # one bin: |accuracy - mean confidence| = |2/4 - (0.9 + 0.7 + 0.4 + 0.45) / 4|
    one = expected_calibration_error(PROBS, TARGET, num_bins=1, from_logits=False)
    assert float(one) == pytest.approx(abs(0.5 - 2.45 / 4))
    # ten bins: every example alone in its bin, so ECE = mean |right - confidence|
    ten = expected_calibration_error(PROBS, TARGET, num_bins=10, from_logits=False)
    assert float(ten) == pytest.approx((0.1 + 0.7 + 0.6 + 0.45) / 4)


def test_ece_is_0_for_a_calibrated_construction_from_probabilities_and_from_logits():
    probs, target = calibrated_probabilities()
    assert float(expected_calibration_error(probs, target, from_logits=False)) == pytest.approx(
        0.0, abs=1e-12
    )
    assert float(expected_calibration_error(probs.log(), target)) == pytest.approx(0.0, abs=1e-12)
    wrong_way = expected_calibration_error(
        probs, 1 - target, from_logits=False
    )  # the same model, labels flipped
    assert float(wrong_way) > 0.4


@pytest.mark.parametrize(("seed", "num_bins"), [(0, 15), (1, 7), (2, 1)])
def test_ece_matches_a_loop_over_the_bins(seed, num_bins):
    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(300, 5, generator=g)  # [300, 5]
    target = torch.randint(0, 5, (300,), generator=g)
    target[torch.rand(300, generator=g) < 0.2] = -1
    expected = ece_oracle(logits.double().softmax(1).numpy(), target.numpy(), num_bins)
    assert float(expected_calibration_error(logits, target, num_bins)) == pytest.approx(expected, abs=1e-12)


def test_the_bins_are_right_closed_with_0_in_the_first():
    probs = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.75, 0.25]])
    bins = reliability_bins(probs, torch.tensor([0, 0, 1]), num_bins=2, from_logits=False)
    assert bins.edges.tolist() == [0.0, 0.5, 1.0]
    assert bins.count.tolist() == [1, 2]  # 0.5 lies in (0, 0.5], 0.75 and 1 in (0.5, 1]
    assert bins.accuracy.tolist() == [1.0, 0.5] and bins.confidence.tolist() == [0.5, 0.875]


def test_reliability_bins_count_the_labelled_examples_and_mark_empty_bins_nan():
    logits = torch.tensor([[3.0, 0.0], [0.0, 0.1], [2.0, 0.0], [0.0, 5.0]])
    bins = reliability_bins(logits, torch.tensor([0, -1, 1, 1]), num_bins=CALIBRATION_BINS)
    assert bins.count.sum() == 3 and bins.count.dtype == torch.long
    empty = bins.count == 0
    assert torch.isnan(bins.accuracy[empty]).all() and torch.isnan(bins.confidence[empty]).all()
    assert float(bins.ece) == float(expected_calibration_error(logits, torch.tensor([0, -1, 1, 1])))


def test_missing_labels_are_skipped_and_soft_targets_scored_by_their_most_probable_class():
    g = torch.Generator().manual_seed(3)
    logits, target = torch.randn(40, 3, generator=g), torch.randint(0, 3, (40,), generator=g)
    with_missing = torch.cat([target, torch.full((5,), -1)])
    padded = torch.cat([logits, 10 * torch.randn(5, 3, generator=g)])  # confident rows without labels
    assert float(expected_calibration_error(padded, with_missing)) == float(
        expected_calibration_error(logits, target)
    )
    soft = torch.nn.functional.one_hot(target, 3) * 0.7 + 0.1  # [40, 3] rows of 0.8 / 0.1 / 0.1
    soft = torch.cat([soft, torch.full((5, 3), nan)])
    assert float(expected_calibration_error(padded, soft)) == float(
        expected_calibration_error(logits, target)
    )
    assert math.isnan(float(expected_calibration_error(logits, torch.full((40,), -1))))


def test_calibration_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="num_bins must be a whole number of bins, at least 1, got 0"):
        expected_calibration_error(PROBS, TARGET, num_bins=0)
    with pytest.raises(ValueError, match="num_bins must be a whole number"):
        expected_calibration_error(PROBS, TARGET, num_bins=2.5)
    with pytest.raises(
        ValueError, match=r"output must be float logits or probabilities \[N, C\], got .* \[4\]"
    ):
        expected_calibration_error(PROBS[:, 0], TARGET)
    with pytest.raises(
        ValueError, match=r"target must be class indices \[4\] .* got torch.int64 of shape \[3\]"
    ):
        expected_calibration_error(PROBS, TARGET[:3])
    with pytest.raises(
        ValueError, match=r"soft targets \[4, 3\] like output, got torch.float32 of shape \[4, 2\]"
    ):
        expected_calibration_error(PROBS, torch.full((4, 2), 0.5))
    with pytest.raises(ValueError, match=r"classes in \[0, 2\] or -1"):
        expected_calibration_error(PROBS, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="pass logits with from_logits=True"):
        expected_calibration_error(torch.randn(4, 3), TARGET, from_logits=False)


def test_plot_reliability_draws_accuracy_bars_gaps_and_the_diagonal_with_the_ece_in_the_title():
    fig, ax = plt.subplots()
    before = plt.get_fignums()
    assert plot_reliability(PROBS, TARGET, num_bins=4, from_logits=False, ax=ax) is fig
    assert plt.get_fignums() == before  # drawn on the given axes
    # bins of width 0.25: (0.25, 0.5] holds 0.4 (right) and 0.45 (wrong); (0.5, 0.75] 0.7; (0.75, 1] 0.9
    accuracy, gaps = ax.containers
    assert [bar.get_x() for bar in accuracy] == [0.25, 0.5, 0.75]
    assert [bar.get_height() for bar in accuracy] == pytest.approx([0.5, 0.0, 1.0])
    assert [bar.get_height() for bar in gaps] == pytest.approx([0.425 - 0.5, 0.7, 0.9 - 1.0])
    diagonal = ax.get_lines()[0]
    assert diagonal.get_xydata().tolist() == [[0, 0], [1, 1]]
    ece = float(expected_calibration_error(PROBS, TARGET, num_bins=4, from_logits=False))
    assert ece == pytest.approx((2 * 0.075 + 0.7 + 0.1) / 4)
    assert ax.get_title() == f"Reliability diagram (ECE {ece:.3f}, 4 bins, 4 examples)"
    assert ax.get_xlabel() == "confidence (largest predicted probability)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["perfect calibration", "accuracy in the bin", "gap to the mean confidence"]
    with pytest.raises(ValueError, match="no labelled example"):
        plot_reliability(PROBS, torch.full((4,), -1), from_logits=False)
