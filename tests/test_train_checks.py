"""fit, evaluate and predict refuse data and arguments they cannot use, and stop runs that diverge."""

import math

import numpy as np
import pytest
import torch

from mtlcourse.data import MultiDigits, MultiShapes
from mtlcourse.models import HardParameterSharing, SmallCNN
from mtlcourse.train import DIVERGENCE_FACTOR, check_divergence, evaluate, fit, predict
from mtlcourse.utils import seed_everything

TASKS = ["color", "size"]


@pytest.fixture(scope="module")
def data():
    return (
        MultiShapes("train", num_images=96, tasks=TASKS, seed=0),
        MultiShapes("val", num_images=48, tasks=TASKS, seed=0),
    )


def small_model(tasks, in_channels=3):
    seed_everything(0)
    return HardParameterSharing(SmallCNN(in_channels=in_channels, width=4, num_stages=2), tasks)


class ListDataset(torch.utils.data.Dataset):
    """A dataset of ``(image, {task: target})`` items that are not in-memory tensors."""

    def __init__(self, items, tasks):
        self.items, self.tasks = items, tasks

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def as_list(data, image=lambda x: x, **target):
    """``data`` as a ListDataset, with its images and some targets transformed item by item."""
    items = []
    for i in range(len(data)):
        x, y = data[i]
        items.append((image(x), {name: target.get(name, lambda v: v)(v) for name, v in y.items()}))
    return ListDataset(items, data.tasks)


# Empty datasets and tasks without labels.


def test_an_empty_dataset_of_another_kind_is_refused_by_fit(data):
    train, _ = data
    with pytest.raises(ValueError, match="the training data ListDataset is empty"):
        fit(small_model(train.tasks), ListDataset([], train.tasks), epochs=1, progress=False)


def test_a_task_without_any_label_is_named_with_the_fix(data):
    train, val = data
    unlabelled = MultiShapes("train", num_images=96, tasks=TASKS, seed=0, label_fraction={"color": 0.0})
    message = r"task\(s\) \['color'\] have no label at all in the training data.*data\.select\(\['size'\]\)"
    with pytest.raises(ValueError, match=message):
        fit(small_model(train.tasks), unlabelled, val, epochs=1, progress=False)
    unlabelled_val = MultiShapes("val", num_images=48, tasks=TASKS, seed=0, label_fraction={"size": 0.0})
    with pytest.raises(ValueError, match=r"\['size'\] have no label at all in the validation data"):
        fit(small_model(train.tasks), train, unlabelled_val, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"\['size'\] have no label at all in the evaluated data"):
        evaluate(small_model(train.tasks), unlabelled_val)


def test_a_task_without_any_label_in_a_dataset_not_in_memory_is_named_after_the_first_epoch(data):
    train, _ = data
    unlabelled = MultiShapes("train", num_images=32, tasks=TASKS, seed=0, label_fraction={"color": 0.0})
    with pytest.raises(ValueError, match=r"\['color'\] have no label at all in the training data"):
        fit(small_model(train.tasks), as_list(unlabelled), epochs=2, progress=False)


# Losses that explode.


def test_a_diverging_run_stops_with_the_task_the_values_the_epoch_and_the_lr(data):
    train, val = data
    with pytest.raises(
        FloatingPointError, match=r"epoch \d+: .*'size'.*lr=100 .*try a smaller lr, e\.g\. lr=10"
    ):
        fit(small_model(train.tasks), train, val, epochs=3, lr=100.0, progress=False)


def test_a_validation_loss_that_explodes_stops_the_run(data):
    train, val = data
    message = r"epoch 0: training diverged for task\(s\) 'size' \(validation loss .*lr=1 .*e\.g\. lr=0\.1"
    with pytest.raises(FloatingPointError, match=message):
        fit(small_model(train.tasks), train, val, epochs=2, lr=1.0, batch_size=32, progress=False)


