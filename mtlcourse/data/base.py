"""In-memory multi-task datasets: images and one target tensor per task, ready to slice on any device.

:class:`TensorMultiTaskDataset` holds every image and every target as plain tensors, so the training loop
(:func:`mtlcourse.train.fit`) slices batches straight from them on the device, without DataLoader workers.
The helpers :func:`drop_labels` and :func:`add_label_noise` make the label controls of chapter 10 (partial
labels and label noise) the same for every dataset of the course.

Used in chapter 00 and every chapter after.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from mtlcourse.tasks import PER_PIXEL_KINDS, Task, as_task_dict, select_tasks

#: The splits of every dataset of the course.
SPLITS = ("train", "val", "test")

#: The dtype of a target of each task kind (see the table in :mod:`mtlcourse.tasks`).
TARGET_DTYPE = {
    "multiclass": "long",
    "binary": "float",
    "multilabel": "float",
    "segmentation": "long",
    "edge": "float",
    "regression": "float",
}


class TensorMultiTaskDataset(Dataset):
    """A multi-task image dataset held in memory: one image tensor and one target tensor per task.

    Every task must have a target and every target a task; each target has one row per image and the
    dtype and shape of its task's kind (the conventions of :mod:`mtlcourse.tasks`; missing labels are
    ``-1`` for class indices and ``nan`` for float targets). Methods that return a dataset (:meth:`to`,
    :meth:`select`, :meth:`subset`) return one of the same class that shares memory where it can.

    Args:
        images: ``[N, C, H, W]`` floats in ``[0, 1]``.
        targets: task name to target tensor with ``N`` rows, on the images' device.
        tasks: task name to :class:`~mtlcourse.tasks.Task` (a list of tasks is accepted too).

    Shape:
        ``dataset[i]`` is ``(image [C, H, W], {task: target_i})``.

    Example:
        >>> from mtlcourse.tasks import Task
        >>> images = torch.rand(6, 1, 4, 4)
        >>> targets = {"odd": torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, float("nan")])}
        >>> data = TensorMultiTaskDataset(images, targets, {"odd": Task("odd", "binary", 1)})
        >>> len(data), data[1][1]
        (6, {'odd': tensor(1.)})
        >>> print(data.summary())
        task  kind    outputs  labelled  balance
        odd   binary  1        0.83      positive 0.40

    Used in chapter 00.
    """

    def __init__(
        self, images: Tensor, targets: dict[str, Tensor], tasks: dict[str, Task] | Sequence[Task]
    ) -> None:
        tasks = as_task_dict(tasks)
        check_images(images)
        check_targets(images, targets, tasks)
        self.images = images  # [N, C, H, W]
        self.targets = dict(targets)
        self.tasks = tasks

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self.images[index], {name: target[index] for name, target in self.targets.items()}

    def __repr__(self) -> str:
        shape = list(self.images.shape[1:])
        return (
            f"{type(self).__name__}({len(self)} images {shape}, tasks={list(self.tasks)}, "
            f"device={self.device.type})"
        )

    @property
    def device(self) -> torch.device:
        """The device that holds the images and targets."""
        return self.images.device

    @property
    def task_names(self) -> list[str]:
        """The task names, in order."""
        return list(self.tasks)

    def replace(
        self,
        images: Tensor | None = None,
        targets: dict[str, Tensor] | None = None,
        tasks: dict[str, Task] | None = None,
    ) -> TensorMultiTaskDataset:
        """A shallow copy of this dataset (same class, same extra attributes) with some fields replaced."""
        new = copy.copy(self)  # keeps a subclass's own attributes (split, seed...) without regenerating
        new.images = self.images if images is None else images
        new.targets = dict(self.targets if targets is None else targets)
        new.tasks = dict(self.tasks if tasks is None else tasks)
        check_not_empty(new.images)
        check_targets(new.images, new.targets, new.tasks)
        return new

    def to(self, device: str | torch.device) -> TensorMultiTaskDataset:
        """The same dataset on ``device``; tensors already there are shared, not copied."""
        return self.replace(
            images=self.images.to(device),
            targets={name: target.to(device) for name, target in self.targets.items()},
        )

    def select(self, task_names: Sequence[str] | str) -> TensorMultiTaskDataset:
        """The same images with only the tasks in ``task_names`` (in that order).

        Raises:
            ValueError: for an unknown task name; the message lists the valid ones.
        """
        tasks = select_tasks(self.tasks, task_names)
        return self.replace(targets={name: self.targets[name] for name in tasks}, tasks=tasks)

    def subset(self, indices: Sequence[int] | Tensor) -> TensorMultiTaskDataset:
        """The images at ``indices`` (a list or tensor of indices, or a boolean mask ``[N]``)."""
        index = torch.as_tensor(indices, device=self.device)  # [n] or [N]
        if index.dtype != torch.bool:
            index = index.long()  # [n]
        return self.replace(
            images=self.images[index],  # [n, C, H, W]
            targets={name: target[index] for name, target in self.targets.items()},
        )

    def label_fraction(self, task: str) -> float:
        """Fraction of the images that carry a label for ``task``."""
        return labelled_mask(self.targets[task], self.tasks[task]).float().mean().item()

    def summary(self) -> str:
        """A small table, one row per task: kind, outputs, fraction labelled, and class balance."""
        rows = [("task", "kind", "outputs", "labelled", "balance")]
        for name, task in self.tasks.items():
            target = self.targets[name]
            fraction = self.label_fraction(name)
            rows.append((name, task.kind, str(task.num_outputs), f"{fraction:.2f}", balance(target, task)))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        return "\n".join(lines)


def check_images(images: Tensor) -> None:
    """Raise ``ValueError`` unless ``images`` is a non-empty float ``[N, C, H, W]`` tensor with values in ``[0, 1]``."""
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(
            f"images must be a tensor [N, C, H, W], got {shape}; grey images [N, H, W] need a channel "
            "dimension: images[:, None]"
        )
    check_not_empty(images)
    if not images.is_floating_point():
        raise ValueError(
            f"images must be a float tensor with values in [0, 1], got dtype {images.dtype}; convert 8-bit "
            "images with images.float() / 255"
        )
    smallest, largest = torch.aminmax(images)
    if not bool((smallest >= 0) & (largest <= 1)):
        raise ValueError(
            f"images must have values in [0, 1], got values from {smallest.item():g} to {largest.item():g}; "
            "rescale them (images in 0-255 need images / 255)"
        )


def check_not_empty(images: Tensor) -> None:
    """Raise ``ValueError`` when ``images`` ``[N, C, H, W]`` holds no image (``N = 0``)."""
    if images.shape[0] == 0:
        raise ValueError(
            f"a dataset needs at least one image, got images of shape {list(images.shape)}; pass a non-empty "
            "images tensor (or indices that select at least one image)"
        )


def in_range(x: Tensor, low: float, high: float) -> bool:
    """Whether every entry of ``x`` lies in ``[low, high]`` (one pass over memory, one device sync)."""
    smallest, largest = torch.aminmax(x)
    return bool((smallest >= low) & (largest <= high))


def check_targets(images: Tensor, targets: dict[str, Tensor], tasks: dict[str, Task]) -> None:
    """Raise ``ValueError`` (naming the task) unless targets and tasks match one to one and in format."""
    orphans = [name for name in targets if name not in tasks]
    if orphans:
        raise ValueError(f"target(s) {orphans} have no task; the tasks are {list(tasks)}")
    for name, task in tasks.items():
        if name not in targets:
            raise ValueError(f"task {name!r} has no target; the targets are {list(targets)}")
        check_target(targets[name], task, images)


def expected_shape(task: Task, images: Tensor) -> tuple[int, ...]:
    """The shape a target of ``task`` must have for ``images`` ``[N, C, H, W]``."""
    N, _, H, W = images.shape
    if task.kind in ("multiclass", "binary"):
        return (N,)
    if task.kind in PER_PIXEL_KINDS:
        return (N, H, W)
    return (N, task.num_outputs)  # multilabel and regression


def check_target(target: Tensor, task: Task, images: Tensor) -> None:
    """Raise ``ValueError`` unless ``target`` has the dtype, shape, device and values of ``task``'s kind."""
    where = f"target of task {task.name!r} ({task.kind})"
    if not isinstance(target, Tensor):
        raise ValueError(f"{where} must be a tensor, got {type(target).__name__}")
    shape = expected_shape(task, images)
    if task.is_soft_target(target):
        shape = (*shape, task.num_outputs)  # soft targets: one row of class probabilities per image
    if tuple(target.shape) != shape:
        raise ValueError(f"{where} must have shape {list(shape)}, got {list(target.shape)}")
    if target.device != images.device:
        raise ValueError(f"{where} is on {target.device} but the images are on {images.device}")
    if task.is_soft_target(target):
        task.check_soft_target(target)
        return
    if TARGET_DTYPE[task.kind] == "long":
        if target.dtype != torch.long:
            raise ValueError(
                f"{where} must hold class indices of dtype torch.long, got {target.dtype}; convert it with "
                "target.long()"
            )
        if target.numel() and not in_range(target, -1, task.num_outputs - 1):
            smallest, largest = torch.aminmax(target)
            raise ValueError(
                f"{where} must hold classes in [0, {task.num_outputs - 1}] or -1 (missing), got values from "
                f"{smallest.item()} to {largest.item()}; number the classes from 0, or give the task as many "
                "classes as the data has (num_outputs)"
            )
        return
    if not target.is_floating_point():
        raise ValueError(
            f"{where} must be a float tensor, got {target.dtype}; convert it with target.float()"
        )
    known = target[~torch.isnan(target)]  # [n] labelled entries (nan marks a missing label)
    if task.kind in ("binary", "multilabel", "edge") and not bool(((known == 0) | (known == 1)).all()):
        raise ValueError(f"{where} must hold 0., 1. or nan (missing); map its labels to 0. and 1.")
    if task.kind == "regression" and not bool(torch.isfinite(known).all()):
        bad = known[~torch.isfinite(known)].unique().tolist()
        raise ValueError(
            f"{where} must hold finite values or nan (missing), got {bad}; replace them by finite values, "
            "or by nan to mark the labels missing"
        )


