"""Augmentation: masks move with their images, image-level tasks are declared, every draw is seeded."""

import pytest
import torch

from mtlcourse.augment import (
    AddNoise,
    BrightnessContrast,
    Compose,
    HorizontalFlip,
    RandomShift,
    VerticalFlip,
    mirror,
    shift_position,
    swap_classes,
)
from mtlcourse.data import MultiShapes
from mtlcourse.data.synthetic import STRIPE_PHASES, stripe_bank
from mtlcourse.tasks import Task

PIXEL_TASKS = ["segmentation", "edges"]


@pytest.fixture(scope="module")
def data():
    return MultiShapes(
        "train", num_images=16, image_size=16, tasks=["shape", "position", *PIXEL_TASKS], seed=0
    )


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def pixel_tasks(data):
    return {name: data.tasks[name] for name in PIXEL_TASKS}


def mask_as_image(mask):
    """An image [N, 3, H, W] whose pixels are the (segmentation) classes / 4: it must move like the mask."""
    return (mask.float() / 4)[:, None].expand(-1, 3, -1, -1).contiguous()


@pytest.mark.parametrize("flip", [HorizontalFlip, VerticalFlip])
def test_a_flip_applied_twice_is_the_identity_on_images_and_masks(data, flip):
    transform, tasks = flip(p=0.5), pixel_tasks(data)
    once = transform(data.images, data.targets, tasks, generator(3))
    twice = transform(*once, tasks, generator(3))  # the same draws: the same images are mirrored again
    assert not torch.equal(once[0], data.images), "p=0.5 on 16 images must mirror some"
    assert torch.equal(twice[0], data.images)
    for name in PIXEL_TASKS:
        assert torch.equal(twice[1][name], data.targets[name])


@pytest.mark.parametrize("transform", [HorizontalFlip(p=0.5), VerticalFlip(p=0.5), RandomShift(max_shift=3)])
def test_masks_move_with_their_images(data, transform):
    mask = data.targets["segmentation"]
    tasks = {"segmentation": data.tasks["segmentation"]}
    images, targets = transform(mask_as_image(mask), {"segmentation": mask}, tasks, generator())
    moved = targets["segmentation"]
    inside = moved >= 0  # [N, H, W] pixels that came from inside the image
    assert torch.equal(images[:, 0][inside], (moved.float() / 4)[inside])
    assert bool((images[:, 0][~inside] == 0).all()), "pixels from outside get the fill (0) in the image"
    assert not torch.equal(moved, mask)


def test_a_shift_moves_every_pixel_by_its_images_draw_and_marks_new_pixels_missing(data):
    shift, tasks = RandomShift(max_shift=2), pixel_tasks(data)
    _, targets = shift(data.images, data.targets, tasks, generator(1))
    dxy = torch.randint(-2, 3, (16, 2), generator=generator(1))  # the draws RandomShift made
    for i, (dx, dy) in enumerate(dxy.tolist()):
        expected = torch.full((16 + 4, 16 + 4), -1)
        expected[2 + dy : 2 + dy + 16, 2 + dx : 2 + dx + 16] = data.targets["segmentation"][i]
        assert torch.equal(targets["segmentation"][i], expected[2:18, 2:18])
        edges = targets["edges"][i]
        assert int(edges.isnan().sum()) == 16 * 16 - (16 - abs(dx)) * (16 - abs(dy))


def bounding_box_centre(mask):
    """The (x, y) centre of the object pixels' bounding box, in fractions of the side: [N, 2]."""
    S = mask.shape[-1]
    pixels = torch.arange(S)
    centres = []
    for m in mask > 0:
        cols, rows = pixels[m.any(dim=0)], pixels[m.any(dim=1)]
        centres.append([(cols.min() + cols.max() + 1) / (2 * S), (rows.min() + rows.max() + 1) / (2 * S)])
    return torch.tensor(centres)


def one_object_data():
    return MultiShapes(
        "train", num_images=24, image_size=16, tasks=["position", "segmentation"], max_objects=1, seed=2
    )


