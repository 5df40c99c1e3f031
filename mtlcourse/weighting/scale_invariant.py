"""Scale-invariant weighting: the sum of the logarithms of the task losses."""

from __future__ import annotations

from torch import Tensor

from mtlcourse.weighting.base import LossWeighting, check_losses, check_positive_losses


class ScaleInvariant(LossWeighting):
    r"""Minimise the sum of the log losses: every task counts by its *relative* change.

    .. math::

        \mathcal{L} = \sum_{t=1}^{T} \log L_t, \qquad
        \nabla_\theta \mathcal{L} = \sum_{t=1}^{T} \frac{1}{L_t} \nabla_\theta L_t

    so the equivalent weights are :math:`w_t = 1 / L_t` (held in ``last_weights``). Multiplying a loss by
    a constant only adds a constant to :math:`\mathcal{L}` and leaves the gradient unchanged: the method is
    invariant to the scale of each loss, which is the problem of summing losses of different kinds. Its
    minimisers are the same as those of :class:`~mtlcourse.weighting.gls.GLS` (the geometric mean is
    :math:`\exp(\mathcal{L}/T)`), but its gradient does not shrink as the losses fall.

    References: the "scale-invariant" baseline of Navon et al., "Multi-Task Learning as a Bargaining
    Game", ICML 2022; the logarithm transform of the losses in Lin et al., "Dual-Balancing for Multi-Task
    Learning" (DB-MTL), arXiv 2023.

    Shape:
        losses: ``[T]``, positive. Returns a scalar; ``last_weights``: ``[T]``.

    Example:
        >>> method = ScaleInvariant()
        >>> method(torch.tensor([1.0, 4.0]))
        tensor(1.3863)
        >>> method.last_weights
        tensor([1.0000, 0.2500])

    Used in chapter 05.
    """

    def weights(self, losses: Tensor) -> Tensor:
        check_losses(losses)
        check_positive_losses(self, losses)
        return 1.0 / losses  # [T]

    def forward(self, losses: Tensor) -> Tensor:
        self.last_weights = self.weights(losses.detach())  # [T]
        return losses.log().sum()
