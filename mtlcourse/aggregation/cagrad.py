"""CAGrad: the direction that best improves the worst task within a ball around the mean gradient."""

from __future__ import annotations

import numpy as np
import torch  # noqa: F401 (the doctest examples use it)
from scipy.optimize import brentq
from torch import Tensor

from mtlcourse.aggregation.base import GramianWeighting
from mtlcourse.aggregation.helpers import check_choice, check_range
from mtlcourse.aggregation.solvers import gramian_to_numpy, min_norm_weights, weights_like

RESCALES = (0, 1, 2)


class CAGrad(GramianWeighting):
    r"""Conflict-averse gradient descent.

    Look for the direction that maximises the smallest improvement among the tasks, within a ball around
    the mean gradient :math:`g_0 = \frac1T J^\top \mathbf 1`:

    .. math::
        \max_{d} \min_t g_t^\top d \quad \text{s.t.} \quad \lVert d - g_0 \rVert \le c \lVert g_0 \rVert .

    Its dual is a problem over the simplex, and the primal solution follows from the dual one:

    .. math::
        w^\star = \arg\min_{w \in \Delta^T} g_w^\top g_0 + c \lVert g_0 \rVert \lVert g_w \rVert,
        \quad g_w = J^\top w, \qquad
        d = g_0 + \frac{c \lVert g_0 \rVert}{\lVert g_{w^\star} \rVert}\, g_{w^\star}

    Liu, Liu, Jin, Stone and Liu, "Conflict-Averse Gradient Descent for Multi-task Learning", NeurIPS 2021
    (Algorithm 1). As in the authors' code, the result is divided by :math:`1 + c^2` (``rescale=1``).

    The authors solve the dual with SciPy's SLSQP; here it is solved exactly. At a minimiser with
    :math:`g_{w^\star} \ne 0` the dual's gradient is proportional to that of
    :math:`\lVert g_w + \tau g_0 \rVert^2` with :math:`\tau = \lVert g_{w^\star} \rVert / (c \lVert g_0
    \rVert)`, so :math:`g_{w^\star}` is the min-norm point of the hull of the shifted gradients
    :math:`g_t + \tau g_0` (an exact problem, :func:`~mtlcourse.aggregation.solvers.min_norm_weights`)
    for the :math:`\tau` where :math:`\tau c \lVert g_0 \rVert = \lVert g_w(\tau) \rVert`: a scalar root,
    found with Brent's method. Only inner products are needed, so it runs on the Gramian.

    What it promises: ``c = 0`` gives the mean gradient exactly; as ``c`` grows the direction moves towards
    the MGDA direction. The paper proves convergence to a stationary point of the *average* loss for
    ``0 <= c < 1``. It does not promise ``J d >= 0`` for every ``J``: the ball can be too small to leave
    the region of conflict. When :math:`g_0 = 0`, or the dual's minimiser is :math:`g_w = 0` (zero lies in
    the hull of the gradients and nothing does better), ``d = g_0``, as in the authors' code.

    Args:
        c: radius of the ball relative to :math:`\lVert g_0 \rVert` (default 0.4, the paper's value for
            its image benchmarks), ``c >= 0``.
        rescale: 0 leaves ``d`` as it is, 1 (default, the authors' code) divides it by :math:`1 + c^2`,
            2 divides it by :math:`1 + c`.
        level: ``"parameters"`` (default) or ``"representation"``.

    Shape:
        jacobian: ``[T, P]``; returns ``[P]``. ``last_weights`` is ``[T]``.

    Example:
        >>> CAGrad(c=0.5, rescale=0)(torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]]))
        tensor([0.1835, 1.2041, 1.2041])

    Used in chapter 06.
    """

    def __init__(self, c: float = 0.4, rescale: int = 1, level: str = "parameters") -> None:
        super().__init__(level=level)
        check_range("c", c, 0.0, float("inf"), high_open=True)
        check_choice("rescale", rescale, RESCALES)
        self.c = c
        self.rescale = rescale

    def weights(self, gramian: Tensor) -> Tensor:
        alpha = cagrad_weights(gramian_to_numpy(gramian), self.c)  # [T]
        divisor = {0: 1.0, 1: 1.0 + self.c**2, 2: 1.0 + self.c}[self.rescale]
        return weights_like(alpha / divisor, gramian)  # [T]

    def hyperparameters(self) -> dict[str, object]:
        return {"c": self.c, "rescale": self.rescale}


def cagrad_weights(G: np.ndarray, c: float) -> np.ndarray:
    r"""Weights ``[T]`` of the CAGrad direction (before rescaling) for a float64 Gramian ``[T, T]``."""
    T = G.shape[0]
    w_mean = np.full(T, 1.0 / T)  # [T] the weights of g_0
    g0_squared = w_mean @ G @ w_mean
    if c == 0 or g0_squared <= 0:
        return w_mean
    radius = c * np.sqrt(g0_squared)  # c ||g_0||
    b = G @ w_mean  # [T] g_t . g_0

    def hull_point(tau: float) -> tuple[np.ndarray, float]:
        # ||g_w + tau g_0||^2 = w^T (G + tau (b 1^T + 1 b^T) + tau^2 ||g_0||^2 1 1^T) w on the simplex
        shifted = G + tau * (b[:, None] + b[None, :]) + tau**2 * g0_squared  # [T, T]
        w = min_norm_weights(shifted)  # [T]
        return w, np.sqrt(max(w @ G @ w, 0.0))

    def gap(tau: float) -> float:
        return tau * radius - hull_point(tau)[1]

    tau_max = np.sqrt(np.diag(G).max()) / radius  # gap >= 0 there: ||g_w|| <= max_t ||g_t||
    tau_min = 0.0 if gap(0.0) < 0 else 1e-12 * tau_max
    if gap(tau_min) >= 0:
        return w_mean  # the dual's minimiser is g_w = 0: d = g_0
    tau = brentq(gap, tau_min, tau_max, xtol=1e-15 * tau_max, rtol=1e-15, maxiter=200)
    w, gw_norm = hull_point(tau)
    return w_mean + (radius / gw_norm) * w  # [T]
