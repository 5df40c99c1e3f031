"""Reference values on small fixed Jacobians, closed forms, and the optimality conditions of each method."""

from __future__ import annotations

import pytest
import torch
from jacobian_zoo import DEVICE, ZOO, Case
from torch import Tensor

from mtlcourse.aggregation import (
    IMTLG,
    MGDA,
    AlignedMTL,
    CAGrad,
    GradDrop,
    GradVac,
    Mean,
    NashMTL,
    PCGrad,
    Sum,
    UPGrad,
)
from mtlcourse.aggregation.aligned_mtl import balance_matrix


def tensor(values: list) -> Tensor:
    return torch.tensor(values, dtype=torch.float64, device=DEVICE)  # [*shape]


#: The Jacobian of torchjd's reference table, two directly conflicting tasks (g1 . g2 = -22).
J_BASE = tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]])  # [2, 3]

# Outputs for J_BASE from torchjd's table of fixed values, tests/unit/aggregation/test_values.py of
# SimplexLab/TorchJD (the UPGrad value also appears in the docstring of torchjd.aggregation), checked with
# the search tool. Where our method differs by a stated convention, the value is converted and the reason
# given.
TORCHJD_BASE = [
    (Mean(), [1.0, 1.0, 1.0], 1e-4),
    (Sum(), [2.0, 2.0, 2.0], 1e-4),
    (MGDA(), [0.0, 1.0, 1.0], 1e-4),
    (PCGrad(), [0.5848, 3.8012, 3.8012], 1e-4),
    (IMTLG(), [0.0767, 1.0000, 1.0000], 1e-4),
    # torchjd's CAGrad does not rescale: ours with rescale=0.
    (CAGrad(c=0.5, rescale=0), [0.1835, 1.2041, 1.2041], 1e-4),
    # torchjd copies the authors' Nash-MTL (cvxpy on G / ||G||_F, clipped to max_norm=1): same direction,
    # same clipped norm.
    (NashMTL(), [0.0542, 0.7061, 0.7061], 1e-4),
    # torchjd averages the aligned gradients (preference 1/T); the authors' code, and ours, sums them.
    (AlignedMTL(), [2 * 0.2133, 2 * 0.9673, 2 * 0.9673], 2e-4),
    # torchjd regularises the Gramian (reg_eps = norm_eps = 1e-4) before its QP; our projection is exact,
    # so the two agree to about 1e-3 (the exact value is checked below).
    (UPGrad(), [0.2929, 1.9004, 1.9004], 1e-3),
]


@pytest.mark.parametrize(("method", "expected", "atol"), TORCHJD_BASE, ids=lambda x: type(x).__name__)
def test_agrees_with_torchjd_on_its_reference_jacobian(method, expected: list, atol: float) -> None:
    torch.testing.assert_close(method(J_BASE), tensor(expected), rtol=0, atol=atol)


def test_upgrad_exact_weights_by_hand() -> None:
    """g1 projected onto {g2 . x >= 0} is g1 + 22/38 g2; g2 projected is g2 + 22/18 g1; mean of the two."""
    method = UPGrad()
    d = method(J_BASE)  # [3]
    torch.testing.assert_close(method.last_weights, tensor([10 / 9, 15 / 19]))
    torch.testing.assert_close(d, (10 / 9) * J_BASE[0] + (15 / 19) * J_BASE[1])


def test_alignedmtl_by_hand_on_orthogonal_gradients() -> None:
    """Orthogonal gradients: d = sigma_min * sum of unit gradients, whatever their norms."""
    J = tensor([[3.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 2.0]])  # [3, 3]
    torch.testing.assert_close(AlignedMTL()(J), tensor([0.5, 0.5, 0.5]))
    torch.testing.assert_close(AlignedMTL(scale_mode="rmse")(J), (13.25 / 3) ** 0.5 * tensor([1.0, 1.0, 1.0]))
    torch.testing.assert_close(AlignedMTL(scale_mode="median")(J), tensor([2.0, 2.0, 2.0]))


