"""GradVac: pull the cosine between task gradients up to a target learnt as a moving average."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlcourse.aggregation.base import GramianWeighting
from mtlcourse.aggregation.helpers import DeviceGenerator, check_range, random_orders


class GradVac(GramianWeighting):
    r"""Gradient vaccine: set similarity goals between task gradients instead of only removing conflict.

    For every task ``i``, start from :math:`g'_i = g_i` and visit the other tasks ``j`` in a random order,
    with :math:`\phi_{ij} = \cos(g'_i, g_j)` and a target :math:`\hat\phi_{ij}`; when the gradients are less
    similar than the target, add the multiple of :math:`g_j` that makes their cosine equal to it:

    .. math::
        \text{if } \phi_{ij} < \hat\phi_{ij}: \quad
        g'_i \leftarrow g'_i + \frac{\lVert g'_i \rVert \big(\hat\phi_{ij} \sqrt{1 - \phi_{ij}^2}
        - \phi_{ij} \sqrt{1 - \hat\phi_{ij}^2}\big)}{\lVert g_j \rVert \sqrt{1 - \hat\phi_{ij}^2}}\, g_j,
        \qquad \hat\phi_{ij} \leftarrow (1 - \beta)\, \hat\phi_{ij} + \beta\, \phi_{ij},
        \qquad d = \sum_i g'_i

    Wang, Tsvetkov, Firat and Cao, "Gradient Vaccine: Investigating and Improving Multi-task Optimization
    in Massively Multilingual Models", ICLR 2021 (Algorithm 1, with one target per ordered pair of tasks
    for the whole Jacobian, the paper's coarsest granularity). The targets start at 0, so the first call
    is PCGrad; afterwards they track how similar the tasks usually are. Like :class:`~mtlcourse.aggregation.pcgrad.PCGrad`, the method
    runs on the Gramian.

    It is stateful: the targets persist across calls, and :meth:`reset` sets them back to 0 (and restarts
    the random orders). It does not promise ``J d >= 0``. A target of exactly :math:`\pm 1` cannot be
    reached by adding a multiple of :math:`g_j` and is skipped, as are zero gradients.

    Args:
        beta: rate of the exponential moving average of the cosines, in ``[0, 1]`` (default 0.01, the
            paper's value).
        seed: seed of the random orders, drawn on the Jacobian's device (default 0); ``None`` uses torch's
            global generator.
        level: ``"parameters"`` (default) or ``"representation"``.

    Shape:
        jacobian: ``[T, P]``; returns ``[P]``. ``last_weights`` is ``[T]``; ``targets`` is ``[T, T]``
        (``None`` before the first call).

    Example:
        >>> vac = GradVac()
        >>> vac(torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]]))
        tensor([0.5848, 3.8012, 3.8012])
        >>> vac.targets
        tensor([[ 0.0000, -0.0084],
                [-0.0084,  0.0000]])

    Used in chapter 07.
    """

    def __init__(self, beta: float = 0.01, seed: int | None = 0, level: str = "parameters") -> None:
        super().__init__(level=level)
        check_range("beta", beta, 0.0, 1.0)
        self.beta = beta
        self.generator = DeviceGenerator(seed)
        self.targets: Tensor | None = None

    def weights(self, gramian: Tensor) -> Tensor:
        G = gramian
        T = G.shape[0]
        targets = self._targets_for(G)  # [T, T]
        orders = random_orders(T, self.generator, G.device)  # [T, T-1]
        C = torch.eye(T, dtype=G.dtype, device=G.device)  # [T, T] row i: g'_i = C[i] @ J
        norms = G.diagonal().clamp_min(0).sqrt()  # [T] ||g_j||
        rows = torch.arange(T, device=G.device)  # [T]
        tiny = torch.finfo(G.dtype).tiny
        for k in range(T - 1):
            j = orders[:, k]  # [T]
            norm_i = ((C @ G) * C).sum(dim=1).clamp_min(0).sqrt()  # [T] ||g'_i||
            denominator = norm_i * norms[j]  # [T]
            dots = (C * G[j]).sum(dim=1)  # [T] g'_i . g_j
            phi = torch.where(denominator > 0, dots / denominator.clamp_min(tiny), 0.0).clamp(-1, 1)  # [T]
            goal = targets[rows, j]  # [T]
            sin_goal = (1 - goal**2).clamp_min(0).sqrt()  # [T]
            sin_phi = (1 - phi**2).clamp_min(0).sqrt()  # [T]
            active = (phi < goal) & (norms[j] > 0) & (sin_goal > 0)  # [T]
            step = norm_i * (goal * sin_phi - phi * sin_goal) / (norms[j] * sin_goal).clamp_min(tiny)  # [T]
            C[rows, j] += torch.where(active, step, 0.0)
            targets[rows, j] = (1 - self.beta) * goal + self.beta * phi
        return C.sum(dim=0)  # [T]

    def _targets_for(self, G: Tensor) -> Tensor:
        """The targets ``[T, T]``, created at 0 on the first call and kept on ``G``'s device and dtype."""
        T = G.shape[0]
        if self.targets is None:
            self.targets = torch.zeros(T, T, dtype=G.dtype, device=G.device)  # [T, T]
        if self.targets.shape != (T, T):
            raise ValueError(
                f"GradVac holds targets for {self.targets.shape[0]} tasks but got {T}; call reset()"
            )
        self.targets = self.targets.to(G)  # [T, T]
        return self.targets

    def reset(self) -> None:
        super().reset()
        self.targets = None
        self.generator.reset()

    def hyperparameters(self) -> dict[str, object]:
        return {"beta": self.beta, "seed": self.generator.seed}
