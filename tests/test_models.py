"""Contract tests run over every architecture in MODELS, both backbones and every kind of head."""

import pytest
import torch
from torch import nn

from mtlcourse.data import TensorMultiTaskDataset
from mtlcourse.models import (
    BACKBONES,
    MODELS,
    HardParameterSharing,
    MultiTaskModel,
    ResNet18,
    SmallCNN,
    make_head,
)
from mtlcourse.models.backbones import CONTRACT, check_backbone_input, check_contract
from mtlcourse.tasks import KINDS, Task

TASKS = [
    Task("cls", "multiclass", 4),
    Task("bin", "binary", 1),
    Task("tags", "multilabel", 3),
    Task("seg", "segmentation", 5),
    Task("edge", "edge", 1),
    Task("reg", "regression", 2),
]
EXPECTED_SHAPE = {
    "cls": (2, 4),
    "bin": (2,),
    "tags": (2, 3),
    "seg": (2, 5, 32, 32),
    "edge": (2, 32, 32),
    "reg": (2, 2),
}
#: The backbones every architecture is tested with: the course's small CNN at width 4, and ResNet-18.
BACKBONE_FACTORIES = {"small_cnn": lambda: SmallCNN(width=4), "resnet18": ResNet18}


def targets_for(batch: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "cls": torch.randint(0, 4, (batch,), generator=g),
        "bin": torch.randint(0, 2, (batch,), generator=g).float(),
        "tags": torch.randint(0, 2, (batch, 3), generator=g).float(),
        "seg": torch.randint(0, 5, (batch, 32, 32), generator=g),
        "edge": (torch.rand(batch, 32, 32, generator=g) < 0.1).float(),
        "reg": torch.randn(batch, 2, generator=g),
    }


def test_the_tasks_here_cover_every_kind():
    assert sorted(task.kind for task in TASKS) == sorted(KINDS)


@pytest.mark.parametrize("backbone", sorted(BACKBONE_FACTORIES))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_outputs_have_one_entry_per_task_with_the_right_shape(name, backbone):
    model = MODELS[name](BACKBONE_FACTORIES[backbone](), TASKS)
    outputs = model(torch.rand(2, 3, 32, 32))
    assert list(outputs) == [t.name for t in TASKS]
    assert {k: tuple(v.shape) for k, v in outputs.items()} == EXPECTED_SHAPE


@pytest.mark.parametrize("backbone", sorted(BACKBONE_FACTORIES))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_parameter_gets_a_gradient_from_the_task_losses(name, backbone):
    torch.manual_seed(0)
    model = MODELS[name](BACKBONE_FACTORIES[backbone](), TASKS)
    outputs = model(torch.rand(2, 3, 32, 32))
    targets = targets_for()
    sum(task.loss(outputs[task.name], targets[task.name]) for task in TASKS).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("backbone", sorted(BACKBONE_FACTORIES))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_shared_and_task_parameters_are_disjoint_and_complete(name, backbone):
    model = MODELS[name](BACKBONE_FACTORIES[backbone](), TASKS)
    shared = {id(p) for p in model.shared_parameters()}
    per_task = [{id(p) for p in model.task_parameters(t.name)} for t in TASKS]
    every = {id(p) for p in model.parameters()}
    assert shared and all(per_task)
    assert not shared & set().union(*per_task)
    assert all(not a & b for i, a in enumerate(per_task) for b in per_task[i + 1 :])
    assert shared | set().union(*per_task) == every
    assert {id(p) for p in model.task_parameters()} == set().union(*per_task)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_unknown_task_name_lists_the_valid_ones(name):
    model = MODELS[name](SmallCNN(width=4), TASKS[:2])
    with pytest.raises(ValueError, match=r"\['cls', 'bin'\]"):
        model.task_parameters("nope")


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbones_honour_the_stage_contract(name, in_channels):
    net = BACKBONES[name](in_channels=in_channels)
    assert all(hasattr(net, attribute) for attribute in CONTRACT)
    assert net.in_channels == in_channels
    x = torch.rand(1, in_channels, 64, 64)
    for stage, channels in zip(net.stages, net.stage_channels):
        x = stage(x)
        assert x.shape[1] == channels
    assert x.shape[1] == net.out_channels
    assert x.shape[-1] == 64 // net.reduction
    check_contract(net)
    check_backbone_input(net, torch.rand(2, in_channels, 64, 64))


