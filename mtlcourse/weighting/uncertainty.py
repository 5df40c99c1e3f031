"""Uncertainty weighting: one learnable log-variance per task."""

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


class UncertaintyWeighting(LossWeighting):
    r"""Weights each task by a learned precision, with a log-variance term that stops it going to zero.

    Each task gets a learnable log-variance :math:`s_t = \log \sigma_t^2` (initialised to 0, weight 1),
    trained together with the model on

    .. math:: \mathcal{L}(\theta, s) = \sum_{t=1}^{T} e^{-s_t} \, L_t(\theta) + s_t

    For fixed losses the minimum over :math:`s_t` is at :math:`s_t = \log L_t`, where the weight
    :math:`e^{-s_t} = 1 / L_t`: a task with a large (or noisy, hence large on average) loss is weighted
    down. The term :math:`s_t` is what keeps the weights from collapsing to zero.

    Which form: the paper derives :math:`\frac{1}{2\sigma^2} L + \log\sigma` for a regression task (a
    Gaussian likelihood) and :math:`\frac{1}{\sigma^2} L + \log\sigma` for a classification task. With
    :math:`s = \log\sigma^2` the regression form is :math:`\frac{1}{2}(e^{-s} L + s)`: exactly half of the
    objective above, with the same minimiser :math:`s_t = \log L_t`; with Adam, which ignores a constant
    factor in the gradient, the :math:`\frac{1}{2}` changes nothing. Following common practice we use this
    one form for every kind of task (the classification form would move the optimum to
    :math:`\log 2L_t`), so the method does not need to know the task kinds.

    Reference: Kendall, Gal and Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene
    Geometry and Semantics", CVPR 2018.

    Args:
        num_tasks: the number of tasks ``T``; one log-variance each.
        lr: the learning rate of the log-variances in :func:`mtlcourse.train.fit`'s optimiser (default ``None``:
            the model's). A learned weight moves about ``lr`` per Adam step, so in a short run it stays near
            its start unless its learning rate is larger than the network's.

    Shape:
        losses: ``[T]``. Returns a scalar. ``last_weights`` is :math:`e^{-s}`, ``[T]``.

    The log-variances are an ``nn.Parameter``: :func:`mtlcourse.train.fit` adds them to its optimiser, so
    they are trained by the same Adam as the model. Outside ``fit``, put ``method.parameters()`` in the
    optimiser yourself.

    Example:
        >>> method = UncertaintyWeighting(2)
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
        self.log_vars = nn.Parameter(torch.zeros(num_tasks))  # [T] s_t = log sigma_t^2

    def weights(self, losses: Tensor) -> Tensor:
        return torch.exp(-self.log_vars.detach()).to(losses)  # [T]

    def forward(self, losses: Tensor) -> Tensor:
        check_losses(losses)
        check_num_tasks(self, self.num_tasks, losses)
        s = self.log_vars  # [T]
        self.last_weights = torch.exp(-s.detach())  # [T]
        return (torch.exp(-s) * losses + s).sum()

    def reset(self) -> None:
        super().reset()
        with torch.no_grad():
            self.log_vars.zero_()

    def hyperparameters(self) -> dict[str, object]:
        return {"num_tasks": self.num_tasks, "lr": self.lr}
