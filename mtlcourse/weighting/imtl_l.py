"""IMTL-L: learnable loss scales that make every scaled loss equal to 1."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtlcourse.weighting.base import (
    LossWeighting,
    check_losses,
    check_num_tasks,
    check_positive,
    check_task_count,
)


class IMTLL(LossWeighting):
    r"""Impartial loss weighting: learn scales that bring every task loss to the same value, 1.

    Each task gets a learnable log-scale :math:`s_t` (initialised to 0, weight 1), trained together with
    the model on

    .. math:: \mathcal{L}(\theta, s) = \sum_{t=1}^{T} e^{s_t} \, L_t(\theta) - s_t

    Setting the derivative in :math:`s_t` to zero gives :math:`e^{s_t} L_t = 1`: at the optimum every
    scaled loss equals 1, whatever the scale of the raw loss, and the weight is :math:`e^{s_t} = 1/L_t`.
    It is uncertainty weighting with :math:`s \to -s` (the same optimum), written as a loss *scale*
    rather than a variance; the paper pairs it with IMTL-G, which balances the gradients.

    Reference: Liu, Li, Kuang, Xue, Chen, Yang, Liao and Zhang, "Towards Impartial Multi-task Learning",
    ICLR 2021 (the loss-balancing half, IMTL-L).

    Args:
        num_tasks: the number of tasks ``T``; one log-scale each.
        lr: the learning rate of the log-scales in :func:`mtlcourse.train.fit`'s optimiser (default ``None``:
            the model's). A learned weight moves about ``lr`` per Adam step, so in a short run it stays near
            its start unless its learning rate is larger than the network's.

    Shape:
        losses: ``[T]``. Returns a scalar. ``last_weights`` is :math:`e^{s}`, ``[T]``.

    The log-scales are an ``nn.Parameter``, trained by the optimiser of :func:`mtlcourse.train.fit`.

    Example:
        >>> method = IMTLL(2)
        >>> method(torch.tensor([1.0, 3.0]))
        tensor(4., grad_fn=<SumBackward0>)
        >>> method.last_weights
        tensor([1., 1.])

    Used in chapter 05.
    """

    def __init__(self, num_tasks: int, lr: float | None = None) -> None:
        super().__init__()
        check_task_count(num_tasks)
        if lr is not None:
            check_positive("lr", lr)
        self.num_tasks = num_tasks
        self.lr = lr
        self.log_scales = nn.Parameter(torch.zeros(num_tasks))  # [T] s_t

    def weights(self, losses: Tensor) -> Tensor:
        return torch.exp(self.log_scales.detach()).to(losses)  # [T]

    def forward(self, losses: Tensor) -> Tensor:
        check_losses(losses)
        check_num_tasks(self, self.num_tasks, losses)
        s = self.log_scales  # [T]
        self.last_weights = torch.exp(s.detach())  # [T]
        return (torch.exp(s) * losses - s).sum()

    def reset(self) -> None:
        super().reset()
        with torch.no_grad():
            self.log_scales.zero_()

    def hyperparameters(self) -> dict[str, object]:
        return {"num_tasks": self.num_tasks, "lr": self.lr}
