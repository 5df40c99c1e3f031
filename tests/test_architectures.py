"""The architectures of chapter 08 beyond the shared contract: training, every method, their own facts, errors."""

import copy
import math

import pytest
import torch
from test_models import BACKBONE_FACTORIES, TASKS, Backbone, targets_for
from torch import nn

from mtlcourse.backward import mtl_step
from mtlcourse.data import TensorMultiTaskDataset
from mtlcourse.methods import METHODS, make_method
from mtlcourse.models import (
    MODELS,
    MTAN,
    BranchedNetwork,
    CrossStitchNetwork,
    DenseHead,
    HardParameterSharing,
    MMoE,
    SmallCNN,
)
from mtlcourse.train import fit


def tiny_data(n: int = 4) -> TensorMultiTaskDataset:
    """``n`` random 32x32 images with a target of every kind."""
    images = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return TensorMultiTaskDataset(images, targets_for(n), TASKS)


@pytest.mark.parametrize("backbone", sorted(BACKBONE_FACTORIES))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_fit_runs_one_short_epoch(name, backbone):
    torch.manual_seed(0)
    model = MODELS[name](BACKBONE_FACTORIES[backbone](), TASKS)
    history = fit(model, tiny_data(), epochs=1, batch_size=2, progress=False)
    assert all(math.isfinite(history.train_loss[t.name][0]) for t in TASKS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_method_at_its_default_level_steps_or_refuses_clearly(name):
    torch.manual_seed(0)
    model = MODELS[name](SmallCNN(width=4), TASKS)
    images, targets = torch.rand(2, 3, 32, 32), targets_for()
    for method_name in sorted(METHODS):
        method = make_method(method_name, num_tasks=len(TASKS))
        model.zero_grad(set_to_none=True)
        if method.level == "representation" and not model.has_shared_representation:
            with pytest.raises(ValueError, match=rf"{type(model).__name__} has none .*level='parameters'"):
                mtl_step(model, images, targets, method)
            continue
        losses, _ = mtl_step(model, images, targets, method)
        assert losses.shape == (len(TASKS),) and torch.isfinite(losses).all(), method_name
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), method_name


def test_only_cross_stitch_mtan_and_mmoe_lack_a_single_shared_representation():
    lacking = {name for name, cls in MODELS.items() if not cls.has_shared_representation}
    assert lacking == {"cross_stitch", "mtan", "mmoe"}


def test_the_representation_level_on_a_branched_network_matches_the_parameter_level_for_a_plain_sum():
    # With weights that do not depend on J, both levels give the gradient of the summed loss.
    images, targets = torch.rand(2, 3, 32, 32), targets_for()
    torch.manual_seed(0)
    a = BranchedNetwork(SmallCNN(width=4), TASKS, branch_point=2)
    b = copy.deepcopy(a)
    mtl_step(a, images, targets, make_method("sum", len(TASKS)))
    mtl_step(b, images, targets, make_method("sum", len(TASKS), level="representation"))
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


# ---------------------------------------------------------------------------------------------------------
# What each architecture is


def test_sharing_every_stage_is_hard_parameter_sharing():
    torch.manual_seed(0)
    backbone = SmallCNN(width=4)
    hard = HardParameterSharing(copy.deepcopy(backbone), TASKS)
    branched = BranchedNetwork(backbone, TASKS, branch_point=3)
    branched.heads.load_state_dict(hard.heads.state_dict())
    assert all(len(branch) == 0 for branch in branched.branches.values())
    images = torch.rand(2, 3, 32, 32)
    hard_out, branched_out = hard(images), branched(images)
    assert all(torch.equal(hard_out[t.name], branched_out[t.name]) for t in TASKS)
    assert {id(p) for p in branched.shared_parameters()} == {id(p) for p in backbone.parameters()}


