"""Metrics: hand-computed values, scikit-learn as an independent oracle, streaming, delta_m's sign.

Set ``MTLCOURSE_TEST_DEVICE=cuda`` to run the meter on a GPU.
"""

import math
import os

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn import metrics as skm

from mtlcourse.metrics import (
    TaskMeter,
    accuracy,
    boundary_counts,
    boundary_f1,
    confusion_matrix,
    count_confusion,
    delta_m,
    iou,
    labelled_mask,
    mae,
    mean_iou,
    precision_recall_f1,
    rmse,
)
from mtlcourse.tasks import Task

DEVICE = torch.device(os.environ.get("MTLCOURSE_TEST_DEVICE", "cpu"))
TOL = 1e-9


def random_classes(seed: int, n: int = 400, C: int = 5, missing: float = 0.2, used: int | None = None):
    """Seeded logits [n, C] and targets [n] in [0, used) with a fraction of -1 (missing)."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, used or C, (n,), generator=g)  # [n]
    logits = torch.randn(n, C, generator=g)  # [n, C]
    logits[torch.arange(n), target] += 1.0  # better than chance, so every metric is non-trivial
    target[torch.rand(n, generator=g) < missing] = -1
    return logits, target


def labelled_numpy(pred: torch.Tensor, target: torch.Tensor):
    keep = target != -1
    return target[keep].numpy(), pred[keep].numpy()


# ---------------------------------------------------------------------------------------------------------
# Hand-computed values


def test_confusion_and_prf_by_hand():
    target = torch.tensor([0, 0, 0, 1, 1, 2, -1, 2])
    pred = torch.tensor([0, 0, 1, 1, 2, 2, 0, 0])
    confusion = confusion_matrix(pred, target, num_classes=3)
    assert confusion.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 1]]
    precision, recall, f1 = precision_recall_f1(confusion, average=None)
    assert precision.tolist() == pytest.approx([2 / 3, 1 / 2, 1 / 2])
    assert recall.tolist() == pytest.approx([2 / 3, 1 / 2, 1 / 2])
    assert f1.tolist() == pytest.approx([2 / 3, 1 / 2, 1 / 2])
    assert float(precision_recall_f1(confusion, "macro")[2]) == pytest.approx((2 / 3 + 1 / 2 + 1 / 2) / 3)
    assert [float(x) for x in precision_recall_f1(confusion, "micro")] == pytest.approx([4 / 7] * 3)
    assert float(accuracy(pred, target)) == pytest.approx(4 / 7)
    # IoU_c = TP / (TP + FP + FN): class 0: 2 / (2 + 1 + 1), class 1: 1 / (1 + 1 + 1), class 2: 1 / 3
    assert iou(confusion).tolist() == pytest.approx([0.5, 1 / 3, 1 / 3])


def test_undefined_values_follow_the_stated_convention():
    # class 1 is true once and never predicted: precision 0 (not nan); class 2 never occurs: nan.
    confusion = torch.tensor([[3, 0, 0], [1, 0, 0], [0, 0, 0]])
    precision, recall, f1 = precision_recall_f1(confusion, average=None)
    assert precision[:2].tolist() == pytest.approx([0.75, 0.0])
    assert recall[:2].tolist() == pytest.approx([1.0, 0.0])
    assert torch.isnan(precision[2]) and torch.isnan(recall[2]) and torch.isnan(f1[2])
    assert float(precision_recall_f1(confusion)[2]) == pytest.approx((6 / 7 + 0.0) / 2)  # class 2 left out
    assert torch.isnan(iou(confusion)[2]) and float(mean_iou(confusion)) == pytest.approx((0.75 + 0) / 2)
    empty = torch.zeros(3, 3, dtype=torch.long)
    assert all(math.isnan(float(x)) for x in precision_recall_f1(empty, "micro"))
    assert math.isnan(float(precision_recall_f1(empty, "macro")[2]))


def test_accuracy_takes_logits_and_skips_missing_labels():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, 0.0]])
    assert float(accuracy(logits, torch.tensor([0, 0, -1]))) == pytest.approx(0.5)
    assert math.isnan(float(accuracy(logits, torch.tensor([-1, -1, -1]))))
    assert labelled_mask(torch.tensor([0.0, math.nan])).tolist() == [True, False]


def test_regression_errors_by_hand():
    pred = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    target = torch.tensor([[2.0, math.nan], [1.0, 0.0]])
    assert float(mae(pred, target)) == pytest.approx((1 + 2 + 0) / 3)
    assert float(rmse(pred, target)) == pytest.approx(math.sqrt((1 + 4 + 0) / 3))
    assert math.isnan(float(mae(pred, torch.full_like(target, math.nan))))


def test_invalid_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 3\)"):
        confusion_matrix(torch.tensor([0, 3]), torch.tensor([0, 1]), num_classes=3)
    with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 5]), num_classes=3)
    with pytest.raises(ValueError, match="num_classes must be at least 1"):
        confusion_matrix(torch.tensor([0]), torch.tensor([0]), num_classes=0)
    with pytest.raises(ValueError, match="average must be one of"):
        precision_recall_f1(torch.eye(2, dtype=torch.long), average="weighted")
    with pytest.raises(ValueError, match="square"):
        iou(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="do not match"):
        accuracy(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long))


# ---------------------------------------------------------------------------------------------------------
# scikit-learn as an oracle, on seeded random data with missing labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_match_sklearn(seed):
    C = 5
    logits, target = random_classes(seed, C=C)
    pred = logits.argmax(1)
    y_true, y_pred = labelled_numpy(pred, target)
    confusion = confusion_matrix(logits, target, C)
    assert confusion.numpy().tolist() == skm.confusion_matrix(y_true, y_pred, labels=range(C)).tolist()
    assert float(accuracy(logits, target)) == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=TOL)
    for average in ("macro", "micro", None):
        ours = [np.asarray(x) for x in precision_recall_f1(confusion, average=average)]
        theirs = skm.precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)[:3]
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, atol=TOL)
    np.testing.assert_allclose(iou(confusion), skm.jaccard_score(y_true, y_pred, average=None), atol=TOL)
    assert float(mean_iou(confusion)) == pytest.approx(skm.jaccard_score(y_true, y_pred, average="macro"))


def test_macro_average_leaves_out_absent_classes_like_sklearn():
    # Targets use classes 0..2 of 5; the biased logits may still predict 3 or 4 now and then.
    logits, target = random_classes(3, C=5, used=3)
    logits[:, 4] -= 100.0  # class 4 is never predicted and never true: left out of the macro average
    y_true, y_pred = labelled_numpy(logits.argmax(1), target)
    assert 4 not in set(y_true) | set(y_pred)
    confusion = confusion_matrix(logits, target, 5)
    _, _, f1 = precision_recall_f1(confusion, average="macro")
    assert float(f1) == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert float(mean_iou(confusion)) == pytest.approx(skm.jaccard_score(y_true, y_pred, average="macro"))


def test_regression_metrics_match_sklearn():
    g = torch.Generator().manual_seed(4)
    pred, target = torch.randn(200, 3, generator=g), torch.randn(200, 3, generator=g)  # [200, 3] each
    target[torch.rand(200, 3, generator=g) < 0.3] = math.nan
    keep = ~torch.isnan(target)
    y_true, y_pred = target[keep].numpy(), pred[keep].numpy()
    assert float(mae(pred, target)) == pytest.approx(skm.mean_absolute_error(y_true, y_pred), rel=1e-6)
    assert float(rmse(pred, target)) == pytest.approx(
        math.sqrt(skm.mean_squared_error(y_true, y_pred)), rel=1e-6
    )


# ---------------------------------------------------------------------------------------------------------
# TaskMeter: streaming equals one shot, and both match the oracle


def random_batch(task: Task, n: int, seed: int):
    """Seeded outputs and targets for ``task`` following the conventions of mtlcourse.tasks."""
    g = torch.Generator().manual_seed(seed)
    K = task.num_outputs
    if task.kind == "multiclass":
        return random_classes(seed, n=n, C=K)
    if task.kind == "segmentation":
        target = torch.randint(0, K, (n, 6, 6), generator=g)  # [n, H, W]
        logits = torch.randn(n, K, 6, 6, generator=g)  # [n, C, H, W]
        logits += torch.nn.functional.one_hot(target, K).permute(0, 3, 1, 2)  # a better-than-chance model
        target[torch.rand(n, 6, 6, generator=g) < 0.1] = -1
        return logits, target
    if task.kind == "edge":
        target = (torch.rand(n, 6, 6, generator=g) < 0.15).float()  # [n, H, W] sparse boundaries
        logits = torch.randn(n, 6, 6, generator=g) + 2 * target - 1  # [n, H, W] a better-than-chance model
        target[torch.rand(n, generator=g) < 0.2] = math.nan  # whole images without a label
        return logits, target
    shape = (n,) if task.kind == "binary" else (n, K)
    if task.kind == "regression":
        target = torch.randn(shape, generator=g)
        output = target + 0.5 * torch.randn(shape, generator=g)
    else:
        target = torch.randint(0, 2, shape, generator=g).float()
        output = (2 * target - 1) * 0.5 + torch.randn(shape, generator=g)
    target[torch.rand(shape, generator=g) < 0.2] = math.nan
    return output, target


def boundary_oracle(output: torch.Tensor, target: torch.Tensor, tolerance: int = 1) -> dict[str, float]:
    """The edge metrics with numpy and scipy's binary dilation by a (2t+1) square, image by image."""
    labelled = ~np.isnan(target.numpy())  # [n, H, W]
    predicted = (output.numpy() > 0) & labelled
    true = (target.numpy() == 1) & labelled
    square = np.ones((2 * tolerance + 1, 2 * tolerance + 1), dtype=bool)
    near_true = np.stack([ndimage.binary_dilation(t, square) if tolerance else t for t in true])
    near_predicted = np.stack([ndimage.binary_dilation(p, square) if tolerance else p for p in predicted])
    precision = (predicted & near_true).sum() / predicted.sum()
    recall = (true & near_predicted).sum() / true.sum()
    return {
        "boundary_f1": 2 * precision * recall / (precision + recall),
        "precision": precision,
        "recall": recall,
        "pixel_accuracy": ((predicted == true) & labelled).sum() / labelled.sum(),
    }


