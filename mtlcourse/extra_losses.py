r"""Extra loss terms that read the outputs of several tasks, such as a consistency loss between predictions.

A task loss compares one head's output with that task's target. Some useful terms are not of that form: a
*consistency loss* asks two heads to agree with each other (the shapes a segmentation head finds should be
the shapes the attributes head says are present), whatever the targets. An :class:`ExtraLoss` is such a term:
a function of the outputs (and targets) of the tasks it names, returning a scalar, with a fixed weight
:math:`\lambda`. ``fit(..., extra_losses=[...])`` adds it to every training step, and records its mean value
per epoch in ``History.extra_loss``.

How it combines with a multi-task method. With task losses :math:`L_1, \dots, L_T`, the method's update
:math:`d` (the gradient of its weighted sum, or its aggregated direction), and terms :math:`E_k`, the
parameters get

.. math:: g = d(L_1, \dots, L_T) + \sum_k \lambda_k \nabla_\theta E_k ,

the term's gradient *added after the method*, never weighed or aggregated by it. This is the simplest rule
that stays honest: a method is defined on the :math:`T` task losses (uncertainty weighting gives each a
likelihood, DWA and FAMO track each one's rate of descent, MGDA balances their gradients), and an extra term
is no task: it has no head, no target of its own, no metric, and its minimum may be a trivial agreement that
no method should chase. Turning it into a :math:`(T+1)`-th task would change what every method computes;
adding it after leaves every method exactly as it is and gives the term the weight the user chose. The cost:
under a gradient-aggregation method the term's gradient is not projected, so it may conflict with a task's
gradient, which a chapter can measure.

Used in chapter 11.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor


class ExtraLoss:
    r"""A loss term :math:`\lambda\, E(\text{outputs}, \text{targets})` over several tasks, added to training.

    The function receives two dicts holding only the tasks in ``tasks``: the model's outputs (attached to
    the graph) and the batch's targets (missing labels as in :mod:`mtlcourse.tasks`), and returns a scalar
    tensor. Its gradient is added to the multi-task method's update, as the module docstring explains.
    After every call, ``last_value`` holds the unweighted value :math:`E` (detached).

    Args:
        name: the term's name, its key in ``History.extra_loss``.
        fn: ``fn(outputs, targets) -> scalar tensor``.
        tasks: the names of the tasks whose outputs and targets ``fn`` reads (at least one).
        weight: :math:`\lambda`, finite and at least 0.

    Example:
        >>> from mtlcourse.tasks import Task
        >>> def agree(outputs, targets):  # two regression heads that should predict the same value
        ...     return (outputs["a"] - outputs["b"]).pow(2).mean()
        >>> term = ExtraLoss("agree", agree, tasks=["a", "b"], weight=0.5)
        >>> term({"a": torch.ones(4, 1), "b": torch.zeros(4, 1), "c": torch.zeros(4, 1)}, {})
        tensor(1.)
        >>> term
        ExtraLoss('agree', tasks=('a', 'b'), weight=0.5)

    Used in chapter 11.
    """

    def __init__(
        self,
        name: str,
        fn: Callable[[dict[str, Tensor], dict[str, Tensor]], Tensor],
        tasks: Sequence[str],
        weight: float = 1.0,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"an ExtraLoss needs a name (a non-empty string), got {name!r}")
        if not callable(fn):
            raise ValueError(f"ExtraLoss {name!r}: fn must be a function (outputs, targets) -> scalar")
        tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
        if not tasks:
            raise ValueError(f"ExtraLoss {name!r}: name the tasks whose outputs fn reads, tasks=[...]")
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
            raise ValueError(f"ExtraLoss {name!r}: weight must be finite and at least 0, got {weight!r}")
        self.name, self.fn, self.tasks, self.weight = name, fn, tasks, float(weight)
        self.last_value: Tensor | None = None

    def __repr__(self) -> str:
        return f"ExtraLoss({self.name!r}, tasks={self.tasks!r}, weight={self.weight:g})"

    def __call__(self, outputs: dict[str, Tensor], targets: dict[str, Tensor]) -> Tensor:
        """The unweighted term :math:`E` (a scalar, still attached to the graph), checked to be finite."""
        value = self.fn(
            {name: outputs[name] for name in self.tasks},
            {name: targets[name] for name in self.tasks if name in targets},
        )
        if not isinstance(value, Tensor) or value.dim() != 0:
            got = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"ExtraLoss {self.name!r}: fn must return a scalar tensor (shape []), got {got}")
        if not bool(torch.isfinite(value)):
            raise FloatingPointError(f"non-finite value {value.item()} of the extra loss {self.name!r}")
        self.last_value = value.detach()
        return value


def check_extra_losses(terms: Sequence[ExtraLoss], task_names: Sequence[str]) -> None:
    """Raise ``ValueError`` unless ``terms`` are :class:`ExtraLoss` objects with unique names over known tasks.

    Example:
        >>> check_extra_losses([ExtraLoss("e", lambda o, t: o["a"].sum(), ["a"])], ["a", "b"])
        >>> check_extra_losses([ExtraLoss("e", lambda o, t: o["x"].sum(), ["x"])], ["a", "b"])
        Traceback (most recent call last):
        ...
        ValueError: extra loss 'e' reads task(s) ['x'] that the model does not have; the model's tasks are ['a', 'b']
    """
    not_terms = [type(term).__name__ for term in terms if not isinstance(term, ExtraLoss)]
    if not_terms:
        raise ValueError(
            f"extra_losses must be a list of mtlcourse.extra_losses.ExtraLoss, got {not_terms}; wrap a "
            "function as ExtraLoss(name, fn, tasks=[...], weight=...)"
        )
    names = [term.name for term in terms]
    if len(set(names)) != len(names):
        raise ValueError(f"the extra losses need distinct names, got {names}")
    for term in terms:
        unknown = [name for name in term.tasks if name not in task_names]
        if unknown:
            raise ValueError(
                f"extra loss {term.name!r} reads task(s) {unknown} that the model does not have; the model's "
                f"tasks are {list(task_names)}"
            )
