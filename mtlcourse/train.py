"""Training and evaluation: ``fit`` and ``evaluate``, plain functions that read top to bottom.

Used in chapter 01 and every chapter after.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from mtlcourse.backward import mtl_step, task_losses
from mtlcourse.metrics import TaskMeter
from mtlcourse.models.base import MultiTaskModel
from mtlcourse.tasks import Task
from mtlcourse.utils import get_device, seed_everything, synchronize
from mtlcourse.weighting.equal import EqualWeighting


@dataclass
class History:
    """What happened during :func:`fit`, one entry per epoch.

    Attributes:
        tasks: the task names, in the model's order.
        train_loss: mean training loss per task and epoch.
        val_loss: mean validation loss per task and epoch (empty without validation data).
        val_metrics: validation metrics per task, metric and epoch.
        weights: mean task weights per epoch (``nan`` for methods without task weights).
        epoch_time: training seconds per epoch (evaluation excluded).
        best_epoch: the epoch whose weights the model holds after training (0-based).
        test: filled by the caller if it evaluates on test data.
    """

    tasks: list[str]
    train_loss: dict[str, list[float]] = field(default_factory=dict)
    val_loss: dict[str, list[float]] = field(default_factory=dict)
    val_metrics: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    weights: list[list[float]] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    best_epoch: int = -1

    @property
    def train_time(self) -> float:
        """Total training seconds."""
        return sum(self.epoch_time)

    def best(self, task: str, metric: str | None = None) -> float:
        """The validation metric of ``task`` at the selected epoch (its primary metric by default)."""
        if task not in self.val_metrics:
            raise ValueError(f"no validation metrics for task {task!r}; tasks are {list(self.val_metrics)}")
        metrics = self.val_metrics[task]
        metric = metric or next(iter(metrics))
        return metrics[metric][self.best_epoch]


def check_tasks(model: MultiTaskModel, data: Dataset) -> None:
    """Raise ``ValueError`` unless every task of the model is a task of the dataset, defined the same way."""
    data_tasks: dict[str, Task] = getattr(data, "tasks", None) or {}
    missing = [name for name in model.tasks if name not in data_tasks]
    if missing:
        raise ValueError(
            f"the model predicts task(s) {missing} that the dataset does not have; "
            f"the dataset's tasks are {list(data_tasks)}"
        )
    different = [
        name
        for name, task in model.tasks.items()
        if (task.kind, task.num_outputs) != (data_tasks[name].kind, data_tasks[name].num_outputs)
    ]
    if different:
        raise ValueError(f"model and dataset define task(s) {different} differently (kind or num_outputs)")


def batches(
    data: Dataset,
    batch_size: int,
    device: torch.device,
    shuffle: bool,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
    """Yield ``(images, targets)`` batches on ``device``.

    An in-memory dataset (one with ``images`` and ``targets`` tensors) is sliced directly, which is much
    faster than a DataLoader for small images; any other dataset goes through a DataLoader.
    """
    if hasattr(data, "images") and hasattr(data, "targets"):
        n = len(data)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)  # [N]
        order = order.to(data.images.device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]  # [B]
            targets = {name: t[idx].to(device, non_blocking=True) for name, t in data.targets.items()}
            yield data.images[idx].to(device, non_blocking=True), targets
        return
    loader = DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator)
    for images, targets in loader:
        yield images.to(device), {name: t.to(device) for name, t in targets.items()}


def fit(
    model: MultiTaskModel,
    train: Dataset,
    val: Dataset | None = None,
    method: nn.Module | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    device: str | torch.device | None = None,
    seed: int = 0,
    select: str = "loss",
    route: str = "auto",
    progress: bool = True,
) -> History:
    """Train ``model`` on ``train`` with Adam, and keep the epoch that is best on ``val``.

    Every step forwards a batch, computes one loss per task, lets ``method`` turn them into gradients
    (:func:`mtlcourse.backward.mtl_step`), and takes an optimiser step. Model selection uses the validation
    data only: ``select="loss"`` keeps the epoch with the lowest *unweighted* sum of the validation task
    losses (whatever weights the method used); ``select`` set to a task name keeps the epoch with that task's
    best primary metric. Without ``val`` the last epoch is kept.

    Args:
        model: a :class:`~mtlcourse.models.base.MultiTaskModel`; its tasks must be tasks of the dataset.
        train: the training data (a :class:`~mtlcourse.data.base.TensorMultiTaskDataset` or any dataset of
            ``(image, {task: target})`` pairs).
        val: validation data for model selection and learning curves.
        method: a loss-weighting or gradient-aggregation method; equal weighting by default.
        epochs: passes over the training data.
        batch_size: images per step.
        lr: Adam's learning rate, for the model and for the method's own parameters if it has any.
        weight_decay: Adam's (L2) weight decay.
        device: ``"cpu"`` (default), ``"cuda"``, ``"mps"`` or ``"auto"``.
        seed: seeds the shuffling (and anything random in the method).
        select: ``"loss"`` or a task name (see above).
        route: how :mod:`mtlcourse.backward` computes per-task gradients.
        progress: show a progress bar over epochs.

    Returns:
        The :class:`History` of the run. The model holds the selected epoch's weights.

    Example:
        >>> from mtlcourse.data import MultiShapes
        >>> from mtlcourse.models import HardParameterSharing, SmallCNN
        >>> data = MultiShapes("train", num_images=64, tasks=["shape"])
        >>> model = HardParameterSharing(SmallCNN(width=4), data.tasks)
        >>> history = fit(model, data, epochs=2, progress=False)
        >>> len(history.train_loss["shape"])
        2
    """
    check_fit_arguments(epochs, batch_size, lr, select, model)
    check_tasks(model, train)
    if val is not None:
        check_tasks(model, val)
    generator = seed_everything(seed)
    device = get_device(device)
    method = (method or EqualWeighting()).to(device)
    method.reset()
    model.to(device)
    # The method's own parameters (uncertainty weighting's log-variances) get no weight decay: decay would
    # pull them towards 0, i.e. towards equal weights, which is not what the paper optimises.
    groups = [{"params": list(model.parameters()), "weight_decay": weight_decay}]
    if list(method.parameters()):
        groups.append({"params": list(method.parameters()), "weight_decay": 0.0})
    optimizer = torch.optim.Adam(groups, lr=lr)
    history = History(tasks=list(model.tasks))
    best_score, best_state = math.inf, None
    for epoch in tqdm(range(epochs), desc="epochs", disable=not progress):
        epoch_losses, epoch_weights, seconds = train_one_epoch(
            model, train, method, optimizer, batch_size, device, generator, route, epoch
        )
        method.on_epoch_end(epoch_losses)
        record_epoch(history, epoch_losses, epoch_weights, seconds)
        if val is None:
            continue
        score = record_validation(history, evaluate(model, val, device=device), select, model.tasks)
        if score < best_score:
            best_score, best_state = score, copy.deepcopy(model.state_dict())
            history.best_epoch = epoch
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        history.best_epoch = epochs - 1
    return history


def check_fit_arguments(epochs: int, batch_size: int, lr: float, select: str, model: MultiTaskModel) -> None:
    """Raise ``ValueError`` for arguments ``fit`` cannot use."""
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if select != "loss" and select not in model.tasks:
        raise ValueError(
            f"select must be 'loss' or one of the model's tasks {list(model.tasks)}, got {select!r}"
        )


def train_one_epoch(
    model: MultiTaskModel,
    data: Dataset,
    method: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    device: torch.device,
    generator: torch.Generator,
    route: str,
    epoch: int,
) -> tuple[Tensor, Tensor | None, float]:
    """One pass over ``data``; returns the mean task losses ``[T]``, mean weights ``[T]`` and seconds."""
    model.train()
    loss_sum = torch.zeros(len(model.tasks), device=device)  # [T]
    weight_sum, num_images, num_steps = None, 0, 0
    synchronize(device)
    start = time.perf_counter()
    for images, targets in batches(data, batch_size, device, shuffle=True, generator=generator):
        optimizer.zero_grad(set_to_none=True)
        try:
            losses, weights = mtl_step(model, images, targets, method, route)
        except FloatingPointError as error:
            raise FloatingPointError(f"epoch {epoch}: {error}; try a smaller lr") from error
        optimizer.step()
        method.on_step_end(losses, losses_after_step(model, images, targets, method))
        loss_sum += losses * len(images)
        num_images += len(images)
        num_steps += 1
        if weights is not None:
            weight_sum = weights if weight_sum is None else weight_sum + weights
    synchronize(device)
    seconds = time.perf_counter() - start
    mean_weights = None if weight_sum is None else weight_sum / num_steps
    return loss_sum / num_images, mean_weights, seconds


def losses_after_step(
    model: MultiTaskModel, images: Tensor, targets: dict[str, Tensor], method: nn.Module
) -> Tensor | None:
    """The batch's task losses after the optimiser step, for methods that ask for them (FAMO)."""
    if not method.needs_losses_after_step:
        return None
    with torch.no_grad():
        return task_losses(model(images), targets, model.tasks)  # [T]


