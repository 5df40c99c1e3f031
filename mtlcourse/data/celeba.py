"""CelebA: aligned celebrity faces with 40 binary attributes, as one task, as nine face regions, or one by one.

Used in chapter 13.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mtlcourse.data.base import TensorMultiTaskDataset, corrupt_labels, stream_seed
from mtlcourse.data.files import (
    CorruptDataError,
    MissingDataError,
    check_loader_arguments,
    choose,
    data_root,
    download_or_fail,
    prepared,
    read_or_fail,
)
from mtlcourse.tasks import Task, select_tasks
from mtlcourse.utils import get_device

#: Images drawn for each split when neither ``num_images`` nor ``full=True`` is given: a CPU-sized subset,
#: the sizes of :class:`~mtlcourse.data.mnist_pairs.MultiMNIST`. The first build decodes each JPEG (1 to
#: 2 ms each on one CPU thread, so 15 to 30 s for 14,000) and parses the attribute file (3 s); the cache
#: then takes a fraction of a second.
DEFAULT_NUM_IMAGES = {"train": 10_000, "val": 2_000, "test": 2_000}

#: The folder of the dataset under ``root`` (torchvision's layout), and its images' folder inside it.
FOLDER = "celeba"
IMAGES = "img_align_celeba"

#: The two annotation files read, with the MD5s torchvision lists for them.
MD5 = {
    "list_attr_celeba.txt": "75e246fa4810816ffd6ee81facbd244c",
    "list_eval_partition.txt": "d32c9cbf5e040fd4025c592c306e6668",
}

#: The dataset's page, where the files can be downloaded by hand.
URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"

#: The official partition's code of each split in ``list_eval_partition.txt``.
PARTITION = {"train": 0, "val": 1, "test": 2}

#: The 40 attributes, in the order of ``list_attr_celeba.txt``.
ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip

#: The nine groups of Hand and Chellappa (AAAI 2017, Table 1), who split the attributes by the region of
#: the face they describe; every attribute is in exactly one group.
REGIONS = {
    "gender": ("Male",),
    "nose": ("Big_Nose", "Pointy_Nose"),
    "mouth": ("Big_Lips", "Smiling", "Wearing_Lipstick", "Mouth_Slightly_Open"),
    "eyes": ("Arched_Eyebrows", "Bags_Under_Eyes", "Bushy_Eyebrows", "Narrow_Eyes", "Eyeglasses"),
    "face": ("Attractive", "Blurry", "Oval_Face", "Pale_Skin", "Young", "Heavy_Makeup"),
    "around_head": (
        "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Bald", "Receding_Hairline", "Bangs",
        "Straight_Hair", "Wavy_Hair", "Wearing_Hat", "Wearing_Earrings", "Wearing_Necklace", "Wearing_Necktie",
    ),
    "facial_hair": ("5_o_Clock_Shadow", "Mustache", "No_Beard", "Sideburns", "Goatee"),
    "cheeks": ("High_Cheekbones", "Rosy_Cheeks"),
    "fat": ("Chubby", "Double_Chin"),
}  # fmt: skip

#: The ways to turn the 40 attributes into tasks.
GROUPINGS = ("regions", "attributes", "each")


def make_groups(grouping: str) -> dict[str, tuple[str, ...]]:
    """Task name to the attributes it predicts, for ``grouping`` (one of :data:`GROUPINGS`).

    Example:
        >>> make_groups("attributes")["attributes"][:2], len(make_groups("each")), make_groups("each")["male"]
        (('5_o_Clock_Shadow', 'Arched_Eyebrows'), 40, ('Male',))
    """
    if grouping == "regions":
        return dict(REGIONS)
    if grouping == "attributes":
        return {"attributes": ATTRIBUTES}
    if grouping == "each":
        return {name.lower(): (name,) for name in ATTRIBUTES}
    raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")


def make_tasks(grouping: str) -> dict[str, Task]:
    """The tasks of ``grouping``: a binary task for a group of one attribute, a multilabel task otherwise."""
    tasks = {}
    for name, members in make_groups(grouping).items():
        if len(members) == 1:
            tasks[name] = Task(name, "binary", 1, members, f"1 if the face is {members[0]}")
        else:
            tasks[name] = Task(name, "multilabel", len(members), members, f"{len(members)} attributes")
    return tasks


class CelebA(TensorMultiTaskDataset):
    r"""CelebA's aligned faces, resized to small squares, with the 40 binary attributes as tasks.

    CelebA (Liu, Luo, Wang and Tang, "Deep Learning Face Attributes in the Wild", ICCV 2015) holds 202,599
    face images of 10,177 celebrities, aligned on the eyes and cropped to 178x218 pixels, each annotated
    with 40 binary attributes (``Smiling``, ``Eyeglasses``, ``Male``, ...). Sener and Koltun (NeurIPS 2018)
    train the 40 attributes as 40 tasks.

    ``grouping`` chooses the tasks:

    - ``"regions"`` (default): the nine groups of Hand and Chellappa ("Attributes for Improved Attributes",
      AAAI 2017), one task per region of the face (:data:`REGIONS`): ``gender`` (binary: ``Male``),
      ``nose`` (2), ``mouth`` (4), ``eyes`` (5), ``face`` (6), ``around_head`` (13), ``facial_hair`` (5),
      ``cheeks`` (2), ``fat`` (2), each multilabel over its attributes (order as in :data:`REGIONS`).
    - ``"attributes"``: one multilabel task ``attributes`` with all 40, in the file's order.
    - ``"each"``: 40 binary tasks, one per attribute, named by the attribute in lower case
      (``smiling``), as Sener and Koltun do.

    Images: the central 178x178 square of each 178x218 image (20 rows cut at the top and the bottom) is
    resized to ``image_size`` x ``image_size`` (32 by default, small enough for a CPU; Sener and Koltun's
    code squeezes the whole image to 64x64) with PIL's bilinear filter, which antialiases when shrinking,
    then scaled to ``[0, 1]``.

    Splits: CelebA's official partition (``list_eval_partition.txt``: 162,770 train, 19,867 val, 19,962
    test images, with no celebrity in two splits), so the validation split is CelebA's own and never
    overlaps the test split. Unless ``full=True``, each split draws :data:`DEFAULT_NUM_IMAGES` images
    (10,000 / 2,000 / 2,000) at random without replacement (or ``num_images``), with a generator seeded by
    ``seed`` and the split.

    Files: ``<root>/celeba/`` with ``list_attr_celeba.txt``, ``list_eval_partition.txt`` and the JPEG
    folder ``img_align_celeba/``, as torchvision's ``CelebA`` stores them; ``download=True`` calls
    torchvision to get them (from Google Drive, which needs the ``gdown`` package and often hits a daily
    quota). With ``verify=True`` (the default) both text files must have the MD5s torchvision lists;
    torchvision lists no checksum for single images, so an image is checked by decoding it: a missing or
    unreadable image raises an error that names it. ``verify=False`` skips the MD5s, for files you made
    yourself. The prepared tensors are cached in ``<root>/mtlcourse-cache/``.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_images: images to draw from the split; ``None`` gives :data:`DEFAULT_NUM_IMAGES`.
        full: every image of the split, in file order; excludes ``num_images``. At 32x32 the full training
            split takes 2 GB of memory as floats.
        image_size: side of the square RGB images, at least 8.
        grouping: ``"regions"``, ``"attributes"`` or ``"each"`` (see above).
        tasks: names of the tasks to keep, in order; ``None`` keeps every task of the grouping.
        seed: non-negative integer that fixes the subset and the label controls.
        label_fraction: fraction of labelled images, in ``[0, 1]``; a number or ``{task: fraction}``. A
            multilabel task loses whole rows.
        label_noise: must stay 0: label noise is defined for multiclass tasks and CelebA has none.
        root: the data folder (see :func:`mtlcourse.data.files.data_root`).
        download: get missing files with torchvision (needs the internet and ``gdown``).
        verify: check the annotation files' MD5s before reading them.
        cache: read and write the prepared tensors in ``<root>/mtlcourse-cache/``.
        device: where to keep the data; ``None`` is the CPU.

    Shape:
        images ``[N, 3, S, S]`` in ``[0, 1]``; a binary task ``[N]``, a multilabel task ``[N, K]``.

    Example:
        >>> data = CelebA("val", num_images=64)  # doctest: +SKIP
        >>> data.tasks["mouth"].class_names  # doctest: +SKIP
        ('Big_Lips', 'Smiling', 'Wearing_Lipstick', 'Mouth_Slightly_Open')

    Used in chapter 13.
    """

    def __init__(
        self,
        split: str = "train",
        num_images: int | None = None,
        full: bool = False,
        image_size: int = 32,
        grouping: str = "regions",
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
        if label_noise:
            raise ValueError(
                f"label_noise is defined for multiclass tasks and CelebA's tasks are binary or multilabel; "
                f"got label_noise={label_noise!r}, leave it at 0"
            )
        all_tasks = make_tasks(grouping)
        chosen = select_tasks(all_tasks, tasks)
        device = get_device(device)
        root = data_root(root)
        folder, how = root / FOLDER, how_to_get(root)
        if download:
            download_or_fail(lambda: download_files(root), "CelebA", folder, URL)
        params = {"split": split, "num_images": "full" if number is None else number, "size": image_size}
        if number is not None:
            params["seed"] = seed  # the full split is the same for every seed
        files = [*MD5.items(), (IMAGES, None)]
        build = partial(prepare, folder, split, number, image_size, seed, how)
        content = prepared(build, root, "CelebA", params, folder, files, how, verify, cache)
        attributes = content["attributes"].to(device).float()  # [N, 40] 0. or 1.
        targets = group_targets(attributes, grouping)
        targets = {name: targets[name] for name in chosen}
        targets = corrupt_labels(targets, all_tasks, chosen, label_fraction, label_noise, seed, split, device)
        images = content["images"].to(device).float() / 255  # [N, 3, S, S]
        super().__init__(images, targets, chosen)
        self.split, self.seed, self.root, self.grouping = split, seed, root, grouping


def how_to_get(root: Path) -> str:
    """How to get the files: the call that downloads them, and the page."""
    return (
        f"CelebA(root={str(root)!r}, download=True) (needs pip install gdown; or by hand from {URL}: the "
        f"'Align&Cropped Images' zip unpacked into {root / FOLDER}, with the two text files next to it)"
    )


def download_files(root: Path) -> None:
    """Download and unpack CelebA into ``<root>/celeba/`` with torchvision (which checks the MD5s)."""
    import torchvision.datasets  # imported here: only a download needs it

    torchvision.datasets.CelebA(str(root), split="all", target_type="attr", download=True)


def group_targets(attributes: Tensor, grouping: str) -> dict[str, Tensor]:
    """The target of every task of ``grouping`` from the attribute matrix ``[N, 40]`` (0. or 1.).

    Example:
        >>> targets = group_targets(torch.eye(40)[:2], "regions")
        >>> targets["gender"].shape, targets["facial_hair"][0].tolist()
        (torch.Size([2]), [1.0, 0.0, 0.0, 0.0, 0.0])
    """
    out = {}
    for name, members in make_groups(grouping).items():
        columns = [ATTRIBUTES.index(m) for m in members]
        target = attributes[:, columns]  # [N, K]
        out[name] = target[:, 0] if len(members) == 1 else target  # [N] for a binary task
    return out


def prepare(folder: Path, split: str, number: int | None, image_size: int, seed: int, how: str) -> dict:
    """Read the annotations, draw the split's images, and decode and resize them: 8-bit images and the
    attribute matrix ``[N, 40]`` (uint8, 0 or 1)."""
    names, attributes = read_or_fail(folder / "list_attr_celeba.txt", read_attributes, "CelebA", how)
    partition = read_or_fail(folder / "list_eval_partition.txt", read_partition, "CelebA", how)
    if [name for name, _ in partition] != names:
        raise CorruptDataError(
            f"CelebA: the image names of {folder / 'list_eval_partition.txt'} differ from those of "
            f"{folder / 'list_attr_celeba.txt'}; one of them is damaged. Delete both and get them again with {how}."
        )
    in_split = torch.tensor([code == PARTITION[split] for _, code in partition])  # [M] booleans
    pool = in_split.nonzero()[:, 0]  # [P] rows of this split
    generator = torch.Generator().manual_seed(stream_seed(seed, split, 0))
    rows = pool[choose(len(pool), number, generator, "CelebA")]  # [N]
    files = [folder / IMAGES / names[i] for i in rows.tolist()]
    missing = [f for f in files if not f.exists()]
    if missing:
        shown = "\n".join(f"  {f}" for f in missing[:5])
        raise MissingDataError(
            f"CelebA: {len(missing)} image(s) of the {split} split missing from {folder / IMAGES}, such as\n"
            f"{shown}\nThe image folder is incomplete; get it again with {how}."
        )
    images = [read_or_fail(f, lambda p: read_image(p, image_size), "CelebA", how) for f in files]
    return {"images": torch.stack(images), "attributes": attributes[rows]}  # [N, 3, S, S], [N, 40]


def read_attributes(path: Path) -> tuple[list[str], Tensor]:
    """Image names and attributes ``[M, 40]`` (uint8, 0 or 1) of ``list_attr_celeba.txt``: a line with the
    number of images, a line with the 40 names, then one line per image: its name and 40 values -1 or 1.

    The file is read as one stream of words: about 3 s for CelebA's 202,599 lines on one busy CPU thread, a
    third of the time line by line. A missing or extra value shifts every later line, which the checks catch.
    """
    words = path.read_text().split()
    if len(words) < 41 or not words[0].isdigit():
        raise ValueError("the file does not start with the number of images and the 40 attribute names")
    count, header, body = int(words[0]), tuple(words[1:41]), words[41:]
    if header != ATTRIBUTES:
        raise ValueError("the second line does not name CelebA's 40 attributes in order")
    if len(body) != 41 * count:
        raise ValueError(
            f"the first line announces {count} images, the file holds {len(body) / 41:g} lines' worth"
        )
    rows = np.array(body, dtype=object).reshape(count, 41)  # [M, 41] image name, then 40 values
    names, values = rows[:, 0].tolist(), rows[:, 1:]  # [M], [M, 40]
    if not all(name.endswith(".jpg") for name in names):
        raise ValueError("a line does not start with an image name (a value is missing or extra)")
    ones = values == "1"  # [M, 40]
    if not bool((ones | (values == "-1")).all()):
        raise ValueError("an attribute value is neither -1 nor 1")
    return names, torch.from_numpy(ones.astype(np.uint8))  # [M, 40] 0 or 1


def read_partition(path: Path) -> list[tuple[str, int]]:
    """``(image name, split code)`` of each line of ``list_eval_partition.txt`` (0 train, 1 val, 2 test)."""
    rows = [line.split() for line in path.read_text().splitlines() if line]
    if any(len(row) != 2 or row[1] not in ("0", "1", "2") for row in rows):
        raise ValueError("a line does not hold an image name and a split code 0, 1 or 2")
    return [(name, int(code)) for name, code in rows]


def read_image(path: Path, image_size: int) -> Tensor:
    """The JPEG at ``path``, its central square resized to ``image_size``: ``[3, S, S]`` uint8."""
    from PIL import Image  # imported here: PIL comes with torchvision but is slow to import

    with Image.open(path) as image:
        image = image.convert("RGB")  # decodes the whole file: a truncated JPEG fails here
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        box = (left, top, left + side, top + side)
        small = image.resize((image_size, image_size), Image.Resampling.BILINEAR, box=box)
    pixels = torch.frombuffer(bytearray(small.tobytes()), dtype=torch.uint8)  # [S * S * 3]
    return pixels.view(image_size, image_size, 3).permute(2, 0, 1).contiguous()  # [3, S, S]
