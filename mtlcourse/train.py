"""Training and evaluation: ``fit`` and ``evaluate``, plain functions that read top to bottom.

Used in chapter 01 and every chapter after.
"""

from __future__ import annotations

import copy
import math
import numbers
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler
from tqdm import tqdm

from mtlcourse.augment import Transform
from mtlcourse.backward import mtl_step, task_losses
from mtlcourse.data.base import check_images, check_target, check_targets
from mtlcourse.extra_losses import ExtraLoss, check_extra_losses
from mtlcourse.methods import resolve_method
from mtlcourse.metrics import TaskMeter
from mtlcourse.models.base import MultiTaskModel
from mtlcourse.sampling import check_sample_weights, draw_order
from mtlcourse.tasks import Task
from mtlcourse.utils import get_device, seeded_generator, synchronize

#: A task whose training or validation loss rises this many times above its loss at the first training step
#: has diverged. The first step sees an untrained network, whose losses ordinary training only lowers:
#: overfitting or noisy batches move a loss by a small factor, never a thousandfold, while a diverging run
#: passes this factor long before its losses overflow to ``inf``.
DIVERGENCE_FACTOR = 1e3

#: Learning-rate schedules, each the factor by which ``lr`` is multiplied at ``step`` of ``total`` steps.
SCHEDULES = {
    "constant": lambda step, total: 1.0,
    "cosine": lambda step, total: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)),
}

#: The augmentation of ``fit`` draws from a generator of its own, seeded with ``seed + AUGMENT_STREAM``: the
#: batches are then the same with and without augmentation, and the two streams never share draws (a CPU
#: generator keeps the low 32 bits of its seed, so this offset gives a stream distinct from seeds below it).
AUGMENT_STREAM = 2**31


@dataclass
class Step:
    """What ``fit(..., on_step=fn)`` hands to ``fn`` at every training step.

    ``fn(step)`` is called after the step's gradients are in ``.grad`` and before the optimiser applies
    them: the model still holds the weights that produced ``losses``, so a recorder can look at the
    gradients, or at the model on the very batch the update uses. It must not change the model, its
    gradients, or a random generator that the run depends on, and its return value is ignored.

    Attributes:
        epoch: the epoch (0-based).
        step: the step since the start of the run (0-based).
        model: the model being trained.
        images: the batch ``[B, C, H, W]``, after augmentation.
        targets: the batch's targets, after augmentation.
        losses: the task losses ``[T]`` of the batch (detached).
        weights: the task weights ``[T]`` of the method, or ``None``.

    Example:
        >>> from mtlcourse.data import MultiShapes
        >>> from mtlcourse.models import HardParameterSharing, SmallCNN
        >>> data = MultiShapes("train", num_images=64, tasks=["shape"])
        >>> model = HardParameterSharing(SmallCNN(width=4), data.tasks)
        >>> seen = []
        >>> _ = fit(model, data, epochs=2, batch_size=32, progress=False, on_step=lambda s: seen.append(s.step))
        >>> seen
        [0, 1, 2, 3]

    Used in chapters 10 and 11.
    """

    epoch: int
    step: int
    model: MultiTaskModel
    images: Tensor
    targets: dict[str, Tensor]
    losses: Tensor
    weights: Tensor | None


@dataclass
class History:
    """What happened during :func:`fit`, one entry per epoch.

    Attributes:
        tasks: the task names, in the model's order.
        train_loss: mean training loss per task and epoch, over the labelled entries.
        val_loss: mean validation loss per task and epoch (empty without validation data).
        val_metrics: validation metrics per task, metric and epoch.
        weights: mean task weights per epoch (``nan`` for methods without task weights).
        epoch_time: training seconds per epoch (evaluation excluded).
        best_epoch: the epoch whose weights the model holds after training (0-based).
        extra_loss: mean unweighted value per epoch of each extra loss term (``fit(extra_losses=...)``),
            over the epoch's steps.
        test: filled by the caller if it evaluates on test data.
    """

    tasks: list[str]
    train_loss: dict[str, list[float]] = field(default_factory=dict)
    val_loss: dict[str, list[float]] = field(default_factory=dict)
    val_metrics: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    weights: list[list[float]] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    best_epoch: int = -1
    extra_loss: dict[str, list[float]] = field(default_factory=dict)

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
    data_tasks = getattr(data, "tasks", None)
    if not isinstance(data_tasks, dict):
        raise ValueError(
            f"the dataset {type(data).__name__} has no `tasks` dict; give it an attribute "
            "`tasks = {name: Task(...)}` that describes the target of every task its items yield "
            "(see mtlcourse.tasks.Task)"
        )
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