def test_a_mirrored_position_follows_the_mirrored_object():
    data = one_object_data()
    assert (bounding_box_centre(data.targets["segmentation"]) - data.targets["position"]).abs().max() < 1 / 16
    flip = HorizontalFlip(p=1.0, maps={"position": mirror(0)})
    _, targets = flip(data.images, data.targets, data.tasks, generator())
    assert torch.allclose(targets["position"][:, 0], 1 - data.targets["position"][:, 0])
    assert torch.equal(targets["position"][:, 1], data.targets["position"][:, 1])
    error = (bounding_box_centre(targets["segmentation"]) - targets["position"]).abs().max()
    assert error < 1 / 16, "the mirrored position is the centre of the mirrored object"


def test_a_shifted_position_follows_the_shifted_object():
    data = one_object_data()
    shift = RandomShift(max_shift=1, maps={"position": shift_position(0, 1)})
    _, targets = shift(data.images, data.targets, data.tasks, generator(5))
    whole = (targets["segmentation"] > 0).sum(dim=(1, 2)) == (data.targets["segmentation"] > 0).sum(
        dim=(1, 2)
    )
    assert int(whole.sum()) >= 12, "most objects stay whole after a 1-pixel shift"
    moved = targets["position"] - data.targets["position"]  # [N, 2]
    assert bool(moved.abs().sum(dim=1).gt(0).any()) and moved.abs().max() <= 1 / 16 + 1e-6
    error = (bounding_box_centre(targets["segmentation"]) - targets["position"]).abs()[whole].max()
    assert error < 1 / 16


def test_a_horizontal_flip_turns_rising_stripes_into_falling_ones():
    """Why HorizontalFlip's docstring tells MultiShapes' background task to swap classes 2 and 3."""
    bank = stripe_bank(32, 0.08, torch.device("cpu"))[:, 0].view(4, STRIPE_PHASES, 32, 32)
    for orientation, expected in enumerate([0, 1, 3, 2]):
        flipped = bank[orientation, 0].flip(-1)
        distance = (bank - flipped).abs().amax(dim=(2, 3)).amin(dim=1)  # [4] to the nearest phase
        assert int(distance.argmin()) == expected
    assert swap_classes({2: 3, 3: 2})(torch.tensor([0, 1, 2, 3, -1])).tolist() == [0, 1, 3, 2, -1]


def test_an_undeclared_image_level_task_is_refused_with_the_transform_the_task_and_the_fixes(data):
    flip = HorizontalFlip(invariant=["shape"])
    with pytest.raises(ValueError) as error:
        flip(data.images, data.targets, data.tasks, generator())
    message = str(error.value)
    assert "HorizontalFlip(p=0.5" in message and "regression task 'position'" in message
    assert "invariant=[..., 'position']" in message and "maps={'position': fn}" in message
    assert "train 'position' without this transform" in message
    with pytest.raises(ValueError, match=r"RandomShift\(max_shift=2.*'shape'"):
        Compose([AddNoise(), RandomShift()]).check({"shape": data.tasks["shape"]})


def test_declarations_that_cannot_be_right_are_refused(data):
    with pytest.raises(ValueError, match=r"'segmentation' is segmentation, a per-pixel target"):
        HorizontalFlip(invariant=["segmentation"]).check(pixel_tasks(data))
    with pytest.raises(ValueError, match=r"\['position'\] are declared invariant and given a target map"):
        HorizontalFlip(invariant=["position"], maps={"position": mirror(0)})
    with pytest.raises(ValueError, match=r"map of task 'position' must return a tensor like its target"):
        bad = HorizontalFlip(invariant=["shape"], maps={"position": lambda t: t[:, 0]})
        bad(data.images, data.targets, data.tasks, generator())
    with pytest.raises(ValueError, match="p must be a probability"):
        HorizontalFlip(p=1.5)
    with pytest.raises(ValueError, match="max_shift must be a whole number"):
        RandomShift(max_shift=1.5)
    with pytest.raises(ValueError, match="brightness must be in"):
        BrightnessContrast(brightness=2.0)
    with pytest.raises(ValueError, match="std must be at least 0"):
        AddNoise(-0.1)
    with pytest.raises(ValueError, match=r"Compose takes mtlcourse.augment transforms"):
        Compose([lambda x: x])