def test_divergence_is_a_loss_above_the_factor_times_the_first_loss_or_not_finite(data):
    tasks = data[0].tasks
    check_divergence([0.9 * DIVERGENCE_FACTOR, 0.5], [1.0, 0.5], "training", tasks, 0, 1e-3)
    with pytest.raises(FloatingPointError, match=r"'color' \(training loss 1\.1e\+03, first step 1\)"):
        check_divergence([1.1 * DIVERGENCE_FACTOR, 0.5], [1.0, 0.5], "training", tasks, 0, 1e-3)
    with pytest.raises(
        FloatingPointError, match=r"epoch 4: .*'size' \(validation loss nan, first step 0\.5\)"
    ):
        check_divergence([1.0, math.nan], [1.0, 0.5], "validation", tasks, 4, 1e-3)


def test_a_non_finite_target_is_named_instead_of_the_learning_rate(data):
    broken = MultiShapes("train", num_images=64, tasks=TASKS, seed=0)
    broken.targets["size"][5] = -math.inf
    with pytest.raises(FloatingPointError) as error:
        fit(small_model(broken.tasks), broken, epochs=1, progress=False)
    assert "the cause is the data, not the learning rate: target of task 'size'" in str(error.value)
    assert "[-inf]" in str(error.value) and "smaller lr" not in str(error.value)


# Datasets that are not in-memory tensors: their first batch is checked.


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"color": lambda y: y + 4},
            r"task 'color' \(multiclass\) must hold classes in \[0, 3\].*got values from 4",
        ),
        ({"color": lambda y: y.float()}, r"task 'color'.*torch\.long, got torch\.float32; convert it with"),
        ({"size": lambda y: y * math.inf}, r"task 'size' \(regression\) must hold finite values or nan"),
        ({"image": lambda x: (x * 255).to(torch.uint8)}, r"dtype torch\.uint8; convert 8-bit images with"),
        ({"image": lambda x: x * 255}, r"values in \[0, 1\], got values from .* images / 255"),
    ],
)
def test_the_first_batch_of_a_dataset_not_in_memory_is_checked(data, change, message):
    train, _ = data
    broken = as_list(train, image=change.pop("image", lambda x: x), **change)
    with pytest.raises(
        ValueError, match=r"the first batch of the training data \(ListDataset\): .*" + message
    ):
        fit(small_model(train.tasks), broken, epochs=1, progress=False)


def test_a_dataset_without_a_tasks_dict_is_told_to_give_one(data):
    train, _ = data
    broken = as_list(train)
    del broken.tasks
    with pytest.raises(ValueError, match=r"ListDataset has no `tasks` dict; give it an attribute"):
        fit(small_model(train.tasks), broken, epochs=1, progress=False)


def test_images_with_other_channels_than_the_backbone_are_refused_for_any_dataset():
    digits = MultiDigits("val", tasks=["digit", "parity"])
    model = small_model(digits.tasks)  # SmallCNN(in_channels=3) for 1-channel digits
    message = r"the images have 1 channel\(s\) but the backbone SmallCNN takes in_channels=3.*SmallCNN\(in_channels=1\)"
    for run in (
        lambda d: fit(model, d, epochs=1, progress=False),
        lambda d: evaluate(model, d),
        lambda d: predict(model, d),
    ):
        for dataset in (digits, as_list(digits)):
            with pytest.raises(ValueError, match=message):
                run(dataset)
    assert evaluate(small_model(digits.tasks, in_channels=1), digits)["digit"]["loss"] > 0


# Arguments.


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"epochs": 2.5},
            r"epochs must be at least 1 and a whole number \(an int\), got 2\.5; use epochs=2 or epochs=3",
        ),
        ({"batch_size": 32.0}, r"batch_size must be at least 1 and a whole number \(an int\), got 32\.0"),
        ({"epochs": True}, "epochs must be at least 1 and a whole number"),
    ],
)
def test_fractional_epochs_and_batch_sizes_are_refused(data, kwargs, message):
    train, _ = data
    with pytest.raises(ValueError, match=message):
        fit(small_model(train.tasks), train, progress=False, **kwargs)


def test_numpy_integers_are_whole_numbers(data):
    train, _ = data
    history = fit(
        small_model(train.tasks), train, epochs=np.int64(1), batch_size=np.int64(48), progress=False
    )
    assert len(history.train_loss["color"]) == 1
