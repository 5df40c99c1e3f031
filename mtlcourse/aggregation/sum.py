"""Sum: the sum of the task gradients, what backpropagating the summed loss gives."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlcourse.aggregation.base import Aggregator, check_jacobian


class Sum(Aggregator):
    r"""The sum of the task gradients: exactly what backpropagating the sum of the losses gives.

    .. math:: d = \sum_{t=1}^{T} g_t = J^\top \mathbf{1}

    :class:`~mtlcourse.aggregation.mean.Mean` times ``T``: the same direction, a step ``T`` times longer for the same learning rate. It
    is the aggregator form of :class:`mtlcourse.weighting.equal.EqualWeighting`.

    Args:
        level: ``"parameters"`` (default) or ``"representation"``; see :class:`~mtlcourse.aggregation.base.Aggregator`.

    Shape:
        jacobian: ``[T, P]``; returns ``[P]``. ``last_weights`` is ``[T]``, every entry 1.

    Example:
        >>> Sum()(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        tensor([1., 2.])

    Used in chapter 06.
    """

    def forward(self, jacobian: Tensor, losses: Tensor | None = None) -> Tensor:
        check_jacobian(jacobian)
        T = jacobian.shape[0]
        self.last_weights = torch.ones(T, dtype=jacobian.dtype, device=jacobian.device)  # [T]
        return jacobian.sum(dim=0)  # [P]
