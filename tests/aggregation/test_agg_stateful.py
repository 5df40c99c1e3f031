"""State across calls: moving averages, reused weights, learnt weights, and reproducible random draws."""

from __future__ import annotations

import pytest
import torch
from jacobian_zoo import DEVICE, ZOO
from torch import Tensor

from mtlcourse.aggregation import DBMTL, GradDrop, GradNorm, GradVac, NashMTL, PCGrad


def tensor(values: list) -> Tensor:
    return torch.tensor(values, dtype=torch.float64, device=DEVICE)  # [*shape]


J3 = ZOO[2].jacobian.to(DEVICE)  # [3, 10], full rank
L3 = ZOO[2].losses.to(DEVICE)  # [3]


def test_gradvac_targets_are_a_moving_average_of_cosines() -> None:
    """Two tasks: phi is the plain cosine (no third task moves g'_i first), so targets follow beta * phi."""
    J = tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]])  # [2, 3]
    cosine = -22.0 / (18.0 * 38.0) ** 0.5
    method = GradVac(beta=0.25)
    assert method.targets is None
    method(J)
    first = 0.25 * cosine
    torch.testing.assert_close(method.targets, tensor([[0.0, first], [first, 0.0]]))
    method(J)
    second = 0.75 * first + 0.25 * cosine
    torch.testing.assert_close(method.targets, tensor([[0.0, second], [second, 0.0]]))
    method.reset()
    assert method.targets is None


