"""MultiDigits: shapes, stratified splits that never overlap, and targets that agree with the digit."""

import pytest
import torch

from mtlcourse.data import DATASETS, MultiDigits
from mtlcourse.data.base import labelled_mask
from mtlcourse.data.digits import TASKS, load_digits_tensors, split_indices


@pytest.fixture(scope="module")
def splits() -> dict[str, MultiDigits]:
    return {split: MultiDigits(split, seed=0) for split in ("train", "val", "test")}


def test_images_and_targets_have_the_declared_formats(splits):
    assert DATASETS["digits"] is MultiDigits
    sizes = {name: len(d) for name, d in splits.items()}
    assert sizes == {"train": 1078, "val": 359, "test": 360}
    data = splits["train"]
    assert data.images.shape == (1078, 1, 16, 16)
    assert data.images.min() >= 0 and data.images.max() <= 1
    assert list(data.tasks) == list(TASKS) == ["digit", "parity", "large", "ink"]
    assert data.targets["digit"].dtype == torch.long and data.targets["ink"].shape == (1078, 1)


def test_the_splits_are_disjoint_stratified_and_cover_every_digit():
    digits = load_digits_tensors()[1]
    parts = split_indices(digits, seed=0)
    everything = torch.cat(list(parts.values()))
    assert len(everything) == len(digits) == 1797
    assert torch.equal(everything.sort().values, torch.arange(1797)), "splits overlap or miss images"
    per_class = torch.bincount(digits, minlength=10).float()
    for name, share in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
        counts = torch.bincount(digits[parts[name]], minlength=10).float()
        assert torch.all((counts - share * per_class).abs() <= 1.0), name


def test_the_split_depends_on_the_seed_only():
    a, b = MultiDigits("val", seed=0), MultiDigits("val", seed=0)
    assert torch.equal(a.images, b.images) and torch.equal(a.targets["digit"], b.targets["digit"])
    digits = load_digits_tensors()[1]
    assert not torch.equal(split_indices(digits, 0)["val"], split_indices(digits, 1)["val"])


def test_parity_large_and_ink_agree_with_the_digit_and_the_image(splits):
    for data in splits.values():
        digit = data.targets["digit"]
        assert torch.equal(data.targets["parity"], (digit % 2 == 1).float())
        assert torch.equal(data.targets["large"], (digit >= 5).float())
        assert torch.allclose(data.targets["ink"][:, 0], data.images.mean(dim=(1, 2, 3)))


def test_the_original_size_keeps_the_scikit_learn_pixels():
    small = MultiDigits("test", image_size=8, tasks=["digit"])
    assert small.images.shape == (360, 1, 8, 8)
    assert torch.equal(small.images * 16, (small.images * 16).round())  # 0..16 scaled to [0, 1]


def test_label_controls(splits):
    partial = MultiDigits("train", label_fraction={"digit": 0.5}, label_noise={"digit": 0.1})
    assert torch.equal(partial.images, splits["train"].images)
    kept = labelled_mask(partial.targets["digit"], partial.tasks["digit"])
    assert int(kept.sum()) == 539
    wrong = (partial.targets["digit"] != splits["train"].targets["digit"]) & kept
    assert 0.07 < wrong.float().sum() / kept.sum() < 0.13
    assert torch.equal(partial.targets["parity"], splits["train"].targets["parity"])
    with pytest.raises(ValueError, match="multiclass"):
        MultiDigits("train", label_noise={"parity": 0.1})


def test_arguments_out_of_range_are_refused_by_name():
    with pytest.raises(ValueError, match="split must be one of"):
        MultiDigits("validation")
    with pytest.raises(ValueError, match="image_size must be an integer of at least 8"):
        MultiDigits(image_size=4)
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['odd'\]; valid task names are"):
        MultiDigits(tasks=["odd"])


def test_num_images_draws_a_seeded_subset_of_the_split(splits):
    small = MultiDigits("train", num_images=300, seed=0)
    assert len(small) == 300 and len(MultiDigits("val", num_images=300, seed=0)) == 300
    assert torch.equal(small.images, MultiDigits("train", num_images=300, seed=0).images)
    # every image of the subset is an image of the whole split (rows compared as flattened pixels)
    whole = splits["train"].images.flatten(1)  # [1078, 256]
    assert (torch.cdist(small.images.flatten(1), whole).min(dim=1).values == 0).all()
    assert not torch.equal(small.images, MultiDigits("train", num_images=300, seed=1).images)
    with pytest.raises(ValueError, match="has only 1078 images"):
        MultiDigits("train", num_images=2000)
    with pytest.raises(ValueError, match="num_images must be a positive integer"):
        MultiDigits("train", num_images=0)
