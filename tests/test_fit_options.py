"""fit's options: resampling, augmentation, extra loss terms and a per-step callback; none changes a default run."""

import copy

import pytest
import torch

import mtlcourse.train as train_module
from mtlcourse.affinity import AffinityRecorder
from mtlcourse.augment import AddNoise, HorizontalFlip, PhotometricTransform, mirror
from mtlcourse.backward import mtl_step
from mtlcourse.data import MultiShapes
from mtlcourse.extra_losses import ExtraLoss
from mtlcourse.methods import make_method
from mtlcourse.models import HardParameterSharing, SmallCNN
from mtlcourse.sampling import class_balanced_weights
from mtlcourse.train import batches, fit
from mtlcourse.utils import seed_everything, seeded_generator

TASKS = ["shape", "position", "segmentation"]
#: Captured before fit had these options: equal weighting and UPGrad, 2 epochs of 80 images in batches of 32,
#: seed 5 (a CPU's thread count moves the last digits only; a changed draw would change the batches).
REFERENCE = {
    "equal": {
        "parameters": 192.70895905944053,
        "shape": [1.4374680519104004, 1.3753139972686768],
        "position": [0.8781759142875671, 0.6098855137825012],
        "segmentation": [1.3881092071533203, 1.1475975513458252],
    },
    "upgrad": {
        "parameters": 192.8912180076004,
        "shape": [1.4386792182922363, 1.3771543502807617],
        "position": [0.8788922429084778, 0.6097513437271118],
        "segmentation": [1.386744737625122, 1.141000747680664],
    },
}


@pytest.fixture(scope="module")
def data():
    return (
        MultiShapes("train", num_images=80, image_size=16, tasks=TASKS, seed=0),
        MultiShapes("val", num_images=40, image_size=16, tasks=TASKS, seed=0),
    )


def small_model(tasks):
    seed_everything(0)
    return HardParameterSharing(SmallCNN(width=4, num_stages=2), tasks)


def first_shared(model):
    return next(model.shared_parameters()).detach()


def short_fit(data, method="equal", **options):
    train, val = data
    model = small_model(train.tasks)
    history = fit(
        model, train, val, method=method, epochs=2, batch_size=32, lr=3e-3, seed=5, progress=False, **options
    )
    return model, history


# The defaults change nothing.


@pytest.mark.parametrize("method", ["equal", "upgrad"])
def test_a_default_fit_computes_what_it_computed_before_the_options_existed(data, method):
    model, history = short_fit(data, method)
    total = sum(p.detach().double().abs().sum() for p in model.parameters()).item()
    assert total == pytest.approx(REFERENCE[method]["parameters"], rel=1e-5)
    for task in TASKS:
        assert history.train_loss[task] == pytest.approx(REFERENCE[method][task], rel=1e-4)
    assert history.extra_loss == {}


def test_the_options_at_their_defaults_give_the_same_weights_bit_for_bit(data):
    implicit, _ = short_fit(data)
    explicit, _ = short_fit(data, sample_weights=None, augment=None, extra_losses=(), on_step=None)
    for a, b in zip(implicit.state_dict().values(), explicit.state_dict().values()):
        assert torch.equal(a, b)


def test_a_default_fit_draws_one_permutation_per_epoch_and_nothing_else(data, monkeypatch):
    made = []

    def recording_generator(seed):
        made.append(seeded_generator(seed))
        return made[-1]

    monkeypatch.setattr(train_module, "seeded_generator", recording_generator)
    global_state = torch.get_rng_state()
    short_fit(data)
    expected = seeded_generator(5)
    for _ in range(2):
        torch.randperm(len(data[0]), generator=expected)
    assert len(made) == 1 and torch.equal(made[0].get_state(), expected.get_state())
    assert torch.equal(torch.get_rng_state(), global_state)


# Resampling.


