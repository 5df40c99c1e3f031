"""DB-MTL: balance the loss scales with logarithms and the gradient scales with the largest norm."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlcourse.aggregation.base import Aggregator, check_jacobian
from mtlcourse.aggregation.helpers import check_losses_given, check_range


class DBMTL(Aggregator):
    r"""Dual-balancing multi-task learning.

    Loss-scale balancing: use the gradients of :math:`\log L_t` instead of :math:`L_t`. Gradient-magnitude
    balancing: keep an exponential moving average of those gradients and rescale every task's average to
    the largest norm among them. At call ``k``:

    .. math::
        \tilde g_t = \frac{g_t}{L_t + \epsilon} = \nabla \log(L_t + \epsilon), \qquad
        \bar g_t \leftarrow \beta_k \bar g_t + (1 - \beta_k) \tilde g_t,\ \ \beta_k = \beta / k^{\sigma}

    .. math:: d = \sum_{t=1}^{T} \frac{\max_s \lVert \bar g_s \rVert}{\lVert \bar g_t \rVert}\, \bar g_t

    Lin, Jiang, Ye, Zhang, Chen, Chen, Liu and Kwok, "Dual-Balancing for Multi-Task Learning", arXiv
    2308.12029, 2023 (DB-MTL). The averages start at zero (no bias correction), and ``beta = 0.9``, ``beta_sigma = 0`` and
    ``eps = 1e-8`` are the defaults of the authors' LibMTL implementation.

    It is stateful: the averages persist across calls (their shape, ``[T, P]``, must not change) and
    :meth:`reset` clears them. Every task's term of ``d`` has the same norm, so no task dominates by its
    scale; it does not promise ``J d >= 0``.

    At the representation level (``level="representation"``) the rows of ``J`` are gradients with respect to
    the representation ``z`` of *this* batch: each entry belongs to one image of the batch, and the next
    batch holds other images (and, at the end of an epoch, fewer of them, so another ``P``). An average of
    such rows entry by entry means nothing, so there the method averages only what is comparable across
    batches, each task's gradient norm, and scales the current log-gradients with it:

    .. math::
        \bar n_t \leftarrow \beta_k \bar n_t + (1 - \beta_k) \lVert \tilde g_t \rVert, \qquad
        d = \sum_{t=1}^{T} \frac{\max_s \bar n_s}{\bar n_t}\, \tilde g_t

    (the state is then ``[T]``). The balancing of the gradient magnitudes is the paper's; only the average
    of the directions, which has no meaning for ``z``, is dropped.

    Args:
        beta: weight of the past in the moving average, in ``[0, 1)`` (default 0.9).
        beta_sigma: decay exponent :math:`\sigma \ge 0` of that weight over calls (default 0.0).
        eps: added to every loss before the logarithm, ``eps >= 0`` (default 1e-8).
        level: ``"parameters"`` (default) or ``"representation"``.

    Raises:
        ValueError: when ``losses`` is missing, of the wrong shape, or negative.

    Shape:
        jacobian: ``[T, P]``, losses: ``[T]``; returns ``[P]``. ``last_weights`` is ``[T]``, the factor
        :math:`\max_s \lVert \bar g_s \rVert / \lVert \bar g_t \rVert` of each average.

    Example:
        >>> db = DBMTL()
        >>> db(torch.tensor([[1.0, 0.0], [0.0, 4.0]]), losses=torch.tensor([1.0, 2.0]))
        tensor([0.2000, 0.2000])
        >>> db.last_weights
        tensor([2., 1.])

    Used in chapter 07.
    """

    def __init__(
        self, beta: float = 0.9, beta_sigma: float = 0.0, eps: float = 1e-8, level: str = "parameters"
    ) -> None:
        super().__init__(level=level)
        check_range("beta", beta, 0.0, 1.0, high_open=True)
        check_range("beta_sigma", beta_sigma, 0.0, float("inf"), high_open=True)
        check_range("eps", eps, 0.0, float("inf"), high_open=True)
        self.beta = beta
        self.beta_sigma = beta_sigma
        self.eps = eps
        self.reset()

    def forward(self, jacobian: Tensor, losses: Tensor | None = None) -> Tensor:
        check_jacobian(jacobian)
        L = check_losses_given(self, losses, jacobian.shape[0]).to(jacobian)  # [T]
        if (L < 0).any() or not torch.isfinite(L).all():
            raise ValueError(
                f"DBMTL takes the logarithm of the losses, which must be finite and >= 0; got {L}"
            )
        log_grads = jacobian / (L + self.eps)[:, None]  # [T, P] gradients of log(L_t + eps)
        self._step += 1
        beta_k = self.beta / self._step**self.beta_sigma
        if self.level == "parameters":
            self.buffer = self._moving_average(log_grads, beta_k)  # [T, P]
            norms, directions = self.buffer.norm(dim=1), self.buffer  # [T], [T, P]
        else:  # the entries of z change with the batch: average the norms only (see the docstring)
            self.buffer = self._moving_average(log_grads.norm(dim=1), beta_k)  # [T]
            norms, directions = self.buffer, log_grads  # [T], [T, P]
        scale = torch.where(
            norms > 0, norms.max() / norms.clamp_min(torch.finfo(norms.dtype).tiny), 0.0
        )  # [T]
        self.last_weights = scale.detach()
        return scale @ directions  # [P]

    def _moving_average(self, x: Tensor, beta_k: float) -> Tensor:
        """``beta_k`` times the previous average (zero on the first call) plus ``1 - beta_k`` times ``x``."""
        if self.buffer is None:
            return (1 - beta_k) * x
        if self.buffer.shape != x.shape:
            raise ValueError(
                f"DBMTL holds averages of shape {tuple(self.buffer.shape)} but this call needs "
                f"{tuple(x.shape)}; call reset() before changing the tasks or the parameters"
            )
        return beta_k * self.buffer.to(x) + (1 - beta_k) * x

    def reset(self) -> None:
        super().reset()
        self.buffer: Tensor | None = None
        self._step = 0

    def hyperparameters(self) -> dict[str, object]:
        return {"beta": self.beta, "beta_sigma": self.beta_sigma, "eps": self.eps}
