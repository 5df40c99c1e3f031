"""Contract tests run over every architecture in MODELS and every kind of head."""

import pytest
import torch

from mtlcourse.models import BACKBONES, MODELS, SmallCNN, make_head
from mtlcourse.tasks import Task

TASKS = [
    Task("cls", "multiclass", 4),
    Task("bin", "binary", 1),
    Task("tags", "multilabel", 3),
    Task("seg", "segmentation", 5),
    Task("reg", "regression", 2),
]
EXPECTED_SHAPE = {"cls": (2, 4), "bin": (2,), "tags": (2, 3), "seg": (2, 5, 32, 32), "reg": (2, 2)}


def targets_for(batch: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "cls": torch.randint(0, 4, (batch,), generator=g),
        "bin": torch.randint(0, 2, (batch,), generator=g).float(),
        "tags": torch.randint(0, 2, (batch, 3), generator=g).float(),
        "seg": torch.randint(0, 5, (batch, 32, 32), generator=g),
        "reg": torch.randn(batch, 2, generator=g),
    }


@pytest.mark.parametrize("name", sorted(MODELS))
def test_outputs_have_one_entry_per_task_with_the_right_shape(name):
    model = MODELS[name](SmallCNN(width=4), TASKS)
    outputs = model(torch.rand(2, 3, 32, 32))
    assert list(outputs) == [t.name for t in TASKS]
    assert {k: tuple(v.shape) for k, v in outputs.items()} == EXPECTED_SHAPE


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_parameter_gets_a_gradient_from_the_task_losses(name):
    torch.manual_seed(0)
    model = MODELS[name](SmallCNN(width=4), TASKS)
    outputs = model(torch.rand(2, 3, 32, 32))
    targets = targets_for()
    sum(task.loss(outputs[task.name], targets[task.name]) for task in TASKS).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shared_and_task_parameters_are_disjoint_and_complete(name):
    model = MODELS[name](SmallCNN(width=4), TASKS)
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


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbones_honour_the_stage_contract(name):
    net = BACKBONES[name]()
    x = torch.rand(1, 3, 64, 64)
    for stage, channels in zip(net.stages, net.stage_channels):
        x = stage(x)
        assert x.shape[1] == channels
    assert x.shape[1] == net.out_channels
    assert x.shape[-1] == 64 // net.reduction


def test_small_cnn_rejects_bad_sizes():
    with pytest.raises(ValueError, match="width"):
        SmallCNN(width=0)


def test_a_single_task_model_is_the_same_class_with_one_task():
    model = MODELS["hard_sharing"](SmallCNN(width=4), TASKS[0])
    assert list(model(torch.rand(1, 3, 32, 32))) == ["cls"]


def test_heads_follow_the_task_kind():
    assert make_head(TASKS[1], 8)(torch.rand(3, 8, 2, 2)).shape == (3,)
    assert make_head(TASKS[3], 8, reduction=4)(torch.rand(3, 8, 2, 2)).shape == (3, 5, 8, 8)


def test_batch_norm_can_be_switched_off():
    net = SmallCNN(width=4, batch_norm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