def test_names_of_tasks_the_batch_does_not_have_are_ignored(data):
    flip = HorizontalFlip(invariant=["shape", "color"], maps={"position": mirror(0), "unused": mirror(1)})
    flip.check(data.tasks)


@pytest.mark.parametrize("transform", [BrightnessContrast(0.5, 0.5), AddNoise(0.2)])
def test_a_photometric_transform_changes_pixels_only(data, transform):
    images, targets = transform(data.images, data.targets, data.tasks, generator())
    assert not torch.equal(images, data.images)
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    assert all(targets[name] is data.targets[name] for name in data.tasks)


def test_brightness_scales_a_flat_image_and_contrast_keeps_its_mean():
    flat = torch.full((64, 3, 4, 4), 0.5)
    brighter, _ = BrightnessContrast(brightness=0.2, contrast=0.0)(flat, {}, {}, generator())
    factors = brighter[:, 0, 0, 0] / 0.5  # [N]
    assert bool(((factors >= 0.8 - 1e-6) & (factors <= 1.2 + 1e-6)).all()) and factors.std() > 0.05
    ramp = torch.linspace(0.2, 0.8, 16).view(1, 1, 4, 4).expand(64, 3, 4, 4)
    contrasted, _ = BrightnessContrast(brightness=0.0, contrast=0.5)(ramp, {}, {}, generator())
    assert torch.allclose(contrasted.mean(dim=(1, 2, 3)), ramp.mean(dim=(1, 2, 3)), atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: HorizontalFlip(p=p, invariant=["shape"], maps={"position": mirror(0)}),
        lambda p: RandomShift(max_shift=int(3 * p), invariant=["shape"], maps={"position": shift_position()}),
        lambda p: BrightnessContrast(p, p),
        lambda p: AddNoise(p),
    ],
)
def test_the_same_generator_gives_the_same_batch_and_every_setting_draws_the_same_numbers(data, make):
    a = make(1.0)(data.images, data.targets, data.tasks, generator(7))
    b = make(1.0)(data.images, data.targets, data.tasks, generator(7))
    assert torch.equal(a[0], b[0]) and all(
        a[1][k].equal(b[1][k]) or torch.allclose(a[1][k], b[1][k], equal_nan=True) for k in a[1]
    )
    states = []
    for p in (0.0, 1.0):
        g = generator(7)
        make(p)(data.images, data.targets, data.tasks, g)
        states.append(g.get_state())
    assert torch.equal(states[0], states[1]), "a draw count that depends on a setting would shift later draws"


def test_compose_applies_its_transforms_in_order(data):
    flip = HorizontalFlip(p=1.0, invariant=["shape"], maps={"position": mirror(0)})
    noise = AddNoise(0.1)
    composed = Compose([flip, noise])(data.images, data.targets, data.tasks, generator(4))
    g = generator(4)
    by_hand = noise(*flip(data.images, data.targets, data.tasks, g), data.tasks, g)
    assert torch.equal(composed[0], by_hand[0])
    assert torch.equal(composed[1]["position"], by_hand[1]["position"])
    assert sorted(composed[1]) == sorted(data.tasks)


def test_only_the_targets_of_the_given_tasks_come_back(data):
    tasks = {"segmentation": data.tasks["segmentation"]}
    _, targets = HorizontalFlip()(data.images, data.targets, tasks, generator())
    assert list(targets) == ["segmentation"]


def test_a_flip_of_a_multilabel_or_binary_task_needs_a_declaration_too():
    tasks = {"tags": Task("tags", "multilabel", 3), "odd": Task("odd", "binary", 1)}
    with pytest.raises(ValueError, match="multilabel task 'tags'"):
        VerticalFlip(invariant=["odd"]).check(tasks)
    VerticalFlip(invariant=["odd", "tags"]).check(tasks)
