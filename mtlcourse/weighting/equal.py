"""Equal weighting: the plain sum of the task losses."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlcourse.weighting.base import LossWeighting


class EqualWeighting(LossWeighting):
    r"""Every task gets weight 1: the model minimises the sum of the task losses.

    .. math:: \mathcal{L} = \sum_{t=1}^{T} L_t

    The baseline that every other method must beat, and often does not (Kurin et al., NeurIPS 2022;
    Xin et al., NeurIPS 2022).

    Example:
        >>> EqualWeighting()(torch.tensor([1.0, 2.0, 3.0]))
        tensor(6.)

    Used in chapter 02.
    """

    def weights(self, losses: Tensor) -> Tensor:
        return torch.ones_like(losses)  # [T]