def record_epoch(history: History, losses: Tensor, weights: Tensor | None, seconds: float) -> None:
    """Append one epoch's training losses, weights and time to ``history``."""
    for name, value in zip(history.tasks, losses.tolist()):
        history.train_loss.setdefault(name, []).append(value)
    history.weights.append([math.nan] * len(history.tasks) if weights is None else weights.tolist())
    history.epoch_time.append(seconds)


def record_validation(
    history: History, results: dict[str, dict[str, float]], select: str, tasks: dict[str, Task]
) -> float:
    """Append validation results to ``history`` and return the selection score (lower is better)."""
    for name in history.tasks:
        history.val_loss.setdefault(name, []).append(results[name]["loss"])
        for metric, value in results[name].items():
            if metric != "loss":
                history.val_metrics.setdefault(name, {}).setdefault(metric, []).append(value)
    if select == "loss":
        return sum(results[name]["loss"] for name in history.tasks)
    value = results[select][tasks[select].primary_metric]
    return -value if tasks[select].higher_is_better else value


@torch.no_grad()
def predict(model: MultiTaskModel, data: Dataset, batch_size: int = 256, device=None) -> dict[str, Tensor]:
    """The model's outputs for every item of ``data``, in order, on the CPU."""
    device = get_device(device)
    model.to(device).eval()
    outputs: dict[str, list[Tensor]] = {name: [] for name in model.tasks}
    for images, _ in batches(data, batch_size, device, shuffle=False):
        for name, out in model(images).items():
            outputs[name].append(out.cpu())
    return {name: torch.cat(chunks) for name, chunks in outputs.items()}