def in_memory(data: Dataset) -> bool:
    """Whether ``data`` holds ``images`` and ``targets`` tensors (checked when built) that batches slice."""
    return hasattr(data, "images") and hasattr(data, "targets")


def check_data(
    model: MultiTaskModel,
    data: Dataset,
    device: torch.device,
    batch_size: int,
    role: str,
    labels: bool = True,
) -> None:
    """Raise ``ValueError`` before the first step when ``data`` and ``model`` do not fit together.

    The data must have items and (with ``labels``) the model's tasks, each labelled somewhere: this is
    counted over the whole dataset when it is in memory, and after a pass otherwise. Its first batch must
    have the formats of :mod:`mtlcourse.tasks` (in-memory datasets were checked when they were built) and
    pass the model's own check (:meth:`~mtlcourse.models.base.MultiTaskModel.check_input`: channels, size).
    """
    if len(data) == 0:
        raise ValueError(
            f"the {role} data {type(data).__name__} is empty; pass a dataset with at least one image"
        )
    if labels:
        check_tasks(model, data)
        if in_memory(data):
            check_labelled(label_counts(data.targets, model.tasks), model.tasks, role)
    images, targets = next(batches(data, batch_size, device, shuffle=False))
    if not in_memory(data):
        try:
            check_images(images)
            if labels:
                check_targets(images, targets, data.tasks)
        except ValueError as error:
            raise ValueError(
                f"the first batch of the {role} data ({type(data).__name__}): {error}"
            ) from error
    model.check_input(images)


def label_counts(targets: dict[str, Tensor], tasks: dict[str, Task]) -> Tensor:
    """The number of labelled entries ``[T]`` of every task in ``targets`` (:meth:`~mtlcourse.tasks.Task.labelled`)."""
    return torch.stack([task.labelled(targets[name]).sum() for name, task in tasks.items()])  # [T]


def check_labelled(counts: Tensor, tasks: dict[str, Task], role: str) -> None:
    """Raise ``ValueError`` naming every task with no labelled entry (``counts`` ``[T]``) in the data."""
    empty = [name for name, count in zip(tasks, counts.tolist()) if count == 0]
    if empty:
        kept = [name for name in tasks if name not in empty]
        raise ValueError(
            f"task(s) {empty} have no label at all in the {role} data, so their loss and metrics are "
            f"undefined; drop them with data.select({kept}) and a model built for those tasks, or keep some "
            "of their labels (e.g. a label_fraction above 0)"
        )


def batches(
    data: Dataset,
    batch_size: int,
    device: torch.device,
    shuffle: bool,
    generator: torch.Generator | None = None,
    weights: Tensor | None = None,
) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
    """Yield ``(images, targets)`` batches on ``device``.

    An in-memory dataset (one with ``images`` and ``targets`` tensors) is sliced directly, which is much
    faster than a DataLoader for small images; any other dataset goes through a DataLoader. With
    per-image ``weights`` ``[N]``, the ``N`` images of the pass are drawn with replacement in proportion to
    them (:func:`mtlcourse.sampling.draw_order`), whatever ``shuffle``.
    """
    if in_memory(data):
        n = len(data)
        if weights is not None:
            order = draw_order(weights, generator)  # [N] drawn with replacement
        else:
            order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)  # [N]
        order = order.to(data.images.device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]  # [B]
            targets = {name: t[idx].to(device, non_blocking=True) for name, t in data.targets.items()}
            yield data.images[idx].to(device, non_blocking=True), targets
        return
    # A DataLoader draws its workers' base seed from its generator, or from the global one when it has
    # none: a generator of its own leaves the global random state alone.
    generator = generator if generator is not None else torch.Generator()
    if weights is not None:  # drawn as draw_order draws: torch.multinomial on float64 weights
        sampler = WeightedRandomSampler(
            weights.cpu().double(), len(data), replacement=True, generator=generator
        )
        loader = DataLoader(data, batch_size=batch_size, sampler=sampler, generator=generator)
    else:
        loader = DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator)
    for images, targets in loader:
        if not isinstance(targets, dict):
            raise ValueError(
                f"the items of {type(data).__name__} must be (image, {{task name: target}}) pairs, got "
                f"targets of type {type(targets).__name__}; return a dict of targets from __getitem__"
            )
        yield images.to(device), {name: t.to(device) for name, t in targets.items()}


