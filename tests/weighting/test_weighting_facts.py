"""Facts about each loss-weighting method: what its weights do, checked against hand values and oracles."""

from __future__ import annotations

import math
import os

import pytest
import torch
from torch import Tensor

from mtlcourse.weighting import DWA, FAMO, GLS, IMTLL, RLW, ScaleInvariant, UncertaintyWeighting

DEVICE = torch.device(os.environ.get("MTLCOURSE_TEST_DEVICE", "cpu"))


def tensor(*values: float) -> Tensor:
    return torch.tensor(values, device=DEVICE)  # [len(values)]


def train_method_alone(method: torch.nn.Module, sample_losses, steps: int, lr: float) -> None:
    """Adam on the method's own parameters only, against losses that do not depend on them."""
    opt = torch.optim.Adam(method.parameters(), lr=lr)
    for step in range(steps):
        opt.zero_grad()
        method(sample_losses(step)).backward()
        opt.step()


# Uncertainty weighting ------------------------------------------------------------------------------


def test_uncertainty_log_variances_converge_to_log_losses() -> None:
    method = UncertaintyWeighting(3).to(DEVICE)
    losses = tensor(0.5, 1.0, 4.0)
    train_method_alone(method, lambda step: losses, steps=400, lr=0.05)
    torch.testing.assert_close(method.log_vars.detach(), losses.log(), atol=2e-3, rtol=0)
    # The larger the loss, the smaller its weight: exp(-s) = 1 / L at the optimum.
    torch.testing.assert_close(method.last_weights, 1 / losses, atol=5e-3, rtol=0)


def test_uncertainty_weights_down_the_noisier_task() -> None:
    generator = torch.Generator().manual_seed(0)
    method = UncertaintyWeighting(2).to(DEVICE)

    def noisy(step: int) -> Tensor:
        # Task 0 is always 1; task 1 is uniform on [0, 4]: mean 2, and noisy.
        return torch.stack([torch.tensor(1.0), 4 * torch.rand((), generator=generator)]).to(DEVICE)  # [2]

    train_method_alone(method, noisy, steps=1500, lr=0.01)
    s = method.log_vars.detach()
    assert s[1] > s[0] + 0.4  # weight of the noisy task, exp(-s_1), well below the other's
    assert abs(float(s[1]) - math.log(2.0)) < 0.25  # near log E[L_1]


def test_uncertainty_objective_reference_value() -> None:
    method = UncertaintyWeighting(2).to(DEVICE)
    with torch.no_grad():
        method.log_vars.copy_(tensor(math.log(2.0), 0.0))
    objective = method(tensor(3.0, 5.0))
    assert math.isclose(float(objective.detach()), 3.0 / 2 + math.log(2.0) + 5.0, rel_tol=1e-6)


# IMTL-L --------------------------------------------------------------------------------------------


def test_imtl_l_optimum_makes_every_scaled_loss_one() -> None:
    method = IMTLL(3).to(DEVICE)
    losses = tensor(0.2, 1.0, 8.0)
    train_method_alone(method, lambda step: losses, steps=400, lr=0.05)
    scaled = method.log_scales.detach().exp() * losses  # [T]
    torch.testing.assert_close(scaled, torch.ones_like(losses), atol=3e-3, rtol=0)


# DWA -----------------------------------------------------------------------------------------------


def test_dwa_weights_are_one_during_the_first_two_epochs() -> None:
    method = DWA().to(DEVICE)
    losses = tensor(0.3, 3.0)
    assert torch.equal(method.weights(losses), torch.ones(2, device=DEVICE))
    method.on_epoch_end(tensor(1.0, 2.0))
    assert torch.equal(method.weights(losses), torch.ones(2, device=DEVICE))


def test_dwa_reference_value_and_slower_task_gets_more_weight() -> None:
    method = DWA(temperature=2.0).to(DEVICE)
    method.on_epoch_end(tensor(1.0, 1.0))
    method.on_epoch_end(tensor(0.5, 0.9))  # task 1's loss fell slower
    w = method.weights(tensor(0.4, 0.8))
    e0, e1 = math.exp(0.5 / 2), math.exp(0.9 / 2)
    torch.testing.assert_close(w.cpu(), torch.tensor([2 * e0 / (e0 + e1), 2 * e1 / (e0 + e1)]))
    assert w[1] > w[0]


def test_dwa_weights_sum_to_t_and_use_only_the_last_two_epochs() -> None:
    generator = torch.Generator().manual_seed(0)
    method = DWA().to(DEVICE)
    epochs = [torch.rand(5, generator=generator).to(DEVICE) + 0.1 for _ in range(4)]  # each [5]
    for epoch_losses in epochs:
        method.on_epoch_end(epoch_losses)
    w = method.weights(torch.ones(5, device=DEVICE))
    assert math.isclose(float(w.sum()), 5.0, rel_tol=1e-6)
    expected = 5 * torch.softmax(epochs[-1] / epochs[-2] / 2.0, dim=0)  # [5]
    torch.testing.assert_close(w, expected)


