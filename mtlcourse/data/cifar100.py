"""CIFAR-100 with two tasks: the 20 coarse classes (superclasses) and the 100 fine classes of each image.

Used in chapter 13.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mtlcourse.data.base import TensorMultiTaskDataset, corrupt_labels, stream_seed
from mtlcourse.data.files import (
    check_loader_arguments,
    choose,
    data_root,
    download_or_fail,
    prepared,
    read_or_fail,
    resize,
)
from mtlcourse.tasks import Task, select_tasks
from mtlcourse.utils import get_device

#: Images drawn for each split when neither ``num_images`` nor ``full=True`` is given: a CPU-sized subset,
#: 100 training images per fine class on average, the sizes of
#: :class:`~mtlcourse.data.mnist_pairs.MultiMNIST` (an epoch of ``SmallCNN(width=16)`` takes tens of
#: seconds on one CPU thread; pass ``num_images`` for less).
DEFAULT_NUM_IMAGES = {"train": 10_000, "val": 2_000, "test": 2_000}

#: The validation split is the last tenth of the training file (its last 5,000 images), the same for every
#: seed; the training split is the first 45,000. The test file is the test split.
VAL_FRACTION = 1 / 10

#: The folder the archive ``cifar-100-python.tar.gz`` unpacks to, under ``root`` (torchvision's layout).
FOLDER = "cifar-100-python"

#: The three files of the archive, with the MD5s torchvision lists for them.
MD5 = {
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
}

#: The archive's address (torchvision's, the one Krizhevsky's page gives).
URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"

#: What the archive's pickles may contain, NumPy arrays and plain Python values; anything else is refused.
#: (``_codecs.encode`` is how Python 3 writes bytes in the Python 2 pickle protocol; it only encodes text.)
SAFE_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def make_tasks(
    coarse_names: tuple[str, ...] | None = None, fine_names: tuple[str, ...] | None = None
) -> dict[str, Task]:
    """The two CIFAR-100 tasks, with the class names of the archive's ``meta`` file when given."""
    return {
        "coarse": Task("coarse", "multiclass", 20, coarse_names, "superclass: one of 20 groups of 5 classes"),
        "fine": Task("fine", "multiclass", 100, fine_names, "class: one of 100"),
    }


#: The tasks, without class names (those come from the archive's ``meta`` file).
TASKS = make_tasks()


