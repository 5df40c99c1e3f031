"""Figures for the course: sample grids, learning curves, confusion matrices, task weights, bars and fronts.

Every function returns the :class:`~matplotlib.figure.Figure` it drew on and never calls ``plt.show()`` or
closes a figure: a notebook displays the figure, a test or a script closes it. Functions that draw a single
panel take an optional ``ax`` to draw into an existing figure; functions that draw a grid make a new
figure. Figures are made with ``plt.subplots`` so that Jupyter shows them, and work with any backend
(``Agg`` in tests and CI).

Used in chapter 00 (:func:`show_samples`), 01 (:func:`plot_history`, :func:`plot_confusion`),
02 (:func:`plot_bars`), 03 (:func:`show_dense_predictions`), 04 (:func:`plot_pareto`), 05
(:func:`plot_weights`), 08 (:func:`plot_tradeoff`), 09 (:func:`plot_affinity`) and 10
(:func:`plot_reliability`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from mtlcourse.metrics import (
    BOUNDARY_TOLERANCE,
    CALIBRATION_BINS,
    boundary_f1,
    boundary_matches,
    reliability_bins,
)
from mtlcourse.models.backbones import probe
from mtlcourse.stats import t_interval
from mtlcourse.tasks import PER_PIXEL_KINDS, Task, select_tasks

RIGHT, WRONG, NEUTRAL = "tab:green", "tab:red", "black"
PANEL_INCHES = 1.8  # side of one image in a sample grid


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """The figure and axes to draw on: ``ax`` and its figure, or a new single-panel figure."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


# ----------------------------------------------------------------------------------------------------------
# Sample grids