def test_dwa_higher_temperature_gives_more_equal_weights() -> None:
    spreads = []
    for temperature in (0.5, 2.0, 10.0):
        method = DWA(temperature).to(DEVICE)
        method.on_epoch_end(tensor(1.0, 1.0, 1.0))
        method.on_epoch_end(tensor(0.2, 0.6, 1.0))
        w = method.weights(tensor(1.0, 1.0, 1.0))
        spreads.append(float(w.max() - w.min()))
    assert spreads[0] > spreads[1] > spreads[2] > 0


def test_dwa_rejects_non_positive_epoch_losses_and_a_change_of_task_count() -> None:
    method = DWA().to(DEVICE)
    with pytest.raises(ValueError, match="positive"):
        method.on_epoch_end(tensor(1.0, 0.0))
    method.on_epoch_end(tensor(1.0, 1.0))
    with pytest.raises(ValueError, match="num_tasks=2"):
        method.on_epoch_end(tensor(1.0, 1.0, 1.0))


# RLW -----------------------------------------------------------------------------------------------


def test_rlw_weights_are_positive_sum_to_one_and_change_every_step() -> None:
    method = RLW(seed=0).to(DEVICE)
    draws = torch.stack([method.weights(torch.ones(4, device=DEVICE)) for _ in range(50)])  # [50, 4]
    assert (draws > 0).all()
    torch.testing.assert_close(draws.sum(dim=1), torch.ones(50, device=DEVICE))
    assert not torch.allclose(draws[0], draws[1])
    assert len({tuple(row.tolist()) for row in draws}) == 50


def test_rlw_is_the_softmax_of_standard_normal_samples_from_its_own_seed() -> None:
    method = RLW(seed=7)
    w = torch.stack([method.weights(torch.ones(3)) for _ in range(2)])  # [2, 3]
    generator = torch.Generator().manual_seed(7)
    expected = torch.softmax(torch.randn(2, 3, generator=generator), dim=1)  # [2, 3], two draws of [3]
    torch.testing.assert_close(w, expected)


def test_rlw_is_reproducible_with_a_seed_and_differs_between_seeds() -> None:
    def sequence(seed: int) -> Tensor:
        method = RLW(seed=seed).to(DEVICE)
        return torch.stack([method.weights(torch.ones(3, device=DEVICE)) for _ in range(5)])  # [5, 3]

    assert torch.equal(sequence(1), sequence(1))
    assert not torch.allclose(sequence(1), sequence(2))


def test_rlw_without_seed_draws_from_the_global_generator() -> None:
    method = RLW()
    torch.manual_seed(3)
    first = method.weights(torch.ones(3))
    torch.manual_seed(3)
    assert torch.equal(method.weights(torch.ones(3)), first)


# FAMO ----------------------------------------------------------------------------------------------


def test_famo_first_update_is_one_adam_step_away_from_the_faster_task() -> None:
    method = FAMO(2, beta=0.025).to(DEVICE)
    method.on_step_end(tensor(1.0, 1.0), tensor(0.5, 0.95))
    # Adam's first step has size beta in each coordinate, against the sign of delta.
    torch.testing.assert_close(method.logits, tensor(-0.025, 0.025))


def test_famo_keeps_state_and_moves_weight_to_the_task_that_decreases_slower() -> None:
    method = FAMO(3).to(DEVICE)
    before, after = tensor(1.0, 1.0, 1.0), tensor(0.5, 0.9, 0.7)
    history = []
    for _ in range(20):
        method(before)  # the forward pass leaves the state alone
        method.on_step_end(before, after)
        history.append(method.z.clone())
    z = torch.stack(history)  # [20, 3]
    assert (z[1:, 1] > z[:-1, 1]).all()  # the slowest task gains weight at every step
    assert (z[1:, 0] < z[:-1, 0]).all()  # the fastest loses it
    assert method.num_steps == 20


def test_famo_matches_the_algorithm_written_with_torch_adam_and_autograd() -> None:
    """Oracle: the paper's update with ``torch.optim.Adam`` and the softmax Jacobian from autograd."""
    generator = torch.Generator().manual_seed(0)
    beta, gamma, b = 0.025, 0.01, torch.tensor([0.1, -1.0, 0.0, 0.2])
    method = FAMO(4, beta=beta, gamma=gamma, min_losses=b.tolist(), eps=1e-8)
    xi = torch.zeros(4, requires_grad=True)  # [4]
    opt = torch.optim.Adam([xi], lr=beta, weight_decay=gamma)
    for _ in range(30):
        before = b + torch.rand(4, generator=generator) + 0.1  # [4]
        after = b + (before - b) * torch.rand(4, generator=generator).clamp_min(0.2)  # [4]
        decrease = (before - b + 1e-8).log() - (after - b + 1e-8).log()  # [4]
        (grad,) = torch.autograd.grad(torch.softmax(xi, dim=0), xi, grad_outputs=decrease)
        xi.grad = grad
        opt.step()
        method.on_step_end(before, after)
    torch.testing.assert_close(method.logits, xi.detach(), atol=1e-6, rtol=1e-5)