def test_gradvac_raises_the_cosine_to_its_target() -> None:
    """With a positive target, the vaccinated g'_1 has exactly that cosine with g_2."""
    J = tensor([[1.0, 0.0], [0.0, 1.0]])  # [2, 2], cosine 0
    method = GradVac(beta=0.5)
    method.targets = tensor([[0.0, 0.6], [0.6, 0.0]])
    d = method(J)  # [2]
    C = torch.eye(2, dtype=torch.float64, device=DEVICE) + 0.75 * torch.tensor(
        [[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64, device=DEVICE
    )  # [2, 2]: g'_1 = g_1 + 0.75 g_2 has cosine 0.6 with g_2
    torch.testing.assert_close(d, C.sum(dim=0) @ J)
    torch.testing.assert_close(method.targets, tensor([[0.0, 0.3], [0.3, 0.0]]))


def test_gradvac_rejects_a_new_number_of_tasks_until_reset() -> None:
    method = GradVac()
    method(J3)
    with pytest.raises(ValueError, match="reset"):
        method(J3[:2])
    method.reset()
    assert method(J3[:2]).shape == (10,)


def test_nash_mtl_reuses_its_weights_between_updates() -> None:
    method = NashMTL(max_norm=0.0, update_weights_every=3)
    weights = []
    for scale in (1.0, 2.0, 3.0, 4.0):
        method(scale * J3)
        weights.append(method.last_weights.clone())
    torch.testing.assert_close(weights[1], weights[0])
    torch.testing.assert_close(weights[2], weights[0])
    torch.testing.assert_close(weights[3], weights[0] / 4.0)  # re-solved: alpha scales as 1 / s
    method.reset()
    method(4.0 * J3)
    torch.testing.assert_close(method.last_weights, weights[3])


def test_nash_mtl_rejects_a_new_number_of_tasks_until_reset() -> None:
    method = NashMTL(update_weights_every=2)
    method(J3)
    with pytest.raises(ValueError, match="reset"):
        method(J3[:2])


def test_dbmtl_moving_average_by_hand() -> None:
    J1, L1 = tensor([[1.0, 0.0], [0.0, 4.0]]), tensor([1.0, 2.0])  # [2, 2], [2]
    J2, L2 = tensor([[0.0, 2.0], [2.0, 0.0]]), tensor([2.0, 1.0])  # [2, 2], [2]
    method = DBMTL(beta=0.5, beta_sigma=1.0, eps=0.0)
    method(J1, L1)  # beta_1 = 0.5: buffer = 0.5 * J1 / L1
    d = method(J2, L2)  # beta_2 = 0.25: buffer = 0.25 * buffer + 0.75 * J2 / L2
    buffer = 0.25 * (0.5 * tensor([[1.0, 0.0], [0.0, 2.0]])) + 0.75 * tensor(
        [[0.0, 1.0], [2.0, 0.0]]
    )  # [2, 2]
    norms = buffer.norm(dim=1)  # [2]
    torch.testing.assert_close(method.buffer, buffer)
    torch.testing.assert_close(method.last_weights, norms.max() / norms)
    torch.testing.assert_close(d, (norms.max() / norms) @ buffer)


def test_dbmtl_every_term_has_the_largest_norm() -> None:
    method = DBMTL()
    for _ in range(3):
        method(J3, L3)
    terms = method.last_weights[:, None] * method.buffer  # [T, P]
    torch.testing.assert_close(terms.norm(dim=1), terms.norm(dim=1).max().expand(3))


def test_dbmtl_rejects_a_new_shape_until_reset() -> None:
    method = DBMTL()
    method(J3, L3)
    with pytest.raises(ValueError, match="reset"):
        method(J3[:, :5], L3)
    method.reset()
    assert method.buffer is None
    assert method(J3[:, :5], L3).shape == (5,)


def test_dbmtl_at_the_representation_level_averages_the_norms_and_takes_any_batch_size() -> None:
    """z changes with the batch (and P with its size): the state is one averaged gradient norm per task."""
    method = DBMTL(level="representation")  # beta = 0.9
    d1 = method(tensor([[1.0, 0.0], [0.0, 4.0]]), tensor([1.0, 2.0]))  # log-gradients [[1, 0], [0, 2]]
    torch.testing.assert_close(method.buffer, tensor([0.1, 0.2]))  # 0.1 * norms [1, 2]
    torch.testing.assert_close(d1, tensor([2.0, 2.0]))  # scales [2, 1] on the current log-gradients
    d2 = method(tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), tensor([1.0, 1.0]))  # a smaller batch: P = 3
    norms = 0.9 * tensor([0.1, 0.2]) + 0.1 * tensor([2.0, 1.0])  # [0.29, 0.28]
    torch.testing.assert_close(method.buffer, norms)
    torch.testing.assert_close(method.last_weights, norms.max() / norms)
    torch.testing.assert_close(d2, tensor([2.0, 0.0, 0.29 / 0.28]))
    with pytest.raises(
        ValueError, match=r"holds averages of shape \(2,\) but this call needs \(3,\); call reset"
    ):
        method(J3, L3)


def test_gradnorm_weights_by_hand() -> None:
    J = tensor([[3.0, 0.0], [0.0, 1.0]])  # [2, 2]: gradient norms 3 and 1
    method = GradNorm(alpha=1.0, lr=0.1)
    d = method(J, tensor([2.0, 1.0]))
    torch.testing.assert_close(d, tensor([3.0, 1.0]))  # first call: weights 1
    torch.testing.assert_close(method.initial_losses, tensor([2.0, 1.0]))
    # rates (1, 1): targets mean(w n) = 2 for both; w n = (3, 1): signs (+, -), gradient (3, -1);
    # w = (1 - 0.3, 1 + 0.1) = (0.7, 1.1), renormalised to sum 2.
    w1 = tensor([0.7, 1.1]) * 2 / 1.8  # [2]
    torch.testing.assert_close(method.task_weights, w1)
    d = method(J, tensor([1.0, 1.0]))
    torch.testing.assert_close(method.last_weights, w1)
    torch.testing.assert_close(d, w1 * tensor([3.0, 1.0]))
    # rates (0.5, 1): r = (2/3, 4/3); targets mean(w1 n) * r; w1 n = (2.33, 1.22) is above, then below.
    assert w1[0] * 3 > (w1 * tensor([3.0, 1.0])).mean() * 2 / 3
    w2 = w1 - 0.1 * tensor([3.0, -1.0])  # [2]
    torch.testing.assert_close(method.task_weights, w2 * 2 / w2.sum())


def test_gradnorm_favours_the_task_that_trains_slower() -> None:
    """Task 1's loss stays put while task 0's falls: task 1's weight grows; weights always sum to T."""
    method = GradNorm()
    for step in range(30):
        losses = tensor([1.0 / (1 + step), 1.0, 1.0])  # [3]
        method(J3, losses)
        torch.testing.assert_close(
            method.task_weights.sum(), torch.tensor(3.0, dtype=torch.float64, device=DEVICE)
        )
    assert method.task_weights[1] > 1.0 > method.task_weights[0]
    method.reset()
    assert method.task_weights is None and method.initial_losses is None


@pytest.mark.parametrize("cls", [PCGrad, GradVac, GradDrop])
def test_seeded_draws_are_reproducible(cls: type) -> None:
    """Same seed, same sequence; another seed, another sequence; reset() restarts it."""
    J = ZOO[3].jacobian.to(DEVICE)  # [5, 50]: with five tasks the order matters
    method = cls(seed=7)
    run = [method(J) for _ in range(6)]
    again = cls(seed=7)
    torch.testing.assert_close(torch.stack([again(J) for _ in range(6)]), torch.stack(run))
    other = cls(seed=8)
    assert not torch.allclose(torch.stack([other(J) for _ in range(6)]), torch.stack(run))
    assert not all(torch.allclose(run[0], r) for r in run[1:])  # successive calls draw anew
    method.reset()
    torch.testing.assert_close(method(J), run[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("cls", [PCGrad, GradVac, GradDrop])
def test_random_draws_happen_on_the_jacobian_device(cls: type) -> None:
    J = ZOO[3].jacobian.to("cuda")  # [5, 50]
    method = cls(seed=0)
    d = method(J)  # [P]
    assert d.device == J.device
    assert torch.device("cuda", torch.cuda.current_device()) in method.generator._generators
