"""Contract and property tests run over every method in ``mtlcourse.aggregation.METHODS`` and the zoo."""

from __future__ import annotations

import pytest
import torch
from jacobian_zoo import DEVICE, ZOO, Case
from torch import Tensor

from mtlcourse.aggregation import (
    DBMTL,
    IMTLG,
    METHODS,
    MGDA,
    AlignedMTL,
    CAGrad,
    GradDrop,
    GradNorm,
    GradVac,
    Mean,
    NashMTL,
    PCGrad,
)

#: Methods whose output depends on random draws (fresh instances with the same seed still agree).
RANDOM = {"pcgrad", "graddrop", "gradvac"}
#: Direction as a function of J: degree of positive homogeneity, d(sJ) = s^k d(J).
HOMOGENEITY = {name: 0 if name == "nash_mtl" else 1 for name in METHODS}


def aggregate(name: str, J: Tensor, losses: Tensor) -> Tensor:
    """A fresh instance of the method applied once, with the losses on J's device and dtype."""
    return METHODS[name]()(J, losses.to(J))


def conflict_tolerance(J: Tensor) -> Tensor:
    """Per-task slack ``[T]`` for ``J d >= 0``: rounding relative to the gradient norms."""
    norms = J.norm(dim=1)  # [T]
    return 1e-9 * norms * norms.max()  # [T]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", ZOO, ids=repr)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_direction_has_shape_dtype_device_and_is_finite(name: str, case: Case, dtype: torch.dtype) -> None:
    J = case.jacobian.to(device=DEVICE, dtype=dtype)  # [T, P]
    d = aggregate(name, J, case.losses)  # [P]
    assert d.shape == (J.shape[1],)
    assert d.dtype == dtype and d.device == J.device
    assert torch.isfinite(d).all()


@pytest.mark.parametrize("case", ZOO, ids=repr)
@pytest.mark.parametrize("name", sorted(n for n, cls in METHODS.items() if cls.non_conflicting))
def test_promised_non_conflict(name: str, case: Case) -> None:
    J = case.jacobian.to(DEVICE)  # [T, P]
    d = aggregate(name, J, case.losses)  # [P]
    assert (J @ d >= -conflict_tolerance(J)).all()


def test_the_non_conflicting_flags() -> None:
    promised = {name for name, cls in METHODS.items() if cls.non_conflicting}
    assert promised == {"mgda", "mgda_ub", "upgrad", "nash_mtl"}


@pytest.mark.parametrize("case", [c for c in ZOO if c.jacobian.shape[0] == 2], ids=repr)
def test_pcgrad_does_not_conflict_with_two_tasks(case: Case) -> None:
    J = case.jacobian.to(DEVICE)  # [2, P]
    assert (J @ PCGrad()(J) >= -conflict_tolerance(J)).all()


def test_the_mean_does_conflict_on_the_zoo() -> None:
    """The non-conflict check can fail: the mean gradient conflicts with a task in the wild-scales case."""
    case = next(c for c in ZOO if c.name == "scales_1e-3_to_1e3")
    J = case.jacobian.to(DEVICE)  # [T, P]
    assert (J @ Mean()(J) < -conflict_tolerance(J)).any()


@pytest.mark.parametrize("case", [c for c in ZOO if c.jacobian.shape[0] > 1], ids=repr)
@pytest.mark.parametrize("name", sorted(set(METHODS) - RANDOM))
def test_invariant_to_the_order_of_tasks(name: str, case: Case) -> None:
    J, L = case.jacobian.to(DEVICE), case.losses.to(DEVICE)  # [T, P], [T]
    perm = torch.roll(torch.arange(J.shape[0], device=DEVICE), 1)  # [T], a permutation with no fixed point
    d = aggregate(name, J, L)  # [P]
    d_perm = aggregate(name, J[perm], L[perm])  # [P]
    torch.testing.assert_close(d_perm, d, rtol=1e-6, atol=1e-7 * J.norm(dim=1).max().item())