def test_famo_objective_and_gradient_reference() -> None:
    method = FAMO(2).to(DEVICE)
    with torch.no_grad():
        method.logits.copy_(tensor(0.0, math.log(3.0)))  # z = (1/4, 3/4)
    losses = tensor(2.0, 1.0).requires_grad_()
    objective = method(losses)
    c = 1 / (0.25 / 2 + 0.75 / 1)
    assert math.isclose(float(objective.detach()), c * (0.25 * math.log(2.0)), rel_tol=1e-5)
    objective.backward()
    torch.testing.assert_close(losses.grad, tensor(c * 0.25 / 2, c * 0.75))
    assert math.isclose(float(losses.grad.sum()), 1.0, rel_tol=1e-6)


def test_famo_decay_pulls_the_logits_back_to_equal_weights() -> None:
    method = FAMO(2, gamma=0.5).to(DEVICE)
    with torch.no_grad():
        method.logits.copy_(tensor(1.0, -1.0))
    for _ in range(5):
        method.on_step_end(tensor(1.0, 1.0), tensor(0.5, 0.5))  # equal decreases: delta = 0
    assert 0 < float(method.logits[0]) < 1.0 and -1.0 < float(method.logits[1]) < 0


def test_famo_negative_losses_need_min_losses() -> None:
    losses = tensor(-5.0, -19.0)
    with pytest.raises(ValueError, match="min_losses"):
        FAMO(2).to(DEVICE)(losses)
    objective = FAMO(2, min_losses=[-21.0, -21.0]).to(DEVICE)(losses)
    assert torch.isfinite(objective)


def test_famo_needs_the_losses_after_the_step() -> None:
    method = FAMO(2)
    assert method.needs_losses_after_step
    with pytest.raises(ValueError, match="losses_after"):
        method.on_step_end(torch.ones(2))


# GLS and scale-invariant ---------------------------------------------------------------------------


def test_gls_is_the_geometric_mean_and_its_weights_are_its_gradient() -> None:
    generator = torch.Generator().manual_seed(0)
    losses = (torch.rand(5, generator=generator, dtype=torch.float64) * 3 + 0.1).to(DEVICE)  # [5]
    losses.requires_grad_()
    method = GLS()
    objective = method(losses)
    torch.testing.assert_close(objective, losses.prod() ** (1 / 5))
    objective.backward()
    torch.testing.assert_close(losses.grad, objective.detach() / (5 * losses.detach()))


def test_gls_is_stable_where_the_product_underflows() -> None:
    losses = torch.full((100,), 1e-3, device=DEVICE)  # [100]; their product, 1e-300, underflows float32
    assert losses.prod() == 0
    torch.testing.assert_close(GLS()(losses), torch.tensor(1e-3, device=DEVICE))


def test_scale_invariant_value_weights_and_link_to_gls() -> None:
    losses = tensor(0.5, 2.0, 8.0)
    method = ScaleInvariant()
    objective = method(losses)
    assert math.isclose(float(objective), math.log(0.5 * 2.0 * 8.0), rel_tol=1e-6)
    torch.testing.assert_close(method.last_weights, 1 / losses)
    torch.testing.assert_close(objective, 3 * GLS()(losses).log())


@pytest.mark.parametrize("method", [ScaleInvariant(), GLS()], ids=["scale_invariant", "gls"])
def test_log_methods_ignore_the_scale_of_a_loss(method: torch.nn.Module) -> None:
    """Multiplying a loss by 1000 does not change the direction of the model's gradient."""
    theta = torch.tensor([0.3, -0.2], device=DEVICE, requires_grad=True)

    def direction(scale: float) -> Tensor:
        losses = torch.stack([(theta - 1).pow(2).sum(), scale * (theta + 2).pow(2).sum()])  # [2]
        (grad,) = torch.autograd.grad(method(losses), theta)
        return grad / grad.norm()

    torch.testing.assert_close(direction(1.0), direction(1000.0))


@pytest.mark.parametrize("method", [ScaleInvariant(), GLS()], ids=["scale_invariant", "gls"])
def test_log_methods_reject_non_positive_losses(method: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="positive"):
        method(tensor(1.0, 0.0))
