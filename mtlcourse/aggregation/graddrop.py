"""GradDrop: keep, coordinate by coordinate, only the gradients of one randomly chosen sign."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtlcourse.aggregation.base import Aggregator, check_jacobian
from mtlcourse.aggregation.helpers import DeviceGenerator, check_range


class GradDrop(Aggregator):
    r"""Gradient sign dropout: at each coordinate, pick a sign with the odds of the gradients' sign purity.

    .. math::
        \mathcal P = \tfrac12 \Big(1 + \frac{\sum_t J_{t}}{\sum_t |J_{t}|}\Big),\quad
        U \sim \mathcal U[0, 1]^P,\quad
        M_t = \mathbb 1[\mathcal P > U] \circ \mathbb 1[J_t > 0] + \mathbb 1[\mathcal P < U] \circ \mathbb 1[J_t < 0]

    .. math:: d = \sum_{t=1}^{T} \big(\ell_t + (1 - \ell_t) M_t\big) \circ J_t

    Chen, Ngiam, Huang, Luong, Kretzschmar, Chai and Anguelov, "Just Pick a Sign: Optimizing Deep Multitask
    Models with Gradient Sign Dropout", NeurIPS 2020 (Algorithm 1). :math:`\mathcal P` (the positive sign
    purity) is 1 where all tasks push a coordinate up and 0 where all push it down; the mask keeps all
    positive entries of a coordinate with probability :math:`\mathcal P` and all negative ones otherwise.
    The leak :math:`\ell_t` lets a fraction of task ``t``'s gradient through unmasked. The paper applies
    GradDrop to the gradients at the shared activations, so the default ``level`` is
    ``"representation"``; every column of ``J`` gets its own draw.

    What it promises: where all tasks agree in sign, or with one task, or with ``leak = 1``, ``d`` is the
    sum of the gradients; otherwise the result is random, its expectation sign-balanced. It does not promise
    ``J d >= 0``.

    Args:
        leak: one value in ``[0, 1]`` for all tasks, or one per task (default 0.0, no leak).
        seed: seed of the uniform draws, made by a generator on the Jacobian's device (default 0);
            ``None`` uses torch's global generator. :meth:`reset` restarts the sequence.
        level: ``"representation"`` (default, as in the paper) or ``"parameters"``.

    Shape:
        jacobian: ``[T, P]``; returns ``[P]``. ``last_weights`` stays ``None``: the mask is per
        coordinate, not per task.

    Example:
        >>> GradDrop(level="parameters")(torch.tensor([[1.0, -2.0], [3.0, -4.0]]))
        tensor([ 4., -6.])

    Used in chapter 07.
    """

    def __init__(
        self, leak: float | Sequence[float] = 0.0, seed: int | None = 0, level: str = "representation"
    ) -> None:
        super().__init__(level=level)
        values = [leak] if isinstance(leak, int | float) else list(leak)
        if not values:
            raise ValueError("leak must be a number in [0, 1] or a non-empty list of them, got []")
        for value in values:
            check_range("leak", value, 0.0, 1.0)
        self.leak = leak if isinstance(leak, int | float) else tuple(float(v) for v in values)
        self.generator = DeviceGenerator(seed)

    def forward(self, jacobian: Tensor, losses: Tensor | None = None) -> Tensor:
        check_jacobian(jacobian)
        J = jacobian
        leak = self._leak(J)  # [T, 1]
        total, magnitude = J.sum(dim=0), J.abs().sum(dim=0)  # [P], [P]
        purity = 0.5 * (1 + total / torch.where(magnitude > 0, magnitude, 1.0))  # [P] in [0, 1]
        U = torch.rand(
            J.shape[1], generator=self.generator.get(J.device), device=J.device, dtype=J.dtype
        )  # [P]
        keep = torch.where(J > 0, purity > U, purity < U)  # [T, P]; J = 0 entries add nothing either way
        return ((leak + (1 - leak) * keep.to(J.dtype)) * J).sum(dim=0)  # [P]

    def _leak(self, J: Tensor) -> Tensor:
        """The leak of every task as a column ``[T, 1]`` on the device and dtype of ``J``."""
        T = J.shape[0]
        values = [float(self.leak)] * T if isinstance(self.leak, int | float) else list(self.leak)
        if len(values) != T:
            raise ValueError(f"GradDrop has {len(values)} leak values but the Jacobian has {T} rows")
        return torch.tensor(values, dtype=J.dtype, device=J.device)[:, None]  # [T, 1]

    def reset(self) -> None:
        super().reset()
        self.generator.reset()

    def hyperparameters(self) -> dict[str, object]:
        return {"leak": self.leak, "seed": self.generator.seed}