def labelled_mask(target: Tensor, task: Task) -> Tensor:
    """``[N]`` booleans: which images carry a label for ``task`` (a whole row of ``nan`` or ``-1`` is missing)."""
    labelled = task.labelled(target)  # like target
    return labelled if labelled.dim() == 1 else labelled.flatten(1).any(dim=1)  # [N]


def balance(target: Tensor, task: Task) -> str:
    """A short description of how the labels of ``task`` are distributed, for :meth:`TensorMultiTaskDataset.summary`."""
    if not target.is_floating_point():
        known = target[target >= 0]  # [n] (pixels, for segmentation)
        if known.numel() == 0:
            return "no labels"
        counts = torch.bincount(known, minlength=task.num_outputs).float()  # [C]
        frequencies = " ".join(f"{f:.2f}" for f in (counts / counts.sum()).tolist())
        return f"frequencies {frequencies}"
    nan = torch.isnan(target)  # like target
    known = target[~(nan if nan.dim() == 1 else nan.flatten(1).any(dim=1))]  # [n, ...] complete rows only
    if known.numel() == 0:
        return "no labels"
    if task.is_soft_target(target):
        return "mean probabilities " + " ".join(f"{f:.2f}" for f in known.mean(dim=0).tolist())
    if task.kind == "binary":
        return f"positive {known.mean().item():.2f}"
    if task.kind == "edge":
        return f"boundary pixels {known.mean().item():.2f}"
    if task.kind == "multilabel":
        return "positive " + " ".join(f"{f:.2f}" for f in known.mean(dim=0).tolist())
    means = " ".join(f"{m:.2f}" for m in known.mean(dim=0).tolist())
    stds = " ".join(f"{s:.2f}" for s in known.std(dim=0, unbiased=False).tolist())
    return f"mean {means}, std {stds}"