@torch.no_grad()
def evaluate(
    model: MultiTaskModel, data: Dataset, batch_size: int = 256, device: str | torch.device | None = None
) -> dict[str, dict[str, float]]:
    """Every task's metrics and mean loss on ``data``: ``{task: {metric: value, "loss": value}}``.

    Example:
        >>> from mtlcourse.data import MultiShapes
        >>> from mtlcourse.models import HardParameterSharing, SmallCNN
        >>> data = MultiShapes("val", num_images=32, tasks=["shape", "size"])
        >>> results = evaluate(HardParameterSharing(SmallCNN(width=4), data.tasks), data)
        >>> sorted(results["shape"]), sorted(results["size"])
        (['accuracy', 'loss', 'macro_f1', 'micro_f1'], ['loss', 'mae', 'rmse'])
    """
    check_tasks(model, data)
    device = get_device(device)
    model.to(device).eval()
    meters = {name: TaskMeter(task) for name, task in model.tasks.items()}
    loss_sum = torch.zeros(len(model.tasks), device=device)  # [T]
    num_images = 0
    for images, targets in batches(data, batch_size, device, shuffle=False):
        outputs = model(images)
        loss_sum += task_losses(outputs, targets, model.tasks) * len(images)
        num_images += len(images)
        for name, meter in meters.items():
            meter.update(outputs[name], targets[name])
    mean_losses = (loss_sum / num_images).tolist()
    return {name: {**meters[name].compute(), "loss": loss} for name, loss in zip(model.tasks, mean_losses)}
