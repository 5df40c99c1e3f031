"""fit and evaluate: learning on CPU, model selection, clear errors."""

import math

import pytest
import torch

from mtlcourse.data import MultiShapes
from mtlcourse.models import HardParameterSharing, SmallCNN
from mtlcourse.tasks import Task
from mtlcourse.train import SCHEDULES, evaluate, fit, predict
from mtlcourse.weighting import FixedWeighting, UncertaintyWeighting


@pytest.fixture(scope="module")
def data():
    tasks = ["color", "size"]
    return (
        MultiShapes("train", num_images=800, tasks=tasks, seed=0),
        MultiShapes("val", num_images=300, tasks=tasks, seed=0),
    )


def small_model(tasks, seed=0):
    torch.manual_seed(seed)
    return HardParameterSharing(SmallCNN(width=8), tasks)


def test_training_on_cpu_learns(data):
    train, val = data
    model = small_model(train.tasks)
    before = evaluate(model, val)
    history = fit(model, train, val, epochs=4, lr=3e-3, progress=False)
    after = evaluate(model, val)
    assert history.train_loss["color"][-1] < 0.8 * history.train_loss["color"][0]
    assert after["color"]["accuracy"] > 0.25 + 0.3, "4-way colour accuracy must beat chance by a margin"
    assert after["size"]["mae"] < before["size"]["mae"]
    assert len(history.epoch_time) == 4 and all(t > 0 for t in history.epoch_time)
    assert history.weights[0] == [1.0, 1.0]


def test_the_model_keeps_the_epoch_that_is_best_on_validation(data):
    train, val = data
    model = small_model(train.tasks)
    history = fit(model, train, val, epochs=3, lr=3e-3, progress=False)
    summed = [sum(history.val_loss[t][e] for t in history.tasks) for e in range(3)]
    assert history.best_epoch == summed.index(min(summed))
    again = evaluate(model, val)
    assert sum(again[t]["loss"] for t in history.tasks) == pytest.approx(min(summed), rel=1e-5)


def test_selection_on_a_task_metric(data):
    train, val = data
    model = small_model(train.tasks)
    history = fit(model, train, val, epochs=3, lr=3e-3, select="color", progress=False)
    accuracies = history.val_metrics["color"]["accuracy"]
    assert history.best("color") == max(accuracies)


def test_same_seed_same_result(data):
    train, _ = data
    runs = []
    for _ in range(2):
        model = small_model(train.tasks)
        runs.append(fit(model, train, epochs=1, seed=3, progress=False).train_loss["color"])
    assert runs[0] == runs[1]


def test_fixed_weights_are_logged(data):
    train, _ = data
    history = fit(
        small_model(train.tasks), train, epochs=1, method=FixedWeighting([0.3, 0.7]), progress=False
    )
    assert history.weights[0] == pytest.approx([0.3, 0.7])


def test_predict_returns_one_output_per_item(data):
    _, val = data
    outputs = predict(small_model(val.tasks), val)
    assert outputs["color"].shape == (len(val), 4) and outputs["size"].shape[0] == len(val)


def test_model_and_dataset_that_disagree_say_which_task(data):
    train, _ = data
    model = small_model([Task("colour", "multiclass", 4)])
    with pytest.raises(ValueError, match=r"task\(s\) \['colour'\] that the dataset does not have"):
        fit(model, train, epochs=1, progress=False)
    model = small_model([Task("color", "multiclass", 3)])
    with pytest.raises(ValueError, match=r"define task\(s\) \['color'\] differently"):
        fit(model, train, epochs=1, progress=False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"lr": -1.0}, "lr must be positive"),
        ({"select": "colour"}, "select must be 'loss' or one of"),
        ({"lr_schedule": "linear"}, "lr_schedule must be one of"),
        ({"device": "cuda"} if not torch.cuda.is_available() else {"epochs": -1}, "(cuda|epochs)"),
    ],
)
def test_invalid_arguments_raise_value_errors(data, kwargs, message):
    train, _ = data
    with pytest.raises(ValueError, match=message):
        fit(small_model(train.tasks), train, progress=False, **kwargs)


def test_a_non_finite_loss_stops_training_with_the_task_and_epoch(data):
    train, _ = data
    broken = MultiShapes("train", num_images=64, tasks=["color", "size"], seed=0)
    broken.targets["size"][5] = math.inf
    with pytest.raises(FloatingPointError, match=r"epoch 0: non-finite loss for task\(s\) \['size'\]"):
        fit(small_model(train.tasks), broken, epochs=1, progress=False)


class ListDataset(torch.utils.data.Dataset):
    """A dataset without in-memory tensors: fit must go through a DataLoader."""

    def __init__(self, data):
        self.items = [data[i] for i in range(len(data))]
        self.tasks = data.tasks

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def test_any_dataset_of_image_and_targets_trains_through_a_dataloader(data):
    train, val = data
    model = small_model(train.tasks)
    history = fit(model, ListDataset(train.subset(range(200))), ListDataset(val), epochs=2, progress=False)
    assert len(history.val_loss["color"]) == 2
    fast = evaluate(model, val)
    slow = evaluate(model, ListDataset(val))
    assert slow["color"]["accuracy"] == pytest.approx(fast["color"]["accuracy"])


def test_cosine_schedule_sets_the_learning_rate_of_every_step(data, monkeypatch):
    train, _ = data
    used = []
    step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        used.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    fit(
        small_model(train.tasks),
        train,
        epochs=2,
        batch_size=300,
        lr=0.01,
        lr_schedule="cosine",
        progress=False,
    )
    total = 2 * math.ceil(len(train) / 300)  # 6 steps
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * k / total)) for k in range(total)]
    assert used == pytest.approx(expected)
    assert SCHEDULES["cosine"](0, 10) == 1.0 and SCHEDULES["cosine"](10, 10) == pytest.approx(0.0)
    assert SCHEDULES["constant"](7, 10) == 1.0


def test_a_method_with_parameters_can_have_its_own_learning_rate(data):
    train, _ = data
    one_batch = train.subset(range(64))
    for lr in (None, 0.1):
        method = UncertaintyWeighting(2, lr=lr)
        fit(
            small_model(train.tasks),
            one_batch,
            method=method,
            epochs=1,
            batch_size=64,
            lr=1e-3,
            progress=False,
        )
        # Adam's first step moves every parameter by its learning rate (the gradient's sign times lr).
        expected = torch.full((2,), 1e-3 if lr is None else lr)
        assert torch.allclose(method.log_vars.detach().abs(), expected, rtol=1e-3)
    with pytest.raises(ValueError, match="lr must be positive"):
        UncertaintyWeighting(2, lr=0.0)
