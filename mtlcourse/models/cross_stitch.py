"""Cross-stitch networks: one network per task, mixed after every stage by learned coefficients."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from mtlcourse.models.backbones import check_backbone_input, check_contract
from mtlcourse.models.base import MultiTaskModel
from mtlcourse.models.heads import make_heads
from mtlcourse.tasks import Task, as_task_dict


class CrossStitchNetwork(MultiTaskModel):
    r"""One copy of the backbone per task; after every stage, cross-stitch units mix the tasks' feature maps.

    After stage :math:`s`, channel :math:`c` of task :math:`t`'s feature map is replaced by a learned
    combination of channel :math:`c` of every task's map:

    .. math:: \tilde x^{(t)}_{s,c} = \sum_{u=1}^{T} \alpha_{s,c,t,u}\; x^{(u)}_{s,c}

    and :math:`\tilde x^{(t)}_s` goes on into task :math:`t`'s stage :math:`s + 1` (after the last stage, into
    its head). Misra, Shrivastava, Gupta and Hebert, "Cross-stitch Networks for Multi-task Learning",
    CVPR 2016. The network learns how much to share, stage by stage: :math:`\alpha_s` equal to the identity
    is :math:`T` separate networks, equal weights everywhere make every task read the same features.

    As in the paper, each unit starts as a convex combination that favours the task's own network:
    :math:`\alpha_{s,c,t,t} = \text{self\_weight}` (the paper's 0.9) and
    :math:`\alpha_{s,c,t,u} = (1 - \text{self\_weight}) / (T - 1)` for :math:`u \ne t` (the paper's 0.1 for
    two tasks). What is simplified: the paper stitches two AlexNets after chosen pooling and fully connected
    layers, with one coefficient per channel as here; here a unit follows every stage of the backbone, and
    the coefficients learn at the model's learning rate, where the paper gives them one
    :math:`10^2`-:math:`10^3` times larger (with :func:`~mtlcourse.train.fit`'s single learning rate, a
    chapter that wants the paper's setting builds its own optimiser with a parameter group for them).

    Shared parameters: the cross-stitch coefficients (every task's loss depends on all of them). Task
    parameters: the task's copy of the backbone and its head. There is no single shared representation
    (every head reads its own mixed feature map), so representation-level methods are refused.

    Args:
        backbone: a module that honours the stage contract; the first task uses it, every other task a
            ``copy.deepcopy`` of it (the same starting weights, as the paper's networks started from the
            same pretrained weights).
        tasks: at least two tasks (a dict or a list of :class:`~mtlcourse.tasks.Task`).
        self_weight: the starting weight of a task's own feature map, in ``(0, 1]`` (default 0.9).
        head_hidden: width of a hidden layer in the image-level heads (0 for a linear head).

    Shape:
        ``stitches[s]``: ``[C_s, T, T]``, the coefficients after stage ``s`` (``C_s`` its channels).

    Example:
        >>> from mtlcourse.models.backbones import SmallCNN
        >>> tasks = [Task("shape", "multiclass", 4), Task("size", "regression", 1)]
        >>> model = CrossStitchNetwork(SmallCNN(width=8), tasks)
        >>> {name: out.shape for name, out in model(torch.zeros(2, 3, 32, 32)).items()}
        {'shape': torch.Size([2, 4]), 'size': torch.Size([2, 1])}
        >>> model.stitches[0][0]  # channel 0 after stage 0: rows mix into task t, columns come from task u
        tensor([[0.9000, 0.1000],
                [0.1000, 0.9000]], grad_fn=<SelectBackward0>)

    Used in chapter 08.
    """

    has_shared_representation = False

    def __init__(
        self,
        backbone: nn.Module,
        tasks: dict[str, Task] | list[Task],
        self_weight: float = 0.9,
        head_hidden: int = 0,
    ) -> None:
        super().__init__()
        check_contract(backbone)
        self.tasks = as_task_dict(tasks)
        T = len(self.tasks)
        if T < 2:
            raise ValueError(
                f"a cross-stitch network mixes the feature maps of several tasks, got {T} task; for one task "
                "use HardParameterSharing(backbone, task)"
            )
        if not 0 < self_weight <= 1:
            raise ValueError(
                f"self_weight must be in (0, 1], a task's share of its own map, got {self_weight}"
            )
        self.self_weight = self_weight
        copies = [backbone] + [copy.deepcopy(backbone) for _ in range(T - 1)]
        self.columns = nn.ModuleDict(dict(zip(self.tasks, copies)))  # one network per task
        start = torch.full((T, T), (1 - self_weight) / (T - 1)).fill_diagonal_(self_weight)  # [T, T]
        self.stitches = nn.ParameterList(
            [nn.Parameter(start.repeat(C, 1, 1)) for C in backbone.stage_channels]  # [C_s, T, T] each
        )
        self.heads = make_heads(self.tasks, backbone.out_channels, backbone.reduction, hidden=head_hidden)

    def extra_repr(self) -> str:
        return f"self_weight={self.self_weight}"

    def check_input(self, images: Tensor) -> None:
        """Raise ``ValueError`` unless ``images`` fit the backbone (every task's copy is the same network)."""
        check_backbone_input(next(iter(self.columns.values())), images)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        features = [images] * len(self.tasks)  # every task's network starts from the images
        for s, alpha in enumerate(self.stitches):
            maps = [column.stages[s](x) for column, x in zip(self.columns.values(), features)]
            stacked = torch.stack(maps)  # [T, B, C_s, h_s, w_s]
            mixed = torch.einsum("ctu,ubchw->tbchw", alpha, stacked)  # [T, B, C_s, h_s, w_s]
            features = list(mixed.unbind(0))  # T maps [B, C_s, h_s, w_s]
        return {name: head(x) for (name, head), x in zip(self.heads.items(), features)}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.stitches.parameters()

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.columns[task], self.heads[task]]


__all__ = ["CrossStitchNetwork"]
