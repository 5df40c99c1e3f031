"""UPGrad: project every task gradient onto the dual cone of all of them, and average."""

from __future__ import annotations

import numpy as np
import torch  # noqa: F401 (the doctest examples use it)
from torch import Tensor

from mtlcourse.aggregation.base import GramianWeighting
from mtlcourse.aggregation.solvers import dual_cone_weights, gramian_to_numpy, weights_like


class UPGrad(GramianWeighting):
    r"""Unconflicting projection of gradients.

    Project each task gradient onto the dual cone :math:`\{x : J x \ge 0\}` of the rows of ``J`` (the
    directions that conflict with no task), and average the projections:

    .. math::
        d = \frac1T \sum_{i=1}^{T} \pi_J(g_i), \qquad
        \pi_J(g_i) = J^\top v^{(i)}, \quad v^{(i)} = \arg\min_{v \ge e_i} v^\top G v

    Quinton and Rey, "Jacobian Descent for Multi-Objective Optimization", arXiv 2406.16232, 2024. Each
    projection is a small quadratic problem on the Gramian (the dual form, their Proposition 1), solved
    exactly by an active-set method (:func:`mtlcourse.aggregation.solvers.dual_cone_weights`); the paper's
    reference implementation (torchjd) instead normalises and regularises the Gramian and calls a QP
    solver, which moves its outputs by about :math:`10^{-4}`.

    What it promises (the paper's properties): no conflict, ``J d >= 0``, because each projection lies in
    the convex cone and so does their mean; if no pair of gradients conflicts (:math:`G \ge 0`
    elementwise), every :math:`g_i` is already in the cone and ``d`` is the mean gradient; ``d`` is
    linear under scaling of all of ``J``, and task weights are at least :math:`1 / T`.

    Args:
        level: ``"parameters"`` (default) or ``"representation"``.

    Raises:
        ValueError: when a gradient holds NaN or infinite values.

    Shape:
        jacobian: ``[T, P]``; returns ``[P]``. ``last_weights`` is ``[T]``, each at least ``1 / T``.

    Example:
        >>> UPGrad()(torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]]))
        tensor([0.2924, 1.9006, 1.9006])

    Used in chapter 06.
    """

    #: Whether the direction never conflicts with a task gradient (``J d >= 0``) whatever ``J`` is.
    non_conflicting = True

    def weights(self, gramian: Tensor) -> Tensor:
        G = gramian_to_numpy(gramian)  # [T, T]
        T = G.shape[0]
        V = np.stack([dual_cone_weights(G, np.eye(T)[i]) for i in range(T)])  # [T, T] row i: v^(i)
        return weights_like(V.mean(axis=0), gramian)  # [T]