def fit(
    model: MultiTaskModel,
    train: Dataset,
    val: Dataset | None = None,
    method: str | type[nn.Module] | nn.Module = "equal",
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    device: str | torch.device | None = None,
    seed: int = 0,
    select: str = "loss",
    route: str = "auto",
    progress: bool = True,
    lr_schedule: str = "constant",
    sample_weights: Tensor | None = None,
    augment: Transform | None = None,
    extra_losses: Sequence[ExtraLoss] = (),
    on_step: Callable[[Step], None] | None = None,
) -> History:
    """Train ``model`` on ``train`` with Adam, and keep the epoch that is best on ``val``.

    Every step forwards a batch, computes one loss per task, lets ``method`` turn them into gradients
    (:func:`mtlcourse.backward.mtl_step`), and takes an optimiser step. Model selection uses the validation
    data only: ``select="loss"`` keeps the epoch with the lowest *unweighted* sum of the validation task
    losses (whatever weights the method used); ``select`` set to a task name keeps the epoch with that task's
    best primary metric. Without ``val`` the last epoch is kept.

    Before the first step, the data are checked against the model (:func:`check_data`). After every epoch,
    a task whose training or validation loss is not finite, or more than :data:`DIVERGENCE_FACTOR` times
    its loss at the first step, stops the run with a ``FloatingPointError``.

    ``fit`` never touches the global random generators: ``seed`` fixes the order of the batches through a
    generator of its own. The initial weights are fixed by whoever builds the model: call
    :func:`mtlcourse.utils.seed_everything` before building it. The last four arguments change nothing at
    their defaults: no draw, no operation, the same numbers as a ``fit`` without them.

    Args:
        model: a :class:`~mtlcourse.models.base.MultiTaskModel`; its tasks must be tasks of the dataset.
        train: the training data (a :class:`~mtlcourse.data.base.TensorMultiTaskDataset` or any dataset of
            ``(image, {task: target})`` pairs with a ``tasks`` dict).
        val: validation data for model selection and learning curves.
        method: a loss-weighting or gradient-aggregation method: an instance (``UPGrad()``), a class
            (``UPGrad``) or a short name (``"upgrad"``, see :data:`mtlcourse.methods.METHODS`); equal
            weighting by default.
        epochs: passes over the training data, a whole number.
        batch_size: images per step, a whole number.
        lr: Adam's learning rate, for the model and for the method's own parameters if it has any (a method
            with an ``lr`` attribute that is not ``None`` sets its own, e.g. ``UncertaintyWeighting(lr=...)``).
        weight_decay: Adam's (L2) weight decay.
        device: ``"cpu"`` (default), ``"cuda"``, ``"mps"`` or ``"auto"``.
        seed: seeds the order of the batches (methods with random draws take a ``seed`` of their own).
        select: ``"loss"`` or a task name (see above).
        route: how :mod:`mtlcourse.backward` computes per-task gradients.
        progress: show a progress bar over epochs.
        lr_schedule: ``"constant"`` (default) or ``"cosine"``: the learning rate of every step is ``lr`` times
            the schedule's factor (see :data:`SCHEDULES`), which for ``"cosine"`` decays from 1 to 0 over the
            run so that the last epochs take small steps.
        sample_weights: per-image weights ``[N]`` of the training data: each epoch then draws its ``N``
            images with replacement, in proportion to the weights, through the same seeded generator
            (resampling, e.g. :func:`mtlcourse.sampling.class_balanced_weights`).
        augment: a transform of :mod:`mtlcourse.augment`, applied to every training batch (never to
            validation data) on the batch's device; its draws come from a generator seeded with
            ``seed + AUGMENT_STREAM``, so the batches are the same as without it. Every task of the model
            must be one it can keep right (:meth:`~mtlcourse.augment.Transform.check`, before the first step).
        extra_losses: :class:`~mtlcourse.extra_losses.ExtraLoss` terms over several tasks' outputs (a
            consistency loss): their weighted gradient is added after the method's update (see
            :mod:`mtlcourse.extra_losses` for why), and their mean per epoch is in ``History.extra_loss``.
        on_step: a function called as ``on_step(step)`` at every training step with a :class:`Step`, after the
            gradients are computed and before the optimiser applies them (to record something every step).

    Returns:
        The :class:`History` of the run. The model holds the selected epoch's weights.

    Raises:
        ValueError: for arguments or data that cannot be used; the message says how to fix them.
        FloatingPointError: when the losses diverge (see above), naming the task and the likely cause.

    Example:
        >>> from mtlcourse.data import MultiShapes
        >>> from mtlcourse.models import HardParameterSharing, SmallCNN
        >>> data = MultiShapes("train", num_images=64, tasks=["shape"])
        >>> model = HardParameterSharing(SmallCNN(width=4), data.tasks)
        >>> history = fit(model, data, method="upgrad", epochs=2, progress=False)
        >>> len(history.train_loss["shape"])
        2
    """
    check_fit_arguments(epochs, batch_size, lr, select, model, lr_schedule)
    generator = seeded_generator(seed)  # the order of the batches; the global generators stay as they are
    device = get_device(device)
    method = resolve_method(method, len(model.tasks)).to(device)
    method.reset()
    model.to(device)
    check_data(model, train, device, batch_size, "training")
    if val is not None:
        check_data(model, val, device, batch_size, "validation")
    check_fit_options(model, train, sample_weights, augment, extra_losses, on_step)
    augment_generator = None if augment is None else seeded_generator(seed + AUGMENT_STREAM)
    # The method's own parameters (uncertainty weighting's log-variances) get no weight decay: decay would
    # pull them towards 0, i.e. towards equal weights, which is not what the paper optimises.
    groups = [{"params": list(model.parameters()), "weight_decay": weight_decay}]
    if list(method.parameters()):
        method_lr = getattr(method, "lr", None) or lr  # a learned weight may move at its own pace
        groups.append({"params": list(method.parameters()), "weight_decay": 0.0, "lr": method_lr})
    # foreach: one update over all parameter tensors at once; small CNNs spend much of a step in per-tensor overhead.
    optimizer = torch.optim.Adam(groups, lr=lr, foreach=True)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total_steps = epochs * steps_per_epoch
    factor = SCHEDULES[lr_schedule]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: factor(step, total_steps))
    history = History(tasks=list(model.tasks))
    first_losses = torch.full((len(model.tasks),), math.nan, device=device)  # [T] filled by the first steps
    best_score, best_state = math.inf, None
    for epoch in tqdm(range(epochs), desc="epochs", disable=not progress):
        epoch_batches = batches(
            train, batch_size, device, shuffle=True, generator=generator, weights=sample_weights
        )
        if augment is not None:
            epoch_batches = augmented(epoch_batches, augment, model.tasks, augment_generator)
        epoch_losses, epoch_weights, seconds, first_losses, epoch_extra = train_one_epoch(
            model,
            epoch_batches,
            method,
            optimizer,
            scheduler,
            device,
            route,
            epoch,
            first_losses,
            extra_losses=extra_losses,
            on_step=on_step,
            first_step=epoch * steps_per_epoch,
        )
        check_divergence(epoch_losses.tolist(), first_losses.tolist(), "training", model.tasks, epoch, lr)
        method.on_epoch_end(epoch_losses)
        record_epoch(history, epoch_losses, epoch_weights, seconds)
        record_extra_losses(history, extra_losses, epoch_extra)
        if val is None:
            continue
        results = evaluate(model, val, device=device)
        val_losses = [results[name]["loss"] for name in model.tasks]
        check_divergence(val_losses, first_losses.tolist(), "validation", model.tasks, epoch, lr)
        score = record_validation(history, results, select, model.tasks)
        if score < best_score:
            best_score, best_state = score, copy.deepcopy(model.state_dict())
            history.best_epoch = epoch
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        history.best_epoch = epochs - 1
    return history