def imbalanced(num_images=400, label_fraction=1.0):
    return MultiShapes(
        "train",
        num_images=num_images,
        image_size=16,
        tasks=["shape", "color"],
        imbalance=8.0,
        label_fraction={"shape": label_fraction},
        seed=0,
    )


def class_frequencies(labels):
    labels = labels[labels >= 0]
    return torch.bincount(labels, minlength=4).float() / labels.numel()


def test_class_balanced_resampling_draws_every_class_about_equally_often():
    data = imbalanced()
    assert class_frequencies(data.targets["shape"]).max() > 0.45, "circles are 8 times as frequent as crosses"
    weights = class_balanced_weights(data, "shape")
    generator = seeded_generator(0)
    drawn = torch.cat(
        [
            targets["shape"]
            for _ in range(20)
            for _, targets in batches(data, 64, torch.device("cpu"), True, generator, weights=weights)
        ]
    )
    assert drawn.numel() == 20 * len(data), "each epoch draws N images"
    assert torch.allclose(class_frequencies(drawn), torch.full((4,), 0.25), atol=0.02)


def test_fit_resamples_through_its_own_generator(data):
    train = imbalanced(num_images=96)
    seen = []
    model = HardParameterSharing(SmallCNN(width=2, num_stages=1), train.tasks)
    weights = class_balanced_weights(train, "shape")
    options = dict(epochs=3, batch_size=32, progress=False, sample_weights=weights, seed=1)
    fit(model, train, on_step=lambda step: seen.append(step.targets["shape"]), **options)
    again = []
    fit(copy.deepcopy(model), train, on_step=lambda step: again.append(step.targets["shape"]), **options)
    assert all(torch.equal(a, b) for a, b in zip(seen, again))
    drawn = torch.cat(seen)
    assert drawn.numel() == 3 * 96 and class_frequencies(drawn).min() > 0.15


def test_unlabelled_images_keep_their_share_or_are_dropped():
    data = imbalanced(label_fraction=0.5)
    unlabelled = data.targets["shape"] < 0
    kept = class_balanced_weights(data, "shape")
    assert kept.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert kept[unlabelled].sum().item() == pytest.approx(unlabelled.float().mean().item(), abs=1e-5)
    dropped = class_balanced_weights(data, "shape", unlabelled="drop")
    assert bool((dropped[unlabelled] == 0).all()) and dropped.sum().item() == pytest.approx(1.0, abs=1e-5)
    labels = data.targets["shape"]
    shares = torch.stack([dropped[labels == k].sum() for k in range(4)])  # [4]
    assert torch.allclose(shares, torch.full((4,), 0.25), atol=1e-5)


def test_bad_sample_weights_are_refused_before_the_first_step(data):
    train, _ = data
    model = small_model(train.tasks)
    for weights, message in [
        (torch.ones(79), r"one weight per training image, \[80\], got \[79\]"),
        (-torch.ones(80), "finite and at least 0"),
        (torch.zeros(80), "all 0"),
        (torch.ones(80, dtype=torch.long), "must be floats"),
    ]:
        with pytest.raises(ValueError, match=message):
            fit(model, train, epochs=1, progress=False, sample_weights=weights)
    partial = MultiShapes(
        "train", num_images=80, image_size=16, tasks=TASKS, seed=0, label_fraction={"shape": 0.5}
    )
    only_unlabelled = (partial.targets["shape"] < 0).float()
    with pytest.raises(
        ValueError, match=r"\['shape'\] have no label at all in the training data drawn by sample_weights"
    ):
        fit(model, partial, epochs=1, progress=False, sample_weights=only_unlabelled)
    with pytest.raises(
        ValueError, match=r"balances tasks with one class per image.*'position' is regression"
    ):
        class_balanced_weights(train, "position")
    with pytest.raises(ValueError, match=r"unknown task 'colour'"):
        class_balanced_weights(train, "colour")


# Augmentation.


