"""MGDA and MGDA-UB: the minimum-norm point of the convex hull of the task gradients."""

from __future__ import annotations

import torch  # noqa: F401 (the doctest examples use it)
from torch import Tensor

from mtlcourse.aggregation.base import GramianWeighting
from mtlcourse.aggregation.solvers import gramian_to_numpy, min_norm_weights, weights_like


class MGDA(GramianWeighting):
    r"""Multiple-gradient descent: follow the shortest vector in the convex hull of the task gradients.

    .. math::
        w^\star = \arg\min_{w \ge 0,\ \sum_t w_t = 1} \Big\lVert \sum_{t=1}^{T} w_t g_t \Big\rVert^2
        = \arg\min_{w \in \Delta^T} w^\top G w, \qquad d = J^\top w^\star

    Sener and Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018 (the
    multiple-gradient descent algorithm itself is Désidéri, 2012). The paper solves the problem with
    Frank-Wolfe; here it is solved exactly by an active-set method
    (:func:`mtlcourse.aggregation.solvers.min_norm_weights`), so there is no tolerance and no iteration
    budget to tune.

    What it promises, from the optimality conditions of the problem:

    - no conflict: :math:`g_t^\top d \ge \lVert d \rVert^2 \ge 0` for every task, with equality for every
      task of positive weight, so no loss increases to first order;
    - ``d = 0`` exactly when some convex combination of the gradients is zero (a Pareto-stationary point);
      training then stops, which is why MGDA often under-trains the easy tasks;
    - :math:`\lVert d \rVert \le \min_t \lVert g_t \rVert`: the task with the smallest gradient sets the
      step length. Scaling every gradient by ``s`` scales ``d`` by ``s``, but scaling one task's loss
      changes the weights: MGDA is not invariant to the scale of the losses.

    With two tasks the solution has a closed form: :math:`w_1 = \gamma, w_2 = 1 - \gamma` with
    :math:`\gamma = \mathrm{clip}\big((g_2 - g_1)^\top g_2 / \lVert g_1 - g_2 \rVert^2, 0, 1\big)`.

    Args:
        level: ``"parameters"`` (default) or ``"representation"``; :class:`MGDAUB` is MGDA at the
            representation level.

    Shape:
        jacobian: ``[T, P]``; returns ``[P]``. ``last_weights`` is ``[T]``, non-negative, summing to 1.

    Example:
        >>> MGDA()(torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]]))
        tensor([0., 1., 1.])

    Used in chapter 06.
    """

    #: Whether the direction never conflicts with a task gradient (``J d >= 0``) whatever ``J`` is.
    non_conflicting = True

    def weights(self, gramian: Tensor) -> Tensor:
        return weights_like(min_norm_weights(gramian_to_numpy(gramian)), gramian)  # [T]


class MGDAUB(MGDA):
    r"""MGDA-UB: MGDA on the gradients with respect to the shared representation.

    .. math:: w^\star = \arg\min_{w \in \Delta^T} \Big\lVert \sum_t w_t \nabla_z L_t \Big\rVert^2,
        \qquad \text{then backpropagate } \textstyle\sum_t w^\star_t L_t \text{ through the encoder}

    Sener and Koltun (NeurIPS 2018) prove that the min-norm problem on the gradients with respect to the
    representation ``z`` that the task heads read bounds the one on the shared parameters from above (hence
    "upper bound"), and it costs one backward pass through the encoder instead of ``T``. The math of the
    weights is that of :class:`MGDA`; only the default ``level`` differs. The no-conflict promise then holds
    for the representation gradients, not necessarily for the parameters.

    Args:
        level: ``"representation"`` (default) or ``"parameters"``.

    Shape:
        jacobian: ``[T, Z]`` (``Z`` the flattened representation); returns ``[Z]``.

    Example:
        >>> MGDAUB()
        MGDAUB(level='representation')

    Used in chapter 07.
    """

    def __init__(self, level: str = "representation") -> None:
        super().__init__(level=level)
