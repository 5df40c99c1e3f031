"""Aligned-MTL: make the task gradients orthogonal and of equal norm before summing them."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlcourse.aggregation.base import GramianWeighting
from mtlcourse.aggregation.helpers import check_choice
from mtlcourse.aggregation.solvers import gramian_to_numpy, weights_like

SCALE_MODES = ("min", "median", "rmse")


class AlignedMTL(GramianWeighting):
    r"""Aligned-MTL: replace the task gradients by the closest set of orthogonal, equal-norm vectors.

    With the eigen-decomposition :math:`G = V \Lambda V^\top` (keeping the ``R`` eigenvalues above
    :math:`\lambda_{\max} T \varepsilon`, ``R`` the rank of ``J``), the balance matrix and the direction are

    .. math::
        B = \sigma\, V \Lambda^{-1/2} V^\top, \qquad \hat J = B J, \qquad
        d = \hat J^\top \mathbf 1 = J^\top (B \mathbf 1)

    so the aligned gradients (the rows of :math:`\hat J`) satisfy :math:`\hat J \hat J^\top = B G B =
    \sigma^2 V V^\top`: they are orthogonal with norm :math:`\sigma` (condition number one), and among all
    such sets they are the closest to the original gradients (the Procrustes problem). :math:`\sigma^2` is
    the smallest kept eigenvalue (``scale_mode="min"``), their median, or their mean (``"rmse"``).

    Senushkin, Patakin, Kuznetsov and Konushin, "Independent Component Alignment for Multi-Task Learning",
    CVPR 2023 (Algorithm 1). As in the authors' code, the aligned gradients are summed (task preferences of
    one) and the median of an even number of eigenvalues is the lower middle one.

    What it promises: a well-conditioned gradient system in which no task dominates by its norm: with
    orthogonal task gradients, the direction is :math:`\sigma \sum_t g_t / \lVert g_t \rVert` and does not
    depend on the gradient norms; scaling all of ``J`` by ``s`` scales ``d`` by ``s``. It does not promise
    ``J d >= 0`` for every ``J``. When every gradient is zero the weights are zero.

    Args:
        scale_mode: ``"min"`` (default, the paper's), ``"median"`` or ``"rmse"``.
        level: ``"parameters"`` (default) or ``"representation"``; :class:`AlignedMTLUB` uses the
            representation.

    Shape:
        jacobian: ``[T, P]``; returns ``[P]``. ``last_weights`` is ``B 1``, ``[T]``.

    Example:
        >>> AlignedMTL()(torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]]))
        tensor([0.4266, 1.9347, 1.9347])

    Used in chapter 06.
    """

    def __init__(self, scale_mode: str = "min", level: str = "parameters") -> None:
        super().__init__(level=level)
        check_choice("scale_mode", scale_mode, SCALE_MODES)
        self.scale_mode = scale_mode

    def weights(self, gramian: Tensor) -> Tensor:
        B = balance_matrix(
            gramian_to_numpy(gramian), self.scale_mode, torch.finfo(gramian.dtype).eps
        )  # [T, T]
        return weights_like(B.sum(axis=1), gramian)  # [T] B @ 1

    def hyperparameters(self) -> dict[str, object]:
        return {"scale_mode": self.scale_mode}


def balance_matrix(G: np.ndarray, scale_mode: str, eps: float) -> np.ndarray:
    r"""The balance matrix :math:`B = \sigma V \Lambda^{-1/2} V^\top` ``[T, T]``; see :class:`AlignedMTL`.

    ``eps`` is the machine epsilon of the dtype the Gramian was computed in: eigenvalues below
    :math:`\lambda_{\max} T \varepsilon` are rounding noise and are dropped.
    """
    T = G.shape[0]
    lam, V = np.linalg.eigh(G)  # [T], [T, T]
    keep = lam > max(lam.max(), 0.0) * T * eps  # [T]
    if not keep.any():
        return np.zeros((T, T))  # [T, T]; every gradient is zero
    lam, V = lam[keep], V[:, keep]  # [R], [T, R]
    ascending = np.sort(lam)  # [R]
    sigma2 = {"min": ascending[0], "median": ascending[(ascending.size - 1) // 2], "rmse": lam.mean()}
    return np.sqrt(sigma2[scale_mode]) * (V / np.sqrt(lam)) @ V.T  # [T, T]


class AlignedMTLUB(AlignedMTL):
    r"""Aligned-MTL-UB: Aligned-MTL on the gradients with respect to the shared representation.

    .. math:: \hat J_z = B_z J_z, \quad B_z \text{ from } G_z = J_z J_z^\top, \quad
        \text{then backpropagate through the encoder}

    The cheap "upper bound" variant of Senushkin et al., CVPR 2023, in the spirit of MGDA-UB: the aligned
    direction is computed for the representation ``z`` that the heads read, which costs one backward pass
    through the encoder instead of ``T``. Same math as :class:`AlignedMTL`; only the default ``level``
    differs.

    Args:
        scale_mode: ``"min"`` (default), ``"median"`` or ``"rmse"``.
        level: ``"representation"`` (default) or ``"parameters"``.

    Shape:
        jacobian: ``[T, Z]`` (``Z`` the flattened representation); returns ``[Z]``.

    Example:
        >>> AlignedMTLUB()
        AlignedMTLUB(scale_mode='min', level='representation')

    Used in chapter 07.
    """

    def __init__(self, scale_mode: str = "min", level: str = "representation") -> None:
        super().__init__(scale_mode=scale_mode, level=level)
