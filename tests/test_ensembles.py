"""Ensembles on hand-made predictions with known answers; stacking refuses the data it was fit on."""

import pytest
import torch

from mtlcourse.data import MultiShapes
from mtlcourse.ensembles import (
    StackingCombiner,
    average,
    collect_predictions,
    fingerprint,
    probabilities,
    vote,
)
from mtlcourse.models import HardParameterSharing, SmallCNN
from mtlcourse.tasks import Task
from mtlcourse.train import predict
from mtlcourse.utils import seed_everything

C = 3


def test_average_is_the_mean_of_the_models_probabilities():
    a = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    b = torch.tensor([[0.2, 0.7, 0.1], [0.0, 0.4, 0.6]])
    mean = average([a, b])
    assert torch.allclose(mean, torch.tensor([[0.4, 0.5, 0.1], [0.1, 0.3, 0.6]]))
    assert torch.allclose(mean.sum(dim=1), torch.ones(2)), "a mean of probabilities is a probability"
    assert torch.equal(average([a]), a)


def test_majority_vote_and_its_tie_rule():
    m1 = torch.tensor([0, 1, 2, 2, 1])
    m2 = torch.tensor([0, 2, 1, 0, 0])
    m3 = torch.tensor([1, 2, 0, 1, 0])
    # image 0: 0 wins 2-1; image 1: 2 wins 2-1; image 2: a three-way tie goes to the first model (2);
    # image 3: tie 2 / 0 / 1, first model's 2; image 4: 0 wins 2-1 against the first model.
    assert vote([m1, m2, m3]).tolist() == [0, 2, 2, 2, 0]
    assert vote([m2, m1]).tolist() == m2.tolist(), "with two models, a disagreement goes to the first"


def test_vote_takes_scores_and_per_pixel_predictions():
    scores = [torch.randn(4, C, 5, 5, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    winners = vote(scores)
    assert winners.shape == (4, 5, 5)
    by_hand = vote([s.argmax(dim=1) for s in scores])
    assert torch.equal(winners, by_hand)
    agree = scores[0].argmax(dim=1)
    assert torch.equal(vote([scores[0], scores[0], scores[1]]), agree), "two identical votes win"


def held_out_predictions(n, seed):
    """Labels [n] and two models' probabilities: a weak honest one and a confident one that is always off by one."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, C, (n,), generator=g)
    honest = torch.full((n, C), 0.3)
    right = torch.rand(n, generator=g) < 0.5  # right half the time, uniform otherwise
    honest[right] = 0.25
    honest[right, y[right]] = 0.5
    honest[~right] = 1 / C
    shifted = torch.full((n, C), 0.05)
    shifted[torch.arange(n), (y + 1) % C] = 0.9
    return y, [honest, shifted]


def accuracy(pred, y):
    return (pred == y).float().mean().item()


def test_stacking_learns_what_averaging_and_voting_cannot():
    y_val, val = held_out_predictions(300, seed=0)
    y_test, test = held_out_predictions(300, seed=1)
    combiner = StackingCombiner().fit(val, y_val)
    assert accuracy(combiner.predict(test), y_test) == 1.0, (
        "the off-by-one model says exactly which class it is"
    )
    assert accuracy(average(test).argmax(dim=1), y_test) < 0.1  # the confident wrong model dominates
    assert accuracy(vote(test), y_test) < 0.7
    probs = combiner.predict_proba(test)
    assert probs.shape == (300, C) and torch.allclose(probs.sum(dim=1), torch.ones(300), atol=1e-5)


def test_stacking_refuses_to_predict_on_its_own_fit_data_even_shuffled():
    y_val, val = held_out_predictions(60, seed=0)
    combiner = StackingCombiner().fit(val, y_val)
    order = torch.randperm(60, generator=torch.Generator().manual_seed(0))
    for predictions in (val, [p[order] for p in val], [p.clone() for p in val]):
        with pytest.raises(ValueError, match=r"these are the predictions it was fit on.*held-out"):
            combiner.predict(predictions)
    combiner.predict([p[:30] for p in val])  # a different set of rows is new data for the fingerprint


def test_stacking_skips_missing_labels_and_is_deterministic():
    y_val, val = held_out_predictions(100, seed=3)
    _, test = held_out_predictions(50, seed=4)
    missing = y_val.clone()
    missing[::2] = -1
    a = StackingCombiner().fit(val, missing).predict_proba(test)
    b = StackingCombiner().fit(val, missing).predict_proba(test)
    assert torch.equal(a, b)
    half = StackingCombiner().fit([p[1::2] for p in val], y_val[1::2]).predict_proba(test)
    assert torch.allclose(a, half, atol=1e-6), "images without a label are left out of the fit"


def test_stacking_errors_name_the_problem():
    y_val, val = held_out_predictions(20, seed=0)
    with pytest.raises(ValueError, match="call fit on held-out predictions before predicting"):
        StackingCombiner().predict(val)
    with pytest.raises(ValueError, match=r"labels must be class indices \[N\] = \[20\] of dtype torch.long"):
        StackingCombiner().fit(val, y_val.float())
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\]"):
        StackingCombiner().fit(val, y_val + 5)
    with pytest.raises(ValueError, match="no label at all"):
        StackingCombiner().fit(val, torch.full((20,), -1))
    with pytest.raises(ValueError, match="was fit on 2 models with 3 classes, got 1 models"):
        StackingCombiner().fit(val, y_val).predict(val[:1])
    with pytest.raises(ValueError, match="must all have the same shape"):
        average([val[0], val[1][:5]])
    with pytest.raises(ValueError, match="l2 must be at least 0"):
        StackingCombiner(l2=-1.0)
    with pytest.raises(ValueError, match="one row of class scores per image"):
        StackingCombiner().fit([torch.rand(4, 3, 2, 2)], torch.zeros(4, dtype=torch.long))


def test_the_fingerprint_ignores_order_but_not_values():
    x = torch.rand(10, 4, generator=torch.Generator().manual_seed(0))
    assert fingerprint(x) == fingerprint(x.flip(0))
    y = x.clone()
    y[3, 2] += 1e-6
    assert fingerprint(x) != fingerprint(y)


def test_collected_predictions_are_the_models_probabilities():
    data = MultiShapes("val", num_images=20, image_size=16, tasks=["shape", "attributes", "size"], seed=0)
    seed_everything(0)
    model = HardParameterSharing(SmallCNN(width=4, num_stages=2), data.tasks)
    outputs = predict(model, data)
    shape = collect_predictions(model, data, "shape")
    assert torch.allclose(shape, outputs["shape"].softmax(dim=1)) and shape.shape == (20, 4)
    assert torch.allclose(collect_predictions(model, data, "attributes"), outputs["attributes"].sigmoid())
    assert torch.equal(collect_predictions(model, data, "size"), outputs["size"])
    with pytest.raises(ValueError, match=r"the model has no task 'colour'; its tasks are \['shape'"):
        collect_predictions(model, data, "colour")


def test_regression_outputs_have_no_probabilities():
    with pytest.raises(ValueError, match=r"task 'size' is regression.*average them directly"):
        probabilities(torch.zeros(2, 1), Task("size", "regression", 1))