class CountingNoise(PhotometricTransform):
    """Adds nothing; counts the batches it sees."""

    def __init__(self):
        self.sizes = []

    def apply(self, images, generator):
        self.sizes.append(images.shape[0])
        return images


def test_augmentation_is_applied_to_training_batches_only_and_keeps_their_order(data):
    counting = CountingNoise()
    plain, augmented = [], []
    short_fit(data, on_step=lambda step: plain.append(step.targets["shape"]))
    short_fit(data, augment=counting, on_step=lambda step: augmented.append(step.targets["shape"]))
    assert counting.sizes == [32, 32, 16] * 2, (
        "the 3 training batches of each epoch, never the validation data"
    )
    assert all(torch.equal(a, b) for a, b in zip(plain, augmented)), "augmentation draws from its own stream"


def test_augmentation_changes_training_and_is_reproducible(data):
    flip = HorizontalFlip(invariant=["shape"], maps={"position": mirror(0)})
    _, history_a = short_fit(data, augment=flip)
    _, history_b = short_fit(data, augment=flip)
    plain, history = short_fit(data)
    assert history_a.train_loss == history_b.train_loss
    assert history_a.train_loss != history.train_loss
    noisy, _ = short_fit(data, augment=AddNoise(0.05))
    assert not torch.equal(first_shared(noisy), first_shared(plain))


def test_a_task_the_augmentation_cannot_keep_right_is_refused_before_the_first_step(data):
    calls = []
    with pytest.raises(
        ValueError, match=r"HorizontalFlip\(p=0\.5.*regression task 'position'.*maps=\{'position'"
    ):
        short_fit(data, augment=HorizontalFlip(invariant=["shape"]), on_step=calls.append)
    assert calls == []
    with pytest.raises(ValueError, match=r"augment must be a transform of mtlcourse.augment"):
        short_fit(data, augment=lambda images: images)


# Extra loss terms.


def presence_agreement(outputs, targets):
    """A consistency term: the shape head's probabilities against the segmentation's mean class probabilities."""
    shape = outputs["shape"].softmax(dim=1)  # [B, 4]
    segmentation = outputs["segmentation"].softmax(dim=1)[:, 1:].mean(dim=(2, 3))  # [B, 5, H, W] -> [B, 4]
    return (shape - segmentation / segmentation.sum(dim=1, keepdim=True)).pow(2).sum(dim=1).mean()


def grads(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    "method",
    [make_method("equal", 3), make_method("upgrad", 3), make_method("mgda", 3, level="representation")],
    ids=["losses", "parameters", "representation"],
)
def test_an_extra_term_adds_its_weighted_gradient_after_the_method(data, method):
    train, _ = data
    images, targets = train.images[:16], {k: v[:16] for k, v in train.targets.items()}
    model = small_model(train.tasks).train()
    without, with_term, alone = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    term = ExtraLoss("agree", presence_agreement, tasks=["shape", "segmentation"], weight=0.7)
    mtl_step(without, images, targets, copy.deepcopy(method))
    mtl_step(with_term, images, targets, copy.deepcopy(method), extra_losses=[term])
    (0.7 * presence_agreement(alone(images), targets)).backward()
    before, after, expected = grads(without), grads(with_term), grads(alone)
    for name, g in after.items():
        added = g - before[name]
        assert torch.allclose(added, expected.get(name, torch.zeros_like(g)), atol=1e-6), name
    heads = {task: [n for n in after if n.startswith(f"heads.{task}.")] for task in TASKS}
    assert all(heads.values())
    assert all(torch.equal(after[n], before[n]) for n in heads["position"]), "the term does not read position"
    for task in ("shape", "segmentation"):
        assert any(not torch.equal(after[n], before[n]) for n in heads[task]), task
    assert term.last_value is not None and term.last_value.item() > 0


