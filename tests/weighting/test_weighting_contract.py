"""The contract every loss-weighting method in ``METHODS`` honours.

A new method added to ``METHODS`` gets these tests for free; if its constructor needs an argument that
``build`` does not know, or it has hyperparameters without an entry in ``INVALID``, the tests say so.
Set ``MTLCOURSE_TEST_DEVICE=cuda`` to run them on a GPU.
"""

from __future__ import annotations

import inspect
import os

import pytest
import torch
from torch import Tensor, nn

from mtlcourse.weighting import METHODS, LossWeighting

DEVICE = torch.device(os.environ.get("MTLCOURSE_TEST_DEVICE", "cpu"))
T = 3
#: Positive losses, as every method accepts (the logarithmic ones need them).
LOSSES = torch.tensor([0.5, 2.0, 1.5])  # [T]

#: One invalid constructor argument per method that has hyperparameters.
INVALID = {
    "fixed": [{"weights": [1.0, -1.0, 1.0]}, {"weights": []}],
    "uncertainty": [{"num_tasks": 0}, {"num_tasks": 2.5}],
    "dwa": [{"temperature": 0.0}, {"temperature": -2.0}],
    "rlw": [{"seed": -1}, {"seed": 1.5}],
    "famo": [
        {"num_tasks": 0},
        {"beta": 0.0},
        {"gamma": -0.001},
        {"eps": 0.0},
        {"min_losses": [0.0, 0.0]},
        {"min_losses": [0.0, float("nan"), 0.0]},
    ],
    "imtl_l": [{"num_tasks": 0}, {"num_tasks": -1}],
}

INVALID_CASES = [(name, kwargs) for name, cases in INVALID.items() for kwargs in cases]


def build(cls: type[LossWeighting], **overrides: object) -> LossWeighting:
    """An instance for ``T`` tasks with the paper defaults, on ``DEVICE``."""
    known = {"num_tasks": T, "weights": [1.0, 2.0, 0.5], "seed": 0}
    kwargs = {}
    for name, param in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        if name in known:
            kwargs[name] = known[name]
        elif param.default is inspect.Parameter.empty:
            raise AssertionError(f"the contract test cannot build {cls.__name__}: teach build() `{name}`")
    kwargs.update(overrides)
    return cls(**kwargs).to(DEVICE)


def drive(method: LossWeighting, steps: int = 6) -> list[Tensor]:
    """Run ``method`` through a fixed sequence of steps and epochs; return the objectives and weights.

    The method's own parameters (if any) take plain gradient steps, as ``fit`` would train them, so that
    every kind of state (parameters, loss history, optimiser state, random generator) changes.
    """
    record = []
    for step in range(steps):
        losses = (LOSSES * (0.9**step) * torch.tensor([1.0, 0.8**step, 1.1**step])).to(DEVICE)  # [T]
        losses.requires_grad_()
        objective = method(losses)
        objective.backward()
        with torch.no_grad():
            for p in method.parameters():
                p -= 0.1 * p.grad
                p.grad = None
        # Unequal decreases: with equal ones FAMO's logits would have nothing to learn.
        decrease = torch.tensor([0.9, 0.99, 0.95], device=DEVICE)  # [T]
        after = losses.detach() * decrease if method.needs_losses_after_step else None  # [T]
        method.on_step_end(losses.detach(), after)
        if step % 2 == 1:
            method.on_epoch_end(losses.detach())
        record += [objective.detach(), method.last_weights.clone()]
    return record


@pytest.mark.parametrize("name", sorted(METHODS))
def test_objective_is_a_finite_scalar_whose_gradient_is_the_weights(name: str) -> None:
    method = build(METHODS[name])
    assert method.last_weights is None
    losses = LOSSES.clone().to(DEVICE).requires_grad_()  # [T], a leaf of its own
    objective = method(losses)
    assert objective.dim() == 0 and torch.isfinite(objective)
    objective.backward()
    # The objective depends on every loss, and last_weights is what each loss is multiplied by.
    assert method.last_weights.shape == (T,)
    assert (losses.grad > 0).all()
    torch.testing.assert_close(losses.grad, method.last_weights.to(losses.grad))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_parameters_get_finite_gradients(name: str) -> None:
    method = build(METHODS[name])
    if not list(method.parameters()):
        pytest.skip(f"{type(method).__name__} has no parameters of its own")
    method(LOSSES.to(DEVICE)).backward()
    for p in method.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and (p.grad != 0).any()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_objective_follows_the_dtype_of_the_losses(name: str) -> None:
    method = build(METHODS[name])
    objective = method(LOSSES.to(DEVICE, torch.float64))
    assert objective.dtype == torch.float64 and objective.device.type == DEVICE.type


@pytest.mark.parametrize("name", sorted(METHODS))
def test_rejects_losses_that_are_not_a_vector(name: str) -> None:
    method = build(METHODS[name])
    with pytest.raises(ValueError, match="losses"):
        method(torch.ones(T, 2, device=DEVICE))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_methods_built_for_t_tasks_reject_another_number(name: str) -> None:
    cls = METHODS[name]
    takes_tasks = {"num_tasks", "weights"} & set(inspect.signature(cls.__init__).parameters)
    if not takes_tasks:
        pytest.skip(f"{cls.__name__} works for any number of tasks")
    with pytest.raises(ValueError, match=f"num_tasks={T}"):
        build(cls)(torch.ones(T + 1, device=DEVICE))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_repr_shows_every_hyperparameter(name: str) -> None:
    method = build(METHODS[name])
    text = repr(method)
    for key, value in method.hyperparameters().items():
        assert f"{key}={value!r}" in text


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_with_hyperparameters_has_invalid_cases(name: str) -> None:
    if build(METHODS[name]).hyperparameters():
        assert name in INVALID, f"add invalid constructor arguments for {name!r} to INVALID"


@pytest.mark.parametrize(("name", "kwargs"), INVALID_CASES, ids=[f"{n}-{k}" for n, k in INVALID_CASES])
def test_invalid_hyperparameters_raise_a_value_error_naming_them(name: str, kwargs: dict) -> None:
    (argument,) = kwargs
    with pytest.raises(ValueError, match=argument):
        build(METHODS[name], **kwargs)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_reset_restores_the_initial_behaviour(name: str) -> None:
    torch.manual_seed(0)
    method = build(METHODS[name])
    first = drive(method)
    method.reset()
    assert method.last_weights is None
    second = drive(method)
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b)


def test_the_contract_covers_stateful_methods() -> None:
    """``drive`` must really change state, or the reset test above proves nothing."""
    changed = []
    for name in ("uncertainty", "dwa", "rlw", "famo", "imtl_l"):
        method = build(METHODS[name])
        record = drive(method)
        weights = record[1::2]
        changed.append(not torch.allclose(weights[0], weights[-1]))
    assert all(changed)


def test_methods_is_a_literal_table_of_loss_weightings() -> None:
    assert all(issubclass(cls, LossWeighting) and cls is not LossWeighting for cls in METHODS.values())
    assert all(isinstance(build(cls), nn.Module) for cls in METHODS.values())
