"""FAMO: fast adaptive multitask optimisation, balancing the rates at which the losses fall."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from mtlcourse.weighting.base import (
    LossWeighting,
    check_losses,
    check_num_tasks,
    check_positive,
    check_task_count,
)

#: Adam's moment decay rates and denominator epsilon for the logits (PyTorch's defaults, as in the paper's code).
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class FAMO(LossWeighting):
    r"""FAMO: make every task's loss fall at the same *relative* rate, using only the loss values.

    FAMO keeps task logits :math:`\xi` (initialised to 0) and task weights :math:`z = \operatorname{softmax}(\xi)`.
    With the shifted losses :math:`\ell_t = L_t - b_t + \epsilon` (:math:`b` = ``min_losses``), the model
    minimises

    .. math::

        \mathcal{L} = c \sum_{t=1}^{T} z_t \log \ell_t, \qquad
        c = \Big(\sum_{t=1}^{T} \frac{z_t}{\ell_t}\Big)^{-1} \text{ (a constant)}, \qquad
        \nabla_\theta \mathcal{L} = \sum_{t=1}^{T} \frac{c \, z_t}{\ell_t} \nabla_\theta L_t

    so the effective weights :math:`c z_t / \ell_t` (held in ``last_weights``) are positive and sum to 1.
    After the optimiser step, the losses of the same batch are recomputed (:math:`\ell'`) and the logits
    follow the decrease of the log losses:

    .. math::

        \delta = \Big(\frac{\partial z}{\partial \xi}\Big)^{\!\top}
                 \big(\log \ell - \log \ell'\big), \qquad
        \xi \leftarrow \xi - \beta \, (\delta + \gamma \, \xi)

    A task whose log loss fell more than the weighted average has :math:`\delta_t > 0` and loses weight;
    a task that fell less gains weight. The rule above is the paper's Algorithm 1; as in its practical
    version (Algorithm 2) and the official code, the step on :math:`\xi` is taken with Adam (step size
    :math:`\beta`, L2 decay :math:`\gamma`), whose state this method keeps between steps.

    Reference: Liu, Feng, Stone and Liu, "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023.

    Args:
        num_tasks: the number of tasks ``T``.
        beta: :math:`\beta`, the step size (Adam's learning rate) of the logits; the paper uses 0.025.
        gamma: :math:`\gamma`, the decay of the logits towards 0 (equal weights), non-negative; the paper's
            Algorithm 2 uses 0.001.
        min_losses: :math:`b`, a lower bound of each task loss (default 0, right for cross-entropy and
            squared errors). Losses that can be negative (the 2-D toy problem) need a bound below them.
        eps: :math:`\epsilon`, keeps :math:`\log \ell_t` finite when a loss reaches its bound.

    Shape:
        losses: ``[T]``, above ``min_losses``. Returns a scalar; ``last_weights``: ``[T]``.

    The training loop must give :meth:`~mtlcourse.weighting.base.LossWeighting.on_step_end` the recomputed losses (``needs_losses_after_step``);
    :func:`mtlcourse.train.fit` and :func:`mtlcourse.toy.run_toy` do.

    Example:
        >>> method = FAMO(2)
        >>> method(torch.tensor([1.0, 4.0]))
        tensor(1.1090)
        >>> method.last_weights
        tensor([0.8000, 0.2000])
        >>> method.on_step_end(torch.tensor([1.0, 4.0]), torch.tensor([0.5, 3.9]))  # task 0 fell faster
        >>> method.z
        tensor([0.4875, 0.5125])

    Used in chapter 05.
    """

    needs_losses_after_step = True

    def __init__(
        self,
        num_tasks: int,
        beta: float = 0.025,
        gamma: float = 0.001,
        min_losses: Sequence[float] | None = None,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        check_famo_arguments(num_tasks, gamma, min_losses)
        check_positive("beta", beta)
        check_positive("eps", eps)
        self.num_tasks, self.beta, self.gamma, self.eps = num_tasks, beta, gamma, eps
        bounds = [0.0] * num_tasks if min_losses is None else [float(b) for b in min_losses]
        self.register_buffer("min_losses", torch.tensor(bounds))  # [T] b
        self.register_buffer("logits", torch.zeros(num_tasks))  # [T] xi
        self.register_buffer("exp_avg", torch.zeros(num_tasks))  # [T] Adam's first moment
        self.register_buffer("exp_avg_sq", torch.zeros(num_tasks))  # [T] Adam's second moment
        self.num_steps = 0

    @property
    def z(self) -> Tensor:
        """The task weights :math:`z = \\operatorname{softmax}(\\xi)`, ``[T]``."""
        return torch.softmax(self.logits, dim=0)  # [T]

    def shifted(self, losses: Tensor) -> Tensor:
        """:math:`\\ell = L - b + \\epsilon` ``[T]``; raises if a loss is not above its bound."""
        ell = losses - self.min_losses.to(losses) + self.eps  # [T]
        if not bool((ell > 0).all()):
            raise ValueError(
                f"FAMO needs every loss above min_losses={self.min_losses.tolist()}, got {losses.detach().tolist()}"
            )
        return ell

    def weights(self, losses: Tensor) -> Tensor:
        check_num_tasks(self, self.num_tasks, losses)
        ell = self.shifted(losses.detach())  # [T]
        z = self.z.to(losses)  # [T]
        return z / ell / (z / ell).sum()  # [T] c z_t / ell_t

    def forward(self, losses: Tensor) -> Tensor:
        check_losses(losses)
        self.last_weights = self.weights(losses)  # [T]
        ell = self.shifted(losses)  # [T], still attached to the graph
        z = self.z.to(losses)  # [T]
        c = 1.0 / (z / ell.detach()).sum()  # scalar, a constant for the backward pass
        return c * (z * ell.log()).sum()

    def on_step_end(self, losses: Tensor, losses_after: Tensor | None = None) -> None:
        if losses_after is None:
            raise ValueError(
                "FAMO.on_step_end needs losses_after, the batch's losses recomputed after the step"
            )
        check_num_tasks(self, self.num_tasks, losses)
        check_num_tasks(self, self.num_tasks, losses_after)
        decrease = (self.shifted(losses).log() - self.shifted(losses_after).log()).to(self.logits)  # [T]
        z = self.z  # [T]
        delta = z * (decrease - (z * decrease).sum())  # [T], the softmax Jacobian (transposed) times decrease
        self.adam_step(delta + self.gamma * self.logits)

    def adam_step(self, grad: Tensor) -> None:
        """One Adam step on the logits along ``grad`` ``[T]`` (the same arithmetic as ``torch.optim.Adam``)."""
        b1, b2 = ADAM_BETAS
        self.num_steps += 1
        self.exp_avg.mul_(b1).add_(grad, alpha=1 - b1)  # [T]
        self.exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2)  # [T]
        m_hat = self.exp_avg / (1 - b1**self.num_steps)  # [T] bias-corrected moments
        v_hat = self.exp_avg_sq / (1 - b2**self.num_steps)  # [T]
        self.logits.sub_(self.beta * m_hat / (v_hat.sqrt() + ADAM_EPS))

    def reset(self) -> None:
        super().reset()
        for buffer in (self.logits, self.exp_avg, self.exp_avg_sq):
            buffer.zero_()
        self.num_steps = 0

    def hyperparameters(self) -> dict[str, object]:
        return {
            "num_tasks": self.num_tasks,
            "beta": self.beta,
            "gamma": self.gamma,
            "min_losses": self.min_losses.tolist(),
            "eps": self.eps,
        }


def check_famo_arguments(num_tasks: int, gamma: float, min_losses: Sequence[float] | None) -> None:
    """Raise ``ValueError`` for a ``num_tasks``, ``gamma`` or ``min_losses`` FAMO cannot use."""
    check_task_count(num_tasks)
    if not gamma >= 0:
        raise ValueError(f"gamma must be non-negative, got {gamma!r}")
    if min_losses is not None and (
        len(min_losses) != num_tasks or not all(math.isfinite(float(b)) for b in min_losses)
    ):
        raise ValueError(f"min_losses must be {num_tasks} finite numbers (one per task), got {min_losses!r}")
