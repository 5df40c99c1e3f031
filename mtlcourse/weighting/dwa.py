"""Dynamic Weight Average: weight each task by how slowly its loss has been falling."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlcourse.weighting.base import LossWeighting, check_losses, check_num_tasks, check_positive


class DWA(LossWeighting):
    r"""Dynamic Weight Average: a task whose epoch loss fell less in the last epoch gets more weight.

    With :math:`L_t(e)` the mean training loss of task :math:`t` over epoch :math:`e` and temperature
    :math:`\tau`, the weights during epoch :math:`e` are

    .. math::

        r_t = \frac{L_t(e-1)}{L_t(e-2)}, \qquad
        w_t = \frac{T \exp(r_t / \tau)}{\sum_{i=1}^{T} \exp(r_i / \tau)}

    so the weights always sum to :math:`T`. A ratio near 1 means the loss has stalled; a small ratio
    means it is falling fast. A larger :math:`\tau` makes the weights more equal. During the first two
    epochs there is no ratio yet and every weight is 1. The weights only change between epochs:
    :meth:`~mtlcourse.weighting.base.LossWeighting.on_epoch_end` (called by :func:`mtlcourse.train.fit`) records each epoch's mean losses.

    Reference: Liu, Johns and Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019.

    Args:
        temperature: :math:`\tau`, positive; the paper uses 2.

    Shape:
        losses: ``[T]``. Returns a scalar. ``epoch_losses`` given to :meth:`~mtlcourse.weighting.base.LossWeighting.on_epoch_end`: ``[T]``, positive.

    Example:
        >>> method = DWA()
        >>> method.on_epoch_end(torch.tensor([1.0, 1.0]))
        >>> method.on_epoch_end(torch.tensor([0.5, 1.0]))  # task 0 halved, task 1 stalled
        >>> method.weights(torch.tensor([0.4, 0.9]))
        tensor([0.8756, 1.1244])

    Used in chapter 05.
    """

    def __init__(self, temperature: float = 2.0) -> None:
        super().__init__()
        check_positive("temperature", temperature)
        self.temperature = temperature
        self.history: list[Tensor] = []  # the last two epochs' mean losses, each [T], oldest first

    def weights(self, losses: Tensor) -> Tensor:
        if len(self.history) < 2:
            return torch.ones_like(losses)  # [T]
        check_num_tasks(self, self.history[-1].numel(), losses)
        r = (self.history[-1] / self.history[-2]).to(losses)  # [T] loss ratios
        return losses.numel() * torch.softmax(r / self.temperature, dim=0)  # [T]

    def on_epoch_end(self, epoch_losses: Tensor) -> None:
        check_losses(epoch_losses)
        if self.history:
            check_num_tasks(self, self.history[-1].numel(), epoch_losses)
        if not bool((epoch_losses > 0).all()):
            raise ValueError(f"DWA needs positive epoch losses to form ratios, got {epoch_losses.tolist()}")
        # Only the last two epochs matter; keeping more would grow without bound.
        self.history = [*self.history[-1:], epoch_losses.detach().clone()]

    def reset(self) -> None:
        super().reset()
        self.history = []

    def hyperparameters(self) -> dict[str, object]:
        return {"temperature": self.temperature}
