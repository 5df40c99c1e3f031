"""Task heads, built from a :class:`~mtlcourse.tasks.Task` by :func:`make_head`."""

from __future__ import annotations

from torch import Tensor, nn

from mtlcourse.tasks import PER_PIXEL_KINDS, Task


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
    r"""A small upsampling decoder for per-pixel tasks: steps of 2x upsampling, each followed by a 3x3 conv.

    A backbone's last feature map is ``reduction`` times smaller than the image (a 32x32 image gives a 1x1
    ResNet-18 map), so one bilinear upsampling by ``reduction`` can only paint a blur. Instead the decoder
    climbs back in :math:`\log_2(\text{reduction})` steps; each step doubles the size (bilinear) and lets a
    3x3 convolution and a ReLU sharpen what the interpolation smeared, with half the channels of the step
    before (but never fewer than ``min_channels``). A 1x1 convolution then gives the outputs per pixel:

    .. math:: x_{k+1} = \mathrm{ReLU}\big(\mathrm{conv}_{3\times3}(\mathrm{up}_2(x_k))\big), \quad
        k = 0, \dots, \log_2 r - 1, \qquad y = \mathrm{conv}_{1\times1}(x_{\log_2 r})

    It is the decoder of an FCN or a U-Net without the skip connections (the heads read only the last
    feature map, so that every architecture of chapter 08 can use them), and small: at width 8 the
    SmallCNN's decoder has about 6,000 weights.

    Args:
        in_channels: channels of the feature map it reads.
        num_outputs: outputs per pixel: classes (segmentation) or 1 (edge).
        reduction: how many times smaller the feature map is than the image (the backbone's
            ``reduction``); a power of 2.
        min_channels: the fewest channels a step may have (default 8).
        squeeze: return ``[B, H, W]`` instead of ``[B, 1, H, W]`` (edge tasks).

    Shape:
        features ``[B, in_channels, h, w]`` -> ``[B, num_outputs, h * reduction, w * reduction]``, or
        ``[B, h * reduction, w * reduction]`` with ``squeeze``.

    Example:
        >>> head = DenseHead(32, 5, reduction=8)
        >>> head(torch.zeros(2, 32, 4, 4)).shape, head.step_channels
        (torch.Size([2, 5, 32, 32]), [16, 8, 8])

    Used in chapter 03.
    """

    def __init__(
        self, in_channels: int, num_outputs: int, reduction: int, min_channels: int = 8, squeeze: bool = False
    ) -> None:
        super().__init__()
        if reduction < 1 or reduction & (reduction - 1):
            raise ValueError(
                f"DenseHead upsamples in steps of 2, so the feature map must be a power of 2 times smaller than "
                f"the image; got reduction={reduction}. Per-pixel tasks (kinds {PER_PIXEL_KINDS}) need a "
                "backbone whose reduction is 1, 2, 4, 8, ..."
            )
        if min_channels < 1:
            raise ValueError(f"min_channels must be at least 1, got {min_channels}")
        self.step_channels: list[int] = []
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(reduction.bit_length() - 1):  # log2(reduction) steps of 2
            out = max(channels // 2, min_channels)
            layers += [
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(channels, out, 3, padding=1),
                nn.ReLU(inplace=True),
            ]
            self.step_channels.append(out)
            channels = out
        layers.append(nn.Conv2d(channels, num_outputs, 1))
        self.net = nn.Sequential(*layers)
        self.squeeze = squeeze

    def forward(self, features: Tensor) -> Tensor:
        out = self.net(features)  # [B, num_outputs, h * reduction, w * reduction]
        return out.squeeze(1) if self.squeeze else out  # [B, H, W] or [B, num_outputs, H, W]


def make_head(task: Task, in_channels: int, reduction: int = 1, hidden: int = 0) -> nn.Module:
    """The head that produces ``task``'s output (see the conventions in :mod:`mtlcourse.tasks`).

    Per-pixel tasks (segmentation, edge) get a :class:`DenseHead` that climbs back from the feature map's
    ``reduction`` to the image's size; every other kind gets a :class:`GlobalHead` (``hidden`` is the width
    of its optional hidden layer).

    Example:
        >>> make_head(Task("edges", "edge", 1), 32, reduction=8)(torch.zeros(1, 32, 4, 4)).shape
        torch.Size([1, 32, 32])
    """
    if not isinstance(task, Task):
        raise ValueError(f"task must be a Task, got {type(task).__name__}")
    if task.kind in PER_PIXEL_KINDS:
        return DenseHead(in_channels, task.num_outputs, reduction, squeeze=task.kind == "edge")
    return GlobalHead(in_channels, task.num_outputs, hidden=hidden, squeeze=task.kind == "binary")


def make_heads(tasks: dict[str, Task], in_channels: int, reduction: int, hidden: int = 0) -> nn.ModuleDict:
    """One head per task (:func:`make_head`), all reading feature maps of ``in_channels`` channels."""
    return nn.ModuleDict(
        {name: make_head(task, in_channels, reduction, hidden=hidden) for name, task in tasks.items()}
    )


__all__ = ["DenseHead", "GlobalHead", "make_head", "make_heads"]