def sample_indices(size: int, n: int, seed: int = 0) -> list[int]:
    """The ``min(n, size)`` dataset indices that :func:`show_samples` shows, sorted, chosen by ``seed``.

    Example:
        >>> sample_indices(10, 3, seed=0) == sample_indices(10, 3, seed=0)
        True
        >>> sample_indices(4, 8)
        [0, 1, 2, 3]
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if size < 1:
        raise ValueError("the dataset is empty")
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(size, generator=generator)[: min(n, size)]  # [n]
    return sorted(chosen.tolist())


def show_samples(
    dataset: Any,
    n: int = 8,
    tasks: Sequence[str] | None = None,
    predictions: Mapping[str, Tensor] | None = None,
    seed: int = 0,
) -> Figure:
    """A grid of sample images with their targets, and the model's predictions when given.

    Targets are written under each image (class names from ``Task.class_names`` where the task has
    them); per-pixel tasks (segmentation masks, edge maps) get an extra row of maps. With ``predictions``,
    each prediction is written next to its target in green when right and red when wrong (regression
    values in black: they are never exactly right), and each per-pixel task gets a row of predicted maps
    with the wrong pixels painted red: for a segmentation, every pixel of the wrong class, with the pixel
    accuracy below; for an edge map, the predicted boundary pixels with no true boundary within the
    tolerance of :func:`~mtlcourse.metrics.boundary_f1` and the true ones with no prediction near, with the
    boundary F1 below.

    Args:
        dataset: anything with ``len(dataset)``, ``dataset[i] -> (image [C, H, W] in [0, 1], {task:
            target})`` and ``dataset.tasks: dict[str, Task]``; images have 1 or 3 channels.
        n: number of images (default 8); all of them if the dataset is smaller.
        tasks: names of the tasks to show (default ``None``: every task of the dataset).
        predictions: ``{task: model outputs}`` either for the whole dataset (first dimension
            ``len(dataset)``, as :func:`mtlcourse.train.predict` returns) or for the shown samples only
            (first dimension ``n``, in the order of :func:`sample_indices`). Tasks not shown are ignored.
        seed: chooses which samples are shown (default 0).

    Returns:
        A new figure with one column per sample and one row for the images plus one (or, with
        predictions, two) per per-pixel task.

    Example:
        >>> class Tiny:  # the smallest dataset: 4 grey images, one task
        ...     tasks = {"shape": Task("shape", "multiclass", 2, class_names=("disc", "square"))}
        ...     def __len__(self): return 4
        ...     def __getitem__(self, i): return torch.full((1, 8, 8), i / 4), {"shape": torch.tensor(i % 2)}
        >>> fig = show_samples(Tiny(), n=3)
        >>> len(fig.axes), fig.axes[0].get_ylabel()
        (3, 'image')
        >>> plt.close(fig)

    Used in chapter 00.
    """
    chosen = select_tasks(dataset.tasks, tasks)
    indices = sample_indices(len(dataset), n, seed)
    items = [dataset[i] for i in indices]
    outputs = _align_predictions(predictions, dataset.tasks, chosen, indices, len(dataset))
    masks = [name for name, task in chosen.items() if task.kind in PER_PIXEL_KINDS]
    rows = [("image", None)] + [(name, "target") for name in masks]
    rows += [(name, "prediction") for name in masks if name in outputs]
    text_lines = len(chosen) - len(masks)
    figsize = (PANEL_INCHES * len(indices) + 1.5, PANEL_INCHES * len(rows) + 0.25 * text_lines + 0.5)
    fig, axes = plt.subplots(len(rows), len(indices), figsize=figsize, squeeze=False, layout="constrained")
    for column, (index, (image, targets)) in enumerate(zip(indices, items)):
        _draw_image(axes[0, column], image, title=f"#{index}")
        _write_targets(axes[0, column], chosen, targets, {t: o[column] for t, o in outputs.items()})
        for row, (name, what) in enumerate(rows[1:], start=1):
            output = outputs[name][column] if what == "prediction" else None
            _draw_mask(axes[row, column], chosen[name], targets[name], output)
    for row, (name, what) in enumerate(rows):
        axes[row, 0].set_ylabel("image" if what is None else f"{name} ({what})")
        if what == "target":
            _add_class_legend(axes[row, -1], chosen[name])
    title = "Samples and their targets"
    if outputs:
        title = "Predictions against targets (green: right, red: wrong; targets in brackets)"
    fig.suptitle(f"{title}, {len(indices)} of {len(dataset)} images (seed {seed})")
    return fig


def _align_predictions(
    predictions: Mapping[str, Tensor] | None,
    available: Mapping[str, Task],
    chosen: Mapping[str, Task],
    indices: list[int],
    size: int,
) -> dict[str, Tensor]:
    """Predictions of the shown tasks, one row per shown sample, on the CPU."""
    if predictions is None:
        return {}
    unknown = [name for name in predictions if name not in available]
    if unknown:
        raise ValueError(
            f"predictions for unknown task(s) {unknown}; the dataset's tasks are {list(available)}"
        )
    aligned = {}
    for name, output in predictions.items():
        if name not in chosen:
            continue
        output = torch.as_tensor(output).detach().cpu()
        if len(output) == size:
            output = output[indices]  # [n, ...]: the shown samples of the whole dataset's outputs
        elif len(output) != len(indices):
            raise ValueError(
                f"predictions[{name!r}] has {len(output)} rows; expected {size} (the whole dataset) or "
                f"{len(indices)} (the shown samples, in the order of sample_indices)"
            )
        aligned[name] = output
    return aligned


def _draw_image(ax: Axes, image: Tensor, title: str) -> None:
    """Show a ``[C, H, W]`` image in ``[0, 1]`` with 1 (grey) or 3 (RGB) channels."""
    image = torch.as_tensor(image).detach().cpu().float().clamp(0, 1)  # [C, H, W]
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"images must be [C, H, W] with 1 or 3 channels, got shape {tuple(image.shape)}")
    if image.shape[0] == 1:
        ax.imshow(image[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)  # [H, W]
    else:
        ax.imshow(image.permute(1, 2, 0).numpy())  # [H, W, 3]
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _write_targets(ax: Axes, tasks: Mapping[str, Task], targets: Mapping, outputs: Mapping) -> None:
    """Write one line per image-level task under the image: the target, or the prediction and the target."""
    line = 0
    for name, task in tasks.items():
        if task.kind in PER_PIXEL_KINDS:
            continue
        target = torch.as_tensor(targets[name]).detach().cpu()
        target = task.hard_target(target[None])[0]  # a soft target row [C] -> its most probable class
        if name in outputs:
            text, color = _describe_prediction(task, outputs[name], target)
        else:
            text, color = _describe_target(task, target), NEUTRAL
        ax.annotate(
            f"{name}: {text}",
            xy=(0.5, 0.0),
            xycoords="axes fraction",
            xytext=(0, -4 - 11 * line),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=8,
            color=color,
        )
        line += 1


def _label_name(task: Task, index: int) -> str:
    """The name of class or label ``index`` of ``task`` (its number when the task has no names)."""
    return task.class_names[index] if task.class_names else str(index)


def _describe_target(task: Task, target: Tensor) -> str:
    """A short text for one target of a non-mask task; ``?`` for a missing label."""
    if task.kind == "multiclass":
        return "?" if int(target) == -1 else _label_name(task, int(target))
    if task.kind == "binary":
        value = float(target.reshape(-1)[0])
        return "?" if math.isnan(value) else ("yes" if value == 1 else "no")
    if task.kind == "multilabel":
        on = [_label_name(task, k) for k, v in enumerate(target.tolist()) if v == 1]
        missing = any(math.isnan(v) for v in target.tolist())
        return (", ".join(on) or "none") + (" (some ?)" if missing else "")
    values = ["?" if math.isnan(v) else f"{v:.2f}" for v in target.reshape(-1).tolist()]
    return ", ".join(values)


def _describe_prediction(task: Task, output: Tensor, target: Tensor) -> tuple[str, str]:
    """``"prediction (target)"`` and its colour: green right, red wrong, black for regression or no label."""
    truth = _describe_target(task, target)
    if task.kind == "multiclass":
        predicted = int(output.argmax())
        text, right = _label_name(task, predicted), predicted == int(target)
        labelled = int(target) != -1
    elif task.kind in ("binary", "multilabel"):
        predicted_labels = (output.reshape(target.shape) > 0).float()  # same shape as target
        labelled_entries = ~torch.isnan(target)
        text = _describe_target(task, predicted_labels)
        right = bool((predicted_labels == target)[labelled_entries].all())
        labelled = bool(labelled_entries.any())
    else:
        values = output.reshape(-1).tolist()
        return ", ".join(f"{v:.2f}" for v in values) + f" ({truth})", NEUTRAL
    color = (RIGHT if right else WRONG) if labelled else NEUTRAL
    return f"{text} ({truth})", color


def _class_colormap(num_classes: int) -> ListedColormap:
    """One distinct colour per class, never red (red marks errors); missing labels are drawn grey."""
    tab10, tab20 = plt.get_cmap("tab10").colors, plt.get_cmap("tab20").colors
    palette = [c for k, c in enumerate(tab10) if k != 3] if num_classes <= 9 else tab20[:6] + tab20[8:]
    return ListedColormap([palette[k % len(palette)] for k in range(num_classes)]).with_extremes(
        bad="lightgrey"
    )


def _mask_names(task: Task) -> list[str]:
    """The names of the classes drawn in a per-pixel map: the task's classes, or no boundary and boundary."""
    if task.kind == "edge":
        return ["not " + _label_name(task, 0), _label_name(task, 0)] if task.class_names else ["0", "1"]
    return [_label_name(task, k) for k in range(task.num_outputs)]


