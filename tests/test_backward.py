"""The autograd module: Jacobian routes, gradients written by mtl_backward, representation level."""

import pytest
import torch
from torch import Tensor

from mtlcourse.aggregation.base import Aggregator, GramianWeighting
from mtlcourse.backward import jacobian, mtl_backward, mtl_step, task_losses
from mtlcourse.models import HardParameterSharing, SmallCNN
from mtlcourse.tasks import Task
from mtlcourse.weighting import EqualWeighting, FixedWeighting

TASKS = [Task("a", "multiclass", 3), Task("b", "regression", 1), Task("c", "segmentation", 2)]


class RowSum(Aggregator):
    """d = sum of the rows: must reproduce equal weighting exactly."""

    def forward(self, jacobian: Tensor, losses: Tensor | None = None) -> Tensor:
        return jacobian.sum(0)


class GramianFixed(GramianWeighting):
    def __init__(self, w, level="parameters"):
        super().__init__(level)
        self.w = torch.tensor(w)

    def weights(self, gramian: Tensor) -> Tensor:
        return self.w.to(gramian)


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(4, 3, 16, 16, generator=g)
    targets = {
        "a": torch.randint(0, 3, (4,), generator=g),
        "b": torch.randn(4, 1, generator=g),
        "c": torch.randint(0, 2, (4, 16, 16), generator=g),
    }
    return images, targets


def model(seed: int = 0) -> HardParameterSharing:
    torch.manual_seed(seed)
    return HardParameterSharing(SmallCNN(width=4, num_stages=2), TASKS)


def grads_of(m) -> list[Tensor]:
    return [p.grad.clone() for p in m.parameters()]


def test_both_jacobian_routes_agree_with_one_backward_pass_per_task():
    m = model()
    images, targets = batch()
    params = list(m.shared_parameters())
    losses = task_losses(m(images), targets, m.tasks)
    rows = []
    for t in range(3):
        g = torch.autograd.grad(losses[t], params, retain_graph=True)
        rows.append(torch.cat([x.flatten() for x in g]))
    reference = torch.stack(rows)  # [T, P]
    J_loop = jacobian(losses, params, route="loop")
    J_batched = jacobian(losses, params, route="batched")  # frees the graph, so it comes last
    assert J_loop.shape == (3, sum(p.numel() for p in params))
    torch.testing.assert_close(J_loop, reference)
    torch.testing.assert_close(J_batched, reference, rtol=1e-4, atol=1e-6)


def test_an_aggregator_that_sums_rows_gives_the_same_gradients_as_equal_weighting():
    images, targets = batch()
    a, b = model(), model()
    mtl_step(a, images, targets, EqualWeighting())
    mtl_step(b, images, targets, RowSum())
    for ga, gb in zip(grads_of(a), grads_of(b)):
        torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("w", [[1.0, 1.0, 1.0], [0.2, 3.0, 0.5]])
def test_representation_level_weights_equal_the_weighted_sum_of_losses(w):
    # With weights that do not depend on J, d_z = w @ J_z, and backpropagating it through the encoder
    # must give exactly the gradient of sum_t w_t L_t for the shared parameters.
    images, targets = batch()
    a, b = model(), model()
    mtl_step(a, images, targets, FixedWeighting(w))
    weights = mtl_step(b, images, targets, GramianFixed(w, level="representation"))[1]
    assert weights.tolist() == pytest.approx(w)
    for pa, pb in zip(a.backbone.parameters(), b.backbone.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-6)
    # Heads get their own task's ordinary gradient, unweighted, at the representation level.
    c = model()
    mtl_step(c, images, targets, EqualWeighting())
    for (name, pb), pc in zip(b.named_parameters(), c.parameters()):
        if name.startswith("heads"):
            torch.testing.assert_close(pb.grad, pc.grad, rtol=1e-4, atol=1e-6)


def test_task_parameters_get_their_own_task_gradient_with_an_aggregator():
    images, targets = batch()
    a = model()
    mtl_step(a, images, targets, GramianFixed([5.0, 5.0, 5.0]))
    b = model()
    losses = task_losses(b(images), targets, b.tasks)
    losses[0].backward()
    for pa, pb in zip(a.heads["a"].parameters(), b.heads["a"].parameters()):
        torch.testing.assert_close(pa.grad, pb.grad)


def test_mtl_backward_accumulates_like_backward_does():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    x.grad = torch.ones(2)
    mtl_backward(RowSum(), torch.stack([x.pow(2).sum(), x.sum()]), [x])
    torch.testing.assert_close(x.grad, torch.tensor([4.0, -2.0]))


def test_a_non_finite_loss_names_the_task():
    m = model()
    images, targets = batch()
    targets["b"] = torch.full((4, 1), float("inf"))
    with pytest.raises(FloatingPointError, match=r"\['b'\]"):
        mtl_step(m, images, targets, EqualWeighting())


class WrongWeights(FixedWeighting):
    def weights(self, losses: Tensor) -> Tensor:
        return super().weights(losses)[:, None]  # [T, 1] instead of [T]


class WrongObjective(EqualWeighting):
    def forward(self, losses: Tensor) -> Tensor:
        super().forward(losses)
        return losses  # [T] instead of a scalar


class WrongDirection(Aggregator):
    def forward(self, jacobian: Tensor, losses: Tensor | None = None) -> Tensor:
        return jacobian  # [T, P] instead of [P]


@pytest.mark.parametrize(
    "method, message",
    [
        (
            WrongWeights([1.0, 1.0, 1.0]),
            r"WrongWeights\.weights must return one weight per task, \[T\] = \[3\]; got \[3, 1\]",
        ),
        (
            WrongObjective(),
            r"WrongObjective\.forward must return a scalar, the loss to backpropagate; got \[3\]",
        ),
        (
            WrongDirection(),
            r"WrongDirection\.forward must return a direction \[P\] = \[\d+\], one entry per shared parameter",
        ),
        (
            WrongDirection(level="representation"),
            r"\[P\] = \[512\], one entry per entry of the shared representation z",
        ),
    ],
)
def test_a_method_that_returns_the_wrong_shape_is_told_the_shape_it_must_return(method, message):
    images, targets = batch()  # 4 images: z is [4, 8, 4, 4], 512 entries
    with pytest.raises(ValueError, match=message):
        mtl_step(model(), images, targets, method)


def test_unknown_route_is_rejected():
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="route must be one of"):
        jacobian(x.sum()[None], [x], route="fast")