@pytest.mark.parametrize("k", [1, 2, 3])
def test_the_branch_point_moves_stages_from_the_shared_trunk_to_every_task(k):
    model = BranchedNetwork(SmallCNN(width=4), TASKS[:2], branch_point=k)
    assert len(model.trunk) == k and all(len(b) == 3 - k for b in model.branches.values())
    assert model.encode(torch.rand(2, 3, 32, 32)).shape == (2, 4 * 2 ** (k - 1), 32 // 2**k, 32 // 2**k)
    assert BranchedNetwork(SmallCNN(width=4), TASKS[:2]).branch_point == 2  # all stages but the last


def test_cross_stitch_units_start_as_the_paper_says_and_identity_units_keep_the_networks_apart():
    model = CrossStitchNetwork(SmallCNN(width=4), TASKS[:3])
    assert [tuple(alpha.shape) for alpha in model.stitches] == [(4, 3, 3), (8, 3, 3), (16, 3, 3)]
    expected = torch.tensor([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    assert all(torch.allclose(alpha, expected.expand_as(alpha)) for alpha in model.stitches)
    torch.manual_seed(0)
    separate = CrossStitchNetwork(SmallCNN(width=4), TASKS[:3], self_weight=1.0)
    images = torch.rand(2, 3, 32, 32)
    outputs = separate(images)
    for task in TASKS[:3]:
        alone = separate.heads[task.name](separate.columns[task.name](images))
        torch.testing.assert_close(outputs[task.name], alone)


def test_mtan_masks_lie_in_0_1_with_the_shape_of_every_stage():
    model = MTAN(SmallCNN(width=4), TASKS[:2])
    masks = model.masks(torch.rand(2, 3, 32, 32))
    assert list(masks) == ["cls", "bin"]
    assert [tuple(m.shape) for m in masks["cls"]] == [(2, 4, 16, 16), (2, 8, 8, 8), (2, 16, 4, 4)]
    assert all(((m > 0) & (m < 1)).all() for m in masks["cls"])
    backbone_params = {id(p) for p in model.backbone.parameters()}
    assert backbone_params < {id(p) for p in model.shared_parameters()}  # and the shared conv blocks


def test_mmoe_gates_are_distributions_and_experts_start_apart_unless_asked_not_to():
    torch.manual_seed(0)
    backbone = SmallCNN(width=4)
    model = MMoE(backbone, TASKS[:2], num_experts=3)
    gates = model.gate_weights(torch.rand(5, 3, 32, 32))
    assert all(g.shape == (5, 3) and torch.allclose(g.sum(1), torch.ones(5)) for g in gates.values())
    weights = [expert[0][0][0].weight for expert in model.experts]  # first conv of each expert
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(
        weights[0], backbone.stages[1][0][0].weight
    )
    kept = MMoE(backbone, TASKS[:2], num_experts=2, reinitialize_experts=False)
    assert all(torch.equal(e[0][0][0].weight, backbone.stages[1][0][0].weight) for e in kept.experts)
    whole = MMoE(SmallCNN(width=4), TASKS[:2], shared_stages=0)  # experts are whole backbones
    assert len(whole.stem) == 0 and whole.gates["cls"].in_features == 3


# ---------------------------------------------------------------------------------------------------------
# The dense decoder


def test_the_dense_decoder_halves_its_channels_down_to_a_floor_in_steps_of_two():
    head = DenseHead(64, 3, reduction=16, min_channels=8)
    assert head.step_channels == [32, 16, 8, 8]
    assert head(torch.rand(2, 64, 2, 2)).shape == (2, 3, 32, 32)
    assert DenseHead(8, 1, reduction=1, squeeze=True)(torch.rand(2, 8, 5, 5)).shape == (2, 5, 5)
    small = HardParameterSharing(SmallCNN(width=8), TASKS[3:5])
    assert sum(p.numel() for p in small.heads.parameters()) < 15_000  # two small decoders


def test_a_dense_task_needs_a_reduction_that_is_a_power_of_two():
    backbone = Backbone(reduction=3, stages=nn.ModuleList([nn.Conv2d(3, 8, 3, stride=3)]))
    HardParameterSharing(backbone, TASKS[:1])  # image-level tasks do not care
    with pytest.raises(ValueError, match=r"power of 2 .* got reduction=3. Per-pixel tasks"):
        HardParameterSharing(backbone, TASKS[3:4])


# ---------------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_backbone_without_the_stage_contract_is_refused_by_every_architecture(name):
    with pytest.raises(ValueError, match=r"the backbone Linear lacks .* of the stage contract"):
        MODELS[name](nn.Linear(3, 8), TASKS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_images_that_do_not_fit_the_backbone_are_refused_by_check_input(name):
    model = MODELS[name](SmallCNN(width=4), TASKS[:2])
    model.check_input(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"1 channel\(s\) but the backbone .* takes in_channels=3"):
        model.check_input(torch.rand(2, 1, 32, 32))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: BranchedNetwork(SmallCNN(), TASKS, branch_point=0), r"branch_point must be .* from 1 to 3"),
        (lambda: BranchedNetwork(SmallCNN(), TASKS, branch_point=4), r"got 4; 1 shares only the first stage"),
        (lambda: BranchedNetwork(SmallCNN(), TASKS, branch_point=1.5), "got 1.5"),
        (lambda: BranchedNetwork(SmallCNN(num_stages=1), TASKS), r"got 0 \(the default shares all stages"),
        (lambda: MMoE(SmallCNN(), TASKS, num_experts=0), "num_experts must be a whole number, at least 1"),
        (lambda: MMoE(SmallCNN(), TASKS, shared_stages=3), r"shared_stages must be .* from 0 to 2"),
        (
            lambda: CrossStitchNetwork(SmallCNN(), TASKS[:1]),
            "got 1 task; for one task use HardParameterSharing",
        ),
        (lambda: CrossStitchNetwork(SmallCNN(), TASKS, self_weight=0.0), r"self_weight must be in \(0, 1\]"),
        (lambda: BranchedNetwork(SmallCNN(), TASKS).task_parameters("nope"), "unknown task 'nope'"),
    ],
)
def test_bad_arguments_are_refused_with_what_to_do(build, message):
    with pytest.raises(ValueError, match=message):
        build()