def _pixel_classes(task: Task, target: Tensor, output: Tensor | None) -> Tensor:
    """The class of every pixel ``[H, W]`` of a target map (-1 where unlabelled) or of a prediction."""
    if task.kind == "edge":
        if output is None:
            return torch.where(torch.isnan(target), -1.0, target).long()  # [H, W]
        return (output > 0).long()  # [H, W]; a logit above 0 is a boundary
    return target if output is None else output.argmax(dim=0)  # [H, W]


def _pixel_errors(task: Task, target: Tensor, output: Tensor) -> tuple[Tensor, str]:
    """The wrong pixels ``[H, W]`` of a predicted map, and the score written under it."""
    if task.kind == "edge":
        maps = boundary_matches(output[None], target[None], BOUNDARY_TOLERANCE)  # [1, H, W] each
        false_alarms = maps["predicted"] & ~maps["matched_predicted"]  # [1, H, W]
        misses = maps["true"] & ~maps["matched_true"]  # [1, H, W]
        score = float(boundary_f1(output[None], target[None], BOUNDARY_TOLERANCE))
        return (false_alarms | misses)[0], f"boundary F1 {score:.2f}"
    labelled = target != -1  # [H, W]
    wrong = labelled & (output.argmax(dim=0) != target)  # [H, W]
    accuracy = (~wrong & labelled).sum().item() / max(labelled.sum().item(), 1)
    return wrong, f"pixel accuracy {accuracy:.2f}"


def _draw_mask(ax: Axes, task: Task, target: Tensor, output: Tensor | None) -> None:
    """Draw a target map ``[H, W]``, or the predicted map with its wrong pixels painted red."""
    target = torch.as_tensor(target).detach().cpu()  # [H, W]
    C = len(_mask_names(task))
    shown = _pixel_classes(task, target, output)  # [H, W]
    masked = np.ma.masked_equal(shown.numpy(), -1)  # missing pixels drawn grey
    ax.imshow(masked, cmap=_class_colormap(C), vmin=-0.5, vmax=C - 0.5, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if output is None:
        return
    wrong, score = _pixel_errors(task, target, output)
    overlay = torch.zeros(*target.shape, 4)  # [H, W, 4] RGBA, transparent
    overlay[wrong] = torch.tensor([1.0, 0.0, 0.0, 0.8])
    ax.imshow(overlay.numpy(), interpolation="nearest")
    ax.set_xlabel(score, fontsize=8)


def _add_class_legend(ax: Axes, task: Task) -> None:
    """A legend of mask colours next to ``ax``."""
    names = _mask_names(task)
    cmap = _class_colormap(len(names))
    handles = [Patch(color=cmap(k), label=name) for k, name in enumerate(names)]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7, frameon=False)