@pytest.mark.parametrize("case", [c for c in ZOO if c.full_rank], ids=repr)
def test_alignedmtl_aligned_gradients_are_orthogonal_with_equal_norms(case: Case) -> None:
    """B G B = sigma^2 I: the aligned system has condition number one (Senushkin et al., 2023)."""
    G = (case.jacobian @ case.jacobian.T).numpy()  # [T, T]
    B = balance_matrix(G, "min", torch.finfo(torch.float64).eps)  # [T, T]
    sigma2 = min(torch.linalg.eigvalsh(torch.from_numpy(G))).item()
    aligned_gramian = torch.from_numpy(B @ G @ B)  # [T, T]
    torch.testing.assert_close(aligned_gramian, sigma2 * torch.eye(G.shape[0], dtype=torch.float64))


def random_pairs(count: int, seed: int = 0) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 4, generator=g, dtype=torch.float64).to(DEVICE) for _ in range(count)]


@pytest.mark.parametrize("J", random_pairs(6), ids=lambda _: "pair")
def test_mgda_two_task_closed_form(J: Tensor) -> None:
    """Sener and Koltun (2018), Algorithm 1: gamma = clip((g2 - g1) . g2 / ||g1 - g2||^2, 0, 1)."""
    g1, g2 = J
    gamma = ((g2 - g1) @ g2 / (g1 - g2).square().sum()).clamp(0, 1)
    method = MGDA()
    d = method(J)  # [4]
    torch.testing.assert_close(d, gamma * g1 + (1 - gamma) * g2)
    torch.testing.assert_close(method.last_weights, torch.stack([gamma, 1 - gamma]))


@pytest.mark.parametrize("case", ZOO, ids=repr)
def test_mgda_optimality_conditions(case: Case) -> None:
    """KKT of min ||J^T w|| over the simplex: every g_t . d >= ||d||^2, with equality where w_t > 0."""
    J = case.jacobian.to(DEVICE)  # [T, P]
    method = MGDA()
    d = method(J)  # [P]
    w = method.last_weights  # [T]
    assert (w >= 0).all() and torch.isclose(w.sum(), torch.tensor(1.0, dtype=w.dtype, device=DEVICE))
    slack = J @ d - d @ d  # [T]
    tol = 1e-9 * J.norm(dim=1) * J.norm(dim=1).max()  # [T]
    assert (slack >= -tol).all()
    assert (slack[w > 1e-12].abs() <= tol[w > 1e-12]).all()


def test_mgda_min_norm_is_zero_for_opposite_gradients() -> None:
    J = tensor([[1.0, 2.0, -1.0], [-3.0, -6.0, 3.0]])  # [2, 3]
    torch.testing.assert_close(MGDA()(J), torch.zeros(3, dtype=torch.float64, device=DEVICE))


@pytest.mark.parametrize("J", random_pairs(6, seed=1), ids=lambda _: "pair")
def test_pcgrad_two_task_closed_form(J: Tensor) -> None:
    g1, g2 = J
    dot = g1 @ g2
    projected = (g1 - dot / (g2 @ g2) * g2) + (g2 - dot / (g1 @ g1) * g1)  # [4]
    expected = projected if dot < 0 else g1 + g2  # [4]
    torch.testing.assert_close(PCGrad()(J), expected)
    torch.testing.assert_close(PCGrad(reduction="mean")(J), expected / 2)


def test_pcgrad_leaves_non_conflicting_gradients_untouched() -> None:
    case = next(c for c in ZOO if c.name == "all_agreeing")
    J = case.jacobian.to(DEVICE)  # [4, 12]
    torch.testing.assert_close(PCGrad()(J), J.sum(dim=0))
    torch.testing.assert_close(GradVac()(J), J.sum(dim=0))  # targets start at 0: no pair is below


@pytest.mark.parametrize("case", ZOO, ids=repr)
def test_gradvac_first_call_is_pcgrad(case: Case) -> None:
    """GradVac's targets start at 0, and its update with target 0 is PCGrad's projection (same orders)."""
    J = case.jacobian.to(DEVICE)  # [T, P]
    torch.testing.assert_close(GradVac(seed=3)(J), PCGrad(seed=3)(J))