def check_fit_arguments(
    epochs: int, batch_size: int, lr: float, select: str, model: MultiTaskModel, lr_schedule: str
) -> None:
    """Raise ``ValueError`` for arguments ``fit`` cannot use."""
    check_whole_number("epochs", epochs)
    check_whole_number("batch_size", batch_size)
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if lr_schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {list(SCHEDULES)}, got {lr_schedule!r}")
    if select != "loss" and select not in model.tasks:
        raise ValueError(
            f"select must be 'loss' or one of the model's tasks {list(model.tasks)}, got {select!r}"
        )


def check_fit_options(
    model: MultiTaskModel,
    train: Dataset,
    sample_weights: Tensor | None,
    augment: Transform | None,
    extra_losses: Sequence[ExtraLoss],
    on_step: Callable[[Step], None] | None,
) -> None:
    """Raise ``ValueError`` for resampling, augmentation, extra losses or a callback ``fit`` cannot use."""
    if sample_weights is not None:
        check_sample_weights(sample_weights, len(train))
        if in_memory(train):  # a task whose labels all have weight 0 would never be trained
            drawn = (sample_weights > 0).to(train.images.device)  # [N]
            targets = {name: train.targets[name][drawn] for name in model.tasks}
            check_labelled(
                label_counts(targets, model.tasks), model.tasks, "training data drawn by sample_weights"
            )
    if augment is not None:
        if not isinstance(augment, Transform):
            raise ValueError(
                f"augment must be a transform of mtlcourse.augment (e.g. HorizontalFlip(...)), got "
                f"{type(augment).__name__}"
            )
        augment.check(model.tasks)
    check_extra_losses(list(extra_losses), list(model.tasks))
    if on_step is not None and not callable(on_step):
        raise ValueError(f"on_step must be a function of one Step, got {type(on_step).__name__}")


