"""Tasks: validation, losses with missing labels, selection errors."""

import math

import pytest
import torch

from mtlcourse.tasks import Task, as_task_dict, select_tasks


def test_invalid_tasks_raise_clear_errors():
    with pytest.raises(ValueError, match="kind must be one of"):
        Task("a", "ranking", 2)
    with pytest.raises(ValueError, match="binary task has num_outputs=1"):
        Task("a", "binary", 2)
    with pytest.raises(ValueError, match="at least 2 classes"):
        Task("a", "multiclass", 1)
    with pytest.raises(ValueError, match="class_names"):
        Task("a", "multiclass", 3, class_names=("x", "y"))
    with pytest.raises(ValueError, match="unique"):
        as_task_dict([Task("a", "binary", 1), Task("a", "binary", 1)])


def test_select_tasks_lists_the_valid_names():
    tasks = {"shape": Task("shape", "multiclass", 4), "size": Task("size", "regression", 1)}
    with pytest.raises(
        ValueError, match=r"unknown task\(s\) \['colour'\]; valid task names are \['shape', 'size'\]"
    ):
        select_tasks(tasks, ["colour"])


def test_missing_labels_are_left_out_of_every_loss():
    logits = torch.tensor([[2.0, 0.0], [0.0, 5.0]])
    full = Task("c", "multiclass", 2).loss(logits[:1], torch.tensor([0]))
    assert torch.isclose(Task("c", "multiclass", 2).loss(logits, torch.tensor([0, -1])), full)
    reg = Task("r", "regression", 1)
    assert reg.loss(torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [math.nan]])).item() == pytest.approx(
        1.0
    )
    binary = Task("b", "binary", 1)
    expected = math.log(1 + math.exp(-2.0))
    got = binary.loss(torch.tensor([2.0, -9.0]), torch.tensor([1.0, math.nan])).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_a_batch_without_labels_gives_a_zero_loss_with_a_gradient():
    out = torch.randn(3, 4, requires_grad=True)
    loss = Task("c", "multiclass", 4).loss(out, torch.full((3,), -1))
    loss.backward()
    assert loss.item() == 0.0 and out.grad is not None


def test_primary_metric_direction():
    assert Task("r", "regression", 1).higher_is_better is False
    assert Task("s", "segmentation", 3).primary_metric == "miou"


def test_summed_loss_counts_images_pixels_or_entries_and_divides_to_the_loss():
    nan = math.nan
    cases = [
        (Task("c", "multiclass", 3), torch.randn(4, 3), torch.tensor([0, -1, 2, -1]), 2),
        (Task("b", "binary", 1), torch.randn(4), torch.tensor([1.0, nan, 0.0, 1.0]), 3),
        (
            Task("m", "multilabel", 2),
            torch.randn(3, 2),
            torch.tensor([[1.0, nan], [nan, nan], [0.0, 1.0]]),
            3,
        ),
        (
            Task("s", "segmentation", 2),
            torch.randn(2, 2, 3, 3),
            torch.tensor([[[0, 1, -1]] * 3, [[-1] * 3] * 3]),
            6,
        ),
        (
            Task("r", "regression", 2),
            torch.randn(3, 2),
            torch.tensor([[0.5, nan], [1.0, 2.0], [nan, nan]]),
            3,
        ),
    ]
    for task, output, target, count in cases:
        total, n = task.summed_loss(output, target)
        assert n.item() == count, task.name
        assert torch.isclose(total / n, task.loss(output, target)), task.name
    mse_sum = Task("r", "regression", 1).summed_loss(
        torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [nan]])
    )
    assert [v.item() for v in mse_sum] == [1.0, 1]


def test_an_edge_task_has_one_logit_per_pixel_and_its_own_metrics():
    task = Task("edges", "edge", 1)
    assert task.metrics == ("boundary_f1", "precision", "recall", "pixel_accuracy") and task.higher_is_better
    with pytest.raises(ValueError, match=r"edge task has num_outputs=1 \(one logit per pixel\), got 2"):
        Task("edges", "edge", 2)
    logits = torch.tensor([[[2.0, -1.0], [0.0, 3.0]], [[9.0, 9.0], [9.0, 9.0]]])  # [2, 2, 2]
    target = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[math.nan] * 2] * 2])  # the second image has no label
    total, count = task.summed_loss(logits, target)
    expected = [
        math.log1p(math.exp(-2.0)),
        math.log1p(math.exp(-1.0)),
        math.log(2.0),
        math.log1p(math.exp(-3.0)),
    ]
    assert count.item() == 4 and total.item() == pytest.approx(sum(expected), rel=1e-6)


def test_pos_weight_multiplies_the_loss_of_the_positive_entries():
    logits, target = torch.tensor([[[0.5, -0.5]]]), torch.tensor([[[1.0, 0.0]]])
    positive, negative = (
        math.log1p(math.exp(-0.5)),
        math.log1p(math.exp(-0.5)),
    )  # -log s(0.5), -log(1 - s(-0.5))
    weighted = Task("e", "edge", 1, pos_weight=19.0).loss(logits, target).item()
    assert weighted == pytest.approx((19.0 * positive + negative) / 2, rel=1e-6)
    assert Task("e", "edge", 1).loss(logits, target).item() == pytest.approx(
        (positive + negative) / 2, rel=1e-6
    )
    binary = Task("b", "binary", 1, pos_weight=3.0).loss(torch.tensor([0.0]), torch.tensor([1.0]))
    assert binary.item() == pytest.approx(3 * math.log(2), rel=1e-6)
    with pytest.raises(ValueError, match="pos_weight must be positive, got 0"):
        Task("e", "edge", 1, pos_weight=0)
    with pytest.raises(ValueError, match="a multiclass task has none, so leave pos_weight at 1"):
        Task("c", "multiclass", 3, pos_weight=2.0)