def show_dense_predictions(model: Any, dataset: Any, n: int = 6, seed: int = 0) -> Figure:
    """Sample images with the targets and the model's predictions of every per-pixel task it has.

    Runs ``model`` on the ``n`` samples that :func:`show_samples` shows (in eval mode, without gradients,
    on the model's device; the model is left as it was), then draws them with :func:`show_samples`: a row
    of images, and for each segmentation or edge task a row of targets and a row of predictions with the
    wrong pixels in red and the score below.

    Args:
        model: a :class:`~mtlcourse.models.base.MultiTaskModel` with at least one per-pixel task.
        dataset: as for :func:`show_samples`, with the model's per-pixel tasks.
        n: number of images (default 6).
        seed: chooses which samples are shown (default 0).

    Returns:
        A new figure.

    Example:
        >>> from mtlcourse.data import MultiShapes
        >>> from mtlcourse.models import HardParameterSharing, SmallCNN
        >>> data = MultiShapes("val", num_images=8, tasks=["shape", "edges"])
        >>> fig = show_dense_predictions(HardParameterSharing(SmallCNN(width=4), data.tasks), data, n=2)
        >>> [ax.get_ylabel() for ax in fig.axes[::2]]
        ['image', 'edges (target)', 'edges (prediction)']
        >>> plt.close(fig)

    Used in chapter 03.
    """
    dense = [name for name, task in model.tasks.items() if task.kind in PER_PIXEL_KINDS]
    if not dense:
        raise ValueError(
            f"the model has no per-pixel task (kinds {PER_PIXEL_KINDS}), its tasks are {list(model.tasks)}; "
            "show its predictions with show_samples(dataset, predictions=predict(model, dataset))"
        )
    indices = sample_indices(len(dataset), n, seed)
    images = torch.stack([dataset[i][0] for i in indices])  # [n, C, H, W]
    device = next(model.parameters()).device
    outputs = probe(model, images.to(device))  # {task: [n, ...]}: eval mode, no gradient, modes restored
    predictions = {name: outputs[name] for name in dense}
    return show_samples(dataset, n, tasks=dense, predictions=predictions, seed=seed)


# ----------------------------------------------------------------------------------------------------------
# Training curves


def plot_history(history: Any, metric: str | None = None) -> Figure:
    """Learning curves, one column per task: losses on top, a validation metric below.

    The top row shows the training and validation loss per epoch; the bottom row (when the history has
    validation metrics) shows the validation ``metric``. A dotted line marks the epoch that model
    selection kept (``history.best_epoch``).

    Args:
        history: a :class:`mtlcourse.train.History`, or anything with its attributes ``tasks``,
            ``train_loss``, ``val_loss``, ``val_metrics`` and ``best_epoch``.
        metric: the validation metric to plot (default ``None``: each task's primary metric, the first
            one recorded).

    Returns:
        A new figure with ``len(history.tasks)`` columns and 1 or 2 rows.

    Example:
        >>> from types import SimpleNamespace
        >>> history = SimpleNamespace(tasks=["shape"], train_loss={"shape": [1.2, 0.8]},
        ...     val_loss={"shape": [1.3, 1.0]}, val_metrics={"shape": {"accuracy": [0.5, 0.7]}}, best_epoch=1)
        >>> fig = plot_history(history)
        >>> [ax.get_title() for ax in fig.axes]
        ['shape: loss', 'shape: validation accuracy']
        >>> plt.close(fig)

    Used in chapter 01.
    """
    tasks = list(history.tasks)
    if not tasks:
        raise ValueError("history.tasks is empty")
    has_metrics = bool(history.val_metrics)
    rows = 2 if has_metrics else 1
    fig, axes = plt.subplots(
        rows, len(tasks), figsize=(4.0 * len(tasks), 3.0 * rows), squeeze=False, layout="constrained"
    )
    for column, name in enumerate(tasks):
        _plot_losses(axes[0, column], history, name)
        if has_metrics:
            _plot_metric(axes[1, column], history, name, metric)
    fig.suptitle("Learning curves per task")
    return fig


