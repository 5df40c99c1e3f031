"""MTAN: a shared backbone, and per task soft attention masks over its features, stage by stage."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlcourse.models.backbones import check_backbone_input, check_contract, conv_block
from mtlcourse.models.base import MultiTaskModel
from mtlcourse.models.heads import make_heads
from mtlcourse.tasks import Task, as_task_dict


def attention_module(in_channels: int, channels: int) -> nn.Sequential:
    """MTAN's mask generator: 1x1 conv, batch norm, ReLU, 1x1 conv, batch norm, sigmoid (a mask in (0, 1))."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 1),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 1),
        nn.BatchNorm2d(channels),
        nn.Sigmoid(),
    )


class MTAN(MultiTaskModel):
    r"""Multi-Task Attention Network: a shared backbone, and for every task a soft mask on each stage's features.

    With :math:`p_s` the shared backbone's output at stage :math:`s = 1, \dots, S`, task :math:`t` attends to
    the shared features with masks it learns, stage by stage:

    .. math::

        a^{(t)}_1 = g^{(t)}_1(p_1), \qquad
        a^{(t)}_s = g^{(t)}_s\big(\big[\,p_s \,;\, \mathrm{pool}(f_s(\hat a^{(t)}_{s-1}))\,\big]\big), \qquad
        \hat a^{(t)}_s = a^{(t)}_s \odot p_s, \qquad \hat y_t = h_t(\hat a^{(t)}_S)

    where :math:`g^{(t)}_s` (:func:`attention_module`) maps its input to a mask in :math:`(0, 1)` per channel
    and pixel, :math:`[\,;\,]` concatenates channels, :math:`f_s` is a 3x3 conv block from the channels of
    stage :math:`s - 1` to those of stage :math:`s`, ``pool`` a max-pool to stage :math:`s`'s size, and
    :math:`h_t` the task's head. Liu, Johns and Davison, "End-to-End Multi-Task Learning with Attention",
    CVPR 2019. The mask of stage :math:`s` reads the shared features of stage :math:`s` and the task's own
    attended features of stage :math:`s - 1`, so each task selects features stage by stage, and a mask of
    ones would give every task the shared features (hard parameter sharing).

    What is simplified, at the scale of our backbones: the paper builds MTAN on SegNet, with attention in
    the encoder and the decoder; here the backbone's stages are the blocks, attention covers only them,
    and each task's head (with its own decoder, for per-pixel tasks) reads the last attended map. In the
    paper a mask reads the output of a block's first layer and multiplies the block's output; the stage
    contract exposes only stage outputs, so the mask reads and multiplies the same :math:`p_s`. As in the
    paper's code, the conv blocks :math:`f_s` are shared by all tasks, and the masks' hidden layers have as
    many channels as the stage.

    Shared parameters: the backbone and the conv blocks :math:`f_s` (every task's features go through
    them). Task parameters: the task's attention modules and its head. There is no single shared
    representation (each head reads features masked by its own task, from every stage), so
    representation-level methods are refused.

    Args:
        backbone: a module that honours the stage contract; MTAN shares all of it.
        tasks: the tasks to predict (a dict, a list or one :class:`~mtlcourse.tasks.Task`).
        head_hidden: width of a hidden layer in the image-level heads (0 for a linear head).

    Example:
        >>> from mtlcourse.models.backbones import SmallCNN
        >>> tasks = [Task("shape", "multiclass", 4), Task("size", "regression", 1)]
        >>> model = MTAN(SmallCNN(width=8), tasks)
        >>> {name: out.shape for name, out in model(torch.zeros(2, 3, 32, 32)).items()}
        {'shape': torch.Size([2, 4]), 'size': torch.Size([2, 1])}
        >>> [mask.shape for mask in model.masks(torch.zeros(2, 3, 32, 32))["shape"]]  # one per stage
        [torch.Size([2, 8, 16, 16]), torch.Size([2, 16, 8, 8]), torch.Size([2, 32, 4, 4])]

    Used in chapter 08.
    """

    has_shared_representation = False

    def __init__(
        self, backbone: nn.Module, tasks: dict[str, Task] | list[Task] | Task, head_hidden: int = 0
    ) -> None:
        super().__init__()
        check_contract(backbone)
        self.tasks = as_task_dict(tasks)
        self.backbone = backbone
        C = list(backbone.stage_channels)
        # f_s for s >= 1 (0-based): carries a task's attended map of stage s - 1 to the channels of stage s.
        self.blocks = nn.ModuleList([conv_block(C[s - 1], C[s], batch_norm=True) for s in range(1, len(C))])
        self.attention = nn.ModuleDict(
            {
                name: nn.ModuleList(
                    [attention_module(C[0], C[0])]
                    + [attention_module(2 * C[s], C[s]) for s in range(1, len(C))]
                )
                for name in self.tasks
            }
        )
        self.heads = make_heads(self.tasks, backbone.out_channels, backbone.reduction, hidden=head_hidden)

    def check_input(self, images: Tensor) -> None:
        """Raise ``ValueError`` unless ``images`` fit the backbone and it honours its contract."""
        check_backbone_input(self.backbone, images)

    def shared_features(self, images: Tensor) -> list[Tensor]:
        """The backbone's output at every stage: ``[B, C_s, h_s, w_s]`` for ``s = 0 .. S-1``."""
        features, x = [], images
        for stage in self.backbone.stages:
            x = stage(x)  # [B, C_s, h_s, w_s]
            features.append(x)
        return features

    def attend(self, task: str, shared: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Task ``task``'s last attended map ``[B, C_S, h_S, w_S]`` and its mask at every stage."""
        masks, attended = [], None
        for s, (p, g) in enumerate(zip(shared, self.attention[task])):
            if s == 0:
                mask = g(p)  # [B, C_0, h_0, w_0]
            else:
                previous = self.blocks[s - 1](attended)  # [B, C_s, h_{s-1}, w_{s-1}]
                previous = F.adaptive_max_pool2d(previous, p.shape[-2:])  # [B, C_s, h_s, w_s]
                mask = g(torch.cat([p, previous], dim=1))  # [B, 2 C_s, h_s, w_s] -> [B, C_s, h_s, w_s]
            attended = mask * p  # [B, C_s, h_s, w_s]
            masks.append(mask)
        return attended, masks

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        shared = self.shared_features(images)  # computed once, read by every task
        return {name: head(self.attend(name, shared)[0]) for name, head in self.heads.items()}

    def masks(self, images: Tensor) -> dict[str, list[Tensor]]:
        """Every task's attention masks, one ``[B, C_s, h_s, w_s]`` per stage, to look at what a task selects."""
        shared = self.shared_features(images)
        return {name: self.attend(name, shared)[1] for name in self.tasks}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.backbone.parameters()
        yield from self.blocks.parameters()

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.attention[task], self.heads[task]]


__all__ = ["MTAN", "attention_module"]
