"""Every method in both METHODS dicts trains the SmallCNN on MultiShapes through fit, unchanged."""

import math

import pytest
import torch

from mtlcourse.data import MultiShapes
from mtlcourse.methods import METHODS, make_method
from mtlcourse.models import HardParameterSharing, SmallCNN
from mtlcourse.train import fit

TASKS = ["color", "size", "edges"]


@pytest.fixture(scope="module")
def train():
    return MultiShapes("train", num_images=96, tasks=TASKS, seed=0)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_trains_with_falling_loss(name, train):
    torch.manual_seed(0)
    model = HardParameterSharing(SmallCNN(width=4, num_stages=2), train.tasks)
    method = make_method(name, num_tasks=len(TASKS))
    history = fit(model, train, method=method, epochs=4, batch_size=32, lr=3e-3, progress=False)
    first = sum(history.train_loss[t][0] for t in TASKS)
    last = sum(history.train_loss[t][-1] for t in TASKS)
    assert math.isfinite(last) and last < first, f"{name}: summed loss {first:.3f} -> {last:.3f}"
    assert all(math.isfinite(v) or math.isnan(v) for row in history.weights for v in row)


def test_make_method_rejects_unknown_names_and_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown method 'adam'; valid names are \[.*'cagrad'.*\]"):
        make_method("adam", num_tasks=2)
    with pytest.raises(ValueError, match="num_tasks must be a positive integer"):
        make_method("equal", num_tasks=0)


def test_short_names_are_unique_across_both_families():
    from mtlcourse.aggregation import METHODS as AGG
    from mtlcourse.weighting import METHODS as WEI

    assert not set(AGG) & set(WEI)
    assert len(METHODS) == len(AGG) + len(WEI)


def test_fit_takes_a_method_instance_class_or_short_name_with_the_same_result(train):
    from mtlcourse.aggregation import UPGrad

    losses = []
    for method in (UPGrad(), UPGrad, "upgrad"):
        torch.manual_seed(0)
        model = HardParameterSharing(SmallCNN(width=4, num_stages=2), train.tasks)
        history = fit(model, train, method=method, epochs=1, batch_size=32, progress=False)
        losses.append(history.train_loss)
    assert losses[0] == losses[1] == losses[2]


def test_a_class_and_a_name_are_built_for_the_number_of_tasks(train):
    from mtlcourse.methods import resolve_method
    from mtlcourse.weighting import FixedWeighting, UncertaintyWeighting

    assert resolve_method(UncertaintyWeighting, 3).log_vars.shape == (3,)
    assert resolve_method("fixed", 3).fixed.tolist() == [1.0, 1.0, 1.0]
    assert resolve_method(FixedWeighting, 2).fixed.tolist() == [1.0, 1.0]
    torch.manual_seed(0)
    model = HardParameterSharing(SmallCNN(width=4, num_stages=2), train.tasks)
    history = fit(model, train, method=UncertaintyWeighting, epochs=1, batch_size=32, progress=False)
    assert len(history.weights[0]) == len(TASKS)


@pytest.mark.parametrize(
    "method, message",
    [
        ("adam", r"unknown method 'adam'; valid names are \[.*'upgrad'.*\]"),
        (torch.nn.Linear, r"method must be a method instance \(e\.g\. UPGrad\(\)\), a method class"),
        (torch.optim.Adam, "a method of your own subclasses"),
        (None, r"one of \[.*'equal'.*\]"),
        (3, "got 3"),
    ],
)
def test_anything_else_is_refused_with_what_is_accepted(method, message, train):
    model = HardParameterSharing(SmallCNN(width=4, num_stages=2), train.tasks)
    with pytest.raises(ValueError, match=message):
        fit(model, train, method=method, epochs=1, progress=False)


def test_dbmtl_at_the_representation_level_trains_when_the_last_batch_is_smaller(train):
    from mtlcourse.aggregation import DBMTL

    torch.manual_seed(0)
    model = HardParameterSharing(SmallCNN(width=4, num_stages=2), train.tasks)
    method = DBMTL(level="representation")
    history = fit(model, train, method=method, epochs=3, batch_size=40, lr=3e-3, progress=False)  # 40, 40, 16
    first = sum(history.train_loss[t][0] for t in TASKS)
    last = sum(history.train_loss[t][-1] for t in TASKS)
    assert math.isfinite(last) and last < first
    assert method.buffer.shape == (len(TASKS),)  # one averaged gradient norm per task