def oracle(task: Task, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Every metric of the task computed with scikit-learn (or scipy, for edges) on the labelled entries."""
    if task.kind == "edge":
        return boundary_oracle(output, target)
    if task.kind in ("multiclass", "segmentation"):
        y_true, y_pred = labelled_numpy(output.argmax(1).flatten(), target.flatten())
        if task.kind == "segmentation":
            return {
                "miou": skm.jaccard_score(y_true, y_pred, average="macro"),
                "pixel_accuracy": skm.accuracy_score(y_true, y_pred),
            }
        return {
            "accuracy": skm.accuracy_score(y_true, y_pred),
            "macro_f1": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
            "micro_f1": skm.f1_score(y_true, y_pred, average="micro", zero_division=0),
        }
    keep = ~torch.isnan(target)
    if task.kind == "regression":
        y_true, y_pred = target[keep].numpy(), output[keep].numpy()
        return {
            "mae": skm.mean_absolute_error(y_true, y_pred),
            "rmse": skm.mean_squared_error(y_true, y_pred) ** 0.5,
        }
    y_true, y_pred = target[keep].numpy(), (output > 0).float()[keep].numpy()
    if task.kind == "binary":
        return {
            "accuracy": skm.accuracy_score(y_true, y_pred),
            "f1": skm.f1_score(y_true, y_pred),
            "precision": skm.precision_score(y_true, y_pred),
            "recall": skm.recall_score(y_true, y_pred),
        }
    per_label = [
        skm.f1_score(target[:, k][keep[:, k]].numpy(), (output[:, k] > 0).float()[keep[:, k]].numpy())
        for k in range(task.num_outputs)
    ]
    return {
        "micro_f1": skm.f1_score(y_true, y_pred),  # micro F1 = F1 of all labelled (image, label) pairs
        "macro_f1": float(np.mean(per_label)),
        "accuracy": skm.accuracy_score(y_true, y_pred),
    }


TASKS = [
    Task("shape", "multiclass", 4),
    Task("striped", "binary", 1),
    Task("attributes", "multilabel", 5),
    Task("mask", "segmentation", 3),
    Task("boundary", "edge", 1),
    Task("size", "regression", 2),
]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.kind)
def test_streaming_meter_equals_one_shot_and_the_oracle(task):
    output, target = random_batch(task, n=120, seed=5)
    streaming, one_shot = TaskMeter(task), TaskMeter(task)
    for chunk in (slice(0, 7), slice(7, 50), slice(50, 51), slice(51, 120)):
        streaming.update(output[chunk].to(DEVICE), target[chunk].to(DEVICE))
    one_shot.update(output.to(DEVICE), target.to(DEVICE))
    got = streaming.compute()
    assert list(got) == list(task.metrics)
    assert got == pytest.approx(one_shot.compute(), abs=1e-12)
    assert got == pytest.approx(oracle(task, output, target), abs=1e-6)
    if task.kind not in ("regression", "edge"):
        assert torch.equal(streaming.confusion, one_shot.confusion)


def test_meter_confusion_shapes_and_binary_column_outputs():
    binary = TaskMeter(Task("b", "binary", 1))
    binary.update(torch.tensor([[2.0], [-1.0], [3.0]]), torch.tensor([1.0, 1.0, math.nan]))  # [B, 1] logits
    assert binary.confusion.tolist() == [[0, 0], [1, 1]]
    assert binary.compute() == pytest.approx({"accuracy": 0.5, "f1": 2 / 3, "precision": 1.0, "recall": 0.5})
    assert TaskMeter(Task("m", "multilabel", 3)).confusion.shape == (3, 2, 2)
    with pytest.raises(ValueError, match="regression task: it has no confusion"):
        TaskMeter(Task("r", "regression", 1)).confusion  # noqa: B018


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.kind)
def test_empty_or_unlabelled_meter_gives_nan_not_a_crash(task):
    meter = TaskMeter(task)
    assert list(meter.compute()) == list(task.metrics)
    assert all(math.isnan(v) for v in meter.compute().values())
    output, target = random_batch(task, n=6, seed=6)
    missing = (
        torch.full_like(target, -1) if task.kind in ("multiclass", "segmentation") else target * math.nan
    )
    meter.update(output, missing)
    assert all(math.isnan(v) for v in meter.compute().values())
    meter.reset()
    assert meter.counts is None


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.kind)
def test_meter_update_never_reads_values_back_to_the_host(task):
    # Meta tensors have shapes but no values: any .item(), bool() or boolean indexing in update would raise.
    output, target = random_batch(task, n=8, seed=7)
    meter = TaskMeter(task)
    meter.update(output.to("meta"), target.to("meta"))
    meter.update(output.to("meta"), target.to("meta"))
    assert meter.counts.device.type == "meta"


def test_meter_rejects_outputs_that_break_the_conventions():
    with pytest.raises(ValueError, match=r"'shape' \(multiclass, num_outputs=4\): output of shape \(2, 3\)"):
        TaskMeter(Task("shape", "multiclass", 4)).update(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="do not follow the conventions"):
        TaskMeter(Task("mask", "segmentation", 2)).update(
            torch.zeros(2, 2, 4, 4), torch.zeros(2, 4, 5).long()
        )
    with pytest.raises(ValueError, match="task must be a Task"):
        TaskMeter("shape")


def test_count_confusion_matches_the_checked_version():
    logits, target = random_classes(8, C=4)
    assert torch.equal(count_confusion(logits.argmax(1), target, 4), confusion_matrix(logits, target, 4))


# ---------------------------------------------------------------------------------------------------------
# Boundary F1: hand-computed maps


def line(column: int, rows: range = range(5), size: int = 5) -> torch.Tensor:
    """A [1, size, size] map with 1 on ``column`` for the given rows, 0 elsewhere."""
    m = torch.zeros(1, size, size)
    m[0, list(rows), column] = 1.0
    return m


@pytest.mark.parametrize(
    ("pred_column", "tolerance", "f1"),
    [(2, 0, 1.0), (3, 0, 0.0), (3, 1, 1.0), (4, 1, 0.0), (4, 2, 1.0)],
)
def test_boundary_f1_forgives_a_shift_up_to_the_tolerance(pred_column, tolerance, f1):
    assert float(boundary_f1(line(pred_column), line(2), tolerance)) == f1


def test_boundary_f1_by_hand_with_a_partial_prediction():
    pred = line(2, range(2))  # the top two pixels of the true line
    pred[0, 4, 4] = 1.0  # and a pixel two columns away from the line's bottom
    counts = boundary_counts(pred, line(2), tolerance=1).tolist()
    # 3 predicted, 2 near the line; 5 true, 3 near a prediction (rows 0-2); 2 + 20 - 1 pixels exactly right
    assert counts == [3, 2, 5, 3, 21, 25]
    precision, recall = 2 / 3, 3 / 5
    assert float(boundary_f1(pred, line(2))) == pytest.approx(2 * precision * recall / (precision + recall))
    assert float(boundary_f1(pred, line(2))) == pytest.approx(12 / 19)


def test_boundary_f1_does_not_wrap_around_the_image():
    assert float(boundary_f1(line(4), line(0), tolerance=1)) == 0.0


def test_boundary_f1_with_tolerance_0_is_the_pixel_f1():
    output, target = random_batch(Task("e", "edge", 1), n=30, seed=3)
    keep = ~torch.isnan(target)
    expected = skm.f1_score(target[keep].numpy(), (output[keep] > 0).numpy())
    assert float(boundary_f1(output, target, tolerance=0)) == pytest.approx(expected, abs=1e-12)
    meter = TaskMeter(Task("e", "edge", 1), tolerance=0)
    meter.update(output, target)
    assert meter.compute()["boundary_f1"] == pytest.approx(expected, abs=1e-12)


def test_boundary_f1_of_empty_predictions_empty_targets_and_both():
    nothing = torch.zeros(1, 5, 5)
    assert float(boundary_f1(nothing, line(2))) == 0.0  # every boundary missed: recall 0, precision 0
    assert float(boundary_f1(line(2), nothing)) == 0.0  # only false alarms: precision 0, recall 0
    assert math.isnan(float(boundary_f1(nothing, nothing)))  # nothing to find and nothing found
    meter = TaskMeter(Task("e", "edge", 1))
    meter.update(nothing, nothing)
    values = meter.compute()
    assert values["pixel_accuracy"] == 1.0 and math.isnan(values["boundary_f1"])
    meter.update(line(2), nothing)
    assert meter.compute() == pytest.approx(
        {"boundary_f1": 0.0, "precision": 0.0, "recall": 0.0, "pixel_accuracy": 45 / 50}
    )


def test_boundary_f1_leaves_out_images_and_pixels_without_labels():
    pred = torch.cat([line(3), torch.ones(1, 5, 5)])  # [2, 5, 5] a boundary everywhere on image 2
    target = torch.cat([line(2), torch.full((1, 5, 5), math.nan)])  # image 2 has no label
    assert float(boundary_f1(pred, target, tolerance=0)) == float(boundary_f1(line(3), line(2), tolerance=0))
    partly = line(2)
    partly[0, :, 4] = math.nan  # the column of a false alarm is unlabelled
    with_alarm = line(2)
    with_alarm[0, 0, 4] = 1.0
    assert float(boundary_f1(with_alarm, partly, tolerance=0)) == 1.0


def test_boundary_f1_errors_say_what_was_wrong():
    with pytest.raises(ValueError, match=r"both be \[B, H, W\] maps, got \(1, 5, 5\) and \(1, 5, 4\)"):
        boundary_f1(line(2), torch.zeros(1, 5, 4))
    with pytest.raises(ValueError, match="tolerance must be a whole number of pixels, at least 0, got -1"):
        boundary_f1(line(2), line(2), tolerance=-1)
    with pytest.raises(ValueError, match="target must be a float map"):
        boundary_f1(line(2), line(2).long())
    with pytest.raises(ValueError, match="tolerance must be a whole number"):
        TaskMeter(Task("e", "edge", 1), tolerance=1.5)
    with pytest.raises(ValueError, match="edge task: it has no confusion matrix"):
        TaskMeter(Task("e", "edge", 1)).confusion  # noqa: B018
    with pytest.raises(ValueError, match=r"'e' \(edge, num_outputs=1\): output of shape \(1, 1, 5, 5\)"):
        TaskMeter(Task("e", "edge", 1)).update(line(2)[None], line(2))


# ---------------------------------------------------------------------------------------------------------
# delta_m


def test_delta_m_sign_convention_by_hand():
    baseline = {"shape": {"accuracy": 0.80}, "size": {"mae": 0.10}}
    better_both = {"shape": {"accuracy": 0.88}, "size": {"mae": 0.09}}  # +10 % and -10 % error
    assert delta_m(better_both, baseline) == pytest.approx(10.0)
    assert delta_m({"shape": {"accuracy": 0.88}, "size": {"mae": 0.10}}, baseline) == pytest.approx(5.0)
    assert delta_m({"shape": {"accuracy": 0.80}, "size": {"mae": 0.09}}, baseline) == pytest.approx(5.0)
    assert delta_m({"shape": {"accuracy": 0.72}, "size": {"mae": 0.11}}, baseline) == pytest.approx(-10.0)
    assert delta_m(baseline, baseline) == 0.0


def test_delta_m_with_explicit_directions_and_flat_keys():
    scores, baseline = {"shape": 0.9, "size": 0.2}, {"shape": 0.6, "size": 0.4}
    assert delta_m(scores, baseline, {"shape": True, "size": False}) == pytest.approx((50 + 50) / 2)
    assert delta_m(scores, baseline, {"shape": True, "size": True}) == pytest.approx((50 - 50) / 2)
    with pytest.raises(ValueError, match=r"cannot tell whether \['shape', 'size'\]"):
        delta_m(scores, baseline)


def test_delta_m_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"only in metrics: \['b/mae'\], only in baseline: \['a/mae'\]"):
        delta_m({"b": {"mae": 1.0}}, {"a": {"mae": 1.0}})
    with pytest.raises(ValueError, match="baseline 'a/accuracy' is 0"):
        delta_m({"a": {"accuracy": 0.5}}, {"a": {"accuracy": 0.0}})
    with pytest.raises(ValueError, match="higher_is_better has no entry for"):
        delta_m({"a": 1.0, "b": 1.0}, {"a": 1.0, "b": 1.0}, {"a": True})
    with pytest.raises(ValueError, match="not finite"):
        delta_m({"accuracy": math.nan}, {"accuracy": 0.5})
