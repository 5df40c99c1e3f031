"""Task affinity and grouping: hand-computed values, an independent oracle, properties, errors."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mtlcourse.affinity import (
    AffinityRecorder,
    best_groups,
    gradient_cosines,
    grouping_score,
    lookahead_affinity,
    lookahead_and_cosines,
    partitions,
    score_groupings,
)
from mtlcourse.backward import jacobian, task_losses
from mtlcourse.models import HardParameterSharing, MultiTaskModel, SmallCNN
from mtlcourse.tasks import Task

# ---------------------------------------------------------------------------------------------------------
# Gradient cosines


def test_gradient_cosines_by_hand_with_a_zero_row():
    J = torch.tensor([[3.0, 0.0], [0.0, -2.0], [-1.0, 0.0], [0.0, 0.0]])
    expected = torch.tensor(
        [[1.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [-1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    )
    assert torch.equal(gradient_cosines(J), expected)  # the zero row gives 0, not nan


def test_gradient_cosines_match_torch_pairwise_cosine_similarity():
    J = torch.randn(5, 40, generator=torch.Generator().manual_seed(0))
    oracle = F.cosine_similarity(J[:, None, :], J[None, :, :], dim=-1)  # [5, 5]
    torch.testing.assert_close(gradient_cosines(J), oracle)
    with pytest.raises(ValueError, match=r"J must be a \[T, P\] matrix"):
        gradient_cosines(torch.zeros(3))


# ---------------------------------------------------------------------------------------------------------
# Lookahead affinity


class Line(MultiTaskModel):
    """Every task predicts a_t * w: with a_t = 1 and images of ones, task t's loss is (w - y_t)^2."""

    def __init__(self, names: list[str], w: float = 0.0) -> None:
        super().__init__()
        self.tasks = {name: Task(name, "regression", 1) for name in names}
        self.w = nn.Parameter(torch.tensor([w]))
        self.scales = nn.ParameterDict({name: nn.Parameter(torch.ones(1)) for name in names})

    def encode(self, images):
        return self.w * images.mean(dim=(1, 2, 3))[:, None]  # [B, 1]

    def decode(self, z):
        return {name: a * z for name, a in self.scales.items()}  # [B, 1] each

    def shared_parameters(self):
        return iter([self.w])

    def task_parameters(self, task=None):
        return iter(self.scales.values() if task is None else [self.scales[self.check_task(task)]])


def line_batch(values: list[float], batch: int = 2):
    """Images of ones and a regression target y_t for task t (named a, b, c, ...)."""
    names = [chr(ord("a") + t) for t in range(len(values))]
    return names, torch.ones(batch, 1, 2, 2), {n: torch.full((batch, 1), v) for n, v in zip(names, values)}


def test_lookahead_affinity_by_hand_on_two_opposite_targets():
    # L_a = w^2 - 2w + 1 and L_b = w^2 + 2w + 1 at w = 0; a step of lr 0.25 on a moves w to 0.5:
    # L_a = 0.25 (Z_aa = 0.75) and L_b = 2.25 (Z_ab = -1.25); a step on b moves w to -0.5, symmetrically.
    names, images, targets = line_batch([1.0, -1.0])
    Z = lookahead_affinity(Line(names), images, targets, lr=0.25)
    torch.testing.assert_close(Z, torch.tensor([[0.75, -1.25], [-1.25, 0.75]]))


def test_a_small_step_on_a_convex_loss_lowers_the_task_s_own_loss():
    g = torch.Generator().manual_seed(0)
    for lr in (1e-3, 1e-2, 0.1):
        names, images, targets = line_batch(torch.randn(4, generator=g).tolist())
        Z = lookahead_affinity(Line(names, w=0.3), images, targets, lr=lr)
        assert Z.shape == (4, 4) and bool((Z.diagonal() > 0).all()), lr


def snapshot(model: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in [*model.parameters(), *model.buffers()]]


@pytest.fixture
def cnn_and_batch():
    torch.manual_seed(0)
    tasks = [Task("cls", "multiclass", 3), Task("reg", "regression", 1), Task("edge", "edge", 1)]
    model = HardParameterSharing(SmallCNN(width=4, num_stages=2), tasks)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(6, 3, 16, 16, generator=g)
    targets = {
        "cls": torch.randint(0, 3, (6,), generator=g),
        "reg": torch.randn(6, 1, generator=g),
        "edge": (torch.rand(6, 16, 16, generator=g) < 0.1).float(),
    }
    return model, images, targets