def test_extra_terms_are_recorded_per_epoch_as_the_mean_over_steps(data):
    term = ExtraLoss("agree", presence_agreement, tasks=["shape", "segmentation"], weight=0.5)
    values = []
    _, history = short_fit(
        data, extra_losses=[term], on_step=lambda step: values.append(term.last_value.item())
    )
    assert len(values) == 6 and len(history.extra_loss["agree"]) == 2
    assert history.extra_loss["agree"] == pytest.approx([sum(values[:3]) / 3, sum(values[3:]) / 3], rel=1e-6)
    zero = ExtraLoss("zero weight", presence_agreement, tasks=["shape", "segmentation"], weight=0.0)
    model, _ = short_fit(data, extra_losses=[zero])
    plain, _ = short_fit(data)
    for a, b in zip(model.parameters(), plain.parameters()):
        assert torch.allclose(a, b, atol=1e-6), "a term of weight 0 changes nothing"


def test_bad_extra_terms_are_refused_with_their_names(data):
    ok = ExtraLoss("agree", presence_agreement, tasks=["shape", "segmentation"])
    with pytest.raises(
        ValueError, match=r"extra loss 'colours' reads task\(s\) \['color'\] that the model does not have"
    ):
        short_fit(data, extra_losses=[ExtraLoss("colours", presence_agreement, tasks=["color"])])
    with pytest.raises(ValueError, match="distinct names"):
        short_fit(data, extra_losses=[ok, ok])
    with pytest.raises(ValueError, match=r"must be a list of mtlcourse.extra_losses.ExtraLoss"):
        short_fit(data, extra_losses=[presence_agreement])
    per_image = ExtraLoss("per image", lambda o, t: o["shape"].sum(dim=1), tasks=["shape"])
    with pytest.raises(
        ValueError, match=r"ExtraLoss 'per image': fn must return a scalar tensor \(shape \[\]\), got \[32\]"
    ):
        short_fit(data, extra_losses=[per_image])
    with pytest.raises(ValueError, match="weight must be finite and at least 0"):
        ExtraLoss("agree", presence_agreement, tasks=["shape"], weight=-1.0)
    exploding = ExtraLoss("log of zero", lambda o, t: -torch.log(torch.zeros(())), tasks=["shape"])
    with pytest.raises(
        FloatingPointError, match=r"epoch 0: non-finite value inf of the extra loss 'log of zero'"
    ):
        short_fit(data, extra_losses=[exploding])


# The per-step callback.


def test_on_step_sees_every_step_before_the_update(data):
    train, _ = data
    steps = []
    initial = first_shared(small_model(train.tasks)).clone()

    def record(step):
        steps.append((step.epoch, step.step, step.images.shape[0], step.losses.clone()))
        if step.step == 0:
            assert torch.equal(first_shared(step.model), initial)
            assert all(p.grad is not None for p in step.model.shared_parameters())

    _, history = short_fit(data, on_step=record)
    assert [(e, s, b) for e, s, b, _ in steps] == [
        (0, 0, 32),
        (0, 1, 32),
        (0, 2, 16),
        (1, 3, 32),
        (1, 4, 32),
        (1, 5, 16),
    ]
    first_epoch = sum(losses * b for _, _, b, losses in steps[:3]) / len(train)  # every label is there
    assert first_epoch.tolist() == pytest.approx([history.train_loss[t][0] for t in TASKS], rel=1e-5)
    with pytest.raises(ValueError, match="on_step must be a function of one Step"):
        short_fit(data, on_step=3)


def test_a_recorder_called_every_step_leaves_the_run_as_it_was(data):
    """What chapter 09 records with a loop of its own: the lookahead affinity of every step's batch."""
    recorder = AffinityRecorder(lr=0.1, every=2)
    recorded, _ = short_fit(data, on_step=lambda step: recorder.step(step.model, step.images, step.targets))
    plain, _ = short_fit(data)
    assert recorder.num_recorded == 3 and recorder.mean().shape == (3, 3)
    for a, b in zip(recorded.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(a, b)
