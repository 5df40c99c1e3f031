"""CNN backbones that honour the stage contract.

Every backbone has ``stages`` (an ``nn.ModuleList``; stage ``s`` maps the output of stage ``s - 1`` to the
input of stage ``s + 1``), ``stage_channels`` (the output channels of each stage), ``out_channels`` (those of
the last stage: the channels of the features it returns), ``reduction`` (how many times smaller the last
feature map is than the image, so images need at least that many pixels a side) and ``in_channels`` (the
channels of the images it takes). Architectures that share only the first stages (chapter 08) work stage by
stage through this contract; ``check_contract`` and ``check_backbone_input`` hold a backbone to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

#: The attributes every backbone has (see the module docstring).
CONTRACT = ("stages", "stage_channels", "out_channels", "reduction", "in_channels")


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
        >>> net(torch.zeros(2, 3, 32, 32)).shape, net.stage_channels, net.reduction, net.in_channels
        (torch.Size([2, 32, 4, 4]), [8, 16, 32], 8, 3)

    Used in chapter 01.
    """

    def __init__(self, in_channels: int = 3, width: int = 16, num_stages: int = 3, batch_norm: bool = True):
        super().__init__()
        if in_channels < 1 or width < 1 or num_stages < 1:
            raise ValueError(
                f"in_channels, width and num_stages must be >= 1, got {in_channels}, {width}, {num_stages}"
            )
        self.in_channels = in_channels
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
        import torchvision  # here, not at the top: importing it takes seconds that SmallCNN users need not pay

        weights = torchvision.models.ResNet18_Weights.DEFAULT if pretrained else None
        net = torchvision.models.resnet18(weights=weights)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.in_channels = in_channels
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


def check_contract(backbone: nn.Module) -> None:
    """Raise ``ValueError`` unless ``backbone`` has every attribute of the stage contract, consistently.

    Example:
        >>> check_contract(nn.Linear(3, 8))
        Traceback (most recent call last):
        ...
        ValueError: the backbone Linear lacks ['stages', 'stage_channels', 'out_channels', 'reduction', 'in_channels'] ...
    """
    name = type(backbone).__name__
    missing = [attribute for attribute in CONTRACT if not hasattr(backbone, attribute)]
    if missing:
        raise ValueError(
            f"the backbone {name} lacks {missing} of the stage contract {list(CONTRACT)} (see "
            "mtlcourse.models.backbones); give it these attributes, as SmallCNN and ResNet18 do"
        )
    if (
        len(backbone.stages) != len(backbone.stage_channels)
        or backbone.stage_channels[-1] != backbone.out_channels
    ):
        raise ValueError(
            f"the backbone {name} breaks the stage contract {list(CONTRACT)}: it has "
            f"{len(backbone.stages)} stages, stage_channels={list(backbone.stage_channels)} and "
            f"out_channels={backbone.out_channels}; "
            "stage_channels needs one entry per stage, and out_channels must equal the last one"
        )


