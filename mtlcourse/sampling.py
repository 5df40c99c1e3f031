"""Resampling: per-image weights that make :func:`~mtlcourse.train.fit` draw some images more often.

With ``fit(..., sample_weights=w)`` every epoch draws ``N`` images *with replacement*, image ``i`` with
probability :math:`w_i / \\sum_j w_j`, through fit's own seeded generator (:func:`draw_order`). It is the other
answer to class imbalance, besides class weights in the loss: instead of making a rare class's errors cost
more, the network sees the rare class more often. :func:`class_balanced_weights` computes the weights that
give every class of one task the same share of the draws.

Used in chapter 10.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from mtlcourse.data.base import TARGET_DTYPE, labelled_mask
from mtlcourse.tasks import Task

#: The kinds :func:`class_balanced_weights` can balance: one class per image.
BALANCED_KINDS = ("multiclass", "binary")

#: What :func:`class_balanced_weights` does with the images that have no label for the task.
UNLABELLED_RULES = ("keep", "drop")


def class_balanced_weights(data: Dataset, task: str, unlabelled: str = "keep") -> Tensor:
    r"""Per-image sampling weights ``[N]`` that draw every class of one task of ``data`` equally often.

    An image of class :math:`k` gets :math:`w_i = (1 - u) / (K\, n_k)`, with :math:`n_k` the number of labelled
    images of class :math:`k`, :math:`K` the number of classes that have at least one image, and :math:`u` the
    share of the draws left to the unlabelled images. The weights sum to 1, so :math:`w_i` is the probability
    that one draw picks image :math:`i`, and each present class gets :math:`(1 - u) / K` of the draws.

    Images without a label for ``task`` (``-1`` or ``nan``, partial labels):

    - ``unlabelled="keep"`` (default): they keep the share they have under uniform sampling,
      :math:`u = N_\text{unlabelled} / N`, each one :math:`1/N`, so the other tasks of a multi-task dataset
      still see them as often as without resampling;
    - ``unlabelled="drop"``: :math:`u = 0`, they get weight 0 and are never drawn.

    Args:
        data: an in-memory dataset (``images``, ``targets`` and ``tasks``, e.g. :class:`~mtlcourse.data.synthetic.MultiShapes`).
        task: the name of the task to balance; its kind must have one class per image (:data:`BALANCED_KINDS`).
        unlabelled: ``"keep"`` or ``"drop"`` (see above).

    Returns:
        ``[N]`` non-negative weights that sum to 1, on the data's device: ``fit(..., sample_weights=...)``.

    Raises:
        ValueError: for an unknown task, a kind without one class per image, an unknown rule, or a task
            without any label.

    Example:
        >>> from mtlcourse.data.base import TensorMultiTaskDataset
        >>> targets = {"c": torch.tensor([0, 0, 0, 1, -1, 2])}
        >>> data = TensorMultiTaskDataset(torch.rand(6, 1, 4, 4), targets, [Task("c", "multiclass", 3)])
        >>> class_balanced_weights(data, "c")
        tensor([0.0926, 0.0926, 0.0926, 0.2778, 0.1667, 0.2778])
        >>> class_balanced_weights(data, "c", unlabelled="drop")
        tensor([0.1111, 0.1111, 0.1111, 0.3333, 0.0000, 0.3333])

    Used in chapter 10.
    """
    targets, spec = task_targets(data, task)
    check_balanceable(targets, spec, unlabelled)
    device, targets = targets.device, targets.cpu()  # float64 below: not every accelerator has it
    labelled = labelled_mask(targets, spec)  # [N]
    N, n_labelled = targets.shape[0], int(labelled.sum())
    if n_labelled == 0:
        raise ValueError(
            f"task {task!r} has no label at all in {type(data).__name__}, so its classes cannot be balanced; "
            "balance on a task that has labels"
        )
    classes = torch.where(labelled, targets, torch.zeros_like(targets)).long()  # [N] missing -> class 0
    counts = torch.bincount(classes[labelled], minlength=max(spec.num_outputs, 2))  # [K] (binary: 2)
    present = int((counts > 0).sum())
    share = (N - n_labelled) / N if unlabelled == "keep" else 0.0  # u, the unlabelled images' share
    per_class = (1 - share) / (present * counts.clamp_min(1).double())  # [K] weight of one image of class k
    unlabelled_weight = 1.0 / N if unlabelled == "keep" else 0.0
    weights = torch.where(labelled, per_class[classes], unlabelled_weight)  # [N]
    return weights.float().to(device)


def task_targets(data: Dataset, task: str) -> tuple[Tensor, Task]:
    """The targets ``[N, ...]`` and the :class:`~mtlcourse.tasks.Task` of ``task`` in an in-memory dataset."""
    if not (hasattr(data, "targets") and hasattr(data, "tasks")):
        raise ValueError(
            f"{type(data).__name__} holds no `targets` and `tasks`; pass an in-memory dataset "
            "(e.g. a TensorMultiTaskDataset) to compute sampling weights"
        )
    if task not in data.tasks:
        raise ValueError(f"unknown task {task!r}; the dataset's tasks are {list(data.tasks)}")
    return data.targets[task], data.tasks[task]


def check_balanceable(targets: Tensor, task: Task, unlabelled: str) -> None:
    """Raise ``ValueError`` unless ``targets`` of ``task`` hold one class per image and the rule is known."""
    if task.kind not in BALANCED_KINDS:
        raise ValueError(
            f"class_balanced_weights balances tasks with one class per image, kinds {BALANCED_KINDS}; task "
            f"{task.name!r} is {task.kind}: balance on one of the dataset's multiclass or binary tasks instead"
        )
    if unlabelled not in UNLABELLED_RULES:
        raise ValueError(f"unlabelled must be one of {UNLABELLED_RULES}, got {unlabelled!r}")
    if targets.dim() != 1:
        raise ValueError(
            f"the targets of task {task.name!r} must be [N] (one {TARGET_DTYPE[task.kind]} per image), "
            f"got {list(targets.shape)}"
        )


def check_sample_weights(weights: Tensor, num_images: int) -> None:
    """Raise ``ValueError`` unless ``weights`` is ``[N]`` for ``N = num_images``, finite, ``>= 0``, not all 0.

    Example:
        >>> check_sample_weights(torch.tensor([1.0, 0.0, 2.0]), 3)
        >>> check_sample_weights(torch.tensor([1.0, -1.0]), 2)
        Traceback (most recent call last):
        ...
        ValueError: sample_weights must be finite and at least 0, got values from -1 to 1
    """
    if not isinstance(weights, Tensor) or weights.dim() != 1 or weights.shape[0] != num_images:
        got = list(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
        raise ValueError(
            f"sample_weights must be a tensor [N] with one weight per training image, [{num_images}], got "
            f"{got}; see mtlcourse.sampling.class_balanced_weights"
        )
    if not weights.is_floating_point():
        raise ValueError(f"sample_weights must be floats, got {weights.dtype}; convert them with .float()")
    smallest, largest = torch.aminmax(weights)
    if not bool(torch.isfinite(weights).all()) or smallest < 0:
        raise ValueError(
            f"sample_weights must be finite and at least 0, got values from {smallest.item():g} to "
            f"{largest.item():g}"
        )
    if largest <= 0:
        raise ValueError(
            "sample_weights are all 0, so no image can be drawn; give some images a positive weight"
        )


def draw_order(weights: Tensor, generator: torch.Generator | None) -> Tensor:
    """``N`` image indices ``[N]`` drawn with replacement, index ``i`` with probability ``w_i / sum(w)``.

    The draws are made on the generator's device (fit's generator is on the CPU), so the same seed gives
    the same indices whatever device holds the weights.

    Example:
        >>> order = draw_order(torch.tensor([0.0, 1.0, 0.0, 1.0]), torch.Generator().manual_seed(0))
        >>> order.shape, set(order.tolist()) <= {1, 3}
        (torch.Size([4]), True)
    """
    device = generator.device if generator is not None else torch.device("cpu")  # None: the global one
    weights = weights.to(device, torch.float64)  # [N]; float64 keeps tiny weights apart
    return torch.multinomial(weights, weights.shape[0], replacement=True, generator=generator)  # [N]
