"""Geometric loss strategy: the geometric mean of the task losses."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlcourse.weighting.base import LossWeighting, check_losses, check_positive_losses


class GLS(LossWeighting):
    r"""Geometric loss strategy: minimise the geometric mean of the task losses.

    .. math::

        \mathcal{L} = \Big(\prod_{t=1}^{T} L_t\Big)^{1/T}
                    = \exp\Big(\frac{1}{T} \sum_{t=1}^{T} \log L_t\Big), \qquad
        w_t = \frac{\partial \mathcal{L}}{\partial L_t} = \frac{\mathcal{L}}{T \, L_t}

    The product is computed in log space: a product of many small losses underflows to 0 (and of large
    ones overflows), while the mean of their logarithms does not. The effective weight :math:`w_t` is
    inversely proportional to the task's own loss, so a task whose loss is already small is pushed as hard,
    relative to its loss, as one whose loss is large: the method is invariant to the scale of each loss
    (multiplying :math:`L_t` by a constant multiplies :math:`\mathcal{L}` by a constant). ``last_weights``
    holds these effective weights.

    Reference: Chennupati, Sistu, Yogamani and Rawashdeh, "MultiNet++: Multi-Stream Feature Aggregation
    and Geometric Loss Strategy for Multi-Task Learning", CVPR Workshops 2019.

    Shape:
        losses: ``[T]``, positive. Returns a scalar; ``last_weights``: ``[T]``.

    Example:
        >>> method = GLS()
        >>> method(torch.tensor([1.0, 4.0]))
        tensor(2.)
        >>> method.last_weights
        tensor([1.0000, 0.2500])

    Used in chapter 05.
    """

    def weights(self, losses: Tensor) -> Tensor:
        check_losses(losses)
        check_positive_losses(self, losses)
        gls = losses.log().mean().exp()  # scalar, the geometric mean
        return gls / (losses.numel() * losses)  # [T]

    def forward(self, losses: Tensor) -> Tensor:
        self.last_weights = self.weights(losses.detach())  # [T]
        return torch.exp(losses.log().mean())
