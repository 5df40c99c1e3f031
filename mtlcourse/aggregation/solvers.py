r"""Small exact optimisation routines on the Gramian ``G = J J^T`` (``[T, T]``).

They run in float64 NumPy on the CPU on purpose: the problems are ``T x T`` with ``T`` the number of
tasks (2 to a few dozen), and an active-set loop branches on the data at every step, which on a GPU would
synchronise at every step anyway. One copy of ``G`` goes in, one copy of the weights comes back, on the
device and dtype of ``G`` (:func:`weights_like`).

The workhorse is :func:`nonnegative_quadratic`, the active-set method of Lawson and Hanson (*Solving Least
Squares Problems*, 1974, chapter 23) written for a quadratic in Gram form. It finishes in a finite number of
steps with the exact solution (up to rounding), needs no tolerance from the user and no step size, and copes
with singular ``G`` (repeated or zero gradients). MGDA's min-norm point and UPGrad's projections onto the
dual cone are both such problems.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def gramian_to_numpy(gramian: Tensor) -> np.ndarray:
    """The Gramian as a symmetric float64 NumPy array on the CPU; ``ValueError`` if it is not finite."""
    G = gramian.detach().to(device="cpu", dtype=torch.float64).numpy()  # [T, T]
    if not np.isfinite(G).all():
        raise ValueError("the Gramian J J^T holds NaN or infinite values: some task gradient is not finite")
    return (G + G.T) / 2  # [T, T]; a float32 J @ J.T is symmetric only up to rounding


def weights_like(w: np.ndarray, like: Tensor) -> Tensor:
    """Weights ``[T]`` as a tensor on the device and dtype of ``like``."""
    return torch.as_tensor(w, dtype=like.dtype, device=like.device)  # [T]


def nonnegative_quadratic(Q: np.ndarray, c: np.ndarray, max_iter: int | None = None) -> np.ndarray:
    r"""The exact minimiser of a convex quadratic over the non-negative orthant.

    .. math:: x^\star = \arg\min_{x \ge 0} \tfrac12 x^\top Q x - c^\top x, \qquad Q \succeq 0

    Lawson and Hanson's active-set method: grow a set of free coordinates one at a time (the one whose
    partial derivative is most negative), solve the unconstrained problem on that set, and step back to the
    boundary whenever a free coordinate would turn negative. The problem is first rescaled so that ``Q`` has
    a unit diagonal (``x = D y``, ``D = diag(Q)^{-1/2}``), which makes the stopping test independent of the
    scale of each task's gradient.

    Args:
        Q: ``[T, T]`` symmetric positive semi-definite.
        c: ``[T]``.
        max_iter: most outer steps; default ``10 T + 10`` (the method needs about ``T``).

    Raises:
        RuntimeError: when ``max_iter`` steps do not reach the optimality conditions.

    Example:
        >>> nonnegative_quadratic(np.eye(2), np.array([1.0, -1.0]))
        array([1., 0.])
    """
    T = c.shape[0]
    diag = np.diag(Q)  # [T]
    scale = np.where(diag > 0, 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0)), 1.0)  # [T]
    Qs = Q * scale[:, None] * scale[None, :]  # [T, T], unit diagonal where Q's is positive
    cs = c * scale  # [T]
    y = _lawson_hanson(Qs, cs, max_iter if max_iter is not None else 10 * T + 10)  # [T]
    return scale * y  # [T]


def _lawson_hanson(Q: np.ndarray, c: np.ndarray, max_iter: int) -> np.ndarray:
    """The outer loop of :func:`nonnegative_quadratic` on an already rescaled problem."""
    T = c.shape[0]
    eps = 10 * T * np.finfo(np.float64).eps
    x = np.zeros(T)  # [T]
    passive = np.zeros(T, dtype=bool)  # [T] coordinates free to move
    blocked = np.zeros(T, dtype=bool)  # [T] rejected by rounding in the current step
    for _ in range(max_iter):
        dual = c - Q @ x  # [T] minus the gradient: positive means "increasing x_j helps"
        tol = eps * (np.abs(c).max() + (np.abs(Q) @ x).max())  # rounding level of `dual`
        candidates = ~passive & ~blocked & (dual > tol)
        if not candidates.any():
            return x
        j = int(np.argmax(np.where(candidates, dual, -np.inf)))
        x, passive, accepted = _solve_passive(Q, c, x, passive | (np.arange(T) == j), j)
        blocked = np.zeros(T, dtype=bool) if accepted else blocked | (np.arange(T) == j)
    raise RuntimeError(
        f"the active-set solver did not reach the optimality conditions in {max_iter} steps (T={T})"
    )


def _solve_passive(
    Q: np.ndarray, c: np.ndarray, x: np.ndarray, passive: np.ndarray, j: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Minimise over the free set, stepping back to the boundary while a free coordinate turns negative.

    Returns the new point, the new free set, and whether ``j`` (just freed) could enter; rounding can make
    the first solve give ``j`` a non-positive value, in which case nothing changes and ``j`` is refused.
    """
    first = True
    while True:
        idx = np.flatnonzero(passive)  # [k]
        s = np.zeros_like(x)  # [T]
        s[idx] = np.linalg.lstsq(Q[np.ix_(idx, idx)], c[idx], rcond=None)[0]  # [k]
        if first and s[j] <= 0:
            return x, passive & (np.arange(x.shape[0]) != j), False
        first = False
        if (s[idx] > 0).all():
            return s, passive, True
        negative = idx[s[idx] <= 0]  # [m] free coordinates that would leave the orthant
        ratios = x[negative] / (x[negative] - s[negative])  # [m] where each one hits zero
        k = negative[np.argmin(ratios)]
        x = x + ratios.min() * (s - x)  # [T]
        x[k] = 0.0
        passive = passive & (x > 0)
        passive[k] = False