def oracle_affinity(model: MultiTaskModel, images, targets, lr: float) -> torch.Tensor:
    """The same definition with a copy of the model whose shared weights are really stepped."""
    rows = []
    for i in range(len(model.tasks)):
        twin = copy.deepcopy(model).train()
        before = task_losses(twin(images), targets, twin.tasks)  # [T]
        shared = list(twin.shared_parameters())
        grads = torch.autograd.grad(before[i], shared, allow_unused=True)
        with torch.no_grad():
            for p, grad in zip(shared, grads):
                if grad is not None:
                    p -= lr * grad
            after = task_losses(twin(images), targets, twin.tasks)  # [T]
        rows.append(1 - after / before.detach())
    return torch.stack(rows)  # [T, T]


def test_lookahead_affinity_matches_an_oracle_that_steps_a_copy(cnn_and_batch):
    model, images, targets = cnn_and_batch
    Z = lookahead_affinity(model, images, targets, lr=0.05)
    torch.testing.assert_close(Z, oracle_affinity(model, images, targets, lr=0.05), rtol=1e-4, atol=1e-5)
    assert bool((Z.diagonal() > 0).all())


def test_lookahead_and_cosines_gives_the_same_z_and_the_cosines_of_the_training_mode_jacobian(cnn_and_batch):
    model, images, targets = cnn_and_batch
    Z, C = lookahead_and_cosines(model, images, targets, lr=0.05)
    assert torch.equal(Z, lookahead_affinity(model, images, targets, lr=0.05))
    twin = copy.deepcopy(
        model
    ).train()  # the oracle: the Jacobian of a copy in training mode, as the step sees it
    J = jacobian(task_losses(twin(images), targets, twin.tasks), list(twin.shared_parameters()))  # [T, P]
    torch.testing.assert_close(C, gradient_cosines(J), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(C, C.T)


def test_lookahead_affinity_leaves_the_model_exactly_as_it_was(cnn_and_batch):
    model, images, targets = cnn_and_batch
    model.eval()  # the passes run in training mode, and the eval mode must come back
    model.backbone.stages[0].train()
    before = snapshot(model)
    lookahead_affinity(model, images, targets, lr=0.1)
    assert all(
        torch.equal(a, b) for a, b in zip(before, snapshot(model))
    )  # weights and batch-norm statistics
    assert all(p.grad is None for p in model.parameters())
    assert not model.training and model.backbone.stages[0].training and not model.backbone.stages[1].training


def test_a_task_without_labels_in_the_batch_gets_a_nan_column_and_moves_nothing():
    names, images, targets = line_batch([1.0, -1.0, 0.5])
    targets["c"] = torch.full((2, 1), math.nan)
    Z = lookahead_affinity(Line(names), images, targets, lr=0.1)
    assert bool(torch.isnan(Z[:, 2]).all())
    assert Z[2, :2].tolist() == [0.0, 0.0]  # its gradient is zero, so its step changes no loss
    with pytest.raises(ValueError, match="lr must be positive"):
        lookahead_affinity(Line(names), images, targets, lr=0.0)


def test_the_recorder_averages_every_kth_step_and_skips_nan_cells():
    names, images, targets = line_batch([1.0, -1.0])
    model, recorder = Line(names), AffinityRecorder(lr=0.1, every=3)
    with pytest.raises(ValueError, match="nothing recorded yet"):
        recorder.mean()
    with pytest.raises(ValueError, match="nothing recorded yet"):
        recorder.mean_cosines()
    recorded = [recorder.step(model, images, targets) for _ in range(7)]
    assert [z is not None for z in recorded] == [True, False, False, True, False, False, True]
    unlabelled = {**targets, "b": torch.full((2, 1), math.nan)}
    recorder.record(model, images, unlabelled)
    assert recorder.num_recorded == 4
    Z = lookahead_affinity(model, images, targets, lr=0.1)
    partial = lookahead_affinity(model, images, unlabelled, lr=0.1)
    expected = torch.nanmean(torch.stack([Z, Z, Z, partial]), dim=0)
    torch.testing.assert_close(recorder.mean(), expected)
    _, C = lookahead_and_cosines(model, images, targets, lr=0.1)
    torch.testing.assert_close(recorder.mean_cosines(), C)  # the unlabelled step leaves the cosines out
    for bad in ({"lr": 0.0}, {"lr": 0.1, "every": 0}):
        with pytest.raises(ValueError, match="must be"):
            AffinityRecorder(**bad)


# ---------------------------------------------------------------------------------------------------------
# Grouping


def stirling(n: int, k: int) -> int:
    """Stirling number of the second kind: partitions of n items into k non-empty groups."""
    return sum((-1) ** j * math.comb(k, j) * (k - j) ** n for j in range(k + 1)) // math.factorial(k)


@pytest.mark.parametrize("T", [1, 2, 3, 4, 6])
def test_partitions_lists_every_partition_once(T):
    for k in range(1, T + 1):
        found = list(partitions(T, k))
        assert len(found) == stirling(T, k)
        assert len({frozenset(map(frozenset, p)) for p in found}) == len(found)  # no duplicates
        for p in found:
            assert len(p) == k and sorted(i for group in p for i in group) == list(range(T))


def test_block_diagonal_affinity_groups_the_blocks():
    Z = torch.full((4, 4), -0.2)
    Z[:2, :2], Z[2:, 2:] = 0.5, 0.4
    assert best_groups(Z, 2) == (((0, 1), (2, 3)), pytest.approx(0.5 * 2 + 0.4 * 2))
    names = ["shape", "size", "color", "count"]
    assert best_groups(Z, 2, names)[0] == (("shape", "size"), ("color", "count"))


def test_a_task_that_helps_nobody_ends_up_alone():
    Z = torch.full((4, 4), 0.3)
    Z[3, :] = -0.5  # a step on task 3 hurts everyone
    Z[:, 3] = -0.1  # and nobody helps it
    groups, score = best_groups(Z, 2)
    assert groups == ((0, 1, 2), (3,)) and score == pytest.approx(3 * 0.3)
    assert grouping_score(Z, [(0, 1, 2, 3)]) == pytest.approx(3 * (0.6 - 0.5) / 3 + (-0.1), abs=1e-6)


def test_ties_go_to_the_partition_listed_first_and_the_list_keeps_that_order():
    Z = torch.full((3, 3), 0.2)
    scored = score_groupings(Z, 2)
    assert [s for _, s in scored] == pytest.approx([0.4, 0.4, 0.4])
    assert [groups for groups, _ in scored] == list(partitions(3, 2))
    assert best_groups(Z, 2) == (((0,), (1, 2)), pytest.approx(0.4))


def test_one_group_and_all_alone_are_the_extremes():
    Z = torch.tensor([[9.0, 0.1, 0.3], [0.2, 9.0, -0.4], [0.5, 0.6, 9.0]])  # the diagonal is never used
    assert best_groups(Z, 3) == (((0,), (1,), (2,)), 0.0)
    expected = (0.2 + 0.5) / 2 + (0.1 + 0.6) / 2 + (0.3 - 0.4) / 2
    assert best_groups(Z, 1) == (((0, 1, 2),), pytest.approx(expected))


@pytest.mark.parametrize(
    "affinity, num_groups, names, message",
    [
        (torch.zeros(9, 9), 2, None, "fast for up to 8 tasks; got 9"),
        (torch.zeros(3, 3), 0, None, "num_groups must be a whole number from 1 to 3"),
        (torch.zeros(3, 3), 4, None, "num_groups must be a whole number from 1 to 3"),
        (torch.zeros(3, 2), 1, None, r"square \[T, T\] matrix, got shape \(3, 2\)"),
        (torch.tensor([[0.0, math.nan], [0.1, 0.0]]), 1, None, "non-finite entries off its diagonal"),
        (torch.zeros(2, 2), 1, ["a"], "1 task_names for a 2 x 2"),
    ],
)
def test_grouping_errors_say_what_was_wrong(affinity, num_groups, names, message):
    with pytest.raises(ValueError, match=message):
        best_groups(affinity, num_groups, names)
