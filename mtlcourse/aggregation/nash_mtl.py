"""Nash-MTL: the Nash bargaining solution between the tasks, G alpha = 1 / alpha."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlcourse.aggregation.base import GramianWeighting
from mtlcourse.aggregation.helpers import check_positive_int, check_range
from mtlcourse.aggregation.solvers import gramian_to_numpy, min_norm_weights, weights_like


class NashMTL(GramianWeighting):
    r"""Multi-task learning as a bargaining game: each task's gain is inversely proportional to its weight.

    .. math::
        G \alpha = 1 / \alpha \ \ (\text{elementwise}),\ \alpha > 0,
        \qquad d = J^\top \alpha, \qquad g_t^\top d = 1 / \alpha_t > 0

    Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik and Fetaya, "Multi-Task Learning as a Bargaining
    Game", ICML 2022 (Algorithm 1). The condition is the optimality condition of the strictly convex
    problem :math:`\min_{\alpha > 0} \tfrac12 \alpha^\top G \alpha - \sum_t \log \alpha_t`. The paper
    approximates it with a sequence of convex problems solved by cvxpy; here it is solved by damped Newton
    steps on that problem (a self-concordant function, so the damped steps stay positive and converge),
    written on the cosine matrix (``alpha_t = beta_t / ||g_t||``), until
    :math:`\max_t |\alpha_t (G\alpha)_t - 1| \le` ``tol``.

    What it promises: every task improves, :math:`g_t^\top d = 1/\alpha_t > 0`, so ``J d > 0``; the direction
    is invariant to the scale of each task's gradient (scaling :math:`g_t` by ``s`` divides
    :math:`\alpha_t` by ``s``); and :math:`\lVert d \rVert^2 = \alpha^\top G \alpha = T`. A solution exists
    only when no convex combination of the gradients is zero. When one is (a zero gradient, or ``g`` and
    ``-g``), the point is *Pareto-stationary*: no direction improves every task, so there is nothing to
    bargain over, and the method's answer is the zero direction (``alpha = 0``). It tests this first, with
    MGDA's min-norm point of the gradients scaled to unit length (:func:`pareto_stationary`), to the
    rounding of the Gramian's dtype.

    As in the authors' code, ``max_norm`` clips the norm of ``d`` (their ``clip_grad_norm_`` on the shared
    parameters) and ``update_weights_every`` re-solves only every that many calls, reusing the previous
    ``alpha`` in between. The authors' code solves the condition for :math:`G / \lVert G \rVert_F`, which
    gives the same direction with a norm scaled by :math:`\lVert G \rVert_F^{1/2}`; we solve it for ``G``
    itself, so the unclipped norm is :math:`\sqrt T` and the default ``max_norm = 1`` gives unit-length
    directions.

    Args:
        max_norm: largest norm of ``d``; ``0`` turns clipping off (default 1.0).
        update_weights_every: solve for ``alpha`` every this many calls (default 1).
        max_iter: most Newton steps per solve (default 100).
        tol: largest allowed :math:`|\alpha_t (G\alpha)_t - 1|` (default 1e-6).
        level: ``"parameters"`` (default) or ``"representation"``.

    Raises:
        RuntimeError: when the Newton steps do not meet ``tol`` within ``max_iter`` steps at a point that is
            not Pareto-stationary. It never falls back to another method.

    Shape:
        jacobian: ``[T, P]``; returns ``[P]``. ``last_weights`` is ``alpha`` after clipping, ``[T]``.

    Example:
        >>> NashMTL()(torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]]))
        tensor([0.0542, 0.7061, 0.7061])
        >>> NashMTL()(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))  # opposite gradients: Pareto-stationary
        tensor([0., 0.])

    Used in chapter 06.
    """

    #: Whether the direction never conflicts with a task gradient (``J d >= 0``) whatever ``J`` is
    #: (when the solution exists; otherwise the method raises).
    non_conflicting = True

    def __init__(
        self,
        max_norm: float = 1.0,
        update_weights_every: int = 1,
        max_iter: int = 100,
        tol: float = 1e-6,
        level: str = "parameters",
    ) -> None:
        super().__init__(level=level)
        check_range("max_norm", max_norm, 0.0, float("inf"), high_open=True)
        check_positive_int("update_weights_every", update_weights_every)
        check_positive_int("max_iter", max_iter)
        check_range("tol", tol, 0.0, 1.0, low_open=True)
        self.max_norm = max_norm
        self.update_weights_every = update_weights_every
        self.max_iter = max_iter
        self.tol = tol
        self.reset()

    def weights(self, gramian: Tensor) -> Tensor:
        T = gramian.shape[0]
        if self._alpha is not None and self._alpha.shape[0] != T:
            raise ValueError(
                f"NashMTL holds weights for {self._alpha.shape[0]} tasks but got {T}; call reset()"
            )
        if self._alpha is None or self._calls % self.update_weights_every == 0:
            rounding = 10 * T * torch.finfo(gramian.dtype).eps  # how exactly G's dtype can tell cosines apart
            self._alpha = nash_weights(gramian_to_numpy(gramian), self.max_iter, self.tol, rounding)  # [T]
        self._calls += 1
        alpha = weights_like(self._alpha, gramian)  # [T]
        if self.max_norm > 0:
            norm = (alpha @ gramian @ alpha).clamp_min(0).sqrt()  # ||J^T alpha||
            if norm > self.max_norm:
                alpha = alpha * (self.max_norm / norm)  # [T]
        return alpha

    def reset(self) -> None:
        super().reset()
        self._alpha: np.ndarray | None = None
        self._calls = 0

    def hyperparameters(self) -> dict[str, object]:
        return {
            "max_norm": self.max_norm,
            "update_weights_every": self.update_weights_every,
            "max_iter": self.max_iter,
            "tol": self.tol,
        }


def nash_weights(G: np.ndarray, max_iter: int, tol: float, rounding: float = 0.0) -> np.ndarray:
    r"""The solution ``[T]`` of :math:`G\alpha = 1/\alpha`, :math:`\alpha > 0`, for a float64 Gramian.

    Zeros at a Pareto-stationary point (:func:`pareto_stationary` with ``rounding``), where none exists.
    """
    norms = np.sqrt(np.clip(np.diag(G), 0.0, None))  # [T]
    if (norms <= 0).any():  # a zero gradient: that task cannot improve, whatever the direction
        return np.zeros_like(norms)  # [T]
    C = G / norms[:, None] / norms[None, :]  # [T, T] cosines; alpha = beta / norms
    if pareto_stationary(C, rounding):
        return np.zeros_like(norms)  # [T]
    return _bargaining_newton(C, max_iter, tol) / norms  # [T]


def pareto_stationary(C: np.ndarray, rounding: float) -> bool:
    r"""Whether some convex combination of unit-length gradients (cosines ``C`` ``[T, T]``) is zero.

    The squared norm of MGDA's min-norm point, :math:`\min_{w \in \Delta^T} w^\top C w`, is zero exactly
    there; ``rounding`` is how far from zero the Gramian's dtype can still mean zero.

    Example:
        >>> pareto_stationary(np.array([[1.0, -1.0], [-1.0, 1.0]]), rounding=1e-12)
        True
    """
    w = min_norm_weights(C)  # [T]
    return float(w @ C @ w) <= rounding


def _bargaining_newton(C: np.ndarray, max_iter: int, tol: float) -> np.ndarray:
    r"""Damped Newton on :math:`\tfrac12 \beta^\top C \beta - \sum \log \beta`, from :math:`\beta = 1`."""
    beta = np.ones(C.shape[0])  # [T]; the solution when the gradients are orthogonal
    for _ in range(max_iter):
        C_beta = C @ beta  # [T]
        residual = np.abs(beta * C_beta - 1.0).max()
        if residual <= tol:
            return beta
        gradient = C_beta - 1.0 / beta  # [T]
        hessian = C + np.diag(1.0 / beta**2)  # [T, T], positive definite for beta > 0
        try:
            step = np.linalg.solve(hessian, -gradient)  # [T]
        except np.linalg.LinAlgError as error:  # beta ran off to infinity along a null direction of C
            raise RuntimeError(_no_solution_message(max_iter, np.inf, tol)) from error
        decrement = np.sqrt(max(-gradient @ step, 0.0))  # Newton decrement
        # A step of 1 / (1 + decrement) keeps beta positive (Nesterov and Nemirovski); the full step is safe
        # and converges quadratically once the decrement is small.
        beta = beta + (1.0 if decrement < 0.25 else 1.0 / (1.0 + decrement)) * step  # [T]
    residual = np.abs(beta * (C @ beta) - 1.0).max()
    if residual <= tol:
        return beta
    raise RuntimeError(_no_solution_message(max_iter, residual, tol))


def _no_solution_message(max_iter: int, residual: float, tol: float) -> str:
    return (
        f"Nash-MTL: G alpha = 1/alpha not solved in max_iter={max_iter} Newton steps (residual {residual:.2e} "
        f"> tol={tol}), although the gradients are not Pareto-stationary; nearly opposite gradients make "
        "alpha very large and the steps many: raise max_iter or tol"
    )