def min_norm_weights(G: np.ndarray) -> np.ndarray:
    r"""Weights of the minimum-norm point of the convex hull of the task gradients (MGDA).

    .. math:: w^\star = \arg\min_{w \in \Delta^T} w^\top G w,
        \qquad \Delta^T = \{w \ge 0, \textstyle\sum_t w_t = 1\}

    Solved exactly through a non-negative quadratic: for ``x >= 0`` write ``x = s w`` with ``s = 1^T x``;
    then :math:`x^\top G x + (1 - \mathbf 1^\top x)^2 = s^2 w^\top G w + (1 - s)^2`, whose minimum over
    ``s`` is increasing in :math:`w^\top G w`; so the minimiser of the left side over ``x >= 0``, divided
    by its sum, is :math:`w^\star`. ``G`` is first divided by its smallest positive diagonal entry, so that
    the smallest gradient (which bounds the min-norm point) is of order one.

    Args:
        G: ``[T, T]`` Gramian.

    Returns:
        ``[T]`` weights, non-negative and summing to one. When every gradient is zero, the uniform weights
        (every weighting then gives the zero direction).

    Example:
        >>> min_norm_weights(np.array([[1.0, 0.0], [0.0, 4.0]]))
        array([0.8, 0.2])
    """
    T = G.shape[0]
    diag = np.diag(G)  # [T]
    if not (diag > 0).any():
        return np.full(T, 1.0 / T)  # [T]
    Gn = G / diag[diag > 0].min()  # [T, T]
    x = nonnegative_quadratic(Gn + 1.0, np.ones(T))  # [T]; Gn + 1 is G + 1 1^T
    return x / x.sum()  # [T]


def dual_cone_weights(G: np.ndarray, u: np.ndarray) -> np.ndarray:
    r"""Weights of the projection of :math:`J^\top u` onto the dual cone of the task gradients (UPGrad).

    The dual cone is :math:`\{x : J x \ge 0\}`, the directions that conflict with no task. The projection
    of :math:`J^\top u` onto it is :math:`J^\top v^\star` with (Quinton and Rey, 2024, Proposition 1)

    .. math:: v^\star = \arg\min_{v \ge u} v^\top G v,

    a non-negative quadratic in :math:`x = v - u`.

    Args:
        G: ``[T, T]`` Gramian.
        u: ``[T]`` weights of the vector to project (``e_i`` projects the gradient of task ``i``).

    Returns:
        ``[T]`` weights ``v``, with ``v >= u``.

    Example:
        >>> dual_cone_weights(np.array([[1.0, -1.0], [-1.0, 2.0]]), np.array([1.0, 0.0]))
        array([1. , 0.5])
    """
    x = nonnegative_quadratic(G, -G @ u)  # [T]
    return u + x  # [T]