@pytest.mark.parametrize("scale", [1e-3, 37.0])
@pytest.mark.parametrize("case", ZOO, ids=repr)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_positive_homogeneity(name: str, case: Case, scale: float) -> None:
    """Scaling every gradient by s scales d by s (by 1 for Nash-MTL, whose direction has a fixed norm)."""
    J, L = case.jacobian.to(DEVICE), case.losses.to(DEVICE)  # [T, P], [T]
    d = aggregate(name, J, L)  # [P]
    d_scaled = aggregate(name, scale * J, L)  # [P]
    factor = scale ** HOMOGENEITY[name]
    atol = 1e-9 * factor * J.norm(dim=1).max().item()  # rounding, when d is (close to) zero
    torch.testing.assert_close(d_scaled, factor * d, rtol=1e-6, atol=atol)


@pytest.mark.parametrize("case", [c for c in ZOO if c.full_rank and c.jacobian.shape[0] > 1], ids=repr)
def test_task_scaling_leaves_imtlg_and_nash_directions_unchanged(case: Case) -> None:
    """IMTL-G and Nash-MTL ignore the scale of each task's gradient (their papers' impartiality)."""
    J = case.jacobian.to(DEVICE)  # [T, P]
    s = torch.logspace(-2, 2, J.shape[0], dtype=J.dtype, device=DEVICE)  # [T]
    for method in (IMTLG(), NashMTL(max_norm=0.0)):
        d, d_scaled = method(J), method(s[:, None] * J)  # [P], [P]
        cosine = torch.dot(d, d_scaled) / (d.norm() * d_scaled.norm())
        assert cosine > 1 - 1e-9, type(method).__name__
    torch.testing.assert_close(NashMTL(max_norm=0.0)(s[:, None] * J), NashMTL(max_norm=0.0)(J))


@pytest.mark.parametrize("case", [c for c in ZOO if c.jacobian.shape[0] > 1], ids=repr)
def test_dbmtl_ignores_the_scale_of_a_loss(case: Case) -> None:
    """Multiplying a task's loss by k multiplies its gradient and its loss by k: log-gradients do not move."""
    J, L = case.jacobian.to(DEVICE), case.losses.to(DEVICE)  # [T, P], [T]
    k = torch.ones_like(L)  # [T]
    k[0] = 1e3
    torch.testing.assert_close(DBMTL(eps=0.0)(k[:, None] * J, k * L), DBMTL(eps=0.0)(J, L))


@pytest.mark.parametrize("case", ZOO, ids=repr)
def test_mgda_is_no_longer_than_the_smallest_gradient(case: Case) -> None:
    """MGDA's step is set by the smallest gradient: scaling one task down shrinks the whole direction."""
    J = case.jacobian.to(DEVICE)  # [T, P]
    d = MGDA()(J)  # [P]
    assert d.norm() <= J.norm(dim=1).min() * (1 + 1e-9) + 1e-12
    if case.zero_in_hull:
        assert d.norm() <= 1e-7 * J.norm(dim=1).max()


def test_mgda_is_not_invariant_to_the_scale_of_a_task() -> None:
    J = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64, device=DEVICE)  # [2, 2]
    shrunk = torch.tensor([[0.1], [1.0]], dtype=torch.float64, device=DEVICE) * J  # [2, 2]
    torch.testing.assert_close(MGDA()(J), torch.tensor([0.5, 0.5], dtype=torch.float64, device=DEVICE))
    d = MGDA()(shrunk)  # [2]; min-norm point of the segment from (0.1, 0) to (0, 1)
    torch.testing.assert_close(d, torch.tensor([10 / 101, 1 / 101], dtype=torch.float64, device=DEVICE))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_repr_shows_every_hyperparameter(name: str) -> None:
    method = METHODS[name]()
    text = repr(method)
    assert text.startswith(type(method).__name__ + "(")
    for key, value in {**method.hyperparameters(), "level": method.level}.items():
        assert f"{key}={value!r}" in text


