"""Fixed weights chosen by hand, and the sweep of the trade-off between two tasks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtlcourse.weighting.base import LossWeighting, check_num_tasks


class FixedWeighting(LossWeighting):
    r"""Constant, hand-chosen weights.

    .. math:: \mathcal{L} = \sum_{t=1}^{T} \lambda_t \, L_t

    Args:
        weights: one non-negative weight per task, in the order of the model's tasks.

    Example:
        >>> FixedWeighting([0.25, 0.75])(torch.tensor([2.0, 4.0]))
        tensor(3.5000)

    Used in chapter 04.
    """

    def __init__(self, weights: Sequence[float]) -> None:
        super().__init__()
        values = [float(v) for v in weights]
        if not values or any(not v >= 0 for v in values):
            raise ValueError(f"weights must be a non-empty list of non-negative numbers, got {list(weights)}")
        self.register_buffer("fixed", torch.tensor(values))

    def weights(self, losses: Tensor) -> Tensor:
        check_num_tasks(self, self.fixed.numel(), losses)
        return self.fixed.to(losses)  # [T]

    def hyperparameters(self) -> dict[str, object]:
        return {"weights": self.fixed.tolist()}


def tradeoff_weights(num: int = 11) -> list[tuple[float, float]]:
    r"""Weight pairs :math:`(1 - \lambda, \lambda)` for ``num`` values of :math:`\lambda` from 0 to 1.

    The sweep of chapter 04: training one model per pair traces the trade-off between two tasks.

    Example:
        >>> tradeoff_weights(3)
        [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)]
    """
    if num < 2:
        raise ValueError(f"num must be at least 2 to span the trade-off, got {num}")
    lambdas = torch.linspace(0, 1, num).tolist()
    return [(round(1.0 - lam, 6), round(lam, 6)) for lam in lambdas]
