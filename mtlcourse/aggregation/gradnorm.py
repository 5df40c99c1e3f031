"""GradNorm: learn task weights that give every task a gradient norm matched to its training rate."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlcourse.aggregation.base import Aggregator, check_jacobian
from mtlcourse.aggregation.helpers import check_losses_given, check_range


class GradNorm(Aggregator):
    r"""Gradient normalisation: tune the task weights so that slow tasks get larger weighted gradients.

    With weights :math:`w_t` (starting at 1), gradient norms :math:`n_t = \lVert g_t \rVert` (the rows of
    ``J``) and the losses at the first call :math:`L_t(0)`, each call returns :math:`d = \sum_t w_t g_t`
    and then takes one gradient step on the paper's gradient-norm loss, the target held constant:

    .. math::
        r_t = \frac{\tilde L_t}{\frac1T \sum_s \tilde L_s},\ \tilde L_t = \frac{L_t}{L_t(0)},\qquad
        \mathcal L_{\text{grad}} = \sum_t \big| w_t n_t - \overline{w n}\, r_t^{\alpha} \big|,\qquad
        \frac{\partial \mathcal L_{\text{grad}}}{\partial w_t}
        = \operatorname{sign}\big(w_t n_t - \overline{w n}\, r_t^{\alpha}\big)\, n_t

    .. math:: w \leftarrow \max(w - \eta\, \nabla_w \mathcal L_{\text{grad}},\ 0), \qquad
        w \leftarrow T\, w / \textstyle\sum_t w_t

    Chen, Badrinarayanan, Lee and Rabinovich, "GradNorm: Gradient Normalization for Adaptive Loss
    Balancing in Deep Multitask Networks", ICML 2018. The gradient is written in closed form (no autograd
    inside the method). Differences from the paper, stated: the paper measures the norms at the last shared
    layer, while this class uses the Jacobian rows it is given (all shared parameters by default, or the
    shared representation with ``level="representation"``); the paper updates the weights with the
    network's optimiser, here with plain gradient steps of rate ``lr``; and weights are clipped at 0 before
    the renormalisation (the paper does not say what a negative weight should do). Because the step is
    ``lr`` times the gradient norms, how fast the weights move depends on the scale of those norms: at the
    representation level, where the norms are small, the weights barely move with the default ``lr``.

    It is stateful: the weights and :math:`L(0)` persist across calls, and :meth:`reset` forgets them.
    Larger ``alpha`` pulls harder towards equal training rates; ``alpha = 0`` asks for equal weighted
    gradient norms. It does not promise ``J d >= 0``.

    Args:
        alpha: the asymmetry :math:`\alpha \ge 0` (default 1.5).
        lr: step size :math:`\eta > 0` of the weight update (default 0.025).
        level: ``"parameters"`` (default) or ``"representation"``.

    Raises:
        ValueError: when ``losses`` is missing, of the wrong shape, or not positive, or a gradient is not
            finite.

    Shape:
        jacobian: ``[T, P]``, losses: ``[T]``; returns ``[P]``. ``last_weights`` holds the weights used
        for the returned direction; ``task_weights`` the updated ones, for the next call.

    Example:
        >>> gn = GradNorm()
        >>> gn(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), losses=torch.tensor([1.0, 1.0]))
        tensor([1., 2.])
        >>> gn.task_weights
        tensor([1.0380, 0.9620])

    Used in chapter 05.
    """

    def __init__(self, alpha: float = 1.5, lr: float = 0.025, level: str = "parameters") -> None:
        super().__init__(level=level)
        check_range("alpha", alpha, 0.0, float("inf"), high_open=True)
        check_range("lr", lr, 0.0, float("inf"), low_open=True, high_open=True)
        self.alpha = alpha
        self.lr = lr
        self.reset()

    def forward(self, jacobian: Tensor, losses: Tensor | None = None) -> Tensor:
        check_jacobian(jacobian)
        T = jacobian.shape[0]
        L = check_losses_given(self, losses, T).to(jacobian)  # [T]
        if not (L > 0).all() or not torch.isfinite(L).all():
            raise ValueError(f"GradNorm divides by the losses, which must be finite and positive; got {L}")
        if self.initial_losses is None:
            self.initial_losses = L.clone()  # [T] L(0)
            self.task_weights = torch.ones_like(L)  # [T]
        if self.initial_losses.shape != (T,):
            raise ValueError(
                f"GradNorm holds weights for {self.initial_losses.shape[0]} tasks, got {T}; reset()"
            )
        w = self.task_weights.to(jacobian)  # [T]
        norms = jacobian.norm(dim=1)  # [T]
        if not torch.isfinite(norms).all():
            raise ValueError(f"GradNorm: the task gradients must be finite, their norms are {norms}")
        self.last_weights = w
        self.task_weights = self._updated_weights(w, norms, L)  # [T]
        return w @ jacobian  # [P]

    def _updated_weights(self, w: Tensor, norms: Tensor, L: Tensor) -> Tensor:
        """One step on the gradient-norm loss, then renormalisation to a sum of ``T``."""
        T = w.shape[0]
        rates = L / self.initial_losses.to(L)  # [T] inverse training rates L_t / L_t(0)
        r = rates / rates.mean()  # [T] relative inverse training rates
        weighted_norms = w * norms  # [T]
        target = weighted_norms.mean() * r**self.alpha  # [T], held constant
        grad = torch.sign(weighted_norms - target) * norms  # [T]
        w_new = (w - self.lr * grad).clamp_min(0)  # [T]
        if not w_new.sum() > 0:
            raise RuntimeError(f"GradNorm: every task weight reached 0 (lr={self.lr} is too large)")
        return w_new * (T / w_new.sum())  # [T]

    def reset(self) -> None:
        super().reset()
        self.initial_losses: Tensor | None = None
        self.task_weights: Tensor | None = None

    def hyperparameters(self) -> dict[str, object]:
        return {"alpha": self.alpha, "lr": self.lr}
