"""Data augmentation on in-memory batches, on their own device, that keeps every task's target right.

A transform changes a batch of images ``[B, C, H, W]`` at random and says what that does to each kind of
target (the conventions of :mod:`mtlcourse.tasks`):

- a **photometric** transform (:class:`BrightnessContrast`, :class:`AddNoise`) changes pixel values only: it
  leaves every target unchanged, whatever its kind;
- a **geometric** transform (:class:`HorizontalFlip`, :class:`VerticalFlip`, :class:`RandomShift`) moves
  pixels: per-pixel targets (``segmentation``, ``edge``) move with the image, while what it does to an
  image-level target depends on the task, so the transform must be told. Every image-level task of the
  batch is either declared unchanged (``invariant=("shape", "attributes")``) or given a *target map*
  (``maps={"position": mirror(0)}``, a function that changes the target as the transform changes the
  image); any other task raises ``ValueError`` naming the transform and the task, before the first step.

This is what multi-task learning adds to augmentation: a flip that is harmless for one task (the shape of
an object) silently corrupts another (its position, or the orientation of diagonal stripes). Every random
draw comes from the generator passed to the call, made on that generator's device, and every transform
draws the same numbers whatever its settings, so a seed fixes the run.
:func:`~mtlcourse.train.fit` applies ``augment=`` to training batches only.

Example:
    >>> from mtlcourse.data import MultiShapes
    >>> data = MultiShapes("train", num_images=4, tasks=["shape", "position", "segmentation"])
    >>> flip = HorizontalFlip(invariant=["shape"], maps={"position": mirror(0)})
    >>> images, targets = flip(data.images, data.targets, data.tasks, torch.Generator().manual_seed(0))
    >>> images.shape, sorted(targets)
    (torch.Size([4, 3, 32, 32]), ['position', 'segmentation', 'shape'])

Used in chapter 10.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mtlcourse.data.base import TARGET_DTYPE
from mtlcourse.tasks import PER_PIXEL_KINDS, Task
from mtlcourse.utils import is_whole_number

Targets = dict[str, Tensor]


class Transform:
    """A random change of a batch of images and of its targets; subclasses say which kind they are.

    Call it as ``transform(images, targets, tasks, generator)``: images ``[B, C, H, W]`` in ``[0, 1]``,
    ``targets`` a dict with (at least) one target per task of ``tasks``, and the ``torch.Generator`` every
    draw comes from. It returns the new images (in ``[0, 1]``) and the targets of ``tasks``.
    """

    def __call__(
        self, images: Tensor, targets: Targets, tasks: Mapping[str, Task], generator: torch.Generator
    ) -> tuple[Tensor, Targets]:
        raise NotImplementedError

    def check(self, tasks: Mapping[str, Task]) -> None:
        """Raise ``ValueError`` if this transform cannot keep the target of one of ``tasks`` right."""


class PhotometricTransform(Transform):
    """A transform of pixel values only: every target, of every kind, stays as it is."""

    def __call__(
        self, images: Tensor, targets: Targets, tasks: Mapping[str, Task], generator: torch.Generator
    ) -> tuple[Tensor, Targets]:
        return self.apply(images, generator).clamp(0.0, 1.0), {name: targets[name] for name in tasks}

    def apply(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """The changed images ``[B, C, H, W]`` (clamped to ``[0, 1]`` afterwards)."""
        raise NotImplementedError


class GeometricTransform(Transform):
    """A transform that moves pixels: per-pixel targets move along, image-level tasks must be declared.

    Args:
        invariant: names of the image-level tasks whose label this transform does not change.
        maps: task name to a *target map*, a function that changes an image-level target as the transform
            changes the image (its signature is the subclass's :meth:`GeometricTransform.map_target`).

    Names of tasks that a batch does not have are ignored, so one transform serves several task selections.
    """

    def __init__(
        self, invariant: Sequence[str] = (), maps: Mapping[str, Callable[..., Tensor]] | None = None
    ) -> None:
        if isinstance(invariant, str):
            invariant = (invariant,)
        self.invariant = tuple(invariant)
        self.maps = dict(maps or {})
        both = [name for name in self.invariant if name in self.maps]
        if both:
            raise ValueError(
                f"{type(self).__name__}: task(s) {both} are declared invariant and given a target map; "
                "keep one: invariant if the transform keeps the label, a map if it changes it"
            )
        not_callable = [name for name, fn in self.maps.items() if not callable(fn)]
        if not_callable:
            raise ValueError(f"{type(self).__name__}: the target maps of {not_callable} are not functions")

    def __repr__(self) -> str:
        settings = [f"{k}={v!r}" for k, v in self.settings().items()]
        settings += [f"invariant={self.invariant!r}", f"maps={sorted(self.maps)!r}"]
        return f"{type(self).__name__}({', '.join(settings)})"

    def settings(self) -> dict[str, object]:
        """The transform's own arguments, for ``repr``."""
        return {}

    def check(self, tasks: Mapping[str, Task]) -> None:
        """Raise ``ValueError`` naming a task this transform cannot keep right, and how to fix it."""
        for name, task in tasks.items():
            declared = name in self.invariant or name in self.maps
            if task.kind in PER_PIXEL_KINDS and declared:
                raise ValueError(
                    f"{self!r}: task {name!r} is {task.kind}, a per-pixel target that moves with the image "
                    "by itself; remove it from invariant and maps"
                )
            if task.kind not in PER_PIXEL_KINDS and not declared:
                raise ValueError(
                    f"{self!r} moves the pixels of the images and cannot tell what that does to the "
                    f"{task.kind} task {name!r}: declare it unchanged (invariant=[..., {name!r}]) if a "
                    f"transformed image keeps its label, give it a target map (maps={{{name!r}: fn}}) that "
                    f"changes the label as the transform changes the image, or train {name!r} without this "
                    "transform"
                )

    def __call__(
        self, images: Tensor, targets: Targets, tasks: Mapping[str, Task], generator: torch.Generator
    ) -> tuple[Tensor, Targets]:
        self.check(tasks)
        params = self.draw(images, generator)
        size = (images.shape[-2], images.shape[-1])  # (H, W)
        out = {name: self.target(targets[name], task, params, size) for name, task in tasks.items()}
        return self.move_pixels(images, params, fill=None), out

    def target(self, target: Tensor, task: Task, params: Tensor, size: tuple[int, int]) -> Tensor:
        """The target of ``task`` for the transformed images, by the rule of the module docstring."""
        if task.kind in PER_PIXEL_KINDS:
            missing = -1 if TARGET_DTYPE[task.kind] == "long" else math.nan
            return self.move_pixels(target[:, None], params, fill=missing)[:, 0]  # [B, H, W]
        if task.name in self.invariant:
            return target
        return self.map_target(self.checked_map(task.name, target), target, params, size)

    def checked_map(self, name: str, target: Tensor) -> Callable[..., Tensor]:
        """The user's target map of task ``name``, raising ``ValueError`` if it returns anything unlike ``target``."""
        fn = self.maps[name]

        def checked(*args: Tensor) -> Tensor:
            changed = fn(*args)
            if (
                isinstance(changed, Tensor)
                and changed.shape == target.shape
                and changed.dtype == target.dtype
            ):
                return changed
            got = f"{list(changed.shape)} {changed.dtype}" if isinstance(changed, Tensor) else type(changed)
            raise ValueError(
                f"{self!r}: the target map of task {name!r} must return a tensor like its target, "
                f"{list(target.shape)} {target.dtype}, got {got}"
            )

        return checked

    def draw(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """This batch's random parameters, one row per image, on the images' device."""
        raise NotImplementedError

    def move_pixels(self, x: Tensor, params: Tensor, fill: float | None) -> Tensor:
        """``x`` ``[B, K, H, W]`` transformed; pixels that come from outside the image get ``fill``."""
        raise NotImplementedError

    def map_target(
        self, fn: Callable[..., Tensor], target: Tensor, params: Tensor, size: tuple[int, int]
    ) -> Tensor:
        """Apply the user's target map ``fn`` to an image-level ``target`` ``[B, ...]`` of images of ``size`` ``(H, W)``."""
        raise NotImplementedError


class Flip(GeometricTransform):
    """Mirror each image, with probability ``p``, along the axis ``dim`` (the base of the two flips).

    A target map ``fn(target) -> target`` returns the target of every image of the batch as if it were
    mirrored; the flip keeps it only for the images it mirrors.
    """

    dim = -1

    def __init__(
        self,
        p: float = 0.5,
        invariant: Sequence[str] = (),
        maps: Mapping[str, Callable[[Tensor], Tensor]] | None = None,
    ) -> None:
        super().__init__(invariant, maps)
        if not 0 <= p <= 1:
            raise ValueError(f"{type(self).__name__}: p must be a probability in [0, 1], got {p!r}")
        self.p = p

    def settings(self) -> dict[str, object]:
        return {"p": self.p}

    def draw(self, images: Tensor, generator: torch.Generator) -> Tensor:
        u = torch.rand(images.shape[0], generator=generator, device=generator.device)  # [B]
        return (u < self.p).to(images.device)  # [B] which images are mirrored

    def move_pixels(self, x: Tensor, params: Tensor, fill: float | None) -> Tensor:
        flipped = params.view(-1, *[1] * (x.dim() - 1))  # [B] -> [B, 1, 1, 1]
        return torch.where(flipped, x.flip(self.dim), x)  # [B, K, H, W]

    def map_target(
        self, fn: Callable[..., Tensor], target: Tensor, params: Tensor, size: tuple[int, int]
    ) -> Tensor:
        flipped = params.view(-1, *[1] * (target.dim() - 1))  # [B] -> [B, 1...] like target
        return torch.where(flipped, fn(target), target)


class HorizontalFlip(Flip):
    """Mirror each image left to right with probability ``p``.

    Per-pixel targets are mirrored with their image. Image-level tasks need a declaration (module
    docstring); for MultiShapes, ``shape``, ``color``, ``count``, ``size`` and ``attributes`` keep their label,
    the ``position`` ``(x, y)`` needs ``mirror(0)`` (``x`` becomes ``1 - x``), and ``background`` needs
    ``swap_classes({2: 3, 3: 2})``: mirrored diagonal stripes rise where they fell.

    Args:
        p: the probability that an image is mirrored.
        invariant: image-level tasks whose label a mirrored image keeps.
        maps: task name to ``fn(target [B, ...]) -> target``, the targets as if every image were mirrored.

    Example:
        >>> from mtlcourse.tasks import Task
        >>> tasks = {"mask": Task("mask", "segmentation", 2), "xy": Task("xy", "regression", 2)}
        >>> images = torch.tensor([[[[0.0, 0.5, 1.0]]]])  # one image [1, 1, 1, 3]
        >>> targets = {"mask": torch.tensor([[[0, 0, 1]]]), "xy": torch.tensor([[0.9, 0.5]])}
        >>> flip = HorizontalFlip(p=1.0, maps={"xy": mirror(0)})
        >>> out, new = flip(images, targets, tasks, torch.Generator().manual_seed(0))
        >>> out.flatten().tolist(), new["mask"].flatten().tolist(), new["xy"]
        ([1.0, 0.5, 0.0], [1, 0, 0], tensor([[0.1000, 0.5000]]))

    Used in chapter 10.
    """

    dim = -1


class VerticalFlip(Flip):
    """Mirror each image top to bottom with probability ``p``.

    As :class:`HorizontalFlip`, along the other axis: a position needs ``mirror(1)``; for MultiShapes a
    triangle then points down (still a triangle, but one the test images never show) and diagonal stripes
    swap (``swap_classes({2: 3, 3: 2})``).

    Args:
        p: the probability that an image is mirrored.
        invariant: image-level tasks whose label a mirrored image keeps.
        maps: task name to ``fn(target [B, ...]) -> target``, the targets as if every image were mirrored.

    Example:
        >>> images = torch.tensor([[[[0.0], [1.0]]]])  # one image [1, 1, 2, 1]
        >>> out, _ = VerticalFlip(p=1.0)(images, {}, {}, torch.Generator().manual_seed(0))
        >>> out.flatten().tolist()
        [1.0, 0.0]

    Used in chapter 10.
    """

    dim = -2


class RandomShift(GeometricTransform):
    """Move each image by a random whole number of pixels, up to ``max_shift`` along each axis.

    Each image gets its own ``(dx, dy)``, uniform on ``{-max_shift, ..., max_shift}`` (positive: right and
    down), the pixel at ``(x, y)`` moving to ``(x + dx, y + dy)``: the random crop of a zero-padded image.
    Pixels that come in from outside the image get ``fill`` in the image and are marked *missing* in
    per-pixel targets (``-1`` or ``nan``), so the loss skips them rather than learn a label nobody drew.
    An object near the border can leave the image, which changes labels that count or name objects: that is
    for the learner to measure, not for the transform to hide.

    Args:
        max_shift: the largest shift in pixels, a whole number (0 leaves the images as they are).
        fill: the value of the pixels that come in from outside, in ``[0, 1]``.
        invariant: image-level tasks whose label a shifted image keeps.
        maps: task name to ``fn(target [B, ...], shift [B, 2]) -> target``, with ``shift`` each image's
            ``(dx / W, dy / H)``, the shift as a fraction of the image's side; ``shift_position(0, 1)``
            moves an ``(x, y)`` position given in fractions of the side.

    Example:
        >>> images = torch.arange(1.0, 5.0).view(1, 1, 1, 4) / 4  # [1, 1, 1, 4]
        >>> shift = RandomShift(max_shift=1)
        >>> out, _ = shift(images, {}, {}, torch.Generator().manual_seed(7))  # this draw: dx = -1, dy = 0
        >>> out.flatten().tolist()
        [0.5, 0.75, 1.0, 0.0]

    Used in chapter 10.
    """

    def __init__(
        self,
        max_shift: int = 2,
        fill: float = 0.0,
        invariant: Sequence[str] = (),
        maps: Mapping[str, Callable[[Tensor, Tensor], Tensor]] | None = None,
    ) -> None:
        super().__init__(invariant, maps)
        if not is_whole_number(max_shift, 0):
            raise ValueError(
                f"RandomShift: max_shift must be a whole number of pixels, at least 0, got {max_shift!r}"
            )
        if not 0 <= fill <= 1:
            raise ValueError(f"RandomShift: fill must be in [0, 1] like the images, got {fill!r}")
        self.max_shift, self.fill = max_shift, fill

    def settings(self) -> dict[str, object]:
        return {"max_shift": self.max_shift, "fill": self.fill}

    def draw(self, images: Tensor, generator: torch.Generator) -> Tensor:
        m = self.max_shift
        shift = torch.randint(-m, m + 1, (images.shape[0], 2), generator=generator, device=generator.device)
        return shift.to(images.device)  # [B, 2] (dx, dy) in pixels

    def move_pixels(self, x: Tensor, params: Tensor, fill: float | None) -> Tensor:
        m, (B, K, H, W) = self.max_shift, x.shape
        value = self.fill if fill is None else fill
        padded = F.pad(x, (m, m, m, m), value=value)  # [B, K, H + 2m, W + 2m]
        rows = torch.arange(H, device=x.device) + m - params[:, 1:]  # [B, H] source row of each row
        cols = torch.arange(W, device=x.device) + m - params[:, :1]  # [B, W] source column of each column
        b = torch.arange(B, device=x.device).view(B, 1, 1, 1)  # [B, 1, 1, 1]
        k = torch.arange(K, device=x.device).view(1, K, 1, 1)  # [1, K, 1, 1]
        return padded[b, k, rows[:, None, :, None], cols[:, None, None, :]]  # [B, K, H, W]

    def map_target(
        self, fn: Callable[..., Tensor], target: Tensor, params: Tensor, size: tuple[int, int]
    ) -> Tensor:
        H, W = size
        shift = params / torch.tensor([W, H], device=params.device, dtype=torch.float32)  # [B, 2] fractions
        return fn(target, shift)


class BrightnessContrast(PhotometricTransform):
    r"""Scale each image's contrast and brightness by random factors; every target stays as it is.

    .. math:: x' = \operatorname{clamp}\big(b\,(\bar x + c\,(x - \bar x)),\ 0,\ 1\big), \quad
        b \sim U[1 - \beta, 1 + \beta],\ c \sim U[1 - \gamma, 1 + \gamma]

    with :math:`\bar x` the image's mean over its pixels and channels. Both factors are drawn for every
    image, whatever :math:`\beta` and :math:`\gamma`.

    Args:
        brightness: :math:`\beta`, in ``[0, 1]``.
        contrast: :math:`\gamma`, in ``[0, 1]``.

    Example:
        >>> images = torch.full((2, 3, 4, 4), 0.5)
        >>> out, _ = BrightnessContrast(0.0, 0.5)(images, {}, {}, torch.Generator().manual_seed(0))
        >>> torch.equal(out, images)  # a flat image has no contrast to change
        True

    Used in chapter 10.
    """

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2) -> None:
        for name, value in (("brightness", brightness), ("contrast", contrast)):
            if not 0 <= value <= 1:
                raise ValueError(f"BrightnessContrast: {name} must be in [0, 1], got {value!r}")
        self.brightness, self.contrast = brightness, contrast

    def __repr__(self) -> str:
        return f"BrightnessContrast(brightness={self.brightness!r}, contrast={self.contrast!r})"

    def apply(self, images: Tensor, generator: torch.Generator) -> Tensor:
        u = torch.rand(2, images.shape[0], generator=generator, device=generator.device)  # [2, B]
        u = (2 * u - 1).to(images.device).view(2, -1, 1, 1, 1)  # [2, B] -> [2, B, 1, 1, 1] in [-1, 1]
        b, c = 1 + self.brightness * u[0], 1 + self.contrast * u[1]  # [B, 1, 1, 1] each
        mean = images.mean(dim=(1, 2, 3), keepdim=True)  # [B, 1, 1, 1]
        return b * (mean + c * (images - mean))  # [B, C, H, W]


class AddNoise(PhotometricTransform):
    """Add independent noise of standard deviation ``std`` to every pixel and channel; targets stay as they are.

    The noise is uniform on :math:`[-\\sqrt{3}\\,\\sigma, \\sqrt{3}\\,\\sigma]` (standard deviation
    :math:`\\sigma`), like the grain of :class:`~mtlcourse.data.synthetic.MultiShapes`: uniform draws are the same on
    every machine. The result is clamped to ``[0, 1]``.

    Args:
        std: the standard deviation :math:`\\sigma`, at least 0.

    Example:
        >>> out, _ = AddNoise(0.1)(torch.full((1, 3, 8, 8), 0.5), {}, {}, torch.Generator().manual_seed(0))
        >>> round((out - 0.5).std().item(), 1)
        0.1

    Used in chapter 10.
    """

    def __init__(self, std: float = 0.05) -> None:
        if not std >= 0:
            raise ValueError(f"AddNoise: std must be at least 0, got {std!r}")
        self.std = std

    def __repr__(self) -> str:
        return f"AddNoise(std={self.std!r})"

    def apply(self, images: Tensor, generator: torch.Generator) -> Tensor:
        u = torch.rand(images.shape, generator=generator, device=generator.device).to(images.device)
        half_width = math.sqrt(3) * self.std  # a uniform on [-a, a] has standard deviation a / sqrt(3)
        return images + (2 * u - 1) * half_width  # [B, C, H, W]


class Compose(Transform):
    """Apply ``transforms`` one after the other; each checks the tasks by its own declarations.

    Example:
        >>> augment = Compose([HorizontalFlip(invariant=["shape"]), AddNoise(0.05)])
        >>> augment
        Compose([HorizontalFlip(p=0.5, invariant=('shape',), maps=[]), AddNoise(std=0.05)])

    Used in chapter 10.
    """

    def __init__(self, transforms: Sequence[Transform]) -> None:
        not_transforms = [type(t).__name__ for t in transforms if not isinstance(t, Transform)]
        if not_transforms:
            raise ValueError(f"Compose takes mtlcourse.augment transforms, got {not_transforms}")
        self.transforms = list(transforms)

    def __repr__(self) -> str:
        return f"Compose([{', '.join(repr(t) for t in self.transforms)}])"

    def check(self, tasks: Mapping[str, Task]) -> None:
        for transform in self.transforms:
            transform.check(tasks)

    def __call__(
        self, images: Tensor, targets: Targets, tasks: Mapping[str, Task], generator: torch.Generator
    ) -> tuple[Tensor, Targets]:
        self.check(tasks)
        for transform in self.transforms:
            images, targets = transform(images, targets, tasks, generator)
        return images, {name: targets[name] for name in tasks}


def mirror(*columns: int) -> Callable[[Tensor], Tensor]:
    """A flip's target map: ``columns`` of a ``[B, D]`` target in ``[0, 1]`` become ``1 - value``.

    Example:
        >>> mirror(0)(torch.tensor([[0.2, 0.7]]))
        tensor([[0.8000, 0.7000]])
    """

    def fn(target: Tensor) -> Tensor:
        out = target.clone()
        out[:, list(columns)] = 1 - target[:, list(columns)]  # [B, len(columns)]
        return out

    return fn


def swap_classes(mapping: Mapping[int, int]) -> Callable[[Tensor], Tensor]:
    """A flip's target map: class ``k`` of a ``[B]`` class-index target becomes ``mapping[k]`` (others stay).

    Example:
        >>> swap_classes({2: 3, 3: 2})(torch.tensor([0, 2, 3, -1]))
        tensor([ 0,  3,  2, -1])
    """

    def fn(target: Tensor) -> Tensor:
        out = target.clone()
        for old, new in mapping.items():
            out[target == old] = new
        return out

    return fn


def shift_position(x: int = 0, y: int = 1) -> Callable[[Tensor, Tensor], Tensor]:
    """A :class:`RandomShift` target map: columns ``x`` and ``y`` of a ``[B, D]`` position move with the image.

    Example:
        >>> shift_position()(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.25, -0.125]]))
        tensor([[0.7500, 0.3750]])
    """

    def fn(target: Tensor, shift: Tensor) -> Tensor:
        out = target.clone()
        out[:, x] = target[:, x] + shift[:, 0]  # [B]
        out[:, y] = target[:, y] + shift[:, 1]  # [B]
        return out

    return fn