@pytest.mark.parametrize("case", ZOO, ids=repr)
def test_cagrad_with_c_zero_is_the_mean(case: Case) -> None:
    J = case.jacobian.to(DEVICE)  # [T, P]
    torch.testing.assert_close(CAGrad(c=0.0)(J), J.mean(dim=0))


@pytest.mark.parametrize("case", [c for c in ZOO if c.jacobian.shape[0] > 1], ids=repr)
def test_cagrad_solves_its_primal_problem(case: Case) -> None:
    """d (not rescaled) lies in the ball |d - g0| <= c|g0| and no sampled point of it does better on min_t g_t.d."""
    J = case.jacobian.to(DEVICE)  # [T, P]
    c = 0.4
    g0 = J.mean(dim=0)  # [P]
    d = CAGrad(c=c, rescale=0)(J)  # [P]
    radius = c * g0.norm()
    assert (d - g0).norm() <= radius * (1 + 1e-6)
    g = torch.Generator(device=DEVICE).manual_seed(0)
    directions = torch.randn(2000, J.shape[1], generator=g, dtype=J.dtype, device=DEVICE)  # [N, P]
    lengths = torch.rand(2000, 1, generator=g, dtype=J.dtype, device=DEVICE)  # [N, 1]
    samples = g0 + radius * lengths * directions / directions.norm(dim=1, keepdim=True)  # [N, P]
    best_sampled = (samples @ J.T).min(dim=1).values.max()
    scale = J.norm(dim=1).max() * g0.norm()
    assert (J @ d).min() >= best_sampled - 1e-6 * scale


def test_cagrad_rescale_options() -> None:
    d = CAGrad(c=0.5, rescale=0)(J_BASE)  # [3]
    torch.testing.assert_close(CAGrad(c=0.5, rescale=1)(J_BASE), d / 1.25)
    torch.testing.assert_close(CAGrad(c=0.5, rescale=2)(J_BASE), d / 1.5)


@pytest.mark.parametrize("J", random_pairs(6, seed=2), ids=lambda _: "pair")
def test_imtlg_two_task_closed_form(J: Tensor) -> None:
    """Liu et al. (2021): alpha_2 = g1.(u1 - u2) / ((g1 - g2).(u1 - u2)), alpha_1 = 1 - alpha_2."""
    g1, g2 = J
    u1, u2 = g1 / g1.norm(), g2 / g2.norm()
    alpha2 = g1 @ (u1 - u2) / ((g1 - g2) @ (u1 - u2))
    torch.testing.assert_close(IMTLG()(J), (1 - alpha2) * g1 + alpha2 * g2)


@pytest.mark.parametrize("case", [c for c in ZOO if c.full_rank], ids=repr)
def test_imtlg_equal_projections_on_unit_gradients(case: Case) -> None:
    J = case.jacobian.to(DEVICE)  # [T, P]
    method = IMTLG()
    d = method(J)  # [P]
    projections = (J / J.norm(dim=1, keepdim=True)) @ d  # [T]
    torch.testing.assert_close(projections, projections[0].expand_as(projections))
    torch.testing.assert_close(method.last_weights.sum(), torch.tensor(1.0, dtype=J.dtype, device=DEVICE))


def test_imtlg_ignores_a_zero_gradient_and_gives_up_on_opposites() -> None:
    J = tensor([[1.0, 2.0], [0.0, 0.0]])  # [2, 2]
    torch.testing.assert_close(IMTLG()(J), tensor([1.0, 2.0]))
    torch.testing.assert_close(IMTLG()(tensor([[1.0, 2.0], [-1.0, -2.0]])), tensor([0.0, 0.0]))


def test_upgrad_of_non_conflicting_gradients_is_the_mean() -> None:
    case = next(c for c in ZOO if c.name == "all_agreeing")
    J = case.jacobian.to(DEVICE)  # [4, 12]
    torch.testing.assert_close(UPGrad()(J), J.mean(dim=0))