def _integer_epochs(ax: Axes) -> None:
    """Label the epoch axis with whole numbers only."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def _epochs_axis(values: Sequence[float]) -> list[int]:
    """Epoch numbers counted from 1, as readers count them."""
    return list(range(1, len(values) + 1))


def _mark_best_epoch(ax: Axes, history: Any) -> None:
    """A dotted vertical line at the selected epoch, when there is one."""
    best = getattr(history, "best_epoch", -1)
    if best is not None and best >= 0:
        ax.axvline(best + 1, color="grey", linestyle=":", label=f"selected epoch ({best + 1})")


def _plot_losses(ax: Axes, history: Any, name: str) -> None:
    """Training and validation loss of one task per epoch."""
    train = history.train_loss.get(name, [])
    ax.plot(_epochs_axis(train), train, marker="o", label="training")
    val = history.val_loss.get(name, [])
    if val:
        ax.plot(_epochs_axis(val), val, marker="s", linestyle="--", label="validation")
    _mark_best_epoch(ax, history)
    ax.set_title(f"{name}: loss")
    _integer_epochs(ax)
    ax.set_ylabel("mean loss per example")
    ax.legend(fontsize=8)


def _plot_metric(ax: Axes, history: Any, name: str, metric: str | None) -> None:
    """One validation metric of one task per epoch."""
    recorded = history.val_metrics.get(name, {})
    if not recorded:
        raise ValueError(f"history has no validation metrics for task {name!r}")
    metric_name = metric or next(iter(recorded))
    if metric_name not in recorded:
        raise ValueError(f"task {name!r} has no metric {metric_name!r}; it has {list(recorded)}")
    values = recorded[metric_name]
    ax.plot(_epochs_axis(values), values, marker="o", color="tab:green", label=f"validation {metric_name}")
    _mark_best_epoch(ax, history)
    ax.set_title(f"{name}: validation {metric_name}")
    _integer_epochs(ax)
    ax.set_ylabel(metric_name)
    ax.legend(fontsize=8)


def plot_weights(history: Any, ax: Axes | None = None, title: str = "Task weights during training") -> Figure:
    """The mean weight of every task per epoch, as recorded by :func:`mtlcourse.train.fit`.

    Args:
        history: anything with ``tasks`` and ``weights`` (one list of task weights per epoch).
        ax: the axes to draw on (default ``None``: a new figure).
        title: the panel's title.

    Returns:
        The figure drawn on.

    Example:
        >>> from types import SimpleNamespace
        >>> fig = plot_weights(SimpleNamespace(tasks=["a", "b"], weights=[[1.0, 1.0], [0.6, 1.4]]))
        >>> [line.get_label() for line in fig.axes[0].get_lines()]
        ['a', 'b']
        >>> plt.close(fig)

    Used in chapter 05.
    """
    weights = np.asarray(history.weights, dtype=float)  # [E, T]
    if weights.ndim != 2 or weights.shape[1] != len(history.tasks):
        raise ValueError(f"history.weights must be [epochs, {len(history.tasks)}], got shape {weights.shape}")
    if np.isnan(weights).all():
        raise ValueError("history.weights are all nan: the method used records no task weights")
    fig, ax = _new_axes(ax, (6.0, 3.5))
    epochs = _epochs_axis(weights)
    for t, name in enumerate(history.tasks):
        ax.plot(epochs, weights[:, t], marker="o", label=name)
    ax.set_title(title)
    _integer_epochs(ax)
    ax.set_ylabel("task weight (mean over the epoch)")
    ax.legend(title="task")
    return fig


# ----------------------------------------------------------------------------------------------------------
# Confusion matrices, comparisons over seeds, trade-offs


def plot_confusion(
    confusion: Tensor,
    class_names: Sequence[str] | None = None,
    normalize: bool = True,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    r"""A confusion matrix as a heat map, rows for the true class, columns for the predicted class.

    With ``normalize``, each row is divided by its total, so the diagonal holds each class's recall
    :math:`R_c = N_{cc} / \sum_k N_{ck}`.

    Args:
        confusion: ``[C, C]`` counts, e.g. :attr:`mtlcourse.metrics.TaskMeter.confusion`.
        class_names: ``C`` names for the ticks (default ``None``: the class numbers).
        normalize: show fractions of each true class (default ``True``) instead of counts.
        ax: the axes to draw on (default ``None``: a new figure).
        title: the panel's title (default: says whether the values are fractions or counts).

    Returns:
        The figure drawn on (the heat map's axes and its colour bar).

    Example:
        >>> fig = plot_confusion(torch.tensor([[8, 2], [1, 9]]), class_names=["cat", "dog"])
        >>> len(fig.axes), fig.axes[0].get_xlabel()
        (2, 'predicted class')
        >>> plt.close(fig)

    Used in chapter 01.
    """
    counts = torch.as_tensor(confusion).detach().cpu().double()  # [C, C]
    if counts.dim() != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"confusion must be a square [C, C] matrix, got shape {tuple(counts.shape)}")
    C = counts.shape[0]
    names = list(class_names) if class_names is not None else [str(k) for k in range(C)]
    if len(names) != C:
        raise ValueError(f"{len(names)} class_names for a {C} x {C} confusion matrix")
    values = counts / counts.sum(1, keepdim=True).clamp(min=1) if normalize else counts  # [C, C]
    fig, ax = _new_axes(ax, (max(4.5, 2.0 + 0.6 * C), max(3.8, 1.5 + 0.5 * C)))
    image = ax.imshow(values.numpy(), cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(image, ax=ax, label="fraction of the true class" if normalize else "number of examples")
    threshold = 0.5 * float(values.max()) if values.numel() else 0.0
    for i in range(C):
        for j in range(C):
            v = float(values[i, j])
            text = f"{v:.2f}" if normalize else f"{int(v)}"
            ax.text(
                j, i, text, ha="center", va="center", fontsize=8, color="white" if v > threshold else "black"
            )
    ax.set_xticks(range(C), names, rotation=45, ha="right")
    ax.set_yticks(range(C), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(
        title or ("Confusion matrix (each row sums to 1)" if normalize else "Confusion matrix (counts)")
    )
    return fig


def _mean_and_half_width(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (0 for a single value, which has no interval)."""
    if len(values) == 0:
        raise ValueError("every entry of results needs at least one value")
    interval = t_interval(values)
    return interval.mean, 0.0 if interval.n == 1 else interval.half_width


def plot_bars(
    results: Mapping[str, Mapping[str, Sequence[float]]],
    ylabel: str = "score",
    title: str = "Mean over seeds with its 95% t-interval",
    ax: Axes | None = None,
) -> Figure:
    """Grouped bars: one group per task, one bar per setting, the mean over seeds with its 95% t-interval.

    The error bar is the Student-t interval of :func:`mtlcourse.stats.t_interval` (n - 1 degrees of
    freedom). Each seed's value is drawn as a dot on its bar, so the values behind the interval stay visible.

    Args:
        results: ``{setting: {task: [value per seed]}}``, e.g. ``{"shared": {"shape": [0.9, 0.92]}}``.
        ylabel: the quantity and its unit, for the vertical axis (default ``"score"``).
        title: the panel's title.
        ax: the axes to draw on (default ``None``: a new figure).

    Returns:
        The figure drawn on.

    Example:
        >>> fig = plot_bars({"shared": {"shape": [0.90, 0.92]}, "single": {"shape": [0.88, 0.89]}})
        >>> [round(float(bar.get_height()), 3) for bar in fig.axes[0].patches]
        [0.91, 0.885]
        >>> plt.close(fig)

    Used in chapter 02.
    """
    if not results:
        raise ValueError("results is empty")
    settings = list(results)
    tasks = list(dict.fromkeys(task for per_task in results.values() for task in per_task))
    fig, ax = _new_axes(ax, (4.0 + 1.0 * len(tasks) * max(1, len(settings) / 2), 3.5))
    width = 0.8 / len(settings)
    seed_label: str | None = "one seed"
    for s, setting in enumerate(settings):
        offset = (s - (len(settings) - 1) / 2) * width
        positions = [t + offset for t, task in enumerate(tasks) if task in results[setting]]
        stats = [_mean_and_half_width(results[setting][task]) for task in tasks if task in results[setting]]
        means, errors = [m for m, _ in stats], [h for _, h in stats]
        ax.bar(positions, means, width, yerr=errors, capsize=4, label=setting)
        for x, task in zip(positions, [t for t in tasks if t in results[setting]]):
            seeds = list(results[setting][task])
            ax.scatter([x] * len(seeds), seeds, s=12, color="black", zorder=3, label=seed_label)
            seed_label = None  # one legend entry for all the dots
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_xlabel("task")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def pareto_front(
    points: Sequence[Sequence[float]] | Tensor, higher_is_better: tuple[bool, bool] = (True, True)
) -> list[int]:
    """Indices of the non-dominated points, sorted by the first metric.

    A point is dominated when another point is at least as good on both metrics and better on one.

    Args:
        points: ``[N, 2]`` values of two metrics, one row per setting.
        higher_is_better: for each metric, whether larger is better (default ``(True, True)``).

    Example:
        >>> pareto_front([[0.9, 0.1], [0.8, 0.8], [0.7, 0.7], [0.1, 0.9]])
        [3, 1, 0]

    Used in chapter 04.
    """
    values = np.asarray(points, dtype=float)  # [N, 2]
    if values.ndim != 2 or values.shape[1] != 2:
        raise ValueError(f"points must be [N, 2], got shape {values.shape}")
    signs = np.array([1.0 if better else -1.0 for better in higher_is_better])  # [2]
    q = values * signs  # [N, 2]: larger is better on both columns
    front = []
    for i in range(len(q)):
        at_least = (q >= q[i]).all(axis=1)  # [N]
        better = (q > q[i]).any(axis=1)  # [N]
        if not (at_least & better).any():
            front.append(i)
    return sorted(front, key=lambda i: values[i, 0])


def plot_pareto(
    points: Sequence[Sequence[float]] | Tensor,
    labels: Sequence[str] | None = None,
    xlabel: str = "metric of task 1",
    ylabel: str = "metric of task 2",
    higher_is_better: tuple[bool, bool] = (True, True),
    title: str = "Trade-off between two tasks",
    ax: Axes | None = None,
) -> Figure:
    """One point per setting of a trade-off sweep, with the non-dominated (Pareto) front drawn through.

    Args:
        points: ``[N, 2]`` values of two metrics, one row per setting.
        labels: a short label per point, e.g. the weight of the first task (default ``None``: no labels).
        xlabel: the first metric with its unit (default ``"metric of task 1"``).
        ylabel: the second metric with its unit (default ``"metric of task 2"``).
        higher_is_better: for each metric, whether larger is better (default ``(True, True)``).
        title: the panel's title.
        ax: the axes to draw on (default ``None``: a new figure).

    Returns:
        The figure drawn on.

    Example:
        >>> fig = plot_pareto([[0.9, 0.5], [0.8, 0.6], [0.7, 0.55]], labels=["0.8", "0.5", "0.2"])
        >>> fig.axes[0].get_lines()[0].get_xydata().tolist()  # the front: the last point is dominated
        [[0.8, 0.6], [0.9, 0.5]]
        >>> plt.close(fig)

    Used in chapter 04.
    """
    values = np.asarray(points, dtype=float)  # [N, 2]
    front = pareto_front(values, higher_is_better)
    if labels is not None and len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels for {len(values)} points")
    fig, ax = _new_axes(ax, (5.0, 4.0))
    dominated = [i for i in range(len(values)) if i not in front]
    if dominated:
        ax.scatter(values[dominated, 0], values[dominated, 1], color="grey", label="dominated setting")
    ax.plot(values[front, 0], values[front, 1], marker="o", color="tab:blue", label="non-dominated front")
    for i, label in enumerate(labels or []):
        ax.annotate(str(label), values[i], xytext=(4, 4), textcoords="offset points", fontsize=8)
    arrows = ["higher is better" if better else "lower is better" for better in higher_is_better]
    ax.set_xlabel(f"{xlabel} ({arrows[0]})")
    ax.set_ylabel(f"{ylabel} ({arrows[1]})")
    ax.margins(0.12)  # room for the labels of the extreme points
    ax.set_title(title)
    ax.legend()
    return fig


# ----------------------------------------------------------------------------------------------------------
# Task affinity and the cost of architectures


def plot_affinity(
    matrix: Sequence[Sequence[float]] | Tensor,
    task_names: Sequence[str],
    title: str = "Lookahead inter-task affinity",
    value_label: str = "affinity Z[i, j] (share of task j's loss removed)",
    ax: Axes | None = None,
) -> Figure:
    """A ``[T, T]`` task-affinity matrix as a heat map, with its values written in the cells.

    Row ``i`` is the task whose gradient step is taken, column ``j`` the task whose loss is measured, as in
    :func:`mtlcourse.affinity.lookahead_affinity`. The colour map is diverging and centred at 0: blue where
    a step on task ``i`` helps task ``j``, red where it hurts, white where it does neither. It also draws
    a gradient-cosine matrix (:func:`mtlcourse.affinity.gradient_cosines`) with another ``value_label``.

    Args:
        matrix: ``[T, T]`` values; ``nan`` cells (a task without labels in the batch) are written ``n/a``.
        task_names: ``T`` names for the rows and columns.
        title: the panel's title.
        value_label: what the colour bar shows, with its unit.
        ax: the axes to draw on (default ``None``: a new figure).

    Returns:
        The figure drawn on (the heat map's axes and its colour bar).

    Example:
        >>> fig = plot_affinity([[0.3, -0.1], [0.05, 0.2]], ["shape", "background"])
        >>> [t.get_text() for t in fig.axes[0].texts], fig.axes[0].get_images()[0].get_clim()
        (['0.30', '-0.10', '0.05', '0.20'], (-0.3, 0.3))
        >>> plt.close(fig)

    Used in chapter 09.
    """
    values = torch.as_tensor(matrix, dtype=torch.float64).detach().cpu()  # [T, T]
    if values.dim() != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"matrix must be a square [T, T] matrix, got shape {tuple(values.shape)}")
    T = values.shape[0]
    if len(task_names) != T:
        raise ValueError(f"{len(task_names)} task_names for a {T} x {T} matrix")
    finite = values[torch.isfinite(values)]  # [n]
    bound = float(finite.abs().max()) if finite.numel() and finite.abs().max() > 0 else 1.0
    fig, ax = _new_axes(ax, (max(4.5, 2.5 + 0.7 * T), max(3.8, 1.8 + 0.6 * T)))
    image = ax.imshow(values.numpy(), cmap="RdBu", vmin=-bound, vmax=bound)  # white at 0
    fig.colorbar(image, ax=ax, label=value_label)
    for i in range(T):
        for j in range(T):
            v = float(values[i, j])
            text = "n/a" if math.isnan(v) else f"{v:.2f}"
            color = "white" if abs(v) > 0.6 * bound else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(T), list(task_names), rotation=45, ha="right")
    ax.set_yticks(range(T), list(task_names))
    ax.set_xlabel("task j (its loss is measured)")
    ax.set_ylabel("task i (the step follows its gradient)")
    ax.set_title(title)
    return fig


