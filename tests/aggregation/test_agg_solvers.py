"""The exact routines on the Gramian, checked against their optimality conditions and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from mtlcourse.aggregation.nash_mtl import nash_weights
from mtlcourse.aggregation.solvers import (
    dual_cone_weights,
    gramian_to_numpy,
    min_norm_weights,
    nonnegative_quadratic,
)


def random_jacobians(count: int, seed: int) -> list[np.ndarray]:
    """Small Jacobians with rows of scales 1e-4 .. 1e4, some with a zero row or a repeated opposite row."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        T, P = int(rng.integers(2, 7)), int(rng.integers(1, 9))
        J = rng.normal(size=(T, P)) * np.exp(rng.uniform(-9, 9, size=(T, 1)))  # [T, P]
        if k % 5 == 1:
            J[0] = 0.0
        if k % 5 == 2:
            J[1] = -3.0 * J[0]
        out.append(J)
    return out


def brute_force_nonnegative_quadratic(Q: np.ndarray, c: np.ndarray) -> float:
    """The minimum over every support of the unconstrained minimiser that stays feasible (Q invertible)."""
    best = 0.0  # x = 0
    for size in range(1, len(c) + 1):
        for support in itertools.combinations(range(len(c)), size):
            idx = list(support)
            x = np.linalg.solve(Q[np.ix_(idx, idx)], c[idx])  # [size]
            if (x >= 0).all():
                best = min(best, 0.5 * x @ Q[np.ix_(idx, idx)] @ x - c[idx] @ x)
    return best


@pytest.mark.parametrize("seed", range(20))
def test_nonnegative_quadratic_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    T = int(rng.integers(1, 6))
    A = rng.normal(size=(T + 2, T))  # [T+2, T], full column rank
    Q, c = A.T @ A, rng.normal(size=T)  # [T, T], [T]
    x = nonnegative_quadratic(Q, c)  # [T]
    assert (x >= 0).all()
    value = 0.5 * x @ Q @ x - c @ x
    assert value == pytest.approx(brute_force_nonnegative_quadratic(Q, c), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("J", random_jacobians(60, seed=0), ids=lambda J: f"T{J.shape[0]}_P{J.shape[1]}")
def test_min_norm_weights_optimality(J: np.ndarray) -> None:
    """w on the simplex, g_t . d >= |d|^2 for all t, equality on the support (up to rounding)."""
    w = min_norm_weights(J @ J.T)  # [T]
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0, rel=1e-12)
    d = w @ J  # [P]
    norms = np.linalg.norm(J, axis=1)  # [T]
    tol = 1e-9 * norms * norms.max()  # [T]
    slack = J @ d - d @ d  # [T]
    assert (slack >= -tol).all()
    assert (np.abs(slack[w > 1e-12]) <= tol[w > 1e-12]).all()


@pytest.mark.parametrize("J", random_jacobians(60, seed=1), ids=lambda J: f"T{J.shape[0]}_P{J.shape[1]}")
def test_dual_cone_weights_optimality(J: np.ndarray) -> None:
    """v >= e_i; the projection p is in the dual cone; and where v_t > e_t, task t is exactly orthogonal."""
    T = J.shape[0]
    norms = np.linalg.norm(J, axis=1)  # [T]
    for i in range(T):
        u = np.eye(T)[i]  # [T]
        v = dual_cone_weights(J @ J.T, u)  # [T]
        assert (v >= u).all()
        p = v @ J  # [P]
        tol = 1e-9 * norms * norms[i]  # [T]
        assert (J @ p >= -tol).all()
        active = v - u > 1e-12  # [T]
        assert (
            np.abs(J[active] @ p) <= tol[active] + 1e-9 * np.abs(v - u)[active] * norms[active] ** 2
        ).all()


def test_min_norm_weights_of_zero_gradients_are_uniform() -> None:
    np.testing.assert_array_equal(min_norm_weights(np.zeros((3, 3))), np.full(3, 1 / 3))


def test_nonnegative_quadratic_reports_failure() -> None:
    with pytest.raises(RuntimeError, match="active-set"):
        nonnegative_quadratic(np.eye(2), np.ones(2), max_iter=1)  # needs two steps


def test_gramians_must_be_finite() -> None:
    with pytest.raises(ValueError, match="not finite"):
        gramian_to_numpy(torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]]))


@pytest.mark.parametrize("seed", range(10))
def test_nash_weights_solve_the_bargaining_condition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    T = int(rng.integers(2, 8))
    J = rng.normal(size=(T, 20)) * np.exp(rng.uniform(-5, 5, size=(T, 1))) + rng.normal(size=20)  # [T, 20]
    alpha = nash_weights(J @ J.T, max_iter=100, tol=1e-10)  # [T]
    assert (alpha > 0).all()
    np.testing.assert_allclose(alpha * (J @ J.T @ alpha), np.ones(T), rtol=0, atol=1e-10)


def test_nash_weights_raise_after_max_iter() -> None:
    J = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])  # [3, 2]: (1, 1, 1) J = 0
    with pytest.raises(RuntimeError, match="max_iter=5"):
        nash_weights(J @ J.T, max_iter=5, tol=1e-6)
