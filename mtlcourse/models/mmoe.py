"""Multi-gate mixture of experts for images: shared experts, and one softmax gate over them per task."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from mtlcourse.models.backbones import StageStack, check_backbone_input, contract_numbers, run_stages
from mtlcourse.models.base import MultiTaskModel
from mtlcourse.models.heads import make_heads
from mtlcourse.tasks import Task, as_task_dict
from mtlcourse.utils import is_whole_number


class MMoE(MultiTaskModel):
    r"""Multi-gate mixture of experts: every task reads its own gate-weighted sum of shared expert networks.

    .. math::

        s = f_{\mathrm{stem}}(x), \qquad e_i = E_i(s) \ (i = 1, \dots, n), \qquad
        w^{(t)} = \mathrm{softmax}\big(W_t\, \mathrm{pool}(s) + b_t\big), \qquad
        \hat y_t = h_t\Big(\sum_{i=1}^{n} w^{(t)}_i\, e_i\Big)

    Ma, Zhao, Yi, Chen, Hong and Chi, "Modeling Task Relationships in Multi-task Learning with Multi-gate
    Mixture-of-Experts", KDD 2018. The experts are shared by all tasks; each task's gate chooses, image by
    image, how much of each expert it reads. Tasks that need the same features can use the same experts,
    and unrelated tasks can use different ones, so the network learns how much the tasks share.

    How this adapts the paper's MLPs to images: in the paper, the experts are small MLPs on the input
    features and each gate is a linear map of the same input followed by a softmax. Here an expert
    :math:`E_i` is a copy of the backbone's stages from ``shared_stages`` on, and the input they all read is
    the output :math:`s` of the first ``shared_stages`` stages, a shared stem. A linear map of a whole
    feature map would be as large as a layer, so a gate reads its global average :math:`\mathrm{pool}(s)`
    (one number per channel). Each expert outputs a feature map like the backbone's; the heads read the
    weighted sum of these maps. Why a shared stem (``shared_stages=1`` by default): a first stage learns
    generic filters (edges, colours) that every expert would otherwise learn again, so sharing it saves one
    stage of compute and parameters per expert, while the experts still differ in the stages where the tasks
    differ. ``shared_stages=0`` makes every expert a whole copy of the backbone, with gates on the image's
    mean colour, the closest to the paper.

    The experts are initialised afresh, each with its own random weights (``reinitialize_experts``): copies
    with the same weights would get nearly the same gradients (every gate starts near uniform) and their
    gates no reason to tell them apart, so they would stay alike; the paper's experts are initialised
    independently too. ``reinitialize_experts=False`` keeps the backbone's weights in every expert (for a
    pretrained backbone).

    Shared parameters: the stem and the experts (every task's output mixes every expert). Task parameters:
    the task's gate and its head. There is no single shared representation (each head reads its own
    mix, and the gates read the stem), so representation-level methods are refused.

    Args:
        backbone: a module that honours the stage contract; its first ``shared_stages`` stages become the
            stem, copies of the others the experts.
        tasks: the tasks to predict (a dict, a list or one :class:`~mtlcourse.tasks.Task`).
        num_experts: the number of experts :math:`n`, at least 1 (default 3; 1 expert is hard parameter
            sharing with gates that always give 1 and learn nothing).
        shared_stages: how many of the backbone's stages form the shared stem, from 0 to its number of
            stages minus 1 (default 1).
        reinitialize_experts: give every expert fresh random weights (default ``True``, see above).
        head_hidden: width of a hidden layer in the image-level heads (0 for a linear head).

    Example:
        >>> from mtlcourse.models.backbones import SmallCNN
        >>> tasks = [Task("shape", "multiclass", 4), Task("size", "regression", 1)]
        >>> model = MMoE(SmallCNN(width=8), tasks, num_experts=3)
        >>> {name: out.shape for name, out in model(torch.zeros(2, 3, 32, 32)).items()}
        {'shape': torch.Size([2, 4]), 'size': torch.Size([2, 1])}
        >>> model.gate_weights(torch.zeros(2, 3, 32, 32))["shape"].sum(dim=1)  # a distribution per image
        tensor([1.0000, 1.0000], grad_fn=<SumBackward1>)

    Used in chapter 08.
    """

    has_shared_representation = False

    def __init__(
        self,
        backbone: nn.Module,
        tasks: dict[str, Task] | list[Task] | Task,
        num_experts: int = 3,
        shared_stages: int = 1,
        reinitialize_experts: bool = True,
        head_hidden: int = 0,
    ) -> None:
        super().__init__()
        self.backbone_contract = contract_numbers(backbone)
        self.tasks = as_task_dict(tasks)
        check_expert_arguments(num_experts, shared_stages, len(backbone.stages))
        self.num_experts, self.shared_stages = num_experts, shared_stages
        k = shared_stages
        self.stem = nn.ModuleList(backbone.stages[:k])
        self.experts = nn.ModuleList(
            [copy.deepcopy(nn.ModuleList(backbone.stages[k:])) for _ in range(num_experts)]
        )
        if reinitialize_experts:
            for expert in self.experts:
                reinitialize(expert)
        stem_channels = backbone.stage_channels[k - 1] if k > 0 else backbone.in_channels
        self.gates = nn.ModuleDict({name: nn.Linear(stem_channels, num_experts) for name in self.tasks})
        self.heads = make_heads(self.tasks, backbone.out_channels, backbone.reduction, hidden=head_hidden)

    def extra_repr(self) -> str:
        return f"num_experts={self.num_experts}, shared_stages={self.shared_stages}"

    def check_input(self, images: Tensor) -> None:
        """Raise ``ValueError`` unless ``images`` fit the backbone (checked along the stem and one expert)."""
        check_backbone_input(StageStack([*self.stem, *self.experts[0]], **self.backbone_contract), images)

    def gate_weights(self, images: Tensor) -> dict[str, Tensor]:
        """Every task's weights over the experts, ``[B, n]`` per task (each row sums to 1)."""
        return self.gates_and_experts(images)[0]

    def gates_and_experts(self, images: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """The gate weights ``{task: [B, n]}`` and the experts' feature maps ``[B, n, C, h, w]``."""
        s = run_stages(self.stem, images)  # [B, C_k, h_k, w_k] the stem's output (the images if no stem)
        summary = s.mean(dim=(2, 3))  # [B, C_k] global average pool: what the gates read
        gates = {name: torch.softmax(gate(summary), dim=1) for name, gate in self.gates.items()}  # [B, n]
        experts = torch.stack([run_stages(expert, s) for expert in self.experts], dim=1)  # [B, n, C, h, w]
        return gates, experts

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        gates, experts = self.gates_and_experts(images)
        outputs = {}
        for name, head in self.heads.items():
            mixed = (gates[name][:, :, None, None, None] * experts).sum(dim=1)  # [B, C, h, w]
            outputs[name] = head(mixed)
        return outputs

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        yield from self.experts.parameters()

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.gates[task], self.heads[task]]


def check_expert_arguments(num_experts: int, shared_stages: int, num_stages: int) -> None:
    """Raise ``ValueError`` for a number of experts or of stem stages that :class:`MMoE` cannot use."""
    if not is_whole_number(num_experts, 1):
        raise ValueError(f"num_experts must be a whole number, at least 1, got {num_experts!r}")
    if not is_whole_number(shared_stages, 0, num_stages - 1):
        raise ValueError(
            f"shared_stages must be a whole number from 0 to {num_stages - 1} (the backbone has {num_stages} "
            f"stages, and every expert needs at least one), got {shared_stages!r}"
        )


def reinitialize(module: nn.Module) -> None:
    """Draw fresh random weights for every layer of ``module`` (each layer's own ``reset_parameters``)."""
    for layer in module.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()


__all__ = ["MMoE", "check_expert_arguments", "reinitialize"]
