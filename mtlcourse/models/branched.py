"""The branch point: share a backbone's first stages, give every task its own copy of the rest."""

from __future__ import annotations

import copy
from collections.abc import Iterator

from torch import Tensor, nn

from mtlcourse.models.backbones import StageStack, check_backbone_input, contract_numbers, run_stages
from mtlcourse.models.base import MultiTaskModel
from mtlcourse.models.heads import make_heads
from mtlcourse.tasks import Task, as_task_dict
from mtlcourse.utils import is_whole_number


class BranchedNetwork(MultiTaskModel):
    r"""Share the backbone's first ``branch_point`` stages; every task gets its own copy of the later ones.

    .. math:: z = f_k \circ \dots \circ f_1(x), \qquad
        \hat y_t = h_t\big(f^{(t)}_S \circ \dots \circ f^{(t)}_{k+1}(z)\big), \quad t = 1, \dots, T

    with :math:`f_1, \dots, f_S` the backbone's stages, :math:`k` the branch point, :math:`f^{(t)}_s` task
    :math:`t`'s own copy of stage :math:`s`, and :math:`h_t` its head. The branch point slides between two
    ends: :math:`k = S` shares every stage (hard parameter sharing: the same network as
    :class:`~mtlcourse.models.hard_sharing.HardParameterSharing`), :math:`k = 1` shares only the first stage.
    Early stages learn generic features (edges, colours) and late ones task-specific features, so a later
    branch point shares more and costs fewer parameters; where to branch is the question of chapter 08.
    Learning a whole tree of branch points is the subject of Vandenhende, Georgoulis, De Brabandere and
    Van Gool, "Branched Multi-Task Networks: Deciding What Layers To Share", BMVC 2020; here every task
    branches at the same stage.

    Why not :math:`k = 0`: nothing shared means one separate network per task. That is :math:`T`
    single-task models (``HardParameterSharing(backbone, task)`` for each task, the baselines of chapter 02),
    not one multi-task model: it would have no shared parameters, which :meth:`shared_parameters` and the
    gradient methods of chapters 06 and 07 are about.

    Shared parameters: the first ``branch_point`` stages. Task parameters: the task's copy of the later
    stages and its head. The shared representation ``z`` is the output of stage ``branch_point``: every
    head reads it (through its own later stages), so representation-level methods work.

    Args:
        backbone: a module that honours the stage contract (see :mod:`mtlcourse.models.backbones`); its
            first stages become the shared trunk, and each task gets a copy (``copy.deepcopy``, so the same
            starting weights: a pretrained backbone stays pretrained in every branch) of the others.
        tasks: the tasks to predict (a dict, a list or one :class:`~mtlcourse.tasks.Task`).
        branch_point: how many stages are shared, from 1 to the backbone's number of stages; ``None``
            (default) shares all but the last.
        head_hidden: width of a hidden layer in the image-level heads (0 for a linear head).

    Example:
        >>> from mtlcourse.models.backbones import SmallCNN
        >>> tasks = [Task("shape", "multiclass", 4), Task("size", "regression", 1)]
        >>> model = BranchedNetwork(SmallCNN(width=8), tasks, branch_point=2)
        >>> model.encode(torch.zeros(2, 3, 32, 32)).shape  # after stage 2: 16 channels, 8x8
        torch.Size([2, 16, 8, 8])
        >>> {name: out.shape for name, out in model(torch.zeros(2, 3, 32, 32)).items()}
        {'shape': torch.Size([2, 4]), 'size': torch.Size([2, 1])}

    Used in chapter 08.
    """

    def __init__(
        self,
        backbone: nn.Module,
        tasks: dict[str, Task] | list[Task] | Task,
        branch_point: int | None = None,
        head_hidden: int = 0,
    ) -> None:
        super().__init__()
        self.backbone_contract = contract_numbers(backbone)
        self.tasks = as_task_dict(tasks)
        S = len(backbone.stages)
        k = S - 1 if branch_point is None else branch_point
        self.branch_point = check_branch_point(k, S, default=branch_point is None)
        self.trunk = nn.ModuleList(backbone.stages[:k])
        self.branches = nn.ModuleDict(
            {name: copy.deepcopy(nn.ModuleList(backbone.stages[k:])) for name in self.tasks}
        )
        self.heads = make_heads(self.tasks, backbone.out_channels, backbone.reduction, hidden=head_hidden)

    def extra_repr(self) -> str:
        return f"branch_point={self.branch_point}"

    def check_input(self, images: Tensor) -> None:
        """Raise ``ValueError`` unless ``images`` fit the backbone (checked along the trunk and one branch)."""
        first = next(iter(self.branches.values()))
        check_backbone_input(StageStack([*self.trunk, *first], **self.backbone_contract), images)

    def encode(self, images: Tensor) -> Tensor:
        return run_stages(self.trunk, images)  # [B, C_k, h_k, w_k] the output of stage k

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        return {name: head(run_stages(self.branches[name], z)) for name, head in self.heads.items()}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.trunk.parameters()

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.branches[task], self.heads[task]]


def check_branch_point(k: int, num_stages: int, default: bool = False) -> int:
    """Return ``k`` if it is a whole number from 1 to ``num_stages``; raise ``ValueError`` saying why not.

    ``default`` says that ``k`` is the default (all stages but the last), for the message.
    """
    if not is_whole_number(k, 1, num_stages):
        note = f" (the default shares all stages but the last: {k})" if default else ""
        raise ValueError(
            f"branch_point must be a whole number from 1 to {num_stages}, the backbone's number of stages, "
            f"got {k!r}{note}; 1 shares only the first stage, {num_stages} shares all of them (hard "
            "parameter sharing). To share nothing, train one single-task model per task instead"
        )
    return k


__all__ = ["BranchedNetwork", "check_branch_point"]