def check_fraction(value: float, name: str) -> float:
    """Raise ``ValueError`` unless ``value`` is a number in ``[0, 1]``; return it as a float."""
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def per_task(
    value: float | dict[str, float], valid: Sequence[str], used: Sequence[str], name: str, default: float
) -> dict[str, float]:
    """Expand a number, or a ``{task: number}`` dict over the ``valid`` task names, to one fraction per task.

    Returns a fraction for every task in ``used``; dict entries for valid tasks that are not used are
    ignored, so one setting can serve datasets built with different task selections.
    """
    if isinstance(value, dict):
        unknown = [t for t in value if t not in valid]
        if unknown:
            raise ValueError(f"{name} names unknown task(s) {unknown}; valid task names are {list(valid)}")
        return {t: check_fraction(value.get(t, default), f"{name}[{t!r}]") for t in used}
    value = check_fraction(value, name)
    return {t: value for t in used}


def drop_labels(target: Tensor, task: Task, fraction: float, generator: torch.Generator) -> Tensor:
    """Keep the labels of ``round(fraction * N)`` images chosen at random, and mark the others missing.

    Missing labels follow :mod:`mtlcourse.tasks`: ``-1`` for class indices, ``nan`` for float targets; a
    per-pixel or multi-value target loses its whole row.

    Example:
        >>> t = drop_labels(torch.arange(4), Task("c", "multiclass", 4), 0.5, torch.Generator().manual_seed(0))
        >>> (t == -1).sum().item()
        2
    """
    N = target.shape[0]
    keep = round(fraction * N)
    if keep == N:
        return target
    order = torch.randperm(N, generator=generator, device=generator.device).to(target.device)  # [N]
    dropped = order[keep:]  # [N - keep]
    target = target.clone()
    target[dropped] = float("nan") if target.is_floating_point() else -1  # a soft target loses its whole row
    return target


