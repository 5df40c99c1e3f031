"""CNN backbones that honour the stage contract.

Every backbone has ``stages`` (an ``nn.ModuleList``; stage ``s`` maps the output of stage ``s - 1`` to the
input of stage ``s + 1``), ``stage_channels`` (the output channels of each stage), ``reduction`` (how many
times smaller the last feature map is than the image) and ``out_channels``. Architectures that share only
the first stages (chapter 08) work stage by stage through this contract.
"""

from __future__ import annotations

import torchvision
from torch import Tensor, nn


def conv_block(in_channels: int, out_channels: int, batch_norm: bool) -> nn.Sequential:
    """3x3 convolution, optional batch normalisation, ReLU; keeps the spatial size."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """A small VGG-style CNN: ``num_stages`` stages of two 3x3 conv blocks and a 2x2 max-pool.

    Stage ``s`` has ``width * 2**s`` channels and halves the spatial size, so a 32x32 image becomes a
    ``[4 * width, 4, 4]`` feature map with the default three stages.

    Args:
        in_channels: channels of the input images (3 for RGB, 1 for grey).
        width: channels of the first stage; the course's default of 16 trains in seconds on a CPU.
        num_stages: number of stages, each halving the image size.
        batch_norm: whether every convolution is followed by batch normalisation.

    Shape:
        images ``[B, in_channels, H, W]`` -> features ``[B, width * 2**(num_stages-1), H / 2**num_stages,
        W / 2**num_stages]``.

    Example:
        >>> net = SmallCNN(width=8)
        >>> net(torch.zeros(2, 3, 32, 32)).shape, net.stage_channels, net.reduction
        (torch.Size([2, 32, 4, 4]), [8, 16, 32], 8)

    Used in chapter 01.
    """

    def __init__(self, in_channels: int = 3, width: int = 16, num_stages: int = 3, batch_norm: bool = True):
        super().__init__()
        if in_channels < 1 or width < 1 or num_stages < 1:
            raise ValueError(
                f"in_channels, width and num_stages must be >= 1, got {in_channels}, {width}, {num_stages}"
            )
        self.stage_channels = [width * 2**s for s in range(num_stages)]
        self.stages = nn.ModuleList()
        channels = in_channels
        for out in self.stage_channels:
            block = nn.Sequential(
                conv_block(channels, out, batch_norm), conv_block(out, out, batch_norm), nn.MaxPool2d(2)
            )
            self.stages.append(block)
            channels = out
        self.out_channels = channels
        self.reduction = 2**num_stages

    def forward(self, images: Tensor) -> Tensor:
        x = images
        for stage in self.stages:
            x = stage(x)  # [B, C_s, H / 2**(s+1), W / 2**(s+1)]
        return x


class ResNet18(nn.Module):
    """torchvision's ResNet-18 without its classifier, split into five stages.

    Args:
        in_channels: channels of the input images; anything but 3 replaces the first convolution.
        pretrained: load torchvision's ImageNet weights (needs the internet the first time).

    Example:
        >>> net = ResNet18()
        >>> net(torch.zeros(1, 3, 64, 64)).shape, net.reduction
        (torch.Size([1, 512, 2, 2]), 32)

    Used in chapter 13.
    """

    def __init__(self, in_channels: int = 3, pretrained: bool = False) -> None:
        super().__init__()
        weights = torchvision.models.ResNet18_Weights.DEFAULT if pretrained else None
        net = torchvision.models.resnet18(weights=weights)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.stages = nn.ModuleList([stem, net.layer1, net.layer2, net.layer3, net.layer4])
        self.stage_channels = [64, 64, 128, 256, 512]
        self.out_channels = 512
        self.reduction = 32

    def forward(self, images: Tensor) -> Tensor:
        x = images
        for stage in self.stages:
            x = stage(x)  # [B, C_s, H_s, W_s]
        return x


BACKBONES = {"small_cnn": SmallCNN, "resnet18": ResNet18}

__all__ = ["BACKBONES", "ResNet18", "SmallCNN", "conv_block"]
