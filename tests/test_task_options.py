"""Loss options of Task (class weights, label smoothing, focal loss, logit adjustment) and soft targets.

PyTorch's ``F.cross_entropy`` is the oracle wherever it defines the same loss; the focal loss is checked
against its formula written out independently; every error is checked for a message that says what to fix.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from mtlcourse.data.base import TensorMultiTaskDataset, drop_labels
from mtlcourse.metrics import TaskMeter
from mtlcourse.tasks import (
    SOFT_TARGET_TOLERANCE,
    Task,
    logit_adjustment_offsets,
    most_probable_class,
)

nan = math.nan


def seeded(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def multiclass_batch(seed: int = 0, B: int = 12, C: int = 4):
    """Logits [B, C] and class indices [B] with three missing labels."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, C, (B,), generator=g)  # [B]
    target[[1, 5, 6]] = -1
    return 2 * torch.randn(B, C, generator=g), target


def segmentation_batch(seed: int = 0, C: int = 3):
    """Logits [2, C, 4, 4] and class indices [2, 4, 4], some pixels missing."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, C, (2, 4, 4), generator=g)  # [2, 4, 4]
    target[torch.rand(2, 4, 4, generator=g) < 0.3] = -1
    return 2 * torch.randn(2, C, 4, 4, generator=g), target


def soft(target: torch.Tensor, C: int) -> torch.Tensor:
    """One-hot rows [B, C] of class indices [B], with a row of nan where the label is missing."""
    rows = F.one_hot(target.clamp_min(0), C).float()  # [B, C]
    rows[target == -1] = nan
    return rows


OPTIONS = {
    "plain": {},
    "class_weights": {"class_weights": (0.5, 2.0, 1.0, 0.0)},
    "label_smoothing": {"label_smoothing": 0.2},
    "focal": {"focal_gamma": 2.0},
    "logit_adjustment": {"logit_adjustment": (-0.1, -2.0, -0.7, -1.2)},
    "all": {
        "class_weights": (0.5, 2.0, 1.0, 3.0),
        "label_smoothing": 0.1,
        "focal_gamma": 1.5,
        "logit_adjustment": (-0.1, -2.0, -0.7, -1.2),
    },
}


def focal_reference(logits, target, gamma, weight=None, smoothing=0.0, offsets=None):
    """The loss of Task's docstring written out for class indices, independently of tasks.py."""
    C = logits.shape[1]
    keep = target != -1
    z, y = logits[keep], target[keep]  # [n, C], [n]
    if offsets is not None:
        z = z + torch.tensor(offsets)
    p = z.softmax(dim=1)  # [n, C]
    q = (1 - smoothing) * F.one_hot(y, C).float() + smoothing / C  # [n, C]
    w = torch.ones(C) if weight is None else torch.tensor(weight)  # [C]
    per_entry = -(w * q * (1 - p) ** gamma * p.log()).sum(dim=1)  # [n]
    return per_entry.sum() / w[y].sum()


# ---------------------------------------------------------------------------------------------------------
# Defaults and the PyTorch oracle


