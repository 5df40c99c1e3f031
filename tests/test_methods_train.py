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