def check_backbone_input(backbone: nn.Module, images: Tensor) -> None:
    """Raise ``ValueError`` when ``images`` ``[B, C, H, W]`` do not fit ``backbone``, or it breaks its contract.

    Checks the channels (``in_channels``) and the size (at least ``reduction`` pixels a side), then runs two
    images through it to check that its features have ``out_channels`` channels and are ``reduction``
    times smaller than the images.

    Example:
        >>> check_backbone_input(SmallCNN(), torch.rand(2, 1, 32, 32))
        Traceback (most recent call last):
        ...
        ValueError: the images have 1 channel(s) but the backbone SmallCNN takes in_channels=3; build ...SmallCNN(in_channels=1)
    """
    name, (channels, H, W) = type(backbone).__name__, images.shape[1:]
    if channels != backbone.in_channels:
        raise ValueError(
            f"the images have {channels} channel(s) but the backbone {name} takes "
            f"in_channels={backbone.in_channels}; build the backbone for these images, e.g. "
            f"{name}(in_channels={channels})"
        )
    r = backbone.reduction
    if min(H, W) < r:
        raise ValueError(
            f"the images are {H}x{W} pixels, smaller than the backbone {name}'s reduction={r} (its features "
            f"are {r} times smaller than the image); use images of at least {r}x{r} pixels, or a backbone "
            "with fewer stages"
        )
    features = probe(backbone, images[:2])  # [2, C_out, h, w]
    if features.shape[1] != backbone.out_channels:
        raise ValueError(
            f"the backbone {name} declares out_channels={backbone.out_channels} but outputs "
            f"{features.shape[1]} channels; in the stage contract {list(CONTRACT)} out_channels is what the "
            f"last stage outputs: set out_channels={features.shape[1]} (and the last stage_channels entry)"
        )
    h, w = features.shape[-2:]
    if not (H // r <= h <= -(-H // r) and W // r <= w <= -(-W // r)):  # floor or ceiling of H / r
        raise ValueError(
            f"the backbone {name} declares reduction={r} but turns {H}x{W} images into {h}x{w} features; "
            f"in the stage contract {list(CONTRACT)} reduction is how many times smaller its features are "
            "than the images: set it to match what the stages do"
        )


def contract_numbers(backbone: nn.Module) -> dict[str, object]:
    """The numbers of ``backbone``'s stage contract (all but ``stages``), after checking it honours the contract.

    Architectures that cut a backbone into pieces keep them, to check images against a whole path of pieces
    later (:class:`StageStack`).

    Example:
        >>> contract_numbers(SmallCNN(width=4))
        {'in_channels': 3, 'stage_channels': [4, 8, 16], 'reduction': 8}
    """
    check_contract(backbone)
    return {
        "in_channels": backbone.in_channels,
        "stage_channels": list(backbone.stage_channels),
        "reduction": backbone.reduction,
    }


class StageStack(nn.Module):
    """Stages run one after the other, presented as a backbone with the stage contract.

    Architectures that cut a backbone into pieces (a shared trunk and per-task branches, a stem and experts)
    rebuild one task's whole path of pieces with it, so that ``check_backbone_input`` can check images
    against the path as it would against the backbone. It copies nothing: the stages stay the model's own.

    Args:
        stages: the stages, in order.
        in_channels: channels of the images the first stage takes.
        stage_channels: output channels of each stage.
        reduction: how many times smaller the last stage's output is than the images.

    Example:
        >>> net = SmallCNN(width=4)
        >>> path = StageStack(net.stages, **contract_numbers(net))
        >>> path.out_channels, torch.equal(path(torch.ones(1, 3, 8, 8)), net(torch.ones(1, 3, 8, 8)))
        (16, True)
    """

    def __init__(
        self, stages: Sequence[nn.Module], in_channels: int, stage_channels: Sequence[int], reduction: int
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.in_channels = in_channels
        self.stage_channels = list(stage_channels)
        self.out_channels = self.stage_channels[-1]
        self.reduction = reduction
        check_contract(self)

    def forward(self, images: Tensor) -> Tensor:
        return run_stages(self.stages, images)  # [B, out_channels, H / reduction, W / reduction]


def run_stages(stages: Sequence[nn.Module], x: Tensor) -> Tensor:
    """Run ``x`` through ``stages`` in order (none: ``x`` itself), as a backbone runs its stages."""
    for stage in stages:
        x = stage(x)  # [B, C_s, H_s, W_s]
    return x


def probe(backbone: nn.Module, images: Tensor) -> Tensor:
    """The backbone's features of ``images``, leaving it as it was: no gradient, no batch-norm statistics.

    Works for any module (a whole model too): it runs in eval mode without autograd, then every submodule
    gets back the mode it had.
    """
    modes = [(module, module.training) for module in backbone.modules()]
    backbone.eval()  # batch norm then uses its running statistics instead of updating them
    try:
        with torch.no_grad():
            return backbone(images)
    finally:
        for module, training in modes:
            module.training = training


BACKBONES = {"small_cnn": SmallCNN, "resnet18": ResNet18}

__all__ = [
    "BACKBONES",
    "CONTRACT",
    "ResNet18",
    "SmallCNN",
    "StageStack",
    "check_backbone_input",
    "check_contract",
    "contract_numbers",
    "conv_block",
    "run_stages",
]
