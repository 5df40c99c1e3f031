"""PCGrad: project each task gradient off the gradients it conflicts with."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlcourse.aggregation.base import GramianWeighting
from mtlcourse.aggregation.helpers import DeviceGenerator, check_choice, random_orders

REDUCTIONS = ("sum", "mean")


class PCGrad(GramianWeighting):
    r"""Projecting conflicting gradients ("gradient surgery").

    For every task ``i``, start from :math:`g_i^{PC} = g_i` and visit the other tasks ``j`` in a random
    order; whenever the current vector conflicts with :math:`g_j`, remove its component along :math:`g_j`:

    .. math::
        \text{if } g_i^{PC\top} g_j < 0: \quad
        g_i^{PC} \leftarrow g_i^{PC} - \frac{g_i^{PC\top} g_j}{\lVert g_j \rVert^2}\, g_j,
        \qquad d = \sum_{i=1}^{T} g_i^{PC}

    Yu, Kumar, Gupta, Levine, Hausman and Finn, "Gradient Surgery for Multi-Task Learning", NeurIPS 2020
    (Algorithm 1; the projections use the original :math:`g_j`, and the update is the sum).

    Every :math:`g_i^{PC}` is a combination of the rows of ``J`` whose coefficients need only inner products,
    so the method runs on the Gramian: ``T - 1`` rounds, each projecting all ``T`` vectors at once.

    What it promises: with two tasks, ``d`` conflicts with neither (:math:`g_1^\top d = \lVert g_1
    \rVert^2 - (g_1^\top g_2)^2 / \lVert g_2 \rVert^2 \ge 0`), and gradients that do not conflict are left
    untouched (then ``d`` is the sum). With three or more tasks a later projection can undo an earlier one,
    and ``d`` may conflict with a task. The order is random, so two calls on the same ``J`` can differ
    (for ``T >= 3``); ``seed`` makes the sequence of orders reproducible.

    Args:
        reduction: ``"sum"`` (default, as in the paper) or ``"mean"`` of the projected gradients.
        seed: seed of the random orders, drawn by a generator on the Jacobian's device (default 0);
            ``None`` draws from torch's global generator. :meth:`reset` restarts the sequence.
        level: ``"parameters"`` (default) or ``"representation"``.

    Shape:
        jacobian: ``[T, P]``; returns ``[P]``. ``last_weights`` is ``[T]``.

    Example:
        >>> PCGrad()(torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]]))
        tensor([0.5848, 3.8012, 3.8012])

    Used in chapter 06.
    """

    #: Whether the direction never conflicts with a task gradient (``J d >= 0``) whatever ``J`` is;
    #: PCGrad guarantees it for two tasks only.
    non_conflicting = False

    def __init__(self, reduction: str = "sum", seed: int | None = 0, level: str = "parameters") -> None:
        super().__init__(level=level)
        check_choice("reduction", reduction, REDUCTIONS)
        self.reduction = reduction
        self.generator = DeviceGenerator(seed)

    def weights(self, gramian: Tensor) -> Tensor:
        T = gramian.shape[0]
        orders = random_orders(T, self.generator, gramian.device)  # [T, T-1]
        C = torch.eye(T, dtype=gramian.dtype, device=gramian.device)  # [T, T] row i: g_i^PC = C[i] @ J
        squared_norms = gramian.diagonal()  # [T]
        rows = torch.arange(T, device=gramian.device)  # [T]
        tiny = torch.finfo(gramian.dtype).tiny
        for k in range(T - 1):
            j = orders[:, k]  # [T] the task each g_i^PC meets at round k
            dots = (C * gramian[j]).sum(dim=1)  # [T] g_i^PC . g_j
            step = torch.where(dots < 0, dots / squared_norms[j].clamp_min(tiny), 0.0)  # [T]
            C[rows, j] -= step
        w = C.sum(dim=0)  # [T]
        return w / T if self.reduction == "mean" else w

    def reset(self) -> None:
        super().reset()
        self.generator.reset()

    def hyperparameters(self) -> dict[str, object]:
        return {"reduction": self.reduction, "seed": self.generator.seed}
