"""The 2-D toy problem: its losses, minima and Pareto set, and the runner that follows any method on it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from mtlcourse.aggregation import GramianWeighting, NashMTL, UPGrad
from mtlcourse.toy import (
    LOSS_LOWER_BOUND,
    START_POINTS,
    TASK_MINIMA,
    landscape,
    pareto_set,
    run_toy,
    run_toy_many,
    toy_losses,
)
from mtlcourse.weighting import FAMO, RLW, EqualWeighting, LossWeighting, UncertaintyWeighting


def oracle_losses(x1: float, x2: float) -> tuple[float, float]:
    """The two losses written again with the math module, straight from the formulas of DESIGN.md."""
    eps = 5e-6
    c1, c2 = max(math.tanh(x2 / 2), 0.0), max(math.tanh(-x2 / 2), 0.0)
    l1 = c1 * (math.log(max(abs(0.5 * (-x1 - 7) - math.tanh(-x2)), eps)) + 6)
    l1 += c2 * (((x1 - 7) ** 2 + 0.1 * (x2 + 8) ** 2) / 10 - 20)
    l2 = c1 * (math.log(max(abs(0.5 * (-x1 + 3) + math.tanh(-x2) + 2), eps)) + 6)
    l2 += c2 * (((x1 + 7) ** 2 + 0.1 * (x2 + 8) ** 2) / 10 - 20)
    return l1, l2


def grad(index: int, point: Tensor) -> Tensor:
    """Gradient ``[2]`` of loss ``index`` at ``point`` ``[2]``, in double precision."""
    x = point.to(torch.float64).requires_grad_()
    return torch.autograd.grad(toy_losses(x)[index], x)[0]


# The losses ----------------------------------------------------------------------------------------


def test_losses_at_the_start_points_match_the_formulas() -> None:
    values = toy_losses(START_POINTS.to(torch.float64))  # [5, 2]
    expected = torch.tensor([oracle_losses(*p) for p in START_POINTS.tolist()], dtype=torch.float64)  # [5, 2]
    torch.testing.assert_close(values, expected, rtol=1e-12, atol=1e-12)


def test_losses_at_two_start_points_by_hand() -> None:
    # (0, 0): c1 = c2 = 0. (9, -1): c1 = 0, c2 = tanh(1/2), bowls (4 + 4.9) / 10 - 20 and (256 + 4.9) / 10 - 20.
    torch.testing.assert_close(toy_losses(torch.tensor([0.0, 0.0])), torch.tensor([0.0, 0.0]))
    c2 = math.tanh(0.5)
    expected = torch.tensor([c2 * (0.89 - 20), c2 * (26.09 - 20)])  # [-8.8311, 2.8143]
    torch.testing.assert_close(toy_losses(torch.tensor([9.0, -1.0])), expected)


def test_batched_losses_equal_the_losses_point_by_point() -> None:
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(4, 3, 2, generator=generator) * 20 - 10  # [4, 3, 2]
    batched = toy_losses(points)  # [4, 3, 2]
    one_by_one = torch.stack([toy_losses(p) for p in points.reshape(-1, 2)]).reshape(4, 3, 2)  # [4, 3, 2]
    torch.testing.assert_close(batched, one_by_one)


def test_losses_reject_points_that_are_not_two_dimensional() -> None:
    with pytest.raises(ValueError, match="shape"):
        toy_losses(torch.zeros(3))


def test_losses_stay_above_the_lower_bound() -> None:
    _, _, L = landscape((-12.0, 12.0), (-12.0, 12.0), num=301)
    assert (L > LOSS_LOWER_BOUND).all()


def test_the_start_on_the_kink_can_move() -> None:
    """At (0, 0) both c1 and c2 are at their kink; the gradient must not be zero there."""
    g = grad(0, torch.tensor([0.0, 0.0])) + grad(1, torch.tensor([0.0, 0.0]))
    assert g[1] > 1.0


# Minima and the Pareto set -------------------------------------------------------------------------


def test_task_minima_are_at_the_published_points() -> None:
    torch.testing.assert_close(
        TASK_MINIMA, torch.tensor([[7.0, -8.4345], [-7.0, -8.4345]]), atol=1e-4, rtol=0
    )


def test_task_minima_are_stationary_and_lowest_on_a_grid() -> None:
    _, _, L = landscape((-10.0, 10.0), (-10.0, 10.0), num=201)
    for task in (0, 1):
        assert grad(task, TASK_MINIMA[task]).abs().max() < 1e-5
        minimum = toy_losses(TASK_MINIMA[task])[task]
        assert L[..., task].min() >= minimum - 1e-5


def test_pareto_set_runs_between_the_minima_and_bends() -> None:
    P = pareto_set(101)  # [101, 2]
    assert P.shape == (101, 2)
    torch.testing.assert_close(P[0], TASK_MINIMA[1])
    torch.testing.assert_close(P[-1], TASK_MINIMA[0])
    assert (P[1:, 0] > P[:-1, 0]).all()
    x2 = P[:, 1]
    assert (x2 > -8.44).all() and (x2 < -8.35).all()
    assert abs(float(x2[50]) - (-8.3551)) < 1e-3  # the middle, near -8.36 as DESIGN.md says
    assert float(x2[50] - x2[0]) > 0.07  # it bends: not the flat line at the minima's height
    torch.testing.assert_close(x2, x2.flip(0))  # symmetric under x1 -> -x1


def test_pareto_set_points_are_pareto_stationary() -> None:
    """Some lambda in [0, 1] makes (1 - lambda) g1 + lambda g2 vanish at every point of the set."""
    for point in pareto_set(9).to(torch.float64):
        g1, g2 = grad(0, point), grad(1, point)
        lam = g1[0] / (g1[0] - g2[0])  # zeroes the x1-component
        assert 0 <= lam <= 1
        assert abs(float((1 - lam) * g1[1] + lam * g2[1])) < 1e-7


def test_no_grid_point_dominates_the_pareto_set() -> None:
    P = toy_losses(pareto_set(41).to(torch.float64))  # [41, 2]
    for x1_range, x2_range in [((-10.0, 10.0), (-10.0, 10.0)), ((-7.5, 7.5), (-8.7, -8.1))]:
        X1, X2, _ = landscape(x1_range, x2_range, num=201)
        grid = toy_losses(torch.stack([X1, X2], dim=-1).to(torch.float64).reshape(-1, 2))  # [G, 2]
        better = (grid[:, None, :] < P[None, :, :] - 1e-6).all(dim=-1)  # [G, 41]: both losses lower
        assert not better.any()


def test_the_flat_line_the_papers_draw_is_not_pareto_optimal() -> None:
    flat, bent = toy_losses(torch.tensor([0.0, -8.4345])), toy_losses(pareto_set(3)[1])
    assert (bent < flat).all()


# The landscape -------------------------------------------------------------------------------------


def test_landscape_is_a_meshgrid_of_both_losses() -> None:
    X1, X2, L = landscape((-2.0, 2.0), (-4.0, 0.0), num=5)
    assert X1.shape == X2.shape == (5, 5) and L.shape == (5, 5, 2)
    assert torch.equal(X1[0], torch.linspace(-2, 2, 5)) and torch.equal(X2[:, 0], torch.linspace(-4, 0, 5))
    torch.testing.assert_close(L[1, 3], toy_losses(torch.tensor([1.0, -3.0])))


# The runner ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", START_POINTS.tolist())
def test_equal_weighting_moves_downhill_from_every_start(start: list[float]) -> None:
    path = run_toy(EqualWeighting(), start, steps=60, lr=0.05)
    assert path.shape == (61, 2)
    assert torch.equal(path[0], torch.tensor(start))
    assert toy_losses(path[-1]).sum() < toy_losses(path[0]).sum() - 0.1


class MeanGradient(GramianWeighting):
    """The plainest aggregator: the mean of the task gradients."""

    def weights(self, gramian: Tensor) -> Tensor:
        T = gramian.shape[0]
        return torch.full((T,), 1 / T, dtype=gramian.dtype, device=gramian.device)  # [T]


def test_an_aggregator_runs_through_the_same_loop() -> None:
    """The mean gradient is half the gradient of the sum; Adam does not see the factor."""
    start = (9.0, -1.0)
    torch.testing.assert_close(
        run_toy(MeanGradient(), start, steps=50, lr=0.05), run_toy(EqualWeighting(), start, steps=50, lr=0.05)
    )


class Spy(EqualWeighting):
    """Equal weighting that records how the runner calls its hooks."""

    needs_losses_after_step = True

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = ["built"]

    def reset(self) -> None:
        super().reset()
        self.calls.append("reset")

    def on_step_end(self, losses: Tensor, losses_after: Tensor | None = None) -> None:
        assert losses_after is not None and losses_after.shape == (2,) and not losses.requires_grad
        self.calls.append("step")

    def on_epoch_end(self, epoch_losses: Tensor) -> None:
        assert epoch_losses.shape == (2,)
        self.calls.append("epoch")


def test_runner_resets_the_method_and_calls_its_hooks() -> None:
    spy = Spy()
    run_toy(spy, (1.0, -1.0), steps=6, steps_per_epoch=3)
    assert spy.calls == ["built", "reset", "step", "step", "step", "epoch", "step", "step", "step", "epoch"]
    assert isinstance(spy, LossWeighting)


def test_runner_trains_the_method_parameters_and_passes_the_offset() -> None:
    method = UncertaintyWeighting(2)
    run_toy(method, (9.0, -1.0), steps=30, lr=0.05, offset=-LOSS_LOWER_BOUND)
    assert (method.log_vars.detach() != 0).all()


def test_runner_gives_famo_the_losses_after_each_step() -> None:
    method = FAMO(2, min_losses=[-2.1, -21.0])
    path = run_toy(method, (9.0, -1.0), steps=30, lr=0.05, scales=(0.1, 1.0))
    assert torch.isfinite(path).all()
    assert method.num_steps == 30 and not torch.allclose(method.z, torch.full((2,), 0.5))


def test_runner_is_reproducible_with_a_seeded_random_method() -> None:
    first = run_toy(RLW(seed=0), (-7.5, -0.5), steps=20, lr=0.05)
    second = run_toy(RLW(seed=0), (-7.5, -0.5), steps=20, lr=0.05)
    assert torch.equal(first, second)


def test_runner_with_sgd_follows_the_negative_gradient() -> None:
    start = torch.tensor([9.0, -1.0])
    path = run_toy(EqualWeighting(), start, steps=1, lr=0.01, optimizer="sgd")
    g = grad(0, start) + grad(1, start)
    torch.testing.assert_close(path[1], start - 0.01 * g.float())


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"steps": -1}, "steps"),
        ({"lr": 0.0}, "lr"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"scales": (1.0, 0.0)}, "scales"),
        ({"steps_per_epoch": 0}, "steps_per_epoch"),
        ({"betas": (0.9, 1.0)}, "betas"),
        ({"start": (1.0, 2.0, 3.0)}, "start"),
    ],
)
def test_runner_rejects_invalid_arguments(kwargs: dict, argument: str) -> None:
    arguments = {"method": EqualWeighting(), "start": (0.0, 0.0), "steps": 1, **kwargs}
    with pytest.raises(ValueError, match=argument):
        run_toy(**arguments)


def test_pareto_set_rejects_too_few_points() -> None:
    with pytest.raises(ValueError, match="num"):
        pareto_set(1)


def test_runner_uses_the_given_betas() -> None:
    start = (-7.5, -0.5)
    default = run_toy(EqualWeighting(), start, steps=30, lr=0.05)
    explicit = run_toy(EqualWeighting(), start, steps=30, lr=0.05, betas=(0.9, 0.999))
    short_memory = run_toy(EqualWeighting(), start, steps=30, lr=0.05, betas=(0.9, 0.9))
    assert torch.equal(default, explicit) and not torch.allclose(default, short_memory)


# The batched runner ---------------------------------------------------------------------------------


def mixed_methods() -> list:
    """One method of every kind the runner handles: plain and stateful loss weightings, one with its own
    parameters, one that needs the losses after each step, a seeded random one, and two aggregators."""
    return [
        EqualWeighting(),
        UncertaintyWeighting(2),
        FAMO(2, min_losses=[LOSS_LOWER_BOUND, LOSS_LOWER_BOUND]),
        RLW(seed=0),
        MeanGradient(),
        UPGrad(),
    ]


@pytest.mark.parametrize(
    ("schedule", "rows"),
    [
        ({"lr": 0.05}, [0, 1, 2, 3, 4, 0]),
        (
            {"lr": 0.02, "betas": (0.9, 0.9), "scales": (0.1, 1.0), "offset": 20.0, "steps_per_epoch": 7},
            [0, 1, 2, 3, 4, 2],
        ),
        ({"lr": 0.01, "optimizer": "sgd", "offset": 20.0}, [1, 3, 4, 1, 3, 4]),  # SGD blows up in the valleys
    ],
)
def test_many_runs_at_once_are_the_runs_one_at_a_time(schedule: dict, rows: list[int]) -> None:
    """run_toy is the oracle: every run of a mixed batch must follow it exactly."""
    starts = START_POINTS[rows].double()  # [6, 2], one start per method
    runs = run_toy_many(mixed_methods(), starts, steps=40, **schedule)
    assert runs.paths.shape == (6, 41, 2) and runs.directions.shape == (6, 40, 2)
    assert runs.jacobians.shape == (6, 40, 2, 2)
    assert runs.stopped.tolist() == [40] * 6 and runs.reasons == ("",) * 6
    assert torch.isfinite(runs.paths).all()
    for n, (method, start) in enumerate(zip(mixed_methods(), starts)):
        torch.testing.assert_close(
            runs.paths[n], run_toy(method, start, steps=40, **schedule), rtol=0, atol=0
        )


def test_many_runs_record_the_jacobian_and_the_direction() -> None:
    starts = START_POINTS[3:].double()  # [2, 2]
    runs = run_toy_many([MeanGradient(), UPGrad()], starts, steps=3, lr=0.05)
    torch.testing.assert_close(runs.jacobians[0, 0], torch.stack([grad(0, starts[0]), grad(1, starts[0])]))
    torch.testing.assert_close(runs.directions[0, 0], runs.jacobians[0, 0].mean(0))  # the mean gradient
    torch.testing.assert_close(runs.directions[1, 0], UPGrad()(runs.jacobians[1, 0]))
    assert run_toy_many([MeanGradient()], starts[:1], steps=3, record=False).directions is None


class FailsAfter(GramianWeighting):
    """The mean gradient, until call ``limit``, when it raises like a solver that gives up."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.calls = 0

    def reset(self) -> None:
        super().reset()
        self.calls = 0

    def weights(self, gramian: Tensor) -> Tensor:
        self.calls += 1
        if self.calls > self.limit:
            raise RuntimeError("the solver gave up")
        return torch.full((2,), 0.5, dtype=gramian.dtype)