class CIFAR100(TensorMultiTaskDataset):
    r"""CIFAR-100's 32x32 colour images with two tasks: the coarse class (20) and the fine class (100).

    CIFAR-100 (Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009) labels each image
    with one of 100 fine classes, and groups the fine classes five by five into 20 superclasses (``fish``
    holds aquarium fish, flatfish, ray, shark and trout). The original archive holds both labels, so the
    same images carry two tasks, one a coarsening of the other: the most closely related pair of tasks a
    dataset can have, since a network that knows the fine class knows the coarse one.

    ==========  ==========  =======  ==========================================
    task        kind        outputs  target
    ==========  ==========  =======  ==========================================
    ``coarse``  multiclass  20       superclass (``meta``'s ``coarse_label_names``)
    ``fine``    multiclass  100      class (``meta``'s ``fine_label_names``)
    ==========  ==========  =======  ==========================================

    Splits: ``test`` is the archive's test file (10,000 images). ``val`` is the last tenth of its training
    file (the last 5,000 images), the same for every seed, and ``train`` the first 45,000: validation is
    carved from the training file, never from the test file. Unless ``full=True``, each split draws
    :data:`DEFAULT_NUM_IMAGES` images (10,000 / 2,000 / 2,000) at random without replacement (or
    ``num_images``), with a generator seeded by ``seed`` and the split. Images keep CIFAR's 32x32 pixels by
    default; another ``image_size`` resizes them with an antialiased bilinear filter.

    Files: ``<root>/cifar-100-python/`` with the pickles ``train``, ``test`` and ``meta``, as torchvision's
    ``CIFAR100`` unpacks them; ``download=True`` calls torchvision to download and unpack the archive. With
    ``verify=True`` (the default) each file's MD5 must be the one torchvision lists, and it is checked before
    the file is unpickled; ``verify=False`` skips that check, for files you made yourself. The unpickler
    accepts NumPy arrays and plain values only. A missing or damaged file raises
    :class:`~mtlcourse.data.files.MissingDataError` or :class:`~mtlcourse.data.files.CorruptDataError`
    with the path where it belongs and how to get it. The prepared tensors are cached in
    ``<root>/mtlcourse-cache/``.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_images: images to draw from the split; ``None`` gives :data:`DEFAULT_NUM_IMAGES`.
        full: every image of the split, in file order (45,000 / 5,000 / 10,000); excludes ``num_images``.
        image_size: side of the square RGB images, at least 8 (32 is CIFAR's).
        tasks: names of the tasks to keep, in order; ``None`` keeps both.
        seed: non-negative integer that fixes the subset and the label controls.
        label_fraction: fraction of labelled images, in ``[0, 1]``; a number or ``{task: fraction}``.
        label_noise: fraction of wrong labels, in ``[0, 1]``; a number or ``{task: fraction}``. The two
            tasks get independent noise, so a noisy fine label need not agree with its coarse label.
        root: the data folder (see :func:`mtlcourse.data.files.data_root`).
        download: get missing files with torchvision (needs the internet).
        verify: check the files' MD5s before reading them.
        cache: read and write the prepared tensors in ``<root>/mtlcourse-cache/``.
        device: where to keep the data; ``None`` is the CPU.

    Shape:
        images ``[N, 3, S, S]`` in ``[0, 1]``; ``coarse`` and ``fine`` ``[N]``.

    Example:
        >>> data = CIFAR100("train", num_images=64)  # doctest: +SKIP
        >>> data, data.tasks["coarse"].class_names[1]  # doctest: +SKIP
        (CIFAR100(64 images [3, 32, 32], tasks=['coarse', 'fine'], device=cpu), 'fish')

    Used in chapter 13.
    """

    def __init__(
        self,
        split: str = "train",
        num_images: int | None = None,
        full: bool = False,
        image_size: int = 32,
        tasks: Sequence[str] | None = None,
        seed: int = 0,
        label_fraction: float | dict[str, float] = 1.0,
        label_noise: float | dict[str, float] = 0.0,
        root: str | Path | None = None,
        download: bool = False,
        verify: bool = True,
        cache: bool = True,
        device: str | torch.device | None = None,
    ) -> None:
        number = check_loader_arguments(split, num_images, full, image_size, seed, DEFAULT_NUM_IMAGES)
        select_tasks(TASKS, tasks)  # an unknown task name fails before any file is read
        device = get_device(device)
        root = data_root(root)
        folder, how = root / FOLDER, how_to_get(root)
        if download:
            download_or_fail(lambda: download_archive(root), "CIFAR100", folder, URL)
        sources = [folder / ("test" if split == "test" else "train"), folder / "meta"]
        params = {"split": split, "num_images": "full" if number is None else number, "size": image_size}
        if number is not None:
            params["seed"] = seed  # the full split is the same for every seed
        build = partial(prepare, sources, split, number, image_size, seed, how)
        content = prepared(build, root, "CIFAR100", params, folder, list(MD5.items()), how, verify, cache)
        all_tasks = make_tasks(tuple(content["coarse_names"]), tuple(content["fine_names"]))
        chosen = select_tasks(all_tasks, tasks)
        images = content["images"].to(device).float() / 255  # [N, 3, S, S]
        targets = {t: content[t].to(device) for t in chosen}
        targets = corrupt_labels(targets, all_tasks, chosen, label_fraction, label_noise, seed, split, device)
        super().__init__(images, targets, chosen)
        self.split, self.seed, self.root = split, seed, root


def how_to_get(root: Path) -> str:
    """How to get the archive: the call that downloads it, and the URL."""
    return f"CIFAR100(root={str(root)!r}, download=True) (or by hand: unpack {URL} into {root})"


def download_archive(root: Path) -> None:
    """Download and unpack the archive into ``<root>/cifar-100-python/`` with torchvision (MD5 checked)."""
    import torchvision.datasets  # imported here: only a download needs it

    torchvision.datasets.CIFAR100(str(root), download=True)


