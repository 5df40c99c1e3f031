"""Task heads, built from a :class:`~mtlcourse.tasks.Task` by :func:`make_head`."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mtlcourse.tasks import Task


class GlobalHead(nn.Module):
    """Global average pooling, an optional hidden layer, and a linear layer.

    Serves every image-level task: multiclass (``num_outputs`` logits), binary (one logit, squeezed to
    ``[B]``), multilabel (one logit per label) and regression (one value per output).

    Args:
        in_channels: channels of the feature map it reads.
        num_outputs: outputs per image.
        hidden: width of a hidden layer (0 for none).
        squeeze: return ``[B]`` instead of ``[B, 1]`` (binary tasks).

    Example:
        >>> GlobalHead(32, 4)(torch.zeros(2, 32, 4, 4)).shape
        torch.Size([2, 4])

    Used in chapter 01.
    """

    def __init__(self, in_channels: int, num_outputs: int, hidden: int = 0, squeeze: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if hidden:
            layers += [nn.Linear(in_channels, hidden), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(hidden or in_channels, num_outputs))
        self.net = nn.Sequential(*layers)
        self.squeeze = squeeze

    def forward(self, features: Tensor) -> Tensor:
        out = self.net(features)  # [B, num_outputs]
        return out.squeeze(1) if self.squeeze else out  # [B] or [B, num_outputs]


class DenseHead(nn.Module):
    """A small decoder for per-pixel tasks: conv, ReLU, 1x1 conv to class logits, bilinear upsampling.

    Args:
        in_channels: channels of the feature map it reads.
        num_classes: classes per pixel.
        scale_factor: how much to upsample, i.e. the backbone's ``reduction``, so that the output has the
            image's size.
        hidden: channels of the intermediate convolution.

    Example:
        >>> DenseHead(32, 5, scale_factor=8)(torch.zeros(2, 32, 4, 4)).shape
        torch.Size([2, 5, 32, 32])

    Used in chapter 03.
    """

    def __init__(self, in_channels: int, num_classes: int, scale_factor: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_classes, 1),
        )
        self.scale_factor = scale_factor

    def forward(self, features: Tensor) -> Tensor:
        logits = self.net(features)  # [B, C, h, w]
        return F.interpolate(logits, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)


def make_head(task: Task, in_channels: int, reduction: int = 1, hidden: int = 0) -> nn.Module:
    """The head that produces ``task``'s output (see the conventions in :mod:`mtlcourse.tasks`).

    Example:
        >>> make_head(Task("edges", "segmentation", 2), 32, reduction=8)(torch.zeros(1, 32, 4, 4)).shape
        torch.Size([1, 2, 32, 32])
    """
    if task.kind == "segmentation":
        return DenseHead(in_channels, task.num_outputs, scale_factor=reduction)
    return GlobalHead(in_channels, task.num_outputs, hidden=hidden, squeeze=task.kind == "binary")


__all__ = ["DenseHead", "GlobalHead", "make_head"]