def old_loss(task: Task, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Task.loss as it was before the options, copied from the previous tasks.py."""
    labelled = target != -1 if task.kind in ("multiclass", "segmentation") else ~torch.isnan(target)
    count = labelled.sum()
    if task.kind in ("multiclass", "segmentation"):
        return F.cross_entropy(output, target, ignore_index=-1, reduction="sum") / count.clamp_min(1)
    if task.kind == "binary" and output.dim() == 2:
        output = output.squeeze(1)
    output, target = output[labelled], target[labelled]
    if task.kind == "regression":
        return F.mse_loss(output, target, reduction="sum") / count.clamp_min(1)
    pos_weight = None if task.pos_weight == 1 else torch.tensor(task.pos_weight)
    total = F.binary_cross_entropy_with_logits(output, target, reduction="sum", pos_weight=pos_weight)
    return total / count.clamp_min(1)


def test_the_defaults_leave_every_loss_bit_for_bit_unchanged():
    g = torch.Generator().manual_seed(0)
    binary = (torch.rand(8, generator=g) < 0.5).float()
    binary[2] = nan
    edges = (torch.rand(2, 5, 5, generator=g) < 0.2).float()
    edges[1] = nan
    multilabel = (torch.rand(6, 3, generator=g) < 0.5).float()
    multilabel[0, 1] = nan
    regression = torch.randn(5, 2, generator=g)
    regression[1, 0] = nan
    cases = [
        (Task("c", "multiclass", 4), *multiclass_batch()),
        (Task("s", "segmentation", 3), *segmentation_batch()),
        (Task("b", "binary", 1), torch.randn(8, 1, generator=g), binary),
        (Task("e", "edge", 1, pos_weight=18.0), torch.randn(2, 5, 5, generator=g), edges),
        (Task("m", "multilabel", 3), torch.randn(6, 3, generator=g), multilabel),
        (Task("r", "regression", 2), torch.randn(5, 2, generator=g), regression),
        (Task("none", "multiclass", 4), torch.randn(3, 4, generator=g), torch.full((3,), -1)),
    ]
    for task, output, target in cases:
        assert torch.equal(task.loss(output, target), old_loss(task, output, target)), task.name
        assert task.loss(output, target).dtype == old_loss(task, output, target).dtype, task.name


@pytest.mark.parametrize("batch", [multiclass_batch, segmentation_batch])
def test_class_weights_and_label_smoothing_equal_pytorch_cross_entropy(batch):
    logits, target = batch()
    C = logits.shape[1]
    weights = (0.5, 2.0, 1.0, 3.0)[:C]
    for options, reference in [
        ({"class_weights": weights}, {"weight": torch.tensor(weights)}),
        ({"label_smoothing": 0.2}, {"label_smoothing": 0.2}),
        (
            {"class_weights": weights, "label_smoothing": 0.1},
            {"weight": torch.tensor(weights), "label_smoothing": 0.1},
        ),
    ]:
        task = Task("t", "segmentation" if logits.dim() == 4 else "multiclass", C, **options)
        expected = F.cross_entropy(logits, target, ignore_index=-1, **reference)  # the mean PyTorch defines
        assert torch.allclose(task.loss(logits, target), expected, atol=1e-6), options


def test_class_weights_of_one_equal_the_plain_loss_and_scaling_them_changes_nothing():
    logits, target = multiclass_batch()
    plain = Task("c", "multiclass", 4).loss(logits, target)
    assert torch.allclose(Task("c", "multiclass", 4, class_weights=(1, 1, 1, 1)).loss(logits, target), plain)
    weighted = Task("c", "multiclass", 4, class_weights=(0.5, 2.0, 1.0, 3.0)).loss(logits, target)
    scaled = Task("c", "multiclass", 4, class_weights=(5.0, 20.0, 10.0, 30.0)).loss(logits, target)
    assert torch.allclose(weighted, scaled) and not torch.allclose(weighted, plain)


def test_class_weights_count_the_weight_of_the_labelled_entries():
    task = Task("c", "multiclass", 2, class_weights=(1.0, 3.0))
    total, count = task.summed_loss(torch.zeros(3, 2), torch.tensor([0, 1, -1]))
    assert count.item() == 4.0 and total.item() == pytest.approx(4 * math.log(2))
    zero = Task("c", "multiclass", 2, class_weights=(0.0, 1.0))
    out = torch.randn(2, 2, requires_grad=True)
    loss = zero.loss(out, torch.tensor([0, 0]))  # only class 0, whose weight is 0: nothing to learn
    loss.backward()
    assert loss.item() == 0.0 and out.grad is not None and not out.grad.any()


def test_focal_gamma_0_is_the_plain_loss_and_gamma_2_follows_the_formula():
    logits, target = multiclass_batch()
    plain = Task("c", "multiclass", 4).loss(logits, target)
    assert torch.equal(Task("c", "multiclass", 4, focal_gamma=0.0).loss(logits, target), plain)
    focal = Task("c", "multiclass", 4, focal_gamma=2.0).loss(logits, target)
    assert torch.allclose(focal, focal_reference(logits, target, 2.0), atol=1e-6)
    assert focal < plain  # every entry's loss is scaled by (1 - p_t)^2 < 1
    # one entry by hand: zero logits, p_t = 1/4: (3/4)^2 log 4
    one = Task("c", "multiclass", 4, focal_gamma=2.0).loss(torch.zeros(1, 4), torch.tensor([2]))
    assert one.item() == pytest.approx(0.5625 * math.log(4), rel=1e-6)


def test_focal_combined_with_every_class_option_follows_the_formula():
    for batch in (multiclass_batch, segmentation_batch):
        logits, target = batch(seed=3)
        C = logits.shape[1]
        options = {
            "focal_gamma": 1.5,
            "class_weights": (0.5, 2.0, 1.0, 3.0)[:C],
            "label_smoothing": 0.1,
            "logit_adjustment": (-0.1, -2.0, -0.7, -1.2)[:C],
        }
        task = Task("t", "segmentation" if logits.dim() == 4 else "multiclass", C, **options)
        flat_logits = logits.movedim(1, -1).reshape(-1, C) if logits.dim() == 4 else logits  # [n, C]
        expected = focal_reference(
            flat_logits, target.reshape(-1), 1.5, options["class_weights"], 0.1, options["logit_adjustment"]
        )
        assert torch.allclose(task.loss(logits, target), expected, atol=1e-6), task.kind


@pytest.mark.parametrize("kind", ["binary", "multilabel", "edge"])
def test_binary_focal_loss_by_hand_with_pos_weight_and_missing_labels(kind):
    shape = {"binary": (3,), "multilabel": (1, 3), "edge": (1, 1, 3)}[kind]
    logits = torch.tensor([0.0, 2.0, -9.0]).reshape(shape)
    target = torch.tensor([1.0, 0.0, nan]).reshape(shape)
    task = Task("t", kind, 3 if kind == "multilabel" else 1, focal_gamma=2.0, pos_weight=3.0)
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    positive = 3.0 * 0.5**2 * math.log(2)  # y = 1, p_t = sigma(0) = 1/2, weighted by pos_weight
    negative = s(2.0) ** 2 * -math.log(1 - s(2.0))  # y = 0, 1 - p_t = sigma(2)
    assert task.loss(logits, target).item() == pytest.approx((positive + negative) / 2, rel=1e-6)
    plain = Task("t", kind, task.num_outputs, pos_weight=3.0, focal_gamma=0).loss(logits, target)
    assert torch.equal(plain, Task("t", kind, task.num_outputs, pos_weight=3.0).loss(logits, target))


def test_focal_gradients_stay_finite_when_the_model_is_certain():
    logits = torch.tensor([[60.0, -60.0], [0.0, 1.0]], requires_grad=True)  # p = 1 exactly in float32
    for gamma in (0.5, 2.0):
        loss = Task("c", "multiclass", 2, focal_gamma=gamma).loss(logits, torch.tensor([0, 1]))
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(grad).all() and grad[0].abs().max() == 0
    binary = torch.tensor([60.0, 0.5], requires_grad=True)
    loss = Task("b", "binary", 1, focal_gamma=0.5).loss(binary, torch.tensor([1.0, 0.0]))
    (grad,) = torch.autograd.grad(loss, binary)
    assert torch.isfinite(grad).all()


def test_logit_adjustment_is_cross_entropy_on_shifted_logits():
    for batch in (multiclass_batch, segmentation_batch):
        logits, target = batch(seed=1)
        C = logits.shape[1]
        offsets = (-0.1, -2.0, -0.7, -1.2)[:C]
        task = Task("t", "segmentation" if logits.dim() == 4 else "multiclass", C, logit_adjustment=offsets)
        shape = (1, C) + (1,) * (logits.dim() - 2)
        shifted = logits + torch.tensor(offsets).view(shape)  # [B, C, ...]
        expected = F.cross_entropy(shifted, target, ignore_index=-1)
        assert torch.allclose(task.loss(logits, target), expected, atol=1e-6), task.kind
    # The same offset on every class changes nothing: a softmax does not see it.
    logits, target = multiclass_batch()
    same = Task("c", "multiclass", 4, logit_adjustment=(3.0,) * 4).loss(logits, target)
    assert torch.allclose(same, Task("c", "multiclass", 4).loss(logits, target), atol=1e-6)


def test_logit_adjustment_offsets_are_tau_times_the_log_priors():
    target = torch.tensor([0, 0, 0, 1, 2, 2, -1, -1])  # priors 3/6, 1/6, 2/6
    offsets = logit_adjustment_offsets(target, 3, tau=2.0)
    assert offsets == pytest.approx([2 * math.log(1 / 2), 2 * math.log(1 / 6), 2 * math.log(1 / 3)])
    assert logit_adjustment_offsets(target, 3, tau=0) == pytest.approx([0.0, 0.0, 0.0])
    masks = torch.tensor([[[0, 1], [1, -1]]])  # segmentation masks [1, 2, 2]: priors 1/3, 2/3
    assert logit_adjustment_offsets(masks, 2) == pytest.approx([math.log(1 / 3), math.log(2 / 3)])
    task = Task("c", "multiclass", 3, logit_adjustment=offsets)  # ready to use
    assert task.logit_adjustment == offsets


def test_logit_adjustment_offsets_refuse_what_has_no_prior():
    with pytest.raises(ValueError, match=r"no labelled entry .*0 entries"):
        logit_adjustment_offsets(torch.tensor([], dtype=torch.long), 3)
    with pytest.raises(ValueError, match=r"no labelled entry .*all missing"):
        logit_adjustment_offsets(torch.tensor([-1, -1]), 3)
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] never occur in target"):
        logit_adjustment_offsets(torch.tensor([0, 2, 2]), 3)
    with pytest.raises(ValueError, match=r"classes in \[0, 2\] or -1"):
        logit_adjustment_offsets(torch.tensor([0, 1, 3]), 3)
    with pytest.raises(ValueError, match="tau must be a finite number >= 0, got -1"):
        logit_adjustment_offsets(torch.tensor([0, 1]), 2, tau=-1)
    with pytest.raises(ValueError, match="most_probable_class"):
        logit_adjustment_offsets(torch.tensor([[0.5, 0.5]]), 2)
    with pytest.raises(ValueError, match="num_classes must be a whole number"):
        logit_adjustment_offsets(torch.tensor([0]), 0)


# ---------------------------------------------------------------------------------------------------------
# Missing labels under every option


@pytest.mark.parametrize("name", list(OPTIONS))
def test_missing_labels_are_skipped_under_every_option(name):
    task = Task("c", "multiclass", 4, **OPTIONS[name])
    logits, target = multiclass_batch(seed=2)
    keep = target != -1
    assert torch.allclose(task.loss(logits, target), task.loss(logits[keep], target[keep]), atol=1e-6)
    _, count = task.summed_loss(logits, target)
    expected_count = (
        keep.sum() if task.class_weights is None else torch.tensor(task.class_weights)[target[keep]].sum()
    )
    assert count.item() == pytest.approx(expected_count.item())
    out = torch.randn(3, 4, requires_grad=True)
    loss = task.loss(
        out, torch.full((3,), -1)
    )  # no label at all: 0, with a (zero) gradient, as without options
    loss.backward()
    assert loss.item() == 0.0 and out.grad is not None and not out.grad.any()


@pytest.mark.parametrize(
    "options", [{}, {"class_weights": (1.0, 2.0, 0.5)}, {"label_smoothing": 0.3}, {"focal_gamma": 2.0}]
)
def test_missing_pixels_are_skipped_under_every_segmentation_option(options):
    task = Task("s", "segmentation", 3, **options)
    logits, target = segmentation_batch(seed=4)
    flat_logits = logits.movedim(1, -1).reshape(-1, 3)  # [B * H * W, C]
    keep = target.reshape(-1) != -1  # [B * H * W]
    as_images = Task("c", "multiclass", 3, **options).loss(flat_logits[keep], target.reshape(-1)[keep])
    assert torch.allclose(task.loss(logits, target), as_images, atol=1e-6)
    out = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = task.loss(out, torch.full((1, 2, 2), -1))
    loss.backward()
    assert loss.item() == 0.0 and not out.grad.any()


@pytest.mark.parametrize("kind", ["binary", "multilabel", "edge"])
def test_binary_focal_loss_skips_missing_labels_and_empty_batches(kind):
    task = Task("t", kind, 2 if kind == "multilabel" else 1, focal_gamma=2.0)
    shape = {"binary": (4,), "multilabel": (2, 2), "edge": (1, 2, 2)}[kind]
    out = seeded(0, *shape).requires_grad_()
    target = torch.tensor([1.0, nan, 0.0, nan]).reshape(shape)
    keep = ~torch.isnan(target)
    assert torch.allclose(task.loss(out, target), task.loss(out[keep], target[keep]))
    loss = task.loss(out, torch.full(shape, nan))
    loss.backward()
    assert loss.item() == 0.0 and not out.grad.any()


# ---------------------------------------------------------------------------------------------------------
# Soft targets


@pytest.mark.parametrize("name", list(OPTIONS))
def test_soft_one_hot_targets_equal_hard_targets_under_every_option(name):
    task = Task("c", "multiclass", 4, **OPTIONS[name])
    logits, target = multiclass_batch(seed=5)
    rows = soft(target, 4)
    assert torch.allclose(task.loss(logits, rows), task.loss(logits, target), atol=1e-6)
    hard_total, hard_count = task.summed_loss(logits, target)
    soft_total, soft_count = task.summed_loss(logits, rows)
    assert soft_count.item() == pytest.approx(hard_count.item())
    assert soft_total.item() == pytest.approx(hard_total.item(), rel=1e-5)


def test_soft_targets_are_cross_entropy_with_probabilities():
    logits = seeded(0, 5, 3)
    probs = seeded(1, 5, 3).softmax(dim=1)  # [5, 3] rows that sum to 1
    task = Task("c", "multiclass", 3)
    assert torch.allclose(task.loss(logits, probs), F.cross_entropy(logits, probs), atol=1e-6)
    smoothed = Task("c", "multiclass", 3, label_smoothing=0.2).loss(logits, probs)
    assert torch.allclose(smoothed, F.cross_entropy(logits, probs, label_smoothing=0.2), atol=1e-6)
    w = (0.5, 2.0, 1.0)
    total, count = Task("c", "multiclass", 3, class_weights=w).summed_loss(logits, probs)
    expected = F.cross_entropy(logits, probs, weight=torch.tensor(w), reduction="sum")
    assert torch.allclose(total, expected, atol=1e-5)
    assert count.item() == pytest.approx((probs * torch.tensor(w)).sum().item())  # sum_i sum_c w_c q_ic


def test_a_row_of_nan_is_a_missing_soft_label():
    task = Task("c", "multiclass", 2)
    target = torch.tensor([[0.25, 0.75], [nan, nan], [1.0, 0.0]])
    assert task.labelled(target).tolist() == [True, False, True]
    logits = seeded(2, 3, 2)
    total, count = task.summed_loss(logits, target)
    assert count.item() == 2
    assert torch.allclose(total, F.cross_entropy(logits[[0, 2]], target[[0, 2]], reduction="sum"))
    out = torch.randn(2, 2, requires_grad=True)
    loss = task.loss(out, torch.full((2, 2), nan))
    loss.backward()
    assert loss.item() == 0.0 and not out.grad.any()


def test_bad_soft_targets_say_how_to_fix_them():
    task = Task("shape", "multiclass", 3)
    logits = torch.zeros(2, 3)
    with pytest.raises(
        ValueError, match=r"'shape': a soft target row 1 is \[0.5, 0.3, 0.1\], which sums to 0.9, not 1"
    ):
        task.loss(logits, torch.tensor([[0.2, 0.3, 0.5], [0.5, 0.3, 0.1]]))
    with pytest.raises(
        ValueError, match=r"divide each row by its sum: target / target.sum\(dim=1, keepdim=True\)"
    ):
        task.loss(logits, torch.tensor([[2.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"row 0 is \[1.2, -0.2, 0.0\]: probabilities cannot be negative"):
        task.loss(logits, torch.tensor([[1.2, -0.2, 0.0], [1.0, 0.0, 0.0]]))
    with pytest.raises(
        ValueError, match="nan in some entries but not all; mark a missing label with a whole row"
    ):
        task.loss(logits, torch.tensor([[0.5, 0.5, nan], [1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"must be a float tensor \[B, 3\] of class probabilities"):
        task.check_soft_target(torch.full((2, 4), 0.25))
    within = torch.tensor([[0.5, 0.5 + SOFT_TARGET_TOLERANCE / 2, 0.0]])  # inside the stated tolerance
    task.check_soft_target(within)


def test_metrics_score_soft_targets_by_their_most_probable_class():
    target = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.5, 0.0], [nan, nan, nan], [0.0, 0.2, 0.8]])
    assert most_probable_class(target).tolist() == [1, 0, -1, 2]  # a tie goes to the lower class
    task = Task("c", "multiclass", 3)
    logits = seeded(3, 4, 3)
    on_soft, on_hard = TaskMeter(task), TaskMeter(task)
    on_soft.update(logits, target)
    on_hard.update(logits, torch.tensor([1, 0, -1, 2]))
    assert on_soft.compute() == on_hard.compute() and torch.equal(on_soft.confusion, on_hard.confusion)
    with pytest.raises(ValueError, match="do not follow the conventions"):
        on_soft.update(logits, target[:, :2])


def test_datasets_accept_soft_targets_and_check_them():
    images = torch.rand(4, 1, 4, 4)
    task = Task("c", "multiclass", 2)
    rows = torch.tensor([[0.9, 0.1], [0.3, 0.7], [nan, nan], [0.5, 0.5]])
    data = TensorMultiTaskDataset(images, {"c": rows}, [task])
    assert data.label_fraction("c") == 0.75
    assert data.summary().splitlines()[1].endswith("mean probabilities 0.57 0.43")
    dropped = drop_labels(rows, task, 0.5, torch.Generator().manual_seed(0))
    assert task.labelled(dropped).sum() <= 2 and torch.isnan(dropped).all(dim=1).sum() == 2
    with pytest.raises(ValueError, match=r"which sums to 1\.1, not 1"):
        TensorMultiTaskDataset(images, {"c": torch.tensor([[0.9, 0.2]] * 4)}, [task])
    with pytest.raises(ValueError, match=r"must have shape \[4, 2\], got \[4, 3\]"):
        TensorMultiTaskDataset(images, {"c": torch.full((4, 3), 1 / 3)}, [task])
    with pytest.raises(ValueError, match=r"torch\.long"):  # float class indices [N] still get the old advice
        TensorMultiTaskDataset(images, {"c": torch.zeros(4)}, [task])


# ---------------------------------------------------------------------------------------------------------
# Validation


def test_options_are_stored_as_tuples_of_floats():
    task = Task(
        "c", "multiclass", 3, class_weights=[1, 2, 3], logit_adjustment=torch.tensor([0.0, -1.0, -2.0])
    )
    assert task.class_weights == (1.0, 2.0, 3.0) and task.logit_adjustment == (0.0, -1.0, -2.0)
    assert hash(task) == hash(
        Task("c", "multiclass", 3, class_weights=(1, 2, 3), logit_adjustment=(0, -1, -2))
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"kind": "multiclass", "class_weights": (1.0, 2.0)},
            r"Task 'shape': class_weights has 2 entries but the task has 3 classes; give one number per class",
        ),
        (
            {"kind": "multiclass", "class_weights": (1.0, -1.0, 1.0)},
            r"class_weights must be non-negative with at least one positive, got \(1.0, -1.0, 1.0\)",
        ),
        ({"kind": "multiclass", "class_weights": (0, 0, 0)}, "at least one positive"),
        ({"kind": "multiclass", "class_weights": (1.0, nan, 1.0)}, "class_weights must hold finite numbers"),
        (
            {"kind": "multiclass", "class_weights": "abc"},
            "class_weights must be a sequence of numbers, one per class",
        ),
        (
            {"kind": "multilabel", "class_weights": (1.0, 1.0, 1.0)},
            r"class_weights applies to the kinds \('multiclass', 'segmentation'\), not to a multilabel task; "
            r"leave class_weights at None \(pos_weight weighs",
        ),
        (
            {"kind": "multiclass", "label_smoothing": 1.0},
            r"label_smoothing must be a number in \[0, 1\), got 1.0",
        ),
        ({"kind": "multiclass", "label_smoothing": -0.1}, r"label_smoothing must be a number in \[0, 1\)"),
        (
            {"kind": "regression", "label_smoothing": 0.1},
            "not to a regression task; leave label_smoothing at 0$",
        ),
        ({"kind": "multiclass", "focal_gamma": -1.0}, "focal_gamma must be a finite number >= 0, got -1.0"),
        ({"kind": "multiclass", "focal_gamma": math.inf}, "focal_gamma must be a finite number >= 0"),
        (
            {"kind": "regression", "focal_gamma": 2.0},
            "focal_gamma applies to the kinds .*not to a regression task",
        ),
        (
            {"kind": "multiclass", "logit_adjustment": (0.0, 1.0, 2.0, 3.0)},
            "logit_adjustment has 4 entries but the task has 3 classes",
        ),
        (
            {"kind": "multiclass", "logit_adjustment": (0.0, -math.inf, 0.0)},
            "logit_adjustment must hold finite",
        ),
        (
            {"kind": "multilabel", "logit_adjustment": (0.0, 0.0, 0.0)},
            "logit_adjustment applies to the kinds",
        ),
    ],
)
def test_bad_options_raise_errors_that_name_the_task_the_option_and_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Task("shape", num_outputs=3, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# Training with the options


def test_fit_trains_on_soft_targets_with_every_option():
    from mtlcourse.models import HardParameterSharing, SmallCNN
    from mtlcourse.train import evaluate, fit

    torch.manual_seed(0)
    images = torch.rand(64, 1, 8, 8)
    y = (images.mean(dim=(1, 2, 3)) > 0.5).long() + 2 * (
        images[:, 0, :4].mean(dim=(1, 2)) > 0.5
    ).long()  # [64]
    rows = 0.8 * F.one_hot(y, 4).float() + 0.05  # [64, 4] soft targets
    rows[::7] = nan  # some images without a label
    options = OPTIONS["all"] | {"logit_adjustment": logit_adjustment_offsets(y, 4)}
    tasks = [
        Task("s", "multiclass", 4, **options),
        Task("m", "segmentation", 2, class_weights=(1, 3), focal_gamma=1.0),
    ]
    data = TensorMultiTaskDataset(images, {"s": rows, "m": (images[:, 0] > 0.5).long()}, tasks)
    model = HardParameterSharing(SmallCNN(width=4, num_stages=2, in_channels=1), data.tasks)
    history = fit(model, data, epochs=4, batch_size=16)
    for name in ("s", "m"):
        losses = history.train_loss[name]
        assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0], name
    results = evaluate(model, data)
    assert set(results["s"]) == {"accuracy", "macro_f1", "micro_f1", "loss"} and math.isfinite(
        results["s"]["loss"]
    )