def add_label_noise(target: Tensor, task: Task, fraction: float, generator: torch.Generator) -> Tensor:
    """Replace the class of ``round(fraction * N)`` random images by a different class, drawn uniformly.

    Only for ``multiclass`` tasks. Because the new class always differs from the old one, exactly that
    fraction of the labels becomes wrong (apply it before :func:`drop_labels`: missing labels stay missing).

    Example:
        >>> y = torch.zeros(10, dtype=torch.long)
        >>> noisy = add_label_noise(y, Task("c", "multiclass", 3), 0.3, torch.Generator().manual_seed(0))
        >>> (noisy != y).sum().item()
        3
    """
    if task.kind != "multiclass":
        raise ValueError(f"label noise is defined for multiclass tasks; task {task.name!r} is {task.kind}")
    N, C = target.shape[0], task.num_outputs
    flip = round(fraction * N)
    if flip == 0:
        return target
    device = generator.device
    chosen = torch.randperm(N, generator=generator, device=device)[:flip].to(target.device)  # [flip]
    shift = torch.randint(1, C, (flip,), generator=generator, device=device).to(target.device)  # [flip]
    old = target[chosen]  # [flip]
    new = torch.where(old >= 0, (old + shift) % C, old)  # [flip] another class; a missing label stays -1
    target = target.clone()
    target[chosen] = new
    return target


def stream_seed(seed: int, split: str, stream: int) -> int:
    """A distinct generator seed for every (seed, split, stream): splits and label streams never collide."""
    return (seed * len(SPLITS) + SPLITS.index(split)) * 64 + stream


def corrupt_labels(
    targets: dict[str, Tensor],
    all_tasks: dict[str, Task],
    chosen: dict[str, Task],
    label_fraction: float | dict[str, float],
    label_noise: float | dict[str, float],
    seed: int,
    split: str,
    device: torch.device,
) -> dict[str, Tensor]:
    """Apply label noise, then drop labels, each task with its own random stream."""
    names = list(all_tasks)
    multiclass = [n for n in names if all_tasks[n].kind == "multiclass"]
    fractions = per_task(label_fraction, names, list(chosen), "label_fraction", 1.0)
    if isinstance(label_noise, dict):
        not_multiclass = [n for n in label_noise if n in all_tasks and n not in multiclass]
        if not_multiclass:
            raise ValueError(f"label_noise applies to multiclass tasks {multiclass}, got {not_multiclass}")
    noise = per_task(label_noise, names, [n for n in chosen if n in multiclass], "label_noise", 0.0)
    out = dict(targets)
    for name in chosen:
        index = names.index(name)
        if noise.get(name, 0.0) > 0:
            g = torch.Generator(device).manual_seed(stream_seed(seed, split, 1 + index))
            out[name] = add_label_noise(out[name], all_tasks[name], noise[name], g)
        if fractions[name] < 1:
            g = torch.Generator(device).manual_seed(stream_seed(seed, split, 32 + index))
            out[name] = drop_labels(out[name], all_tasks[name], fractions[name], g)
    return out
