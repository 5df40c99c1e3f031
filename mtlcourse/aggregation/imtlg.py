"""IMTL-G: the direction whose projections onto every unit task gradient are equal."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlcourse.aggregation.base import GramianWeighting
from mtlcourse.aggregation.solvers import gramian_to_numpy, weights_like


class IMTLG(GramianWeighting):
    r"""Impartial multi-task learning, gradient part: every task sees the same improvement per unit.

    Find weights summing to one such that :math:`d = J^\top \alpha` has the same projection onto every
    unit gradient :math:`u_t = g_t / \lVert g_t \rVert`:

    .. math::
        d^\top u_1 = d^\top u_t \ \ \forall t, \quad \mathbf 1^\top \alpha = 1
        \quad\Longleftrightarrow\quad G \alpha = \lambda n,\ n_t = \lVert g_t \rVert
        \quad\Longrightarrow\quad \alpha = \frac{G^{+} n}{\mathbf 1^\top G^{+} n}

    Liu, Li, Kuang, Xue, Chen, Yang, Liao and Zhang, "Towards Impartial Multi-task Learning", ICLR 2021
    (IMTL-G, the gradient-balancing half; the paper writes the same solution with the differences
    :math:`u_1 - u_t` and :math:`g_1 - g_t`). It is computed here on the cosine matrix
    :math:`C = N^{-1} G N^{-1}` (``N = diag(n)``), :math:`\alpha \propto N^{-1} C^{+} \mathbf 1`, in float64,
    with the pseudo-inverse cutting singular values below ``T`` times the machine epsilon of the input
    dtype (relative).

    What it promises: the direction is invariant to the scale of each task's gradient (scale :math:`g_t`
    by :math:`s_t > 0` and ``d`` only changes length, through the normalisation of :math:`\alpha`), so no
    task dominates by the size of its loss. It does not promise ``J d >= 0``: the common projection
    :math:`\lambda = 1 / \mathbf 1^\top G^{+} n` is positive with two tasks but can be negative with three
    or more strongly dependent gradients (then every task gets worse, by the same amount). A task with a
    zero gradient gets weight 0. When :math:`\mathbf 1^\top G^{+} n = 0` (for example ``g`` and ``-g``), no
    such direction but zero exists and the weights are all zero.

    Args:
        level: ``"parameters"`` (default) or ``"representation"``.

    Shape:
        jacobian: ``[T, P]``; returns ``[P]``. ``last_weights`` is ``[T]``, summing to 1 (or all zero).

    Example:
        >>> IMTLG()(torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]]))
        tensor([0.0767, 1.0000, 1.0000])

    Used in chapter 06.
    """

    def weights(self, gramian: Tensor) -> Tensor:
        rtol = gramian.shape[0] * torch.finfo(gramian.dtype).eps
        return weights_like(imtlg_weights(gramian_to_numpy(gramian), rtol), gramian)  # [T]


def imtlg_weights(G: np.ndarray, rtol: float) -> np.ndarray:
    """IMTL-G weights ``[T]`` for a float64 Gramian ``[T, T]``; see :class:`IMTLG`."""
    T = G.shape[0]
    alpha = np.zeros(T)  # [T]
    live = np.flatnonzero(np.diag(G) > 0)  # [k] tasks with a non-zero gradient
    if live.size == 0:
        return alpha
    inv_norms = 1.0 / np.sqrt(np.diag(G)[live])  # [k]
    C = G[np.ix_(live, live)] * inv_norms[:, None] * inv_norms[None, :]  # [k, k] cosines
    lam, V = np.linalg.eigh(C)  # [k], [k, k]
    keep = lam > rtol * lam.max()  # [k] directions the pseudo-inverse keeps
    C_pinv_ones = V[:, keep] @ ((V[:, keep].T @ np.ones(live.size)) / lam[keep])  # [k] C^+ 1
    alpha[live] = inv_norms * C_pinv_ones  # [k]
    total = alpha.sum()
    if abs(total) <= 1e-12 * np.abs(alpha).sum():
        return np.zeros(T)  # [T]; only d = 0 has equal projections
    return alpha / total  # [T]
