"""Mean: the average of the task gradients, the baseline every aggregator is compared with."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlcourse.aggregation.base import Aggregator, check_jacobian


class Mean(Aggregator):
    r"""The mean of the task gradients: exactly what backpropagating the mean of the losses gives.

    .. math:: d = \frac{1}{T} \sum_{t=1}^{T} g_t = \frac{1}{T} J^\top \mathbf{1}

    The aggregator form of equal weighting. It promises nothing about conflicts: when two gradients point
    against each other, ``d`` can increase one of the two losses (``g_t^T d < 0``), and a task with a large
    gradient dominates. Those two failure modes are what the other aggregators try to fix.

    Args:
        level: ``"parameters"`` (default) or ``"representation"``; see :class:`~mtlcourse.aggregation.base.Aggregator`.

    Shape:
        jacobian: ``[T, P]``; returns ``[P]``. ``last_weights`` is ``[T]``, every entry ``1 / T``.

    Example:
        >>> Mean()(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        tensor([0.5000, 1.0000])

    Used in chapter 06.
    """

    def forward(self, jacobian: Tensor, losses: Tensor | None = None) -> Tensor:
        check_jacobian(jacobian)
        T = jacobian.shape[0]
        self.last_weights = torch.full((T,), 1.0 / T, dtype=jacobian.dtype, device=jacobian.device)  # [T]
        return jacobian.mean(dim=0)  # [P]
