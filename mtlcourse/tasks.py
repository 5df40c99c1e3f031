"""Task descriptions: the single source from which heads, losses and metrics are built.

A :class:`Task` says what a model must predict for one target of a dataset. The model's head
(:func:`mtlcourse.models.heads.make_head`), the loss (:meth:`Task.loss`) and the metrics
(:class:`mtlcourse.metrics.TaskMeter`) are all derived from it, so they cannot disagree.

Output and target conventions, with ``B`` the batch size:

================  =======================  =====================================  ===============
kind              model output             target                                 a missing label
================  =======================  =====================================  ===============
``multiclass``    logits ``[B, C]``        class index ``[B]`` (long)             ``-1``
``binary``        logit ``[B]``            ``0.`` or ``1.`` ``[B]`` (float)       ``nan``
``multilabel``    logits ``[B, K]``        ``0.`` / ``1.`` ``[B, K]`` (float)     ``nan``
``segmentation``  logits ``[B, C, H, W]``  class index ``[B, H, W]`` (long)       ``-1``
``edge``          logits ``[B, H, W]``     ``0.`` / ``1.`` ``[B, H, W]`` (float)  ``nan``
``regression``    values ``[B, D]``        values ``[B, D]`` (float)              ``nan``
================  =======================  =====================================  ===============

An ``edge`` task is boundary detection: one logit per pixel, and a target of 1 on a boundary pixel, 0
elsewhere (an image without a label is all ``nan``). It differs from a two-class ``segmentation`` task in
its metrics: boundary pixels are rare, so a mean IoU over "boundary" and "not boundary" is dominated by the
easy second class, while the boundary F1 (:func:`mtlcourse.metrics.boundary_f1`) looks only at the
boundaries, and forgives a boundary found one pixel away.

A missing label (partial labels, chapter 10) is simply left out of the loss and the metrics.

Used in chapter 00 and everywhere after.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

#: The kinds of task, each with its own head, loss and metrics.
KINDS = ("multiclass", "binary", "multilabel", "segmentation", "edge", "regression")

#: The kinds predicted pixel by pixel (at the image's size); the others are predicted once per image.
PER_PIXEL_KINDS = ("segmentation", "edge")

#: The kinds trained with binary cross-entropy, the ones where ``pos_weight`` applies.
BCE_KINDS = ("binary", "multilabel", "edge")

#: The metrics each kind reports; the first one is the task's primary metric.
METRICS = {
    "multiclass": ("accuracy", "macro_f1", "micro_f1"),
    "binary": ("accuracy", "f1", "precision", "recall"),
    "multilabel": ("micro_f1", "macro_f1", "accuracy"),
    "segmentation": ("miou", "pixel_accuracy"),
    "edge": ("boundary_f1", "precision", "recall", "pixel_accuracy"),
    "regression": ("mae", "rmse"),
}

#: Metrics where a lower value is better; every other metric is better when higher.
LOWER_IS_BETTER = frozenset({"mae", "rmse", "loss"})


@dataclass(frozen=True)
class Task:
    """One prediction target of a multi-task dataset.

    Args:
        name: the key of this task in a dataset's targets and a model's outputs.
        kind: one of ``multiclass``, ``binary``, ``multilabel``, ``segmentation``, ``edge``, ``regression``.
        num_outputs: classes (multiclass, segmentation), labels (multilabel), values (regression);
            1 for binary and edge.
        class_names: optional names of the classes or labels, for plots and confusion matrices.
        description: one sentence for tables and plots.
        pos_weight: weight of the positive entries in the binary cross-entropy of binary, multilabel and
            edge tasks (default 1: the plain loss). Boundary pixels are rare (about 5% of a MultiShapes
            image), so a network that predicts "no boundary" everywhere already has a small loss;
            ``pos_weight`` near ``negatives / positives`` gives both classes the same total weight, as the
            class-balanced loss of HED does (Xie and Tu, ICCV 2015); MultiShapes' ``edges`` task uses 18. The
            mean is still over the labelled entries, so a larger ``pos_weight`` also makes the loss larger.

    Example:
        >>> task = Task("shape", "multiclass", 4)
        >>> task.primary_metric, task.higher_is_better
        ('accuracy', True)
        >>> task.loss(torch.zeros(2, 4), torch.tensor([0, -1]))  # the second label is missing
        tensor(1.3863)

    Used in chapter 00.
    """

    name: str
    kind: str
    num_outputs: int
    class_names: tuple[str, ...] | None = None
    description: str = ""
    pos_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Task {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.num_outputs < 1:
            raise ValueError(f"Task {self.name!r}: num_outputs must be at least 1, got {self.num_outputs}")
        if self.kind in ("binary", "edge") and self.num_outputs != 1:
            raise ValueError(
                f"Task {self.name!r}: a {self.kind} task has num_outputs=1 (one logit per "
                f"{'pixel' if self.kind == 'edge' else 'image'}), got {self.num_outputs}"
            )
        if self.kind in ("multiclass", "segmentation") and self.num_outputs < 2:
            raise ValueError(f"Task {self.name!r}: a {self.kind} task needs at least 2 classes")
        if self.class_names is not None and len(self.class_names) != self.num_outputs:
            raise ValueError(
                f"Task {self.name!r}: {len(self.class_names)} class_names for {self.num_outputs} outputs"
            )
        if not self.pos_weight > 0:
            raise ValueError(f"Task {self.name!r}: pos_weight must be positive, got {self.pos_weight}")
        if self.pos_weight != 1 and self.kind not in BCE_KINDS:
            raise ValueError(
                f"Task {self.name!r}: pos_weight weighs the positive entries of a binary cross-entropy, used by "
                f"kinds {BCE_KINDS}; a {self.kind} task has none, so leave pos_weight at 1"
            )

    @property
    def metrics(self) -> tuple[str, ...]:
        """Names of the metrics reported for this task, the primary one first."""
        return METRICS[self.kind]

    @property
    def primary_metric(self) -> str:
        """The metric used to compare models on this task."""
        return METRICS[self.kind][0]

    @property
    def higher_is_better(self) -> bool:
        """Whether a larger primary metric is better."""
        return self.primary_metric not in LOWER_IS_BETTER

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Mean loss over the labelled entries of a batch; missing labels are skipped.

        Cross-entropy for multiclass and segmentation, binary cross-entropy with logits for binary,
        multilabel and edge (``pos_weight`` on the positive entries), mean squared error for regression:
        :meth:`summed_loss` divided by the number of labelled entries. A batch with no label at all gives a
        loss of 0 that still depends on ``output``, so every parameter gets a (zero) gradient.
        """
        total, count = self.summed_loss(output, target)
        return total / count.clamp_min(1)

    def summed_loss(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """The loss summed over the labelled entries of a batch, and how many entries that is.

        An entry is an image (multiclass, binary), a pixel (segmentation, edge) or one value (multilabel,
        regression). Summing both numbers over the batches of a split and dividing gives the split's mean
        loss, which, unlike a mean of per-batch means, does not depend on the batch size when labels are
        missing.

        Example:
            >>> Task("c", "multiclass", 2).summed_loss(torch.zeros(3, 2), torch.tensor([0, 1, -1]))
            (tensor(1.3863), tensor(2))
        """
        labelled = self.labelled(target)  # like target
        count = labelled.sum()
        if self.kind in ("multiclass", "segmentation"):
            return F.cross_entropy(output, target, ignore_index=-1, reduction="sum"), count
        if self.kind == "binary" and output.dim() == 2:
            output = output.squeeze(1)  # [B, 1] -> [B]
        output, target = output[labelled], target[labelled]  # [n] labelled entries only
        if self.kind == "regression":
            return F.mse_loss(output, target, reduction="sum"), count
        pos_weight = None  # the plain loss, exactly as without the option
        if self.pos_weight != 1:
            pos_weight = torch.tensor(self.pos_weight, dtype=output.dtype, device=output.device)
        loss = F.binary_cross_entropy_with_logits(output, target, reduction="sum", pos_weight=pos_weight)
        return loss, count

    def labelled(self, target: Tensor) -> Tensor:
        """Which entries of ``target`` carry a label: booleans shaped like ``target`` (``-1`` or ``nan`` is missing).

        Example:
            >>> Task("r", "regression", 2).labelled(torch.tensor([[0.5, float("nan")]]))
            tensor([[ True, False]])
        """
        if self.kind in ("multiclass", "segmentation"):
            return target != -1
        return ~torch.isnan(target)


def as_task_dict(tasks: dict[str, Task] | list[Task] | tuple[Task, ...] | Task) -> dict[str, Task]:
    """Normalise one task, a list of tasks or a dict of tasks to a dict keyed by task name."""
    if isinstance(tasks, Task):
        tasks = [tasks]
    items = list(tasks.values()) if isinstance(tasks, dict) else list(tasks)
    if not items:
        raise ValueError("at least one task is needed, got none")
    if not all(isinstance(t, Task) for t in items):
        raise ValueError(f"tasks must be Task objects, got {[type(t).__name__ for t in items]}")
    names = [t.name for t in items]
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique, got {names}")
    return {t.name: t for t in items}


def select_tasks(available: dict[str, Task], names: list[str] | tuple[str, ...] | None) -> dict[str, Task]:
    """Pick tasks by name, in the order given, with an error that lists the valid names.

    Example:
        >>> tasks = {"shape": Task("shape", "multiclass", 4), "size": Task("size", "regression", 1)}
        >>> list(select_tasks(tasks, ["size"]))
        ['size']
    """
    if names is None:
        return dict(available)
    if isinstance(names, str):
        names = [names]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; valid task names are {sorted(available)}")
    return {n: available[n] for n in names}