def plot_tradeoff(
    points: Mapping[str, tuple[float | Sequence[float], Sequence[float]]],
    xlabel: str = "parameters (count)",
    ylabel: str = "score",
    title: str = "Score against cost, mean over seeds with its 95% t-interval",
    log_x: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """One point per architecture or setting: its score against its cost, with error bars.

    Each point is the mean of its values over seeds with the 95% Student-t interval of
    :func:`mtlcourse.stats.t_interval` as the error bar; a cost given as several measurements (step times)
    gets a horizontal error bar the same way, a cost given as one number (a parameter count) none.

    Args:
        points: ``{setting: (cost, [score per seed])}``, e.g. ``{"mtan": (120_000, [0.91, 0.93])}`` or
            ``{"mtan": ([12.1, 12.4], [0.91, 0.93])}`` with step times.
        xlabel: the cost with its unit (default ``"parameters (count)"``; e.g. ``"step time (ms)"``).
        ylabel: the score with its unit (default ``"score"``).
        title: the panel's title.
        log_x: a logarithmic cost axis, for costs that span orders of magnitude (default ``False``).
        ax: the axes to draw on (default ``None``: a new figure).

    Returns:
        The figure drawn on.

    Example:
        >>> fig = plot_tradeoff({"hard": (1000, [0.8, 0.82]), "mtan": (3000, [0.86, 0.84])})
        >>> [container.lines[0].get_xydata().tolist() for container in fig.axes[0].containers]
        [[[1000.0, 0.81]], [[3000.0, 0.85]]]
        >>> plt.close(fig)

    Used in chapter 08.
    """
    if not points:
        raise ValueError("points is empty: give {setting: (cost, [score per seed])}")
    fig, ax = _new_axes(ax, (5.5, 4.0))
    for setting, (cost, scores) in points.items():
        costs = [float(cost)] if isinstance(cost, (int, float)) else list(cost)
        x, x_error = _mean_and_half_width(costs)
        y, y_error = _mean_and_half_width(list(scores))
        ax.errorbar([x], [y], xerr=[x_error], yerr=[y_error], fmt="o", capsize=4, label=setting)
        ax.annotate(setting, (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.margins(0.15)  # room for the labels of the extreme points
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


# ----------------------------------------------------------------------------------------------------------
# Calibration


def plot_reliability(
    output: Tensor,
    target: Tensor,
    num_bins: int = CALIBRATION_BINS,
    from_logits: bool = True,
    title: str = "Reliability diagram",
    ax: Axes | None = None,
) -> Figure:
    """A reliability diagram: the accuracy in each confidence bin against the diagonal of perfect calibration.

    The bins are those of :func:`mtlcourse.metrics.reliability_bins` (equal width on [0, 1]). Each
    non-empty bin gets a bar as high as the fraction of its examples predicted right, and a hatched bar from
    there to the mean confidence of the bin: the gap that the expected calibration error averages, weighted
    by the bins' sizes. Bars below the diagonal mean an overconfident model. The title gives the ECE.

    Args:
        output: logits ``[N, C]``, or probabilities with ``from_logits=False``.
        target: class indices ``[N]`` (``-1`` for missing) or soft targets ``[N, C]`` (most probable class).
        num_bins: number of equal-width bins, at least 1 (default 15).
        from_logits: whether ``output`` holds logits (default ``True``) or probabilities.
        title: the panel's title; the ECE and the number of bins are appended.
        ax: the axes to draw on (default ``None``: a new figure).

    Returns:
        The figure drawn on.

    Example:
        >>> probs = torch.tensor([[0.9, 0.05, 0.05], [0.7, 0.2, 0.1], [0.4, 0.3, 0.3]])
        >>> fig = plot_reliability(probs, torch.tensor([0, 1, 0]), num_bins=2, from_logits=False)
        >>> fig.axes[0].get_title()  # 1/3 * |1 - 0.4| + 2/3 * |0.5 - 0.8|
        'Reliability diagram (ECE 0.400, 2 bins, 3 examples)'
        >>> plt.close(fig)

    Used in chapter 10.
    """
    bins = reliability_bins(output, target, num_bins, from_logits)
    count = bins.count.cpu().numpy()  # [M]
    if count.sum() == 0:
        raise ValueError("target has no labelled example: a reliability diagram needs at least one")
    filled = count > 0  # [M]
    edges = bins.edges.cpu().double().numpy()  # [M + 1]
    left, width = edges[:-1][filled], np.diff(edges)[filled]  # [m] each, non-empty bins only
    accuracy = bins.accuracy.cpu().double().numpy()[filled]  # [m]
    confidence = bins.confidence.cpu().double().numpy()[filled]  # [m]
    fig, ax = _new_axes(ax, (4.5, 4.5))
    ax.bar(
        left, accuracy, width, align="edge", color="tab:blue", edgecolor="black", label="accuracy in the bin"
    )
    ax.bar(
        left,
        confidence - accuracy,
        width,
        bottom=accuracy,
        align="edge",
        color="none",
        edgecolor=WRONG,
        hatch="//",
        label="gap to the mean confidence",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (largest predicted probability)")
    ax.set_ylabel("accuracy (fraction predicted right)")
    ece = float(bins.ece)
    ax.set_title(f"{title} (ECE {ece:.3f}, {num_bins} bins, {int(count.sum())} examples)")
    ax.legend(loc="upper left", fontsize=8)
    return fig