def augmented(
    epoch_batches: Iterable[tuple[Tensor, dict[str, Tensor]]],
    augment: Transform,
    tasks: dict[str, Task],
    generator: torch.Generator,
) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
    """The batches transformed by ``augment``, with the targets of ``tasks`` (drawing from ``generator``)."""
    for images, targets in epoch_batches:
        yield augment(images, targets, tasks, generator)


def check_whole_number(name: str, value: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer of at least 1 (epochs and images come whole)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1:
        return
    hint = ""
    if isinstance(value, float) and math.isfinite(value) and value >= 1:
        hint = f"; use {name}={math.floor(value)} or {name}={math.ceil(value)}"
    raise ValueError(f"{name} must be at least 1 and a whole number (an int), got {value!r}{hint}")


def train_one_epoch(
    model: MultiTaskModel,
    epoch_batches: Iterable[tuple[Tensor, dict[str, Tensor]]],
    method: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    route: str,
    epoch: int,
    first_losses: Tensor,
    extra_losses: Sequence[ExtraLoss] = (),
    on_step: Callable[[Step], None] | None = None,
    first_step: int = 0,
) -> tuple[Tensor, Tensor | None, float, Tensor, Tensor | None]:
    """One pass over the ``(images, targets)`` of ``epoch_batches``, one optimiser step per batch.

    Returns the mean task losses ``[T]`` over the epoch's labelled entries (each batch's mean weighted by
    its labelled entries), the mean weights ``[T]`` (or ``None``), the seconds, ``first_losses`` ``[T]``
    with each task's loss at its first step with labels filled in (``nan`` until then), and the mean
    value ``[K]`` of each extra loss term over the steps (``None`` without terms).
    """
    model.train()
    loss_sum = torch.zeros(len(model.tasks), device=device)  # [T] sum of batch losses times their labels
    num_labelled = torch.zeros(len(model.tasks), device=device)  # [T]
    weight_sum, num_steps, extra_sum = None, 0, None
    synchronize(device)
    start = time.perf_counter()
    for images, targets in epoch_batches:
        optimizer.zero_grad(set_to_none=True)
        try:
            losses, weights = mtl_step(model, images, targets, method, route, extra_losses)
        except FloatingPointError as error:
            cause = non_finite_cause(images, targets, model.tasks, optimizer.param_groups[0]["lr"])
            raise FloatingPointError(f"epoch {epoch}: {error}; {cause}") from error
        if on_step is not None:  # the model still holds the weights that produced `losses`
            on_step(Step(epoch, first_step + num_steps, model, images, targets, losses, weights))
        if extra_losses:
            values = torch.stack([term.last_value for term in extra_losses])  # [K]
            extra_sum = values if extra_sum is None else extra_sum + values
        optimizer.step()
        scheduler.step()  # the learning rate of the next step
        method.on_step_end(losses, losses_after_step(model, images, targets, method))
        labelled = label_counts(targets, model.tasks)  # [T]
        first_losses = torch.where(first_losses.isnan() & (labelled > 0), losses, first_losses)  # [T]
        loss_sum += losses * labelled
        num_labelled += labelled
        num_steps += 1
        if weights is not None:
            weight_sum = weights if weight_sum is None else weight_sum + weights
    synchronize(device)
    seconds = time.perf_counter() - start
    check_labelled(num_labelled, model.tasks, "training")
    mean_weights = None if weight_sum is None else weight_sum / num_steps
    mean_extra = None if extra_sum is None else extra_sum / num_steps
    return loss_sum / num_labelled, mean_weights, seconds, first_losses, mean_extra


def non_finite_cause(images: Tensor, targets: dict[str, Tensor], tasks: dict[str, Task], lr: float) -> str:
    """The likely cause of a non-finite loss: a non-finite target of the batch if it has one, else the lr."""
    for name, task in tasks.items():
        try:
            check_target(targets[name], task, images)
        except ValueError as error:
            return f"the cause is the data, not the learning rate: {error}"
    return f"the learning rate lr={lr:g} is probably too large: try a smaller lr, e.g. lr={lr / 10:g}"


def check_divergence(
    losses: list[float], first: list[float], role: str, tasks: dict[str, Task], epoch: int, lr: float
) -> None:
    """Raise ``FloatingPointError`` naming every task whose ``role`` loss diverged from its first-step loss."""
    diverged = [
        f"{name!r} ({role} loss {loss:.3g}, first step {start:.3g})"
        for name, loss, start in zip(tasks, losses, first)
        if not math.isfinite(loss) or loss > DIVERGENCE_FACTOR * start
    ]
    if diverged:
        raise FloatingPointError(
            f"epoch {epoch}: training diverged for task(s) {', '.join(diverged)}: a loss that is not finite "
            f"or more than {DIVERGENCE_FACTOR:g} times its loss at the first step; with lr={lr:g} the steps "
            f"are probably too large: try a smaller lr, e.g. lr={lr / 10:g}"
        )


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


def record_extra_losses(history: History, terms: Sequence[ExtraLoss], values: Tensor | None) -> None:
    """Append the epoch's mean value of every extra loss term (``values`` ``[K]``) to ``history``."""
    if values is None:
        return
    for term, value in zip(terms, values.tolist()):
        history.extra_loss.setdefault(term.name, []).append(value)


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
def predict(
    model: MultiTaskModel, data: Dataset, batch_size: int = 256, device: str | torch.device | None = None
) -> dict[str, Tensor]:
    """The model's outputs for every item of ``data``, in order, on the CPU."""
    device = get_device(device)
    model.to(device).eval()
    check_data(model, data, device, batch_size, "prediction", labels=False)
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

    The loss is summed over every labelled entry of ``data`` and divided by their number
    (:meth:`~mtlcourse.tasks.Task.summed_loss`), so it does not depend on ``batch_size``, even when labels
    are missing. A task with no label at all in ``data`` raises ``ValueError``.

    Example:
        >>> from mtlcourse.data import MultiShapes
        >>> from mtlcourse.models import HardParameterSharing, SmallCNN
        >>> data = MultiShapes("val", num_images=32, tasks=["shape", "size"])
        >>> results = evaluate(HardParameterSharing(SmallCNN(width=4), data.tasks), data)
        >>> sorted(results["shape"]), sorted(results["size"])
        (['accuracy', 'loss', 'macro_f1', 'micro_f1'], ['loss', 'mae', 'rmse'])
    """
    device = get_device(device)
    model.to(device).eval()
    check_data(model, data, device, batch_size, "evaluated")
    meters = {name: TaskMeter(task) for name, task in model.tasks.items()}
    loss_sum = torch.zeros(len(model.tasks), device=device)  # [T] over every labelled entry
    num_labelled = torch.zeros(len(model.tasks), device=device)  # [T]
    for images, targets in batches(data, batch_size, device, shuffle=False):
        outputs = model(images)
        for t, (name, task) in enumerate(model.tasks.items()):
            total, count = task.summed_loss(outputs[name], targets[name])
            loss_sum[t] += total
            num_labelled[t] += count
            meters[name].update(outputs[name], targets[name])
    check_labelled(num_labelled, model.tasks, "evaluated")
    mean_losses = (loss_sum / num_labelled).tolist()
    return {name: {**meters[name].compute(), "loss": loss} for name, loss in zip(model.tasks, mean_losses)}