class Backbone(nn.Module):
    """A backbone of one stage (a stride-4 convolution) whose contract attributes a test can break."""

    def __init__(self, **contract):
        super().__init__()
        self.stages = nn.ModuleList([nn.Conv2d(3, 8, 4, stride=4)])
        self.stage_channels, self.out_channels, self.reduction, self.in_channels = [8], 8, 4, 3
        for attribute, value in contract.items():
            setattr(self, attribute, value)

    def forward(self, images):
        return self.stages[0](images)  # [B, 8, H / 4, W / 4]


def test_a_backbone_missing_contract_attributes_is_refused_when_the_model_is_built():
    backbone = Backbone()
    del backbone.in_channels, backbone.reduction
    with pytest.raises(
        ValueError, match=r"Backbone lacks \['reduction', 'in_channels'\] of the stage contract"
    ):
        HardParameterSharing(backbone, TASKS)


def test_a_backbone_whose_out_channels_is_not_its_last_stage_is_refused_when_the_model_is_built():
    with pytest.raises(
        ValueError, match=r"stage_channels=\[8\] and out_channels=16; .*must equal the last one"
    ):
        HardParameterSharing(Backbone(out_channels=16), TASKS)


@pytest.mark.parametrize(
    "contract, size, message",
    [
        (
            {"stage_channels": [16], "out_channels": 16},
            32,
            r"declares out_channels=16 but outputs 8 channels",
        ),
        ({"reduction": 2}, 32, r"declares reduction=2 but turns 32x32 images into 8x8 features"),
        ({}, 3, r"the images are 3x3 pixels, smaller than the backbone Backbone's reduction=4"),
        ({}, 4, None),
    ],
)
def test_a_backbone_that_breaks_its_contract_or_images_too_small_fail_on_the_first_batch(
    contract, size, message
):
    from mtlcourse.train import evaluate, fit, predict

    data = TensorMultiTaskDataset(torch.rand(4, 3, size, size), {"cls": torch.arange(4)}, TASKS[:1])
    model = HardParameterSharing(Backbone(**contract), TASKS[:1])
    if message is None:
        assert predict(model, data)["cls"].shape == (4, 4)
        return
    for run in (
        lambda: fit(model, data, epochs=1, progress=False),
        lambda: evaluate(model, data),
        lambda: predict(model, data),
    ):
        with pytest.raises(ValueError, match=message):
            run()


def test_check_input_is_a_hook_called_once_on_the_first_batch_and_leaves_the_model_as_it_was():
    from mtlcourse.train import predict

    calls = []

    class Recording(HardParameterSharing):
        def check_input(self, images):
            calls.append(images.clone())
            super().check_input(images)

    data = TensorMultiTaskDataset(torch.rand(5, 3, 32, 32), {"cls": torch.arange(5) % 4}, TASKS[:1])
    model = Recording(SmallCNN(width=4), TASKS[:1])
    stats = [b.clone() for b in model.buffers()]
    predict(model, data, batch_size=2)
    assert len(calls) == 1 and torch.equal(calls[0], data.images[:2])
    assert all(torch.equal(a, b) for a, b in zip(stats, model.buffers()))  # batch-norm statistics untouched
    model.train()
    model.backbone.stages[0].eval()  # a frozen stage: the check must not switch it back to training
    model.check_input(data.images)
    assert model.training and not model.backbone.stages[0].training and model.backbone.stages[1].training
    assert MultiTaskModel.check_input(model, torch.rand(1, 7, 1, 1)) is None  # the default checks nothing


def test_small_cnn_rejects_bad_sizes():
    with pytest.raises(ValueError, match="width"):
        SmallCNN(width=0)


def test_a_single_task_model_is_the_same_class_with_one_task():
    model = MODELS["hard_sharing"](SmallCNN(width=4), TASKS[0])
    assert list(model(torch.rand(1, 3, 32, 32))) == ["cls"]


def test_heads_follow_the_task_kind():
    assert make_head(TASKS[1], 8)(torch.rand(3, 8, 2, 2)).shape == (3,)
    assert make_head(TASKS[3], 8, reduction=4)(torch.rand(3, 8, 2, 2)).shape == (3, 5, 8, 8)
    assert make_head(TASKS[4], 8, reduction=4)(torch.rand(3, 8, 2, 2)).shape == (3, 8, 8)


def test_batch_norm_can_be_switched_off():
    net = SmallCNN(width=4, batch_norm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
