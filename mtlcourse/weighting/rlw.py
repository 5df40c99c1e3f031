"""Random Loss Weighting: fresh random weights at every step."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlcourse.weighting.base import LossWeighting


class RLW(LossWeighting):
    r"""Random weights, drawn anew at every step: the litmus test any learned weighting should pass.

    .. math::

        \tilde{w} \sim \mathcal{N}(0, I_T), \qquad w = \operatorname{softmax}(\tilde{w}), \qquad
        \mathcal{L} = \sum_{t=1}^{T} w_t \, L_t

    The weights are positive and sum to 1, as in the paper; we do not multiply them by :math:`T`. Their
    mean is :math:`1/T`, so the objective is on the scale of the *mean* task loss, :math:`T` times smaller
    than :class:`~mtlcourse.weighting.equal.EqualWeighting`'s sum. With Adam this constant factor does not
    change the steps; with SGD, compare against equal weighting at a learning rate :math:`T` times larger.

    Reference: Lin, Ye, Zhang and Tsang, "Reasonable Effectiveness of Random Weighting: A Litmus Test for
    Multi-Task Learning", TMLR 2022 (the normal distribution is one of several the paper tries).

    Args:
        seed: seeds the method's own random generator, so the sequence of weights is reproducible and
            independent of any other random numbers the training uses. ``None`` (default) draws from
            PyTorch's global generator instead, which :func:`mtlcourse.train.fit` never seeds: seed it
            yourself with :func:`mtlcourse.utils.seed_everything` (before building the model, say).

    Shape:
        losses: ``[T]``. Returns a scalar; ``last_weights``: ``[T]``.

    The samples are drawn on the device of the losses. The generator is created on that device at the
    first call (and again, from ``seed``, if the device changes); CPU and CUDA generators give different
    sequences for the same seed.

    Example:
        >>> w = RLW(seed=0).weights(torch.ones(3))
        >>> bool((w > 0).all()), round(float(w.sum()), 4)
        (True, 1.0)

    Used in chapter 05.
    """

    def __init__(self, seed: int | None = None) -> None:
        super().__init__()
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")
        self.seed = seed
        self.generator: torch.Generator | None = None

    def weights(self, losses: Tensor) -> Tensor:
        generator = self.generator_for(losses.device)
        w_tilde = torch.randn(
            losses.shape, generator=generator, device=losses.device, dtype=losses.dtype
        )  # [T]
        return torch.softmax(w_tilde, dim=0)  # [T]

    def generator_for(self, device: torch.device) -> torch.Generator | None:
        """The method's generator on ``device``, or ``None`` (the global one) when no seed was given."""
        if self.seed is None:
            return None
        if self.generator is None or self.generator.device != device:
            self.generator = torch.Generator(device=device).manual_seed(self.seed)
        return self.generator

    def reset(self) -> None:
        super().reset()
        self.generator = None  # the next call starts the sequence again from the seed

    def hyperparameters(self) -> dict[str, object]:
        return {"seed": self.seed}
