r"""MultiMNIST and MultiFashion: two overlapping items per image, one task for each, built from torchvision's files.

Used in chapter 13.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from mtlcourse.data.base import TensorMultiTaskDataset, corrupt_labels, stream_seed
from mtlcourse.data.files import (
    CorruptDataError,
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

#: Images drawn for each split when neither ``num_images`` nor ``full=True`` is given: a CPU-sized subset.
#: Measured on one thread of a busy 2-core machine: building 10,000 pairs takes 2 s (0.07 s from the
#: cache) and an epoch of ``SmallCNN(width=16)`` over them about 20 s; 2,000 test images give each accuracy
#: a standard error under 1.2 points. A chapter with a one-minute budget passes a smaller ``num_images``.
DEFAULT_NUM_IMAGES = {"train": 10_000, "val": 2_000, "test": 2_000}

#: The validation split is the last sixth of the training file (the last 10,000 of MNIST's 60,000 images),
#: the same images for every seed; the training split is the rest. The test file is the test split.
VAL_FRACTION = 1 / 6

#: Side of the canvas on which the two items are overlaid (the paper's 36 pixels).
CANVAS = 36

#: Offset, in pixels down and right, of the right item on the canvas (the left item sits at 0).
SHIFT = 6

#: The image size of the paper, whose 36x36 canvas is resized to 28x28 by nearest-neighbour sampling.
PAPER_SIZE = 28

#: The four files of MNIST and FashionMNIST, with the MD5s torchvision lists for them.
FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
MD5 = {
    "MNIST": {
        "train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
        "test_images": "9fb629c4189551a2d022fa330f9573f3",
        "test_labels": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "FashionMNIST": {
        "train_images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train_labels": "25c81989df183df01b3e8a0aad5dffbe",
        "test_images": "bef4ecab320f06d8554ea6380940ec79",
        "test_labels": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

#: Where each source can be downloaded by hand (the first mirror torchvision tries).
URLS = {
    "MNIST": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "FashionMNIST": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}

DIGITS = tuple(str(d) for d in range(10))
FASHION = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def make_tasks(class_names: tuple[str, ...], item: str) -> dict[str, Task]:
    """The two tasks of a pair dataset: the class of the left item and the class of the right one."""
    return {
        "left": Task("left", "multiclass", 10, class_names, f"class of the top-left {item}"),
        "right": Task("right", "multiclass", 10, class_names, f"class of the bottom-right {item}"),
    }


class OverlappingPairs(TensorMultiTaskDataset):
    r"""Two items of a 28x28 greyscale dataset overlaid on one image; the tasks are their two classes.

    The construction of Sener and Koltun (NeurIPS 2018, Section 5.1, and their code), applied to the
    source named by the subclass (:class:`MultiMNIST`, :class:`MultiFashion`):

    1. each *left* item is paired with a *right* item drawn uniformly at random, with replacement, from
       the same split of the source (it may be itself);
    2. on a black :data:`CANVAS` x :data:`CANVAS` (36x36) canvas, the left item fills rows and columns
       ``0..27`` and the right item rows and columns ``6..33`` (:data:`SHIFT` = 6 down and right); where
       they overlap, each pixel is the larger of the two;
    3. the canvas is resized to ``image_size`` (the paper's 28 by default, by nearest-neighbour sampling
       as the paper did; other sizes with an antialiased bilinear filter) and scaled to ``[0, 1]``.

    ==========  ==========  =======  ====================================
    task        kind        outputs  target
    ==========  ==========  =======  ====================================
    ``left``    multiclass  10       class of the top-left item
    ``right``   multiclass  10       class of the bottom-right item
    ==========  ==========  =======  ====================================

    Splits: ``test`` comes from the source's test file (10,000 items). ``val`` is the last sixth of the
    training file (its last 10,000 items), the same for every seed, and ``train`` the first 50,000: the
    validation split is carved from the training file, never from the test file. Unless ``full=True``, each
    split draws :data:`DEFAULT_NUM_IMAGES` left items (10,000 / 2,000 / 2,000) at random without
    replacement (or ``num_images``); the partners are drawn from the whole split either way. ``seed`` fixes
    both draws, through a generator of its own per split.

    Files: ``<root>/<Source>/raw/`` holds the four gzipped IDX files exactly as torchvision's ``MNIST`` and
    ``FashionMNIST`` download them; ``download=True`` calls torchvision to get them. With ``verify=True``
    (the default) each file's MD5 must be the one torchvision lists; ``verify=False`` skips that check, for
    files you made yourself. A missing or damaged file raises
    :class:`~mtlcourse.data.files.MissingDataError` or :class:`~mtlcourse.data.files.CorruptDataError`
    with the path where it belongs and how to get it. The prepared images and labels are cached in
    ``<root>/mtlcourse-cache/`` (:func:`mtlcourse.data.files.prepared`).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_images: images to draw from the split; ``None`` gives :data:`DEFAULT_NUM_IMAGES`.
        full: every image of the split, in file order (50,000 / 10,000 / 10,000); excludes ``num_images``.
        image_size: side of the square images, at least 8 (28 is the paper's).
        tasks: names of the tasks to keep, in order; ``None`` keeps both.
        seed: non-negative integer that fixes the subset, the partners and the label controls.
        label_fraction: fraction of labelled images, in ``[0, 1]``; a number or ``{task: fraction}``.
        label_noise: fraction of wrong labels, in ``[0, 1]``; a number or ``{task: fraction}``.
        root: the data folder (see :func:`mtlcourse.data.files.data_root`).
        download: get missing files with torchvision (needs the internet).
        verify: check the files' MD5s before reading them.
        cache: read and write the prepared tensors in ``<root>/mtlcourse-cache/``.
        device: where to keep the data; ``None`` is the CPU.

    Shape:
        images ``[N, 1, S, S]`` in ``[0, 1]``; ``left`` and ``right`` ``[N]``.

    Used in chapter 13.
    """

    #: The folder of the source under ``root``, as torchvision names it; set by each subclass.
    source = ""
    #: The class names of the source's ten classes; set by each subclass.
    class_names: tuple[str, ...] = DIGITS
    #: What one item is, for the task descriptions.
    item = "item"

    def __init__(
        self,
        split: str = "train",
        num_images: int | None = None,
        full: bool = False,
        image_size: int = PAPER_SIZE,
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
        if self.source not in MD5:
            raise TypeError(f"{type(self).__name__} names no source; use MultiMNIST or MultiFashion")
        number = check_loader_arguments(split, num_images, full, image_size, seed, DEFAULT_NUM_IMAGES)
        all_tasks = make_tasks(self.class_names, self.item)
        chosen = select_tasks(all_tasks, tasks)
        device = get_device(device)
        root = data_root(root)
        folder = root / self.source / "raw"
        name = type(self).__name__
        if download:
            self.download(root)
        files = [(FILE_NAMES[key], md5) for key, md5 in MD5[self.source].items()]
        kind = "test" if split == "test" else "train"
        sources = [folder / FILE_NAMES[f"{kind}_images"], folder / FILE_NAMES[f"{kind}_labels"]]
        how = self.how(root)
        params = {"split": split, "num_images": "full" if number is None else number, "size": image_size}
        params["seed"] = seed  # even the full split: the seed draws the partners
        build = partial(self.prepare, sources, split, number, image_size, seed, how)
        content = prepared(build, root, name, params, folder, files, how, verify, cache)
        images = content["images"].to(device).float() / 255  # [N, 1, S, S]
        targets = {t: content[t].to(device) for t in chosen}
        targets = corrupt_labels(targets, all_tasks, chosen, label_fraction, label_noise, seed, split, device)
        super().__init__(images, targets, chosen)
        self.split, self.seed, self.root = split, seed, root

    @classmethod
    def how(cls, root: Path) -> str:
        """How to get the files: the call that downloads them, and the URL."""
        return f"{cls.__name__}(root={str(root)!r}, download=True) (or by hand from {URLS[cls.source]})"

    @classmethod
    def download(cls, root: Path) -> None:
        """Download the four files into ``<root>/<source>/raw/`` with torchvision, which checks their MD5s."""
        import torchvision.datasets  # imported here: only a download needs it

        source = getattr(torchvision.datasets, cls.source)
        folder = root / cls.source / "raw"
        download_or_fail(lambda: source(str(root), download=True), cls.__name__, folder, URLS[cls.source])

    def prepare(
        self, sources: list[Path], split: str, number: int | None, image_size: int, seed: int, how: str
    ) -> dict[str, Tensor]:
        """Read the source files and build the pairs of ``split``: 8-bit images and both labels."""
        name = type(self).__name__
        items = read_or_fail(sources[0], read_idx_images, name, how)  # [M, 28, 28] uint8
        labels = read_or_fail(sources[1], read_idx_labels, name, how)  # [M] long
        if len(items) != len(labels):
            raise CorruptDataError(
                f"{name}: {sources[0]} holds {len(items)} images but {sources[1]} holds {len(labels)} labels; "
                f"one of them is damaged. Delete both and get them again with {how}."
            )
        start, stop = split_range(len(items), split)
        generator = torch.Generator().manual_seed(stream_seed(seed, split, 0))
        pool = stop - start
        left = start + choose(pool, number, generator, name)  # [N]
        right = start + torch.randint(pool, (len(left),), generator=generator)  # [N] with replacement
        images = overlay(items[left], items[right])  # [N, 36, 36]
        mode = "nearest-exact" if image_size == PAPER_SIZE else "bilinear"
        images = resize(images[:, None], image_size, mode)  # [N, 1, S, S]
        return {"images": images, "left": labels[left], "right": labels[right]}


class MultiMNIST(OverlappingPairs):
    r"""MultiMNIST: two overlapping MNIST digits per image; the tasks are the left and the right digit.

    Built from the MNIST files (LeCun, Bottou, Bengio and Haffner, 1998) as Sener and Koltun did
    ("Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018), after the MultiMNIST of Sabour,
    Frosst and Hinton (NeurIPS 2017). The construction, splits, files and arguments are those of
    :class:`OverlappingPairs`: a 36x36 canvas with the left digit at the top-left and the right digit
    shifted 6 pixels down and right, the pixelwise maximum where they overlap, resized to 28x28 by nearest
    neighbour. The files are ``<root>/MNIST/raw/*.gz``, as torchvision's ``MNIST`` stores them.

    Example:
        >>> data = MultiMNIST("train", num_images=64)  # doctest: +SKIP
        >>> data  # doctest: +SKIP
        MultiMNIST(64 images [1, 28, 28], tasks=['left', 'right'], device=cpu)

    Used in chapter 13.
    """

    source = "MNIST"
    class_names = DIGITS
    item = "digit"


class MultiFashion(OverlappingPairs):
    r"""MultiFashion: two overlapping FashionMNIST items per image; the tasks are their two classes.

    The MultiMNIST construction of Sener and Koltun (NeurIPS 2018), exactly as in :class:`OverlappingPairs`,
    applied to FashionMNIST (Xiao, Rasul and Vollgraf, 2017), whose ten classes are clothes and shoes
    instead of digits. The name follows Lin, Zhen, Li, Zhang and Kwong ("Pareto Multi-Task Learning",
    NeurIPS 2019), who benchmark methods on a MultiFashion of two overlapping FashionMNIST items. The files
    are ``<root>/FashionMNIST/raw/*.gz``, as torchvision's ``FashionMNIST`` stores them.

    Example:
        >>> data = MultiFashion("test", num_images=64)  # doctest: +SKIP
        >>> data.tasks["left"].class_names[:3]  # doctest: +SKIP
        ('T-shirt/top', 'Trouser', 'Pullover')

    Used in chapter 13.
    """

    source = "FashionMNIST"
    class_names = FASHION
    item = "item of clothing"


def split_range(total: int, split: str) -> tuple[int, int]:
    """The ``[start, stop)`` range of a split in its file: ``val`` is the last :data:`VAL_FRACTION` of the
    training file, ``train`` the rest; ``test`` is the whole test file.

    Example:
        >>> split_range(60_000, "train"), split_range(60_000, "val"), split_range(10_000, "test")
        ((0, 50000), (50000, 60000), (0, 10000))
    """
    if split == "test":
        return 0, total
    val = round(total * VAL_FRACTION)
    return (0, total - val) if split == "train" else (total - val, total)


def overlay(left: Tensor, right: Tensor) -> Tensor:
    """Overlay items ``[N, 28, 28]``: ``left`` at the canvas' top-left, ``right`` shifted :data:`SHIFT`
    pixels down and right, the larger pixel where they overlap. Returns 8-bit canvases ``[N, 36, 36]``.

    Example:
        >>> one = torch.full((1, 28, 28), 200, dtype=torch.uint8)
        >>> canvas = overlay(one, one // 2)
        >>> canvas[0, 0, 0].item(), canvas[0, 10, 10].item(), canvas[0, 30, 30].item(), canvas[0, 30, 0].item()
        (200, 200, 100, 0)
    """
    N, H, W = left.shape
    canvas = torch.zeros(N, CANVAS, CANVAS, dtype=torch.uint8)  # [N, 36, 36]
    canvas[:, :H, :W] = left
    window = canvas[:, SHIFT : SHIFT + H, SHIFT : SHIFT + W]  # [N, 28, 28] a view of the canvas
    window.copy_(torch.maximum(window, right))
    return canvas


def read_idx(path: Path, magic: int, dims: int) -> Tensor:
    """An 8-bit tensor from a gzipped IDX file (LeCun's format): big-endian magic number, ``dims`` sizes, bytes."""
    with gzip.open(path, "rb") as file:
        data = file.read()
    header = 4 * (dims + 1)
    if len(data) < header:
        raise ValueError(f"the file has {len(data)} bytes, fewer than its {header}-byte header")
    found, *shape = struct.unpack(f">{dims + 1}I", data[:header])
    if found != magic:
        raise ValueError(f"magic number {found}, expected {magic}")
    size = 1
    for s in shape:
        size *= s
    if len(data) - header != size:
        raise ValueError(f"the header announces {shape} = {size} bytes, the file holds {len(data) - header}")
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).view(*shape)


def read_idx_images(path: Path) -> Tensor:
    """The images of a gzipped IDX image file (magic 2051): ``[M, 28, 28]`` uint8."""
    images = read_idx(path, 2051, 3)  # [M, H, W]
    if tuple(images.shape[1:]) != (28, 28):
        raise ValueError(f"images of {list(images.shape[1:])} pixels, expected 28x28")
    return images


def read_idx_labels(path: Path) -> Tensor:
    """The labels of a gzipped IDX label file (magic 2049): ``[M]`` long, each in ``0..9``."""
    labels = read_idx(path, 2049, 1).long()  # [M]
    if labels.numel() and labels.max() > 9:
        raise ValueError(f"label {labels.max().item()} found, expected classes 0 to 9")
    return labels