@pytest.mark.parametrize("name", sorted(METHODS))
def test_rejects_an_unknown_level(name: str) -> None:
    with pytest.raises(ValueError, match="level"):
        METHODS[name](level="everywhere")


INVALID = [
    (PCGrad, {"reduction": "max"}, "reduction"),
    (PCGrad, {"seed": -1}, "seed"),
    (PCGrad, {"seed": 1.5}, "seed"),
    (CAGrad, {"c": -0.1}, "c"),
    (CAGrad, {"c": float("nan")}, "c"),
    (CAGrad, {"rescale": 3}, "rescale"),
    (NashMTL, {"max_norm": -1.0}, "max_norm"),
    (NashMTL, {"update_weights_every": 0}, "update_weights_every"),
    (NashMTL, {"max_iter": 0}, "max_iter"),
    (NashMTL, {"tol": 0.0}, "tol"),
    (GradDrop, {"leak": 1.5}, "leak"),
    (GradDrop, {"leak": [0.5, -0.1]}, "leak"),
    (GradDrop, {"leak": []}, "leak"),
    (GradVac, {"beta": 1.5}, "beta"),
    (GradVac, {"seed": "zero"}, "seed"),
    (AlignedMTL, {"scale_mode": "max"}, "scale_mode"),
    (DBMTL, {"beta": 1.0}, "beta"),
    (DBMTL, {"beta_sigma": -0.5}, "beta_sigma"),
    (DBMTL, {"eps": -1e-8}, "eps"),
    (GradNorm, {"alpha": -1.0}, "alpha"),
    (GradNorm, {"lr": 0.0}, "lr"),
]


@pytest.mark.parametrize(("cls", "kwargs", "argument"), INVALID)
def test_rejects_invalid_hyperparameters(cls: type, kwargs: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        cls(**kwargs)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_rejects_a_jacobian_that_is_not_a_matrix(name: str) -> None:
    with pytest.raises(ValueError, match="jacobian"):
        METHODS[name]()(torch.ones(4), torch.ones(1))


@pytest.mark.parametrize("name", ["dbmtl", "gradnorm"])
def test_methods_that_read_losses_reject_missing_or_wrong_losses(name: str) -> None:
    J = ZOO[2].jacobian  # [3, 10]
    with pytest.raises(ValueError, match="needs the task losses"):
        METHODS[name]()(J)
    with pytest.raises(ValueError, match=r"losses of shape \[3\]"):
        METHODS[name]()(J, torch.ones(2, dtype=J.dtype))
    with pytest.raises(ValueError, match="losses"):
        METHODS[name]()(J, torch.tensor([1.0, -1.0, 1.0], dtype=J.dtype))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_reset_restores_the_first_call(name: str) -> None:
    """After reset() a method (state and random draws alike) behaves as when it was built."""
    first, other = ZOO[3], ZOO[2]  # T=5 and T=3, both full rank
    method = METHODS[name]()
    d_first = method(first.jacobian, first.losses)  # [P]
    method(first.jacobian * 2.0, first.losses * 0.5)  # moves any state
    method.reset()
    assert method.last_weights is None
    torch.testing.assert_close(method(first.jacobian, first.losses), d_first)
    method.reset()
    assert method(other.jacobian, other.losses).shape == (
        other.jacobian.shape[1],
    )  # T may change after reset


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_nan_gradient_is_never_hidden(name: str) -> None:
    """A NaN in J either raises a ValueError or shows up in d: no method returns a clean-looking direction."""
    J = ZOO[2].jacobian.clone()  # [3, 10]
    J[1, 4] = float("nan")
    try:
        d = aggregate(name, J, ZOO[2].losses)  # [P]
    except ValueError as error:
        assert "finite" in str(error)
    else:
        assert torch.isnan(d).any()
