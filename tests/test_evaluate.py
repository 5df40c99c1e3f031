"""evaluate: with missing labels, the loss is the mean over the split's labelled entries, whatever the batch size."""

import pytest
import torch
import torch.nn.functional as F

from mtlcourse.data import MultiShapes, TensorMultiTaskDataset
from mtlcourse.data.base import drop_labels
from mtlcourse.models import HardParameterSharing, SmallCNN
from mtlcourse.tasks import Task
from mtlcourse.train import evaluate, predict

#: One task of every kind: multiclass, multilabel, segmentation, edge, regression (two), and binary.
TASKS = ["shape", "attributes", "segmentation", "edges", "size", "position"]


@pytest.fixture(scope="module")
def data() -> TensorMultiTaskDataset:
    shapes = MultiShapes("val", num_images=80, tasks=TASKS, seed=1, label_fraction=0.1)
    full = MultiShapes("val", num_images=80, tasks=["attributes"], seed=1)  # the same images, every label
    circle_task = Task("circle", "binary", 1)
    circle = (full.targets["attributes"][:, 0] == 1).float()  # [N] is there a circle?
    circle = drop_labels(circle, circle_task, 0.1, torch.Generator().manual_seed(0))  # [N] 8 labels kept
    targets = {**shapes.targets, "circle": circle}
    return TensorMultiTaskDataset(shapes.images, targets, [*shapes.tasks.values(), circle_task])


@pytest.fixture(scope="module")
def model(data) -> HardParameterSharing:
    torch.manual_seed(0)
    return HardParameterSharing(SmallCNN(width=4, num_stages=2), data.tasks)


def oracle_losses(model, data) -> dict[str, float]:
    """Each task's mean loss over every labelled entry of the split, from torch's own losses on all outputs."""
    outputs = predict(model, data, batch_size=len(data))
    losses = {}
    for name, task in data.tasks.items():
        out, target = outputs[name], data.targets[name]
        if task.kind in ("multiclass", "segmentation"):
            losses[name] = F.cross_entropy(out, target, ignore_index=-1).item()
            continue
        labelled = ~torch.isnan(target)
        if task.kind == "regression":
            losses[name] = F.mse_loss(out[labelled], target[labelled]).item()
        else:
            pos_weight = torch.tensor(task.pos_weight)  # MultiShapes' edges weigh their boundary pixels
            losses[name] = F.binary_cross_entropy_with_logits(
                out[labelled], target[labelled], pos_weight=pos_weight
            ).item()
    return losses


def test_every_task_kind_has_missing_labels_here(data):
    assert {task.kind for task in data.tasks.values()} == {
        "multiclass",
        "binary",
        "multilabel",
        "segmentation",
        "edge",
        "regression",
    }
    assert all(data.label_fraction(name) < 0.3 for name in data.tasks)


@pytest.mark.parametrize("batch_size", [256, 64, 8, 1])
def test_the_loss_does_not_depend_on_the_batch_size(model, data, batch_size):
    expected = oracle_losses(model, data)
    results = evaluate(model, data, batch_size=batch_size)
    for name in data.tasks:
        assert results[name]["loss"] == pytest.approx(expected[name], rel=1e-5), name
