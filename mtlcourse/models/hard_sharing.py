"""Hard parameter sharing: one shared encoder, one head per task."""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor, nn

from mtlcourse.models.backbones import check_backbone_input, check_contract
from mtlcourse.models.base import MultiTaskModel
from mtlcourse.models.heads import make_heads
from mtlcourse.tasks import Task, as_task_dict


class HardParameterSharing(MultiTaskModel):
    r"""A shared backbone followed by one small head per task (Caruana, 1997; Ruder, 2017).

    .. math:: \hat y_t = h_t\big(f(x)\big), \qquad t = 1, \dots, T

    The backbone ``f`` is shared by every task; the heads ``h_t`` are task-specific. With a single task
    this is an ordinary single-task network, so the single-task baselines of the course use this class too.

    Args:
        backbone: a module that honours the stage contract (``stages``, ``stage_channels``, ``out_channels``,
            ``reduction``, ``in_channels``; see :mod:`mtlcourse.models.backbones`).
        tasks: the tasks to predict (a dict, a list or one :class:`~mtlcourse.tasks.Task`).
        head_hidden: width of a hidden layer in the image-level heads (0 for a linear head).

    Example:
        >>> from mtlcourse.models.backbones import SmallCNN
        >>> model = HardParameterSharing(SmallCNN(width=8), [Task("shape", "multiclass", 4)])
        >>> {name: out.shape for name, out in model(torch.zeros(2, 3, 32, 32)).items()}
        {'shape': torch.Size([2, 4])}

    Used in chapter 02.
    """

    def __init__(self, backbone: nn.Module, tasks: dict[str, Task] | list[Task] | Task, head_hidden: int = 0):
        super().__init__()
        check_contract(backbone)
        self.tasks = as_task_dict(tasks)
        self.backbone = backbone
        self.heads = make_heads(self.tasks, backbone.out_channels, backbone.reduction, hidden=head_hidden)

    def check_input(self, images: Tensor) -> None:
        """Raise ``ValueError`` unless ``images`` fit the backbone and it honours its contract (channels, size,
        ``out_channels``, ``reduction``; see ``mtlcourse.models.backbones.check_backbone_input``)."""
        check_backbone_input(self.backbone, images)

    def encode(self, images: Tensor) -> Tensor:
        return self.backbone(images)  # [B, C, h, w]

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        return {name: head(z) for name, head in self.heads.items()}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.backbone.parameters()

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.heads[task]]