@pytest.mark.parametrize("case", ZOO, ids=repr)
def test_upgrad_weights_are_at_least_one_over_t(case: Case) -> None:
    method = UPGrad()
    method(case.jacobian)
    assert (method.last_weights >= 1 / case.jacobian.shape[0] - 1e-12).all()


@pytest.mark.parametrize("case", [c for c in ZOO if not c.zero_in_hull], ids=repr)
def test_nash_mtl_solves_the_bargaining_condition(case: Case) -> None:
    """G alpha = 1 / alpha, so g_t . d = 1 / alpha_t and ||d||^2 = T (Navon et al., 2022)."""
    J = case.jacobian.to(DEVICE)  # [T, P]
    method = NashMTL(max_norm=0.0, tol=1e-9)
    d = method(J)  # [P]
    alpha = method.last_weights  # [T]
    assert (alpha > 0).all()
    torch.testing.assert_close((J @ J.T) @ alpha, 1 / alpha, rtol=1e-8, atol=0.0)
    torch.testing.assert_close(d.norm() ** 2, torch.tensor(float(J.shape[0]), dtype=J.dtype, device=DEVICE))


def test_nash_mtl_clips_to_max_norm() -> None:
    d = NashMTL(max_norm=0.5)(J_BASE)  # [3]
    torch.testing.assert_close(d.norm(), torch.tensor(0.5, dtype=torch.float64, device=DEVICE))
    unclipped = NashMTL(max_norm=0.0)(J_BASE)  # [3]
    torch.testing.assert_close(d, unclipped * 0.5 / unclipped.norm())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", [c for c in ZOO if c.zero_in_hull], ids=repr)
def test_nash_mtl_returns_the_zero_direction_at_pareto_stationary_points(
    case: Case, dtype: torch.dtype
) -> None:
    """Zero in the convex hull of the gradients: no direction improves every task, so d = 0 and alpha = 0."""
    method = NashMTL()
    d = method(case.jacobian.to(device=DEVICE, dtype=dtype))  # [P]
    assert torch.equal(d, torch.zeros_like(d))
    assert torch.equal(method.last_weights, torch.zeros(case.jacobian.shape[0], dtype=dtype, device=DEVICE))


def test_nash_mtl_returns_zero_for_two_exactly_opposite_gradients() -> None:
    J = tensor([[1.0, 0.0], [-1.0, 0.0]])  # [2, 2]
    torch.testing.assert_close(NashMTL()(J), tensor([0.0, 0.0]))


def test_nash_mtl_still_raises_when_the_solver_fails_where_a_solution_exists() -> None:
    with pytest.raises(RuntimeError, match=r"Nash-MTL: G alpha = 1/alpha not solved in max_iter=1 "):
        NashMTL(max_iter=1, tol=1e-12)(J_BASE)


def test_graddrop_keeps_gradients_that_agree_in_sign() -> None:
    J = tensor([[1.0, -2.0, 0.0], [3.0, -4.0, 5.0]])  # [2, 3] no column has mixed signs
    torch.testing.assert_close(GradDrop()(J), J.sum(dim=0))


def test_graddrop_with_full_leak_is_the_sum() -> None:
    J = J_BASE
    torch.testing.assert_close(GradDrop(leak=1.0)(J), J.sum(dim=0))
    torch.testing.assert_close(GradDrop(leak=[1.0, 1.0])(J), J.sum(dim=0))


def test_graddrop_picks_one_sign_per_coordinate() -> None:
    """Column 0 of J_BASE mixes -4 and 6 (purity 0.6): each draw keeps exactly one of them."""
    method = GradDrop()
    draws = torch.stack([method(J_BASE)[0] for _ in range(400)])  # [400]
    assert set(draws.tolist()) == {-4.0, 6.0}
    assert 0.5 < (draws == 6.0).double().mean() < 0.7  # P(keep positive) = 0.6


def test_graddrop_leak_lets_the_dropped_part_through() -> None:
    method = GradDrop(leak=[0.5, 0.0])
    draws = {round(v, 6) for v in (method(J_BASE)[0].item() for _ in range(100))}
    assert draws == {6.0 - 2.0, -4.0}  # task 0's -4 leaks at half when the positive sign wins