def test_a_run_whose_method_raises_stops_there_and_the_others_go_on() -> None:
    starts = START_POINTS[3:].double()  # [2, 2]
    runs = run_toy_many([FailsAfter(5), MeanGradient()], starts, steps=20, lr=0.05, stop_on=(RuntimeError,))
    assert runs.stopped.tolist() == [5, 20]
    assert runs.reasons == ("RuntimeError: the solver gave up", "")
    assert (runs.paths[0, 5:] == runs.paths[0, 5]).all(), "a stopped run stays where it stopped"
    assert (runs.directions[0, 5:] == 0).all()
    torch.testing.assert_close(runs.paths[0, :6], run_toy(MeanGradient(), starts[0], steps=5, lr=0.05))
    torch.testing.assert_close(runs.paths[1], run_toy(MeanGradient(), starts[1], steps=20, lr=0.05))
    with pytest.raises(RuntimeError, match="gave up"):
        run_toy_many([FailsAfter(5)], starts[:1], steps=20, lr=0.05)  # not in stop_on: it propagates


def test_done_stops_a_run_after_the_step_that_satisfies_it() -> None:
    starts = torch.tensor([[9.0, -1.0], [-7.5, -0.5]], dtype=torch.float64)

    def left_of_eight(points: Tensor) -> Tensor:
        return points[:, 0] < 8.0  # only the first run starts right of 8

    runs = run_toy_many([MeanGradient(), MeanGradient()], starts, steps=200, lr=0.05, done=left_of_eight)
    assert runs.reasons == ("done", "done") and runs.stopped[1] == 1
    k = int(runs.stopped[0])
    assert runs.paths[0, k, 0] < 8.0 <= runs.paths[0, k - 1, 0]
    assert (runs.paths[0, k:] == runs.paths[0, k]).all() and runs.paths.shape == (2, 201, 2)


def test_nash_mtl_does_not_move_from_a_pareto_stationary_point() -> None:
    """On the Pareto set the two gradients are opposite: Nash-MTL returns the zero direction."""
    start = pareto_set(5)[1:4].double()  # [3, 2] interior points of the set
    runs = run_toy_many([NashMTL() for _ in range(3)], start, steps=10, lr=0.05)
    assert (runs.directions == 0).all() and (runs.paths == start[:, None]).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"starts": torch.zeros(3, 2)}, "one row per method"),
        ({"starts": torch.zeros(2)}, "one row per method"),
        ({"methods": "same"}, "its own method object"),
        ({"betas": (1.0, 0.999)}, "betas"),
        ({"steps": -1}, "steps"),
    ],
)
def test_many_runs_reject_invalid_arguments(kwargs: dict, message: str) -> None:
    shared = EqualWeighting()
    arguments = {"methods": [EqualWeighting(), EqualWeighting()], "starts": torch.zeros(2, 2), "steps": 1}
    arguments.update(kwargs)
    if arguments["methods"] == "same":
        arguments["methods"] = [shared, shared]
    with pytest.raises(ValueError, match=message):
        run_toy_many(**arguments)
