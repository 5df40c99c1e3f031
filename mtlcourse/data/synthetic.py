"""MultiShapes: the course's embedded dataset, generated from a seed in a fraction of a second.

Used in chapter 00 and every chapter after.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from mtlcourse.data.base import SPLITS, TensorMultiTaskDataset, corrupt_labels, stream_seed
from mtlcourse.tasks import Task, select_tasks
from mtlcourse.utils import get_device

SHAPES = ("circle", "square", "triangle", "cross")
COLORS = ("red", "green", "blue", "yellow")
#: Base RGB of each colour; every object multiplies it by its own brightness in ``[0.7, 1]``.
RGB = ((0.9, 0.15, 0.15), (0.15, 0.75, 0.2), (0.2, 0.35, 1.0), (0.95, 0.85, 0.1))
ORIENTATIONS = ("horizontal", "vertical", "rising diagonal", "falling diagonal")
DEFAULT_NUM_IMAGES = {"train": 4000, "val": 1000, "test": 1000}
BRIGHTNESS = (0.7, 1.0)
BACKGROUND_LEVEL = 0.4
STRIPE_PHASES = 8  # the stripes' phase takes one of this many values
OUTSIDE = 1e4  # a separable term this large puts a pixel outside every shape
CROSS_ARM = 1.0 / 3.0  # half-width of a cross's arms, relative to the object's half side
#: Area of each shape as a fraction of its square bounding box (pi/4, 1, 1/2, and 1 - 4 (1/3)^2 for the cross).
AREA = (math.pi / 4, 1.0, 0.5, 1.0 - 4 * ((1 - CROSS_ARM) / 2) ** 2)
#: Any other object's side is at most this fraction of the side it would need to match the main object's area.
MAIN_MARGIN = 0.8
#: ``pos_weight`` of the ``edges`` task: about 18 non-boundary pixels per boundary pixel in default images (5%
#: of the pixels lie on a boundary). Weighting the rare boundary pixels this much gives both classes the same
#: total weight, as HED's class-balanced loss does; with the plain loss a small network first learns to
#: predict no boundary at all, which already has a small loss, and its boundary F1 stays 0 for many epochs.
EDGE_POS_WEIGHT = 18.0
#: What an empty grid cell holds. Class -1 means no object; a side of 1 avoids dividing by 0.
EMPTY_CELL = {"cls": -1, "cx": 0.0, "cy": 0.0, "side": 1.0, "brightness": 0.0, "color": 0}


def make_tasks(max_objects: int = 3) -> dict[str, Task]:
    """The MultiShapes tasks, in their fixed order; only ``count`` depends on ``max_objects``.

    Example:
        >>> make_tasks(max_objects=5)["count"].class_names
        ('1', '2', '3', '4', '5')
    """
    tasks = [
        Task("shape", "multiclass", 4, SHAPES, "shape of the main object (the one with the largest area)"),
        Task("color", "multiclass", 4, COLORS, "colour of the main object"),
        Task(
            "count",
            "multiclass",
            max(max_objects, 2),  # a multiclass task needs two classes even when every image has one object
            tuple(str(k + 1) for k in range(max(max_objects, 2))),
            "number of objects; class k means k + 1 objects",
        ),
        Task("size", "regression", 1, ("size",), "side of the main object divided by the image side"),
        Task("position", "regression", 2, ("x", "y"), "centre of the main object, (x, y) in [0, 1]^2"),
        Task("attributes", "multilabel", 4, SHAPES, "which kinds of shape appear in the image"),
        Task("segmentation", "segmentation", 5, ("background", *SHAPES), "per pixel: background or shape"),
        Task(
            "edges",
            "edge",
            1,
            ("boundary",),
            "per pixel: on an object's boundary or not",
            pos_weight=EDGE_POS_WEIGHT,
        ),
        Task("background", "multiclass", 4, ORIENTATIONS, "orientation of the faint background stripes"),
    ]
    return {task.name: task for task in tasks}


#: The tasks of a MultiShapes dataset with the default ``max_objects=3``.
TASKS = make_tasks()


class MultiShapes(TensorMultiTaskDataset):
    r"""Coloured shapes on a striped, noisy background, with nine tasks per image.

    Every image holds between one and ``max_objects`` opaque shapes (circle, square, triangle, cross) in
    four colours, each in its own cell of a ``g x g`` grid (``g = ceil(sqrt(max_objects))``) and at least
    one pixel from the cell's edges, so objects never overlap or touch. The *main object* is the one with
    the largest area, at least :math:`1/0.8^2 \approx 1.56` times that of any other. Behind the objects
    lie faint stripes of one of four orientations (hidden where the objects are), and grey pixel noise
    covers everything.

    ================  ============  =======  =======================================  ===========================
    task              kind          outputs  target                                   visual features it needs
    ================  ============  =======  =======================================  ===========================
    ``shape``         multiclass    4        shape of the main object                 its outline: edges, corners
    ``color``         multiclass    4        colour of the main object                colour inside the object
    ``count``         multiclass    M        number of objects (class k: k + 1)       blobs, whatever their shape
    ``size``          regression    1        side of the main object / image side     extent of the largest blob
    ``position``      regression    2        (x, y) centre of the main object         where the largest blob is
    ``attributes``    multilabel    4        which shapes appear anywhere             outlines of every object
    ``segmentation``  segmentation  5        per pixel: background or shape class     outlines, pixel by pixel
    ``edges``         edge          1        per pixel: object pixel by background    outlines, pixel by pixel
    ``background``    multiclass    4        orientation of the background stripes    the stripes only
    ================  ============  =======  =======================================  ===========================

    ``edges`` is scored with the boundary F1 (:func:`mtlcourse.metrics.boundary_f1`: a boundary found within
    a pixel counts), and its loss weighs the rare boundary pixels :data:`EDGE_POS_WEIGHT` times
    (``Task.pos_weight``); ``dataclasses.replace(task, pos_weight=1.0)`` gives the plain loss.

    Which tasks share features, and so what to expect when they share a network:

    - **Outline tasks** (``shape``, ``attributes``, ``segmentation``, ``edges``) all need the boundaries and
      corners of the objects; features learned for one serve the others, so sharing should help.
    - **Geometry tasks** (``count``, ``size``, ``position``) need to tell objects from background and where
      they are, but not their outline in detail; a segmentation mask contains all three.
    - ``color`` needs the colour inside the main object. It shares with ``shape``, ``size`` and
      ``position`` only the need to find the largest object; its labels relate to ``shape`` only when
      ``color_shape_correlation > 0``.
    - ``background`` needs only the stripes, which the objects hide; its label is drawn independently of
      everything else. It is the *unrelated task*: sharing cannot help it or be helped by it, and may hurt
      (negative transfer, chapter 09).

    Controls (each changes one thing; the same seed keeps the rest):

    - ``imbalance`` :math:`\rho`: shape class :math:`k` (of :math:`K = 4`) has probability
      :math:`p_k \propto \rho^{-k/(K-1)}`, so the most frequent class is :math:`\rho` times as frequent as
      the rarest (``circle`` most, ``cross`` least). It applies to every object, so the main object too.
    - ``color_shape_correlation`` :math:`r`: each object's colour is the colour paired with its shape
      (circle-red, square-green, triangle-blue, cross-yellow) with probability :math:`r`, otherwise uniform:
      :math:`P(c \mid k) = r\,[c = k] + (1 - r)/4`.
    - ``label_fraction``: per task (a number for all, or a dict), the fraction of images that keep their
      label; the others are marked missing (``-1`` or ``nan``, see :mod:`mtlcourse.tasks`).
    - ``label_noise``: per multiclass task, the fraction of labels replaced by a different class drawn
      uniformly. Images never change; pass it to the training split only to keep evaluation clean.
    - difficulty: ``noise`` (pixel noise std), ``size_range`` (object side as a fraction of its grid cell),
      ``stripe_contrast`` (amplitude of the stripes), ``image_size``.

    Splits ``train``, ``val`` and ``test`` come from the same ``seed`` through separate random streams, so
    they never share an image. Generation is vectorised over all images with a :class:`torch.Generator` on
    ``device``: the same arguments give the same tensors on every CPU, and on a GPU the same tensors for
    that kind of device (GPU images differ from CPU ones). Label controls use their own streams, so changing
    them, or the selected tasks, never changes the images.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_images: images in this split; ``None`` gives 4000 (train) or 1000 (val, test).
        image_size: side of the square RGB images in pixels; at least 8 per grid cell.
        tasks: names of the tasks to keep, in order; ``None`` keeps all nine.
        seed: non-negative integer that fixes every image and label.
        max_objects: 1 to 9 objects per image; the count is uniform on ``1..max_objects``.
        noise: standard deviation of the (uniform, grey) pixel noise, at least 0.
        label_fraction: fraction of labelled images, in ``[0, 1]``; a number or ``{task: fraction}``.
        imbalance: ratio of the most to the least frequent shape class, at least 1.
        label_noise: fraction of wrong labels of multiclass tasks, in ``[0, 1]``; a number (every multiclass
            task) or ``{task: fraction}``.
        color_shape_correlation: probability, in ``[0, 1]``, that an object has its shape's paired colour.
        size_range: ``(smallest, largest)`` object side as a fraction of its grid cell (less a one-pixel
            border), ``0 < lo <= hi <= 1``.
        stripe_contrast: amplitude of the background stripes, in ``[0, 0.5]``.
        device: where to generate and keep the data; ``None`` is the CPU.

    Shape:
        images ``[N, 3, S, S]`` in ``[0, 1]``; targets as in the table (``[N]``, ``[N, D]`` or ``[N, S, S]``).

    Example:
        >>> data = MultiShapes("train", num_images=8, seed=0)
        >>> data.images.shape, data.targets["segmentation"].shape
        (torch.Size([8, 3, 32, 32]), torch.Size([8, 32, 32]))
        >>> data.tasks["shape"].class_names
        ('circle', 'square', 'triangle', 'cross')
        >>> data.select(["shape", "size"])
        MultiShapes(8 images [3, 32, 32], tasks=['shape', 'size'], device=cpu)
        >>> bool((MultiShapes("train", num_images=8, seed=0).images == data.images).all())
        True

    Used in chapter 00 and every chapter after.
    """

    def __init__(
        self,
        split: str = "train",
        num_images: int | None = None,
        image_size: int = 32,
        tasks: Sequence[str] | None = None,
        seed: int = 0,
        max_objects: int = 3,
        noise: float = 0.1,
        label_fraction: float | dict[str, float] = 1.0,
        imbalance: float = 1.0,
        label_noise: float | dict[str, float] = 0.0,
        color_shape_correlation: float = 0.0,
        size_range: tuple[float, float] = (0.5, 1.0),
        stripe_contrast: float = 0.08,
        device: str | torch.device | None = None,
    ) -> None:
        num_images = DEFAULT_NUM_IMAGES.get(split, 0) if num_images is None else num_images
        check_arguments(split, num_images, image_size, seed, max_objects, noise, imbalance)
        check_controls(color_shape_correlation, size_range, stripe_contrast)
        all_tasks = make_tasks(max_objects)
        chosen = select_tasks(all_tasks, tasks)
        device = get_device(device)
        images, targets = generate(
            num_images,
            image_size,
            max_objects,
            noise,
            imbalance,
            color_shape_correlation,
            size_range,
            stripe_contrast,
            generator=torch.Generator(device).manual_seed(stream_seed(seed, split, 0)),
            keep=list(chosen),
        )
        targets = corrupt_labels(targets, all_tasks, chosen, label_fraction, label_noise, seed, split, device)
        super().__init__(images, targets, chosen)
        self.split, self.seed, self.max_objects = split, seed, max_objects


def check_arguments(
    split: str, num_images: int, image_size: int, seed: int, max_objects: int, noise: float, imbalance: float
) -> None:
    """Raise ``ValueError`` naming the first argument of :class:`MultiShapes` that is out of range."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(num_images, int) or num_images < 1:
        raise ValueError(f"num_images must be a positive integer, got {num_images!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(max_objects, int) or not 1 <= max_objects <= 9:
        raise ValueError(f"max_objects must be an integer in [1, 9], got {max_objects!r}")
    grid = grid_side(max_objects)
    if not isinstance(image_size, int) or image_size < 8 * grid:
        raise ValueError(
            f"image_size must be an integer of at least {8 * grid} (8 pixels per grid cell with "
            f"max_objects={max_objects}), got {image_size!r}"
        )
    if not noise >= 0:
        raise ValueError(f"noise must be at least 0, got {noise}")
    if not imbalance >= 1:
        raise ValueError(f"imbalance must be at least 1 (1 is balanced), got {imbalance}")


def check_controls(correlation: float, size_range: tuple[float, float], stripe_contrast: float) -> None:
    """Raise ``ValueError`` for the remaining out-of-range arguments of :class:`MultiShapes`."""
    if not 0 <= correlation <= 1:
        raise ValueError(f"color_shape_correlation must be in [0, 1], got {correlation}")
    if len(size_range) != 2 or not 0 < size_range[0] <= size_range[1] <= 1:
        raise ValueError(f"size_range must be (lo, hi) with 0 < lo <= hi <= 1, got {size_range}")
    if not 0 <= stripe_contrast <= 0.5:
        raise ValueError(f"stripe_contrast must be in [0, 0.5], got {stripe_contrast}")


def shape_probabilities(imbalance: float, device: torch.device) -> Tensor:
    r"""Class probabilities :math:`p_k \propto \rho^{-k/(K-1)}`: the first is ``imbalance`` times the last.

    Computed in float64 on the CPU (some accelerators have no float64), then moved to ``device``.
    """
    K = len(SHAPES)
    p = imbalance ** -(torch.arange(K, dtype=torch.float64) / (K - 1))  # [K]
    return (p / p.sum()).float().to(device)  # [K]


def grid_side(max_objects: int) -> int:
    """Side ``g`` of the grid of cells, ``ceil(sqrt(max_objects))``: one cell per possible object."""
    return math.isqrt(max_objects - 1) + 1


def sample_scene(
    N: int,
    image_size: int,
    max_objects: int,
    imbalance: float,
    correlation: float,
    size_range: tuple[float, float],
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """Draw every object's class, colour, size and place, and each image's background, for ``N`` images.

    Objects live in slots ``[N, M]``; slot ``j`` is used when ``j < count``, in its own grid cell. All
    draws are made whatever the controls, so changing a control changes only what it controls.
    """
    M, device, g = max_objects, generator.device, grid_side(max_objects)
    w = (image_size // g) / image_size  # cell side as a fraction of the image (a margin may stay empty)
    border = 1.0 / image_size  # objects keep one pixel from their cell's edges, so they never touch
    usable = w - 2 * border  # room for an object in a cell
    u = torch.rand(3, N, generator=generator, device=device)  # [3, N] per-image draws
    u_obj = torch.rand(7, N, M, generator=generator, device=device)  # [7, N, M] per-object draws
    order = torch.rand(N, g * g, generator=generator, device=device).argsort(dim=1, stable=True)  # [N, g*g]
    cells = order[:, :M]  # [N, M] a distinct random cell for every slot
    count = (u[0] * M).long().clamp(max=M - 1) + 1  # [N] uniform on 1..M
    cdf = shape_probabilities(imbalance, device).cumsum(0)  # [K]
    cls = torch.searchsorted(cdf, u_obj[0].contiguous()).clamp(max=len(SHAPES) - 1)  # [N, M]
    uniform_color = (u_obj[1] * len(COLORS)).long().clamp(max=len(COLORS) - 1)  # [N, M]
    color = torch.where(u_obj[2] < correlation, cls, uniform_color)  # [N, M]
    side = object_sides(cls, size_range[0] + (size_range[1] - size_range[0]) * u_obj[3]) * usable  # [N, M]
    cx = (cells % g).float() * w + border + side / 2 + (usable - side) * u_obj[4]  # [N, M] inside its cell
    cy = (cells // g).float() * w + border + side / 2 + (usable - side) * u_obj[5]  # [N, M]
    active = torch.arange(M, device=device) < count[:, None]  # [N, M]
    return {
        "count": count, "cls": cls, "color": color, "side": side, "cx": cx, "cy": cy, "cell": cells,
        "active": active,
        "brightness": BRIGHTNESS[0] + (BRIGHTNESS[1] - BRIGHTNESS[0]) * u_obj[6],  # [N, M]
        "orientation": (u[1] * len(ORIENTATIONS)).long().clamp(max=len(ORIENTATIONS) - 1),  # [N]
        "phase": (u[2] * STRIPE_PHASES).long().clamp(max=STRIPE_PHASES - 1),  # [N]
    }  # fmt: skip


def object_sides(cls: Tensor, drawn: Tensor) -> Tensor:
    r"""Sides ``[N, M]`` (fractions of a cell) that make slot 0 the main object: the one with the largest area.

    Slot 0 keeps its drawn side :math:`s_0`; any other object :math:`j` whose area would come within
    :data:`MAIN_MARGIN` squared of the main object's is shrunk to

    .. math:: s_j \leftarrow \min\Big(s_j,\ m\, s_0 \sqrt{a_{k_0} / a_{k_j}}\Big),

    with :math:`a_k` the fill fraction of shape :math:`k` (:data:`AREA`) and :math:`m` the margin. The main
    object's class and side are thus drawn like any other object's: ``imbalance`` holds for the ``shape``
    task exactly, and the main object is never a close call.
    """
    fill = torch.tensor(AREA, device=cls.device)[cls]  # [N, M] area / bounding-box area
    limit = MAIN_MARGIN * drawn[:, :1] * torch.sqrt(fill[:, :1] / fill)  # [N, M] largest side allowed
    is_main = torch.arange(cls.shape[1], device=cls.device) == 0  # [M]
    return torch.where(is_main, drawn, torch.minimum(drawn, limit))  # [N, M]


def cell_table(scene: dict[str, Tensor], g: int) -> dict[str, Tensor]:
    """Move the per-slot object parameters ``[N, M]`` to per-cell tables ``[N, g, g]``; empty cells get class -1."""
    N, device = scene["cls"].shape[0], scene["cls"].device
    values = dict(scene, cls=torch.where(scene["active"], scene["cls"], -1))  # [N, M] each
    table = {}
    for key, empty in EMPTY_CELL.items():
        flat = torch.full((N, g * g), empty, dtype=values[key].dtype, device=device)  # [N, g*g]
        table[key] = flat.scatter_(1, scene["cell"], values[key]).view(N, g, g)  # [N, g, g]
    return table


def axis_offsets(table: dict[str, Tensor], image_size: int, g: int) -> tuple[Tensor, Tensor]:
    """Offsets of each cell's pixel columns and rows from its object's centre, in half-sides: ``[N, g, g, c]``."""
    S, c, device = image_size, image_size // g, table["cx"].device
    local = torch.arange(c, device=device, dtype=torch.float32)  # [c]
    centres = ((torch.arange(g, device=device)[:, None] * c + local) + 0.5) / S  # [g, c] pixel centres
    half = table["side"][..., None] / 2  # [N, g, g, 1]
    dx = (centres[None, None, :, :] - table["cx"][..., None]) / half  # [N, g, g, c] columns of cell (gy, gx)
    dy = (centres[None, :, None, :] - table["cy"][..., None]) / half  # [N, g, g, c] rows of cell (gy, gx)
    return dx, dy


def separable_terms(cls: Tensor, dx: Tensor, dy: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""Write every shape as :math:`\{F_1(x) + H_1(y) \le 1\} \cup \{F_2(x) + H_2(y) \le 1\}`.

    With offsets in half-sides (the bounding box is :math:`[-1, 1]^2`, y down): a circle is
    :math:`x^2 + y^2 \le 1`; a square is the box; a triangle (apex up) is :math:`2|x| - y \le 1` with
    :math:`|y| \le 1`; a cross is the union of a wide and a tall bar of half-width 1/3. Terms are ``[N, g, g, c]``
    per axis, so the per-pixel work is two broadcast additions: this is what makes generation fast.
    """
    ax, ay = dx.abs(), dy.abs()  # [N, g, g, c]
    big = torch.full_like(dx, OUTSIDE)  # [N, g, g, c] a term that puts a pixel outside any shape
    zero = torch.zeros_like(dx)  # [N, g, g, c]
    in_x, in_y = torch.where(ax <= 1, zero, big), torch.where(ay <= 1, zero, big)  # [N, g, g, c]
    arm_x, arm_y = torch.where(ax <= CROSS_ARM, zero, big), torch.where(ay <= CROSS_ARM, zero, big)
    k = cls[..., None]  # [N, g, g, 1] class of the cell's object, -1 when empty
    F1 = torch.where(k == 0, dx * dx, torch.where(k == 2, 2 * ax, torch.where(k < 0, big, in_x)))
    H1 = torch.where(k == 0, dy * dy, torch.where(k == 2, torch.where(ay <= 1, -dy, big), in_y))
    H1 = torch.where(k == 3, arm_y, H1)  # [N, g, g, c] the cross's wide bar
    F2 = torch.where(k == 3, arm_x, big)  # [N, g, g, c] the cross's tall bar; nothing for other shapes
    return F1, H1, F2, in_y


def rasterize(F1: Tensor, H1: Tensor, F2: Tensor, H2: Tensor, out: Tensor) -> Tensor:
    """Mark the pixels inside the objects in ``out``, a boolean view ``[N, g, c, g, c]`` of the images.

    Each plane is one broadcast comparison :math:`F(x) \\le 1 - H(y)` of per-axis terms, written straight
    into ``out`` (cell row, pixel row, cell column, pixel column) without a float intermediate.
    """

    def plane(F: Tensor, H: Tensor, result: Tensor) -> Tensor:
        return torch.le(F.unsqueeze(2), (1 - H).transpose(2, 3).unsqueeze(-1), out=result)  # [N, g, c, g, c]

    plane(F1, H1, out)
    return out.logical_or_(plane(F2, H2, torch.empty_like(out)))  # [N, g, c, g, c]


def stripe_bank(image_size: int, contrast: float, device: torch.device) -> Tensor:
    """Every background, ``[4 * P, 1, S, S]``: grey stripes for each orientation and each of ``P`` phases."""
    S = image_size
    period = max(4.0, S / 8)  # pixels; at least 4 so that every orientation survives the pixel grid
    diag = math.sqrt(0.5)
    # Float64 on the CPU, then float32 on the device: every libm's sine then gives the same backgrounds,
    # on every machine and device (and devices without float64 are fine).
    directions = torch.tensor(
        [[0.0, 1.0], [1.0, 0.0], [diag, diag], [diag, -diag]], dtype=torch.float64
    )  # [4, 2] (x, y) across the stripes: horizontal, vertical, rising (/), falling (\)
    pixels = torch.arange(S, dtype=torch.float64)  # [S]
    along = (
        directions[:, 0, None, None] * pixels + directions[:, 1, None, None] * pixels[:, None]
    )  # [4, S, S]
    phases = 2 * math.pi * torch.arange(STRIPE_PHASES, dtype=torch.float64) / STRIPE_PHASES  # [P]
    wave = torch.sin(2 * math.pi * along[:, None] / period + phases[None, :, None, None])  # [4, P, S, S]
    return (BACKGROUND_LEVEL + contrast * wave).float().reshape(-1, 1, S, S).to(device)  # [4 * P, 1, S, S]


def split_cells(x: Tensor, g: int) -> Tensor:
    """View the top-left ``[L, L]`` pixels (``L = g * c``) of ``[..., S, S]`` as ``[..., g, c, g, c]``."""
    c = x.shape[-1] // g
    return x[..., : g * c, : g * c].unflatten(-1, (g, c)).unflatten(-3, (g, c))  # [..., g, c, g, c]


def canvas(shape: tuple[int, ...], g: int, fill: Tensor | float, like: Tensor) -> Tensor:
    """An uninitialised ``[..., S, S]`` tensor, with ``fill`` in the margin that the ``g x g`` cells leave."""
    out = torch.empty(shape, dtype=like.dtype, device=like.device)  # [..., S, S]
    if shape[-1] % g:  # pixels right of and below the grid belong to no cell
        out.copy_(fill.expand(shape) if isinstance(fill, Tensor) else torch.full_like(out, fill))
    return out


def render(
    scene: dict[str, Tensor], image_size: int, max_objects: int, stripe_contrast: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw the noiseless images ``[N, 3, S, S]``, the segmentation ``[N, S, S]`` and the object mask ``[N, S, S]``.

    Every output is allocated at full size and written through its ``[.., g, c, g, c]`` cell view, so no
    per-pixel tensor is ever copied to change its layout.
    """
    S, g, device = image_size, grid_side(max_objects), scene["cls"].device
    N = scene["cls"].shape[0]
    table = cell_table(scene, g)
    dx, dy = axis_offsets(table, S, g)  # [N, g, g, c] each
    inside = canvas((N, S, S), g, False, torch.empty(0, dtype=torch.bool, device=device))  # [N, S, S]
    rasterize(*separable_terms(table["cls"], dx, dy), out=split_cells(inside, g))  # [N, g, c, g, c]
    c = S // g
    # Per-cell values are repeated along the pixel columns so that the two big `where`s below run over
    # whole image rows (contiguous memory) instead of cell-wide pieces: twice as fast on a CPU.
    cls = (table["cls"] + 1)[:, :, None, :, None].expand(N, g, 1, g, c).contiguous()  # [N, g, 1, g, c]
    segmentation = canvas((N, S, S), g, 0, cls)  # [N, S, S]
    torch.where(
        split_cells(inside, g), cls, torch.zeros_like(cls[0, 0, 0, 0, 0]), out=split_cells(segmentation, g)
    )
    rgb = torch.tensor(RGB, device=device)[table["color"]] * table["brightness"][..., None]  # [N, g, g, 3]
    colour = rgb.permute(0, 3, 1, 2)[:, :, :, None, :, None].expand(N, 3, g, 1, g, c).contiguous()
    bank = stripe_bank(S, stripe_contrast, device)  # [4 * P, 1, S, S]
    background = bank[scene["orientation"] * STRIPE_PHASES + scene["phase"]]  # [N, 1, S, S]
    images = canvas((N, 3, S, S), g, background, background)  # [N, 3, S, S]
    torch.where(
        split_cells(inside, g)[:, None], colour, split_cells(background, g), out=split_cells(images, g)
    )  # [N, 3, g, c, g, c]
    return images, segmentation, inside


def edges_of(inside: Tensor) -> Tensor:
    """``[N, S, S]`` floats, 1 on a boundary: object pixels with a 4-neighbour outside every object (or the image)."""
    N, S, _ = inside.shape
    padded = torch.zeros((N, S + 2, S + 2), dtype=torch.bool, device=inside.device)  # [N, S+2, S+2]
    padded[:, 1:-1, 1:-1] = inside
    interior = padded[:, :-2, 1:-1] & padded[:, 2:, 1:-1]  # [N, S, S] pixels above and below are inside
    interior &= padded[:, 1:-1, :-2]
    interior &= padded[:, 1:-1, 2:]
    return (inside & ~interior).float()  # [N, S, S]


def scene_targets(scene: dict[str, Tensor]) -> dict[str, Tensor]:
    """The image-level targets of a scene: everything except the per-pixel ones."""
    kinds = torch.arange(len(SHAPES), device=scene["cls"].device)  # [K]
    present = (scene["cls"][:, :, None] == kinds) & scene["active"][:, :, None]  # [N, M, K]
    return {  # slot 0 holds the main object (see object_sides)
        "shape": scene["cls"][:, 0],  # [N]
        "color": scene["color"][:, 0],  # [N]
        "count": scene["count"] - 1,  # [N]
        "size": scene["side"][:, :1],  # [N, 1]
        "position": torch.stack([scene["cx"][:, 0], scene["cy"][:, 0]], dim=1),  # [N, 2]
        "attributes": present.any(dim=1).float(),  # [N, K]
        "background": scene["orientation"],  # [N]
    }


def generate(
    N: int,
    image_size: int,
    max_objects: int,
    noise: float,
    imbalance: float,
    correlation: float,
    size_range: tuple[float, float],
    stripe_contrast: float,
    generator: torch.Generator,
    keep: list[str],
) -> tuple[Tensor, dict[str, Tensor]]:
    """Images ``[N, 3, S, S]`` and the targets named in ``keep``, drawn with ``generator`` on its device."""
    scene = sample_scene(N, image_size, max_objects, imbalance, correlation, size_range, generator)
    S = image_size
    images, segmentation, inside = render(
        scene, S, max_objects, stripe_contrast
    )  # [N, 3, S, S], [N, S, S] x2
    # Uniform grey noise with standard deviation `noise`: uniform draws are exact on every machine, while
    # a normal sampler's log and cos may round differently from one CPU to the next.
    grain = torch.rand((N, 1, S, S), generator=generator, device=images.device)  # [N, 1, S, S]
    half_width = math.sqrt(3) * noise  # a uniform on [-a, a] has standard deviation a / sqrt(3)
    grain = grain.sub_(0.5).mul_(2 * half_width)  # [N, 1, S, S]
    images = images.add_(grain).clamp_(0.0, 1.0)  # [N, 3, S, S]
    targets = scene_targets(scene)
    targets["segmentation"] = segmentation
    if "edges" in keep:
        targets["edges"] = edges_of(inside)  # [N, S, S]
    return images, {name: targets[name] for name in keep}