def prepare(
    sources: list[Path], split: str, number: int | None, image_size: int, seed: int, how: str
) -> dict[str, object]:
    """Read the pickles and build ``split``: 8-bit images, both labels, and the class names."""
    images, coarse, fine = read_or_fail(sources[0], read_batch, "CIFAR100", how)
    names = read_or_fail(sources[1], read_meta, "CIFAR100", how)
    start, stop = split_range(len(images), split)
    generator = torch.Generator().manual_seed(stream_seed(seed, split, 0))
    index = start + choose(stop - start, number, generator, "CIFAR100")  # [N]
    return {
        "images": resize(images[index], image_size),  # [N, 3, S, S]
        "coarse": coarse[index],  # [N]
        "fine": fine[index],  # [N]
        "coarse_names": names[0],
        "fine_names": names[1],
    }


def split_range(total: int, split: str) -> tuple[int, int]:
    """The ``[start, stop)`` range of a split in its file: ``val`` is the last :data:`VAL_FRACTION` of the
    training file, ``train`` the rest; ``test`` is the whole test file.

    Example:
        >>> split_range(50_000, "train"), split_range(50_000, "val"), split_range(10_000, "test")
        ((0, 45000), (45000, 50000), (0, 10000))
    """
    if split == "test":
        return 0, total
    val = round(total * VAL_FRACTION)
    return (0, total - val) if split == "train" else (total - val, total)


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds NumPy arrays and plain Python values, and refuses any other object."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR pickle holds only arrays")


def read_pickle(path: Path) -> dict[str, object]:
    """The dict of one of the archive's pickles (written by Python 2: bytes keys, read here as ``str``)."""
    with open(path, "rb") as file:
        try:
            content = SafeUnpickler(file, encoding="bytes").load()
        except pickle.UnpicklingError as error:
            raise ValueError(str(error)) from error
    if not isinstance(content, dict):
        raise ValueError(f"expected a dict, found a {type(content).__name__}")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in content.items()}


def read_batch(path: Path) -> tuple[Tensor, Tensor, Tensor]:
    """Images ``[M, 3, 32, 32]`` uint8 and coarse and fine labels ``[M]`` of a ``train`` or ``test`` pickle."""
    batch = read_pickle(path)
    for key in ("data", "coarse_labels", "fine_labels"):
        if key not in batch:
            raise KeyError(f"the pickle has no {key!r} entry (it has {sorted(batch)})")
    data = np.asarray(batch["data"], dtype=np.uint8)  # [M, 3072], rows of red, green then blue planes
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"data of shape {list(data.shape)}, expected [M, 3072]")
    images = torch.from_numpy(data.copy()).view(-1, 3, 32, 32)  # [M, 3, 32, 32]
    coarse = torch.as_tensor(batch["coarse_labels"], dtype=torch.long)  # [M]
    fine = torch.as_tensor(batch["fine_labels"], dtype=torch.long)  # [M]
    if not len(images) == len(coarse) == len(fine):
        raise ValueError(f"{len(images)} images but {len(coarse)} coarse and {len(fine)} fine labels")
    for labels, count, name in ((coarse, 20, "coarse"), (fine, 100, "fine")):
        if labels.numel() and not (labels.min() >= 0 and labels.max() < count):
            raise ValueError(f"{name} labels outside 0..{count - 1}")
    if len(torch.unique(fine * 20 + coarse)) != len(torch.unique(fine)):  # distinct (fine, coarse) pairs
        raise ValueError("a fine class appears under two coarse classes")
    return images, coarse, fine


def read_meta(path: Path) -> tuple[list[str], list[str]]:
    """The 20 coarse and 100 fine class names of the ``meta`` pickle."""
    meta = read_pickle(path)
    names = []
    for key, count in (("coarse_label_names", 20), ("fine_label_names", 100)):
        values = [v.decode() if isinstance(v, bytes) else str(v) for v in meta.get(key, [])]
        if len(values) != count:
            raise ValueError(f"{key} has {len(values)} names, expected {count}")
        names.append(values)
    return names[0], names[1]
