"""MultiDigits: real handwritten digits that ship with scikit-learn, so they work offline.

Used in chapters 00 and 13.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mtlcourse.data.base import SPLITS, TensorMultiTaskDataset, corrupt_labels, stream_seed
from mtlcourse.data.files import choose
from mtlcourse.tasks import Task, select_tasks
from mtlcourse.utils import get_device

#: Percentages of every digit class that go to the train and val splits; the rest is the test split.
SPLIT_PERCENT = (60, 20)

#: The MultiDigits tasks, in their fixed order.
TASKS = {
    "digit": Task("digit", "multiclass", 10, tuple(str(d) for d in range(10)), "which digit, 0 to 9"),
    "parity": Task("parity", "binary", 1, ("odd",), "1 if the digit is odd"),
    "large": Task("large", "binary", 1, ("5 or more",), "1 if the digit is 5 or more"),
    "ink": Task("ink", "regression", 1, ("ink",), "mean pixel value of the image: how much ink"),
}


class MultiDigits(TensorMultiTaskDataset):
    r"""The 1,797 handwritten digits of scikit-learn, with four tasks derived from each digit.

    The images are the 8x8 digits of :func:`sklearn.datasets.load_digits` (Alpaydin and Kaynak, UCI
    Machine Learning Repository, 1998), scaled from ``0..16`` to ``[0, 1]`` and, by default, upsampled
    bilinearly to 16x16 so that the course's CNNs can pool them three times. They are real handwriting,
    so what a chapter learns on MultiShapes can be checked on them without a download.

    ==========  ==========  =======  ==========================================
    task        kind        outputs  target
    ==========  ==========  =======  ==========================================
    ``digit``   multiclass  10       the digit :math:`d`
    ``parity``  binary      1        :math:`d \bmod 2` (1: odd)
    ``large``   binary      1        :math:`[d \ge 5]`
    ``ink``     regression  1        mean pixel value of the image
    ==========  ==========  =======  ==========================================

    ``parity`` and ``large`` are functions of ``digit``: a network that knows the digit knows both, so they
    are closely related tasks, but each groups the digits differently (``parity`` pairs digits that look
    nothing alike). ``ink`` measures stroke thickness and digit size, which vary with the writer more than
    with the digit.

    The splits hold 60%, 20% and 20% of every digit class (1,078, 359 and 360 images), drawn with a
    generator seeded by ``seed``: the three splits of one seed never share an image. ``num_images`` draws a
    smaller set at random from the split (seeded by ``seed`` too), as the real datasets' ``num_images`` does.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_images: images drawn at random, without replacement, from the split; ``None`` keeps all of it.
        image_size: side of the square greyscale images, at least 8 (the original size).
        tasks: names of the tasks to keep, in order; ``None`` keeps all four.
        seed: non-negative integer that fixes the split and the label controls.
        label_fraction: fraction of labelled images, in ``[0, 1]``; a number or ``{task: fraction}``.
        label_noise: fraction of wrong ``digit`` labels, in ``[0, 1]`` (``parity`` and ``large`` stay
            correct); a number or ``{"digit": fraction}``.
        device: where to keep the data; ``None`` is the CPU.

    Shape:
        images ``[N, 1, S, S]`` in ``[0, 1]``; ``digit``, ``parity`` and ``large`` ``[N]``; ``ink`` ``[N, 1]``.

    Example:
        >>> data = MultiDigits("test")
        >>> data
        MultiDigits(360 images [1, 16, 16], tasks=['digit', 'parity', 'large', 'ink'], device=cpu)
        >>> bool((data.targets["parity"] == data.targets["digit"] % 2).all())
        True

    Used in chapters 00 and 13.
    """

    def __init__(
        self,
        split: str = "train",
        num_images: int | None = None,
        image_size: int = 16,
        tasks: Sequence[str] | None = None,
        seed: int = 0,
        label_fraction: float | dict[str, float] = 1.0,
        label_noise: float | dict[str, float] = 0.0,
        device: str | torch.device | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not isinstance(image_size, int) or image_size < 8:
            raise ValueError(f"image_size must be an integer of at least 8, got {image_size!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if num_images is not None and (
            isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1
        ):
            raise ValueError(f"num_images must be a positive integer or None, got {num_images!r}")
        chosen = select_tasks(TASKS, tasks)
        device = get_device(device)
        images, digits = load_digits_tensors()  # [1797, 1, 8, 8], [1797]
        index = split_indices(digits, seed)[split]  # [n]
        if num_images is not None:
            generator = torch.Generator().manual_seed(stream_seed(seed, split, 0))
            index = index[choose(len(index), num_images, generator, "MultiDigits")]  # [num_images]
        images = upsample(images[index], image_size)  # [n, 1, S, S]
        targets = digit_targets(images, digits[index])
        targets = {name: targets[name] for name in chosen}
        targets = corrupt_labels(targets, TASKS, chosen, label_fraction, label_noise, seed, split, device)
        super().__init__(images.to(device), {k: v.to(device) for k, v in targets.items()}, chosen)
        self.split, self.seed = split, seed


def load_digits_tensors() -> tuple[Tensor, Tensor]:
    """The scikit-learn digits as tensors: images ``[1797, 1, 8, 8]`` in ``[0, 1]`` and digits ``[1797]``."""
    from sklearn.datasets import load_digits  # imported here: scikit-learn is slow to import

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0  # [1797, 1, 8, 8]
    return images, torch.as_tensor(bunch.target, dtype=torch.long)  # [1797]


def split_indices(digits: Tensor, seed: int) -> dict[str, Tensor]:
    """Indices of each split, stratified by digit: a seeded shuffle, then the first 60% of every class to
    train, the next 20% to val, the rest to test.

    Example:
        >>> parts = split_indices(torch.arange(10).repeat(10), seed=0)
        >>> [len(parts[s]) for s in ("train", "val", "test")]
        [60, 20, 20]
    """
    generator = torch.Generator().manual_seed(seed)
    shuffled = torch.randperm(len(digits), generator=generator)  # [N]
    by_class = shuffled[digits[shuffled].argsort(stable=True)]  # [N] grouped by digit, shuffled within
    sorted_digits = digits[by_class]  # [N]
    counts = torch.bincount(sorted_digits)  # [10]
    starts = counts.cumsum(0) - counts  # [10] first position of each class
    rank = torch.arange(len(digits)) - starts[sorted_digits]  # [N] position within its class
    train_end = (2 * SPLIT_PERCENT[0] * counts + 100) // 200  # [10] 60% of each class, rounded (integers)
    val_end = train_end + (2 * SPLIT_PERCENT[1] * counts + 100) // 200  # [10]
    part = (rank >= train_end[sorted_digits]).long() + (rank >= val_end[sorted_digits]).long()  # [N] 0, 1, 2
    return {name: by_class[part == i].sort().values for i, name in enumerate(SPLITS)}


def upsample(images: Tensor, image_size: int) -> Tensor:
    """Bilinear upsampling of ``[N, 1, 8, 8]`` to ``[N, 1, S, S]``; values stay in ``[0, 1]``."""
    if images.shape[-1] == image_size:
        return images
    return F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)


def digit_targets(images: Tensor, digits: Tensor) -> dict[str, Tensor]:
    """Every MultiDigits target, computed from the images ``[N, 1, S, S]`` and their digits ``[N]``."""
    return {
        "digit": digits,  # [N]
        "parity": (digits % 2).float(),  # [N]
        "large": (digits >= 5).float(),  # [N]
        "ink": images.mean(dim=(1, 2, 3))[:, None],  # [N, 1]
    }
