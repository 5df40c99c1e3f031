r"""Task affinity (which tasks help each other) and task grouping (which tasks to train together).

Two measures of how tasks interact through the shared parameters :math:`\theta_s`:

- **Gradient cosine** (chapter 07): with :math:`g_i = \nabla_{\theta_s} L_i` the rows of the Jacobian,

  .. math:: C_{ij} = \frac{g_i^\top g_j}{\lVert g_i \rVert \, \lVert g_j \rVert}

  A negative :math:`C_{ij}` means that, to first order, a step on task :math:`i` raises task :math:`j`'s
  loss: the tasks' gradients conflict (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020).

- **Lookahead inter-task affinity** (Fifty, Amid, Zhao, Yu, Anil and Finn, "Efficiently Identifying Task
  Groupings for Multi-Task Learning", NeurIPS 2021): take one SGD step of the shared parameters along task
  :math:`i`'s gradient alone and see how much task :math:`j`'s loss on the same batch falls,

  .. math:: \theta_s^{+i} = \theta_s - \eta\, \nabla_{\theta_s} L_i(\theta_s), \qquad
      Z_{ij} = 1 - \frac{L_j(\theta_s^{+i})}{L_j(\theta_s)}

  :math:`Z_{ij} > 0`: the step on task :math:`i` lowered task :math:`j`'s loss (it helps :math:`j`);
  :math:`Z_{ij} < 0`: it raised it. Unlike the cosine it measures the actual change of the loss, not a
  first-order guess, and it is averaged over the steps of a training run (:class:`AffinityRecorder`).

**Grouping** (Fifty et al., section 3.3): to split :math:`T` tasks into groups that are trained together,
score a partition by how much each task gains from the other members of its group,

.. math:: \mathrm{score}(G_1, \dots, G_k) = \sum_{g=1}^{k} \sum_{j \in G_g}
    \frac{1}{|G_g| - 1} \sum_{i \in G_g,\, i \ne j} Z_{ij}

(a task alone in its group gains 0): the total inter-task affinity of the paper, which picks the
partition with the highest score. :func:`best_groups` searches every partition into ``num_groups``
non-empty groups; :func:`score_groupings` lists them all with their scores.

Used in chapters 07 (:func:`gradient_cosines`) and 09.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.func import functional_call

from mtlcourse.backward import per_task_gradients, task_losses
from mtlcourse.models.base import MultiTaskModel
from mtlcourse.utils import is_whole_number

#: The most tasks :func:`best_groups` searches exhaustively (the partitions of 8 tasks number 4,140).
MAX_GROUPING_TASKS = 8


def gradient_cosines(J: Tensor) -> Tensor:
    r"""The cosine similarity of every pair of rows of a Jacobian: ``[T, P]`` -> ``[T, T]``.

    .. math:: C_{ij} = \frac{g_i^\top g_j}{\lVert g_i \rVert \, \lVert g_j \rVert}

    A zero row (a task whose loss does not depend on these parameters, or a batch without its labels) has
    no direction: its cosines, including the one with itself, are 0, not ``nan``.

    Example:
        >>> gradient_cosines(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]))
        tensor([[1.0000, 0.7071, 0.0000],
                [0.7071, 1.0000, 0.0000],
                [0.0000, 0.0000, 0.0000]])

    Used in chapter 07.
    """
    if J.dim() != 2:
        raise ValueError(f"J must be a [T, P] matrix, one gradient per row, got shape {tuple(J.shape)}")
    norms = J.norm(dim=1, keepdim=True)  # [T, 1]
    unit = J / torch.where(norms > 0, norms, torch.ones_like(norms))  # [T, P]; a zero row stays zero
    return unit @ unit.T  # [T, T]


def lookahead_affinity(
    model: MultiTaskModel, images: Tensor, targets: dict[str, Tensor], lr: float
) -> Tensor:
    r"""The lookahead inter-task affinity ``Z`` ``[T, T]`` of one batch (Fifty et al., NeurIPS 2021).

    .. math:: Z_{ij} = 1 - \frac{L_j\big(\theta_s - \eta \nabla_{\theta_s} L_i\big)}{L_j(\theta_s)}

    Row ``i`` is the task whose gradient the step follows, column ``j`` the task whose loss is measured,
    both on this batch; tasks are in the order of ``model.tasks``. Only the shared parameters
    (``model.shared_parameters()``) move; the heads keep their weights, as in the paper.

    The model is not changed: the stepped parameters are passed to a functional call
    (:func:`torch.func.functional_call`), so no weight, gradient or buffer of the model moves. Batch norm:
    every pass runs in training mode, as the training step whose effect the lookahead measures does (the
    paper computes it inside the training step), so batch norm normalises with this batch's statistics;
    its running statistics are not updated, because the passes use copies of the buffers. The modules'
    modes are restored afterwards.

    Args:
        model: a :class:`~mtlcourse.models.base.MultiTaskModel`.
        images: a batch ``[B, C, H, W]`` on the model's device.
        targets: ``{task: target}`` for every task of the model.
        lr: the learning rate :math:`\eta` of the lookahead step (the paper uses the training one).

    Returns:
        ``Z`` ``[T, T]``, detached. A task without a label in the batch has a loss of 0, and its column is
        ``nan`` (a change relative to 0 is undefined).

    Example:
        >>> from mtlcourse.models import HardParameterSharing, SmallCNN
        >>> from mtlcourse.tasks import Task
        >>> _ = torch.manual_seed(0)
        >>> model = HardParameterSharing(SmallCNN(width=4), [Task("a", "regression", 1), Task("b", "binary", 1)])
        >>> images, targets = torch.rand(8, 3, 32, 32), {"a": torch.rand(8, 1), "b": torch.ones(8)}
        >>> Z = lookahead_affinity(model, images, targets, lr=0.01)
        >>> Z.shape, bool(Z[0, 0] > 0) and bool(Z[1, 1] > 0)  # a small step on a task lowers its own loss
        (torch.Size([2, 2]), True)

    Used in chapter 09.
    """
    return lookahead_and_cosines(model, images, targets, lr)[0]


def lookahead_and_cosines(
    model: MultiTaskModel, images: Tensor, targets: dict[str, Tensor], lr: float
) -> tuple[Tensor, Tensor]:
    r"""The lookahead affinity ``Z`` and the gradient cosines ``C`` of one batch, from the same gradients.

    :func:`lookahead_affinity` needs every task's gradient on the shared parameters, the rows of the
    Jacobian :math:`J`; their cosines (:func:`gradient_cosines`) then cost nothing more. Both are detached
    ``[T, T]`` matrices with the tasks in the order of ``model.tasks``; the arguments, the model's state and
    the ``nan`` column of a task without labels are as in :func:`lookahead_affinity` (the cosines of such a
    task, whose gradient is zero, are 0).

    Example:
        >>> from mtlcourse.models import HardParameterSharing, SmallCNN
        >>> from mtlcourse.tasks import Task
        >>> _ = torch.manual_seed(0)
        >>> model = HardParameterSharing(SmallCNN(width=4), [Task("a", "regression", 1), Task("b", "binary", 1)])
        >>> images, targets = torch.rand(8, 3, 32, 32), {"a": torch.rand(8, 1), "b": torch.ones(8)}
        >>> Z, C = lookahead_and_cosines(model, images, targets, lr=0.01)
        >>> torch.equal(Z, lookahead_affinity(model, images, targets, lr=0.01)), C.diagonal().tolist()
        (True, [1.0, 1.0])

    Used in chapter 09.
    """
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    params = dict(model.named_parameters())
    names = {id(p): name for name, p in params.items()}
    shared = {names[id(p)]: p for p in model.shared_parameters()}
    buffers = {name: b.clone() for name, b in model.named_buffers()}  # copies: running statistics stay put
    modes = [(module, module.training) for module in model.modules()]
    model.train()
    try:
        outputs = functional_call(model, (params, buffers), (images,))
        before = task_losses(outputs, targets, model.tasks)  # [T]
        grads = per_task_gradients(before, list(shared.values()))  # one [T, *p.shape] per shared parameter
        J = torch.cat([g.reshape(len(model.tasks), -1) for g in grads], dim=1)  # [T, P]
        rows = []
        with torch.no_grad():
            for i in range(len(model.tasks)):
                stepped = {name: p - lr * g[i] for (name, p), g in zip(shared.items(), grads)}
                outputs = functional_call(model, ({**params, **stepped}, buffers), (images,))
                rows.append(task_losses(outputs, targets, model.tasks))  # [T] losses after a step on task i
    finally:
        for module, training in modes:
            module.training = training
    after = torch.stack(rows)  # [T, T]: row i, the losses after the step on task i
    Z = 1 - after / before.detach()[None, :]  # [T, T]; 0 / 0 gives nan for a task without labels
    return Z, gradient_cosines(J.detach())  # [T, T] each


class AffinityRecorder:
    r"""Average the lookahead affinity (:func:`lookahead_affinity`) over the steps of a training run.

    .. math:: \bar Z_{ij} = \frac{1}{|S|} \sum_{t \in S} Z^{(t)}_{ij}

    over the recorded steps :math:`S` (every ``every``-th call of :meth:`step`), as Fifty et al. average
    :math:`Z` over training. A ``nan`` (a task without labels in a batch) is left out of its cell's mean.
    The gradient cosines of the same steps' gradients come free (:func:`lookahead_and_cosines`) and are
    averaged the same way (:meth:`mean_cosines`); a task without labels in a batch is left out of them too.
    Inside :func:`~mtlcourse.train.fit`, record it with ``on_step=lambda s: recorder.step(s.model, s.images,
    s.targets)`` (called before each update, on that update's batch); the example below writes the loop by
    hand.

    Args:
        lr: the learning rate of the lookahead step (usually the training one).
        every: record one step in ``every`` (default 1, every step); the lookahead costs ``T`` forward
            passes and ``T`` backward passes, so recording every 5 or 10 steps keeps training fast.

    Example:
        >>> from mtlcourse.backward import mtl_step
        >>> from mtlcourse.models import HardParameterSharing, SmallCNN
        >>> from mtlcourse.tasks import Task
        >>> from mtlcourse.weighting import EqualWeighting
        >>> _ = torch.manual_seed(0)
        >>> model = HardParameterSharing(SmallCNN(width=4), [Task("a", "regression", 1), Task("b", "binary", 1)])
        >>> images, targets = torch.rand(8, 3, 32, 32), {"a": torch.rand(8, 1), "b": torch.ones(8)}
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        >>> recorder = AffinityRecorder(lr=0.01, every=2)
        >>> for _ in range(4):  # a chapter loops over the batches of its epochs
        ...     _ = recorder.step(model, images, targets)  # before the update: records steps 0 and 2
        ...     optimizer.zero_grad()
        ...     _ = mtl_step(model, images, targets, EqualWeighting())
        ...     optimizer.step()
        >>> recorder.num_recorded, recorder.mean().shape, recorder.mean_cosines().diagonal().tolist()
        (2, torch.Size([2, 2]), [1.0, 1.0])

    Used in chapter 09.
    """

    def __init__(self, lr: float, every: int = 1) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if not is_whole_number(every, 1):
            raise ValueError(f"every must be a whole number, at least 1, got {every!r}")
        self.lr, self.every = lr, every
        self.calls, self.num_recorded = 0, 0
        self.total: Tensor | None = None  # [T, T] sum of the recorded Z, nan counted as 0
        self.counts: Tensor | None = None  # [T, T] how many recorded Z had a number in each cell
        self.cosine_total: Tensor | None = None  # [T, T] sum of the recorded gradient cosines
        self.cosine_counts: Tensor | None = None  # [T, T] how many recorded steps had both tasks labelled

    def step(self, model: MultiTaskModel, images: Tensor, targets: dict[str, Tensor]) -> Tensor | None:
        """Record this batch's affinity if it is the ``every``-th call; return it (or ``None`` if skipped)."""
        self.calls += 1
        if (self.calls - 1) % self.every:
            return None
        return self.record(model, images, targets)

    def record(self, model: MultiTaskModel, images: Tensor, targets: dict[str, Tensor]) -> Tensor:
        """Record this batch's affinity ``[T, T]`` whatever the call count, and return it."""
        Z, C = lookahead_and_cosines(model, images, targets, self.lr)  # [T, T] each
        known = ~torch.isnan(Z)  # [T, T]
        labelled = known.any(dim=0)  # [T]: a task without labels has a column of nan
        both = labelled[:, None] & labelled[None, :]  # [T, T]
        if self.total is None:
            self.total, self.counts = torch.zeros_like(Z), torch.zeros_like(Z)
            self.cosine_total, self.cosine_counts = torch.zeros_like(C), torch.zeros_like(C)
        self.total += torch.where(known, Z, torch.zeros_like(Z))
        self.counts += known
        self.cosine_total += torch.where(both, C, torch.zeros_like(C))
        self.cosine_counts += both
        self.num_recorded += 1
        return Z

    def mean(self) -> Tensor:
        """The mean affinity ``[T, T]`` over the recorded steps (``nan`` in a cell that never had a number)."""
        if self.total is None:
            raise ValueError("nothing recorded yet: call step (or record) inside the training loop first")
        return self.total / self.counts  # [T, T]; 0 / 0 gives nan

    def mean_cosines(self) -> Tensor:
        """The mean gradient cosines ``[T, T]`` over the recorded steps (:func:`gradient_cosines` of each step)."""
        if self.cosine_total is None:
            raise ValueError("nothing recorded yet: call step (or record) inside the training loop first")
        return self.cosine_total / self.cosine_counts  # [T, T]; 0 / 0 gives nan

    def __repr__(self) -> str:
        return f"AffinityRecorder(lr={self.lr}, every={self.every}, recorded={self.num_recorded})"


def partitions(T: int, num_groups: int) -> Iterator[tuple[tuple[int, ...], ...]]:
    """Every partition of the tasks ``0 .. T-1`` into ``num_groups`` non-empty groups, each exactly once.

    Groups are sorted tuples of task indices, ordered by their first task; partitions come in a fixed
    order (task 0 alone first, then task 0 joining each group of the others' partitions).

    Example:
        >>> list(partitions(3, 2))
        [((0,), (1, 2)), ((0, 1), (2,)), ((0, 2), (1,))]
    """
    yield from _partitions(tuple(range(T)), num_groups)


def _partitions(items: tuple[int, ...], k: int) -> Iterator[tuple[tuple[int, ...], ...]]:
    """The partitions of ``items`` into ``k`` non-empty groups (the recursion behind :func:`partitions`)."""
    if k == len(items):
        yield tuple((item,) for item in items)
        return
    if k == 1:
        yield (items,)
        return
    first, rest = items[0], items[1:]
    for partition in _partitions(rest, k - 1):  # the first item alone in its group
        yield ((first,), *partition)
    for partition in _partitions(rest, k):  # the first item joins one of k groups of the others
        for g in range(k):
            joined = ((first, *partition[g]), *partition[:g], *partition[g + 1 :])
            yield tuple(sorted(joined))


def grouping_score(affinity: Tensor, groups: Sequence[Sequence[int]]) -> float:
    r"""The total inter-task affinity of a partition: each task's mean affinity from the rest of its group, summed.

    .. math:: \sum_{G} \sum_{j \in G} \frac{1}{|G| - 1} \sum_{i \in G,\, i \ne j} Z_{ij}

    (0 for a task alone in its group).

    Example:
        >>> Z = torch.tensor([[1.0, 0.2, -0.3], [0.4, 1.0, 0.0], [0.1, 0.1, 1.0]])
        >>> round(grouping_score(Z, [(0, 1), (2,)]), 4)  # task 0 gets 0.4 from task 1, task 1 gets 0.2
        0.6
    """
    total = 0.0
    for group in groups:
        for j in group:
            others = [i for i in group if i != j]
            if others:
                total += float(affinity[others, j].mean())
    return total


def score_groupings(
    affinity: Tensor | Sequence[Sequence[float]], num_groups: int, task_names: Sequence[str] | None = None
) -> list[tuple[tuple[tuple[int | str, ...], ...], float]]:
    """Every partition of the tasks into ``num_groups`` groups with its score, the best first.

    The score is :func:`grouping_score` (the module docstring states it). Partitions with equal scores keep
    the order of :func:`partitions`, so the list is the same on every run; a chapter can check the chosen
    grouping against groups actually trained together.

    Args:
        affinity: ``Z`` ``[T, T]``, row ``i`` the task stepped on, column ``j`` the task measured (as
            returned by :func:`lookahead_affinity` or :meth:`AffinityRecorder.mean`); the diagonal is not
            used. At most :data:`MAX_GROUPING_TASKS` tasks.
        num_groups: the number of non-empty groups, from 1 to ``T``.
        task_names: ``T`` names to describe the groups with (default ``None``: task indices).

    Returns:
        ``[(groups, score), ...]``, ``groups`` a tuple of tuples of task indices (or names).

    Example:
        >>> Z = torch.tensor([[0.0, 0.5, -0.2], [0.4, 0.0, -0.1], [-0.3, -0.2, 0.0]])
        >>> score_groupings(Z, 2, ["shape", "size", "background"])[0]
        ((('shape', 'size'), ('background',)), 0.9)

    Used in chapter 09.
    """
    Z = check_affinity(affinity, num_groups, task_names)
    scored = [(groups, grouping_score(Z, groups)) for groups in partitions(Z.shape[0], num_groups)]
    scored.sort(key=lambda item: -item[1])  # a stable sort: ties keep the order of partitions()
    if task_names is None:
        return scored
    return [(tuple(tuple(task_names[i] for i in group) for group in groups), s) for groups, s in scored]


def best_groups(
    affinity: Tensor | Sequence[Sequence[float]], num_groups: int, task_names: Sequence[str] | None = None
) -> tuple[tuple[tuple[int | str, ...], ...], float]:
    """The partition of the tasks into ``num_groups`` groups with the highest total inter-task affinity.

    An exhaustive search over every partition (:func:`score_groupings`, whose first entry this is): exact,
    and fast for up to :data:`MAX_GROUPING_TASKS` tasks. Fifty et al. search the same score with a
    branch-and-bound over possibly overlapping groups; for the few tasks of this course the exhaustive
    search over disjoint groups is simpler and finds the best partition. Ties go to the partition listed
    first by :func:`partitions`.

    Args:
        affinity: ``Z`` ``[T, T]`` (see :func:`score_groupings`).
        num_groups: the number of non-empty groups, from 1 to ``T``.
        task_names: ``T`` names to describe the groups with (default ``None``: task indices).

    Returns:
        ``(groups, score)``.

    Example:
        >>> Z = torch.tensor([[0.0, 0.5, -0.2], [0.4, 0.0, -0.1], [-0.3, -0.2, 0.0]])
        >>> best_groups(Z, 2)  # tasks 0 and 1 help each other; task 2 helps nobody
        (((0, 1), (2,)), 0.9)

    Used in chapter 09.
    """
    return score_groupings(affinity, num_groups, task_names)[0]


def check_affinity(
    affinity: Tensor | Sequence[Sequence[float]], num_groups: int, task_names: Sequence[str] | None
) -> Tensor:
    """The affinity as a float64 ``[T, T]`` tensor, after checking what grouping needs; ``ValueError`` if not."""
    Z = torch.as_tensor(affinity, dtype=torch.float64).detach().cpu()  # [T, T]
    if Z.dim() != 2 or Z.shape[0] != Z.shape[1] or Z.shape[0] == 0:
        raise ValueError(f"affinity must be a square [T, T] matrix, got shape {tuple(Z.shape)}")
    T = Z.shape[0]
    if T > MAX_GROUPING_TASKS:
        raise ValueError(
            f"best_groups searches every partition, which is fast for up to {MAX_GROUPING_TASKS} tasks; got "
            f"{T} (the partitions of 12 tasks number over 4 million): group a subset of the tasks"
        )
    if not is_whole_number(num_groups, 1, T):
        raise ValueError(
            f"num_groups must be a whole number from 1 to {T}, the number of tasks, got {num_groups!r}"
        )
    off_diagonal = ~torch.eye(T, dtype=torch.bool)  # [T, T]
    if not bool(torch.isfinite(Z[off_diagonal]).all()):
        raise ValueError(
            "affinity has non-finite entries off its diagonal (a task without labels in every recorded batch "
            "gives nan): record more batches, or leave that task out"
        )
    if task_names is not None and len(task_names) != T:
        raise ValueError(f"{len(task_names)} task_names for a {T} x {T} affinity matrix")
    return Z


__all__ = [
    "MAX_GROUPING_TASKS",
    "AffinityRecorder",
    "best_groups",
    "gradient_cosines",
    "grouping_score",
    "lookahead_affinity",
    "lookahead_and_cosines",
    "partitions",
    "score_groupings",
]
