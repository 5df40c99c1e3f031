"""Task descriptions: the single source from which heads, losses and metrics are built.

A :class:`Task` says what a model must predict for one target of a dataset. The model's head
(:func:`mtlcourse.models.heads.make_head`), the loss (:meth:`Task.loss`) and the metrics
(:class:`mtlcourse.metrics.TaskMeter`) are all derived from it, so they cannot disagree.

Output and target conventions, with ``B`` the batch size:

================  =======================  =====================================  ===============
kind              model output             target                                 a missing label
================  =======================  =====================================  ===============
``multiclass``    logits ``[B, C]``        class index ``[B]`` (long)             ``-1``
``binary``        logit ``[B]``            ``0.`` or ``1.`` ``[B]`` (float)       ``nan``
``multilabel``    logits ``[B, K]``        ``0.`` / ``1.`` ``[B, K]`` (float)     ``nan``
``segmentation``  logits ``[B, C, H, W]``  class index ``[B, H, W]`` (long)       ``-1``
``edge``          logits ``[B, H, W]``     ``0.`` / ``1.`` ``[B, H, W]`` (float)  ``nan``
``regression``    values ``[B, D]``        values ``[B, D]`` (float)              ``nan``
================  =======================  =====================================  ===============

An ``edge`` task is boundary detection: one logit per pixel, and a target of 1 on a boundary pixel, 0
elsewhere (an image without a label is all ``nan``). It differs from a two-class ``segmentation`` task in
its metrics: boundary pixels are rare, so a mean IoU over "boundary" and "not boundary" is dominated by the
easy second class, while the boundary F1 (:func:`mtlcourse.metrics.boundary_f1`) looks only at the
boundaries, and forgives a boundary found one pixel away.

A missing label (partial labels, chapter 10) is simply left out of the loss and the metrics.

A ``multiclass`` task also accepts *soft targets*: float rows ``[B, C]`` of class probabilities (each row
non-negative and summing to 1, within :data:`SOFT_TARGET_TOLERANCE`), with a whole row of ``nan`` for a
missing label. The loss is then the cross-entropy with those probabilities, and the metrics score the most
probable class of each row (:meth:`Task.hard_target`).

The loss options of chapter 10 (messy labels) are fields of :class:`Task`: ``class_weights``,
``label_smoothing``, ``focal_gamma`` and ``logit_adjustment`` (with :func:`logit_adjustment_offsets`), next
to ``pos_weight``. Their defaults give the plain losses exactly.

Used in chapter 00 and everywhere after; the loss options and soft targets in chapter 10.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

#: The kinds of task, each with its own head, loss and metrics.
KINDS = ("multiclass", "binary", "multilabel", "segmentation", "edge", "regression")

#: The kinds predicted pixel by pixel (at the image's size); the others are predicted once per image.
PER_PIXEL_KINDS = ("segmentation", "edge")

#: The kinds trained with binary cross-entropy, the ones where ``pos_weight`` applies.
BCE_KINDS = ("binary", "multilabel", "edge")

#: The kinds trained with a softmax cross-entropy over classes, where ``class_weights``, ``label_smoothing``
#: and ``logit_adjustment`` apply.
CLASS_KINDS = ("multiclass", "segmentation")

#: The kinds where ``focal_gamma`` applies: every classification kind.
FOCAL_KINDS = ("multiclass", "segmentation", "binary", "multilabel", "edge")

#: How far the sum of a soft target row may lie from 1 (absolute difference).
SOFT_TARGET_TOLERANCE = 1e-3

#: The metrics each kind reports; the first one is the task's primary metric.
METRICS = {
    "multiclass": ("accuracy", "macro_f1", "micro_f1"),
    "binary": ("accuracy", "f1", "precision", "recall"),
    "multilabel": ("micro_f1", "macro_f1", "accuracy"),
    "segmentation": ("miou", "pixel_accuracy"),
    "edge": ("boundary_f1", "precision", "recall", "pixel_accuracy"),
    "regression": ("mae", "rmse"),
}

#: Metrics where a lower value is better; every other metric is better when higher.
LOWER_IS_BETTER = frozenset({"mae", "rmse", "loss"})


@dataclass(frozen=True)
class Task:
    r"""One prediction target of a multi-task dataset.

    The loss, with every option (their defaults give the plain losses): for multiclass and segmentation,
    over the labelled entries :math:`i` (images or pixels), with logits :math:`z_i`, the target distribution
    :math:`\bar q_i` (the one-hot of the class :math:`y_i`, or a soft target row) and :math:`C` classes,

    .. math::

        p_i = \mathrm{softmax}(z_i + b), \qquad
        q_i = (1 - \varepsilon)\, \bar q_i + \tfrac{\varepsilon}{C}, \qquad
        \ell_i = -\sum_{c=1}^{C} w_c\, q_{ic}\, (1 - p_{ic})^{\gamma} \log p_{ic}, \qquad
        L = \frac{\sum_i \ell_i}{\sum_i \sum_c w_c\, \bar q_{ic}},

    where the denominator is :math:`\sum_i w_{y_i}` for class indices, PyTorch's definition (the
    number of labelled entries when there are no class weights). For one-hot targets and
    :math:`\varepsilon = 0` the summand is the focal loss :math:`-w_{y}\,(1 - p_{y})^\gamma \log p_{y}`;
    with :math:`\gamma = 0` it is ``F.cross_entropy`` with ``weight`` and ``label_smoothing``. For binary,
    multilabel and edge, :math:`\ell_i = (1 - p_t)^\gamma\, \mathrm{BCE}(z_i, y_i)` (with ``pos_weight``)
    where :math:`p_t = \sigma(z_i)` if :math:`y_i = 1` and :math:`1 - \sigma(z_i)` if :math:`y_i = 0`,
    divided by the number of labelled entries.

    Args:
        name: the key of this task in a dataset's targets and a model's outputs.
        kind: one of ``multiclass``, ``binary``, ``multilabel``, ``segmentation``, ``edge``, ``regression``.
        num_outputs: classes (multiclass, segmentation), labels (multilabel), values (regression);
            1 for binary and edge.
        class_names: optional names of the classes or labels, for plots and confusion matrices.
        description: one sentence for tables and plots.
        pos_weight: weight of the positive entries in the binary cross-entropy of binary, multilabel and
            edge tasks (default 1: the plain loss). Boundary pixels are rare (about 5% of a MultiShapes
            image), so a network that predicts "no boundary" everywhere already has a small loss;
            ``pos_weight`` near ``negatives / positives`` gives both classes the same total weight, as the
            class-balanced loss of HED does (Xie and Tu, ICCV 2015); MultiShapes' ``edges`` task uses 18. The
            mean is still over the labelled entries, so a larger ``pos_weight`` also makes the loss larger.
        class_weights: one weight :math:`w_c \ge 0` per class, at least one positive (multiclass and
            segmentation; default ``None``: every class 1). The loss becomes the *weighted* mean over the
            labelled entries, exactly as ``F.cross_entropy(weight=w)`` defines it (the formula above), so
            weights scaled together leave the loss unchanged; :math:`w_c \propto 1 / n_c` (``n_c`` examples
            of class ``c``) gives every class the same total weight on an imbalanced task.
        label_smoothing: :math:`\varepsilon \in [0, 1)` (multiclass and segmentation; default 0): the target
            distribution becomes :math:`(1 - \varepsilon)\, q + \varepsilon / C`, as in
            ``F.cross_entropy(label_smoothing=...)`` (Szegedy, Vanhoucke, Ioffe, Shlens and Wojna, CVPR 2016;
            Müller, Kornblith and Hinton, NeurIPS 2019: it also improves calibration).
        focal_gamma: :math:`\gamma \ge 0` of the focal loss (multiclass, segmentation, binary, multilabel,
            edge; default 0: the plain loss). Each entry's loss is multiplied by :math:`(1 - p_t)^\gamma`, so
            entries the model already gets right with confidence count less (Lin, Goyal, Girshick, He and
            Dollár, ICCV 2017, who use :math:`\gamma = 2`); the paper's :math:`\alpha` balancing is
            ``class_weights`` (or ``pos_weight`` for the binary kinds).
        logit_adjustment: one offset :math:`b_c` per class added to the logits inside the loss only
            (multiclass and segmentation; default ``None``). With :math:`b_c = \tau \log \pi_c`, the class
            priors :math:`\pi` of the training labels (:func:`logit_adjustment_offsets`), this is the
            logit-adjusted loss of Menon, Jayasumana, Rawat, Jain, Veit and Kumar (ICLR 2021): the model's
            outputs are not shifted, so its plain argmax is the prediction that balances the classes.

    Example:
        >>> task = Task("shape", "multiclass", 4)
        >>> task.primary_metric, task.higher_is_better
        ('accuracy', True)
        >>> task.loss(torch.zeros(2, 4), torch.tensor([0, -1]))  # the second label is missing
        tensor(1.3863)
        >>> Task("shape", "multiclass", 4, focal_gamma=2.0).loss(torch.zeros(1, 4), torch.tensor([0]))
        tensor(0.7798)
        >>> task.loss(torch.zeros(1, 4), torch.tensor([[0.7, 0.1, 0.1, 0.1]]))  # a soft target
        tensor(1.3863)

    Used in chapter 00; the loss options and soft targets in chapter 10.
    """

    name: str
    kind: str
    num_outputs: int
    class_names: tuple[str, ...] | None = None
    description: str = ""
    pos_weight: float = 1.0
    class_weights: tuple[float, ...] | None = None
    label_smoothing: float = 0.0
    focal_gamma: float = 0.0
    logit_adjustment: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Task {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.num_outputs < 1:
            raise ValueError(f"Task {self.name!r}: num_outputs must be at least 1, got {self.num_outputs}")
        if self.kind in ("binary", "edge") and self.num_outputs != 1:
            raise ValueError(
                f"Task {self.name!r}: a {self.kind} task has num_outputs=1 (one logit per "
                f"{'pixel' if self.kind == 'edge' else 'image'}), got {self.num_outputs}"
            )
        if self.kind in ("multiclass", "segmentation") and self.num_outputs < 2:
            raise ValueError(f"Task {self.name!r}: a {self.kind} task needs at least 2 classes")
        if self.class_names is not None and len(self.class_names) != self.num_outputs:
            raise ValueError(
                f"Task {self.name!r}: {len(self.class_names)} class_names for {self.num_outputs} outputs"
            )
        if not self.pos_weight > 0:
            raise ValueError(f"Task {self.name!r}: pos_weight must be positive, got {self.pos_weight}")
        if self.pos_weight != 1 and self.kind not in BCE_KINDS:
            raise ValueError(
                f"Task {self.name!r}: pos_weight weighs the positive entries of a binary cross-entropy, used by "
                f"kinds {BCE_KINDS}; a {self.kind} task has none, so leave pos_weight at 1"
            )
        self._check_loss_options()

    def _check_loss_options(self) -> None:
        """Validate ``class_weights``, ``label_smoothing``, ``focal_gamma`` and ``logit_adjustment``."""
        bce = (
            " (pos_weight weighs the positive entries of a binary cross-entropy)"
            if self.kind in BCE_KINDS
            else ""
        )
        self._require_kind("class_weights", self.class_weights is not None, CLASS_KINDS, "None", bce)
        self._require_kind("label_smoothing", self.label_smoothing != 0, CLASS_KINDS, "0")
        self._require_kind("focal_gamma", self.focal_gamma != 0, FOCAL_KINDS, "0")
        self._require_kind("logit_adjustment", self.logit_adjustment is not None, CLASS_KINDS, "None")
        if self.class_weights is not None:
            weights = self._per_class_option("class_weights", self.class_weights)
            if min(weights) < 0 or max(weights) <= 0:
                raise ValueError(
                    f"Task {self.name!r}: class_weights must be non-negative with at least one positive, got "
                    f"{weights}; a weight of 0 leaves a class out of the loss, 1 is the plain loss"
                )
        if self.logit_adjustment is not None:
            self._per_class_option("logit_adjustment", self.logit_adjustment)
        if not (_is_number(self.label_smoothing) and 0 <= self.label_smoothing < 1):
            raise ValueError(
                f"Task {self.name!r}: label_smoothing must be a number in [0, 1), got {self.label_smoothing!r}; "
                "0 is the plain loss, 0.1 is the usual choice"
            )
        if not (_is_number(self.focal_gamma) and 0 <= self.focal_gamma < math.inf):
            raise ValueError(
                f"Task {self.name!r}: focal_gamma must be a finite number >= 0, got {self.focal_gamma!r}; "
                "0 is the plain loss, Lin et al. use 2"
            )

    def _require_kind(
        self, option: str, used: bool, kinds: tuple[str, ...], default: str, hint: str = ""
    ) -> None:
        """Raise ``ValueError`` when ``option`` is ``used`` on a task whose kind is not in ``kinds``."""
        if used and self.kind not in kinds:
            raise ValueError(
                f"Task {self.name!r}: {option} applies to the kinds {kinds}, not to a {self.kind} task; leave "
                f"{option} at {default}{hint}"
            )

    def _per_class_option(self, option: str, value: Sequence[float]) -> tuple[float, ...]:
        """Store ``value`` as a tuple of ``C`` finite floats, or raise ``ValueError`` saying what is wrong."""
        try:
            values = tuple(float(v) for v in value) if not isinstance(value, str) else None
        except (TypeError, ValueError):
            values = None
        if values is None:
            raise ValueError(
                f"Task {self.name!r}: {option} must be a sequence of numbers, one per class, got {value!r}"
            )
        if len(values) != self.num_outputs:
            raise ValueError(
                f"Task {self.name!r}: {option} has {len(values)} entries but the task has {self.num_outputs} "
                "classes; give one number per class, in class order"
            )
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"Task {self.name!r}: {option} must hold finite numbers, got {values}")
        object.__setattr__(self, option, values)  # a frozen dataclass: stored once, as a tuple of floats
        return values

    @property
    def metrics(self) -> tuple[str, ...]:
        """Names of the metrics reported for this task, the primary one first."""
        return METRICS[self.kind]

    @property
    def primary_metric(self) -> str:
        """The metric used to compare models on this task."""
        return METRICS[self.kind][0]

    @property
    def higher_is_better(self) -> bool:
        """Whether a larger primary metric is better."""
        return self.primary_metric not in LOWER_IS_BETTER

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Mean loss over the labelled entries of a batch; missing labels are skipped.

        Cross-entropy for multiclass and segmentation, binary cross-entropy with logits for binary,
        multilabel and edge (``pos_weight`` on the positive entries), mean squared error for regression,
        each with the options of the task (the formula of :class:`Task`): :meth:`summed_loss` divided by the
        number of labelled entries (by their summed class weights with ``class_weights``). A batch with no
        label at all (or whose labelled entries all have class weight 0) gives the bare sum, 0 without label
        smoothing, that still depends on ``output``, so every parameter gets a (zero) gradient.
        """
        total, count = self.summed_loss(output, target)
        return total / torch.where(count > 0, count, 1)  # the same as count.clamp_min(1) for whole counts

    def summed_loss(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """The loss summed over the labelled entries of a batch, and how many entries that is.

        An entry is an image (multiclass, binary), a pixel (segmentation, edge) or one value (multilabel,
        regression). Summing both numbers over the batches of a split and dividing gives the split's mean
        loss, which, unlike a mean of per-batch means, does not depend on the batch size when labels are
        missing. With ``class_weights`` both numbers are weighted: the count is the summed weight of the
        labelled entries (the formula of :class:`Task`).

        Example:
            >>> Task("c", "multiclass", 2).summed_loss(torch.zeros(3, 2), torch.tensor([0, 1, -1]))
            (tensor(1.3863), tensor(2))
        """
        if self.kind in CLASS_KINDS:
            return self._class_loss(output, target)
        labelled = self.labelled(target)  # like target
        count = labelled.sum()
        if self.kind == "binary" and output.dim() == 2:
            output = output.squeeze(1)  # [B, 1] -> [B]
        output, target = output[labelled], target[labelled]  # [n] labelled entries only
        if self.kind == "regression":
            return F.mse_loss(output, target, reduction="sum"), count
        pos_weight = None  # the plain loss, exactly as without the option
        if self.pos_weight != 1:
            pos_weight = torch.tensor(self.pos_weight, dtype=output.dtype, device=output.device)
        if self.focal_gamma == 0:
            loss = F.binary_cross_entropy_with_logits(output, target, reduction="sum", pos_weight=pos_weight)
            return loss, count
        bce = F.binary_cross_entropy_with_logits(
            output, target, reduction="none", pos_weight=pos_weight
        )  # [n]
        wrong = torch.sigmoid(output * (1 - 2 * target))  # [n] 1 - p_t: sigma(-z) if y = 1, sigma(z) if y = 0
        return (wrong.pow(self.focal_gamma) * bce).sum(), count

    def _class_loss(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`summed_loss` of multiclass and segmentation: logits ``[B, C, ...]``; classes or soft rows."""
        logits = output
        if self.logit_adjustment is not None:
            logits = output + self._per_class_tensor(self.logit_adjustment, output)  # [B, C, ...]
        weight = None if self.class_weights is None else self._per_class_tensor(self.class_weights, output)
        if self.is_soft_target(target):
            self.check_soft_target(target)
            labelled = self.labelled(target)  # [B]
            q = target.nan_to_num(0.0)  # [B, C]; a missing row holds zeros
            count = labelled.sum() if weight is None else (q * weight).sum()
            return self._expected_loss(logits, q, labelled, weight), count
        labelled = target != -1  # [B, ...]
        if weight is None:
            count = labelled.sum()
        else:
            dtype = torch.promote_types(weight.dtype, torch.float32)  # a sum of many weights needs float32
            w = weight.flatten().to(dtype)  # [C]
            count = torch.where(labelled, w[target.clamp_min(0)], 0).sum()  # sum of w_y over labelled entries
        if self.focal_gamma == 0:
            loss = F.cross_entropy(
                logits,
                target,
                weight=None if weight is None else weight.flatten(),
                ignore_index=-1,
                reduction="sum",
                label_smoothing=self.label_smoothing,
            )
            return loss, count
        q = F.one_hot(target.clamp_min(0), self.num_outputs).movedim(-1, 1)  # [B, ...] -> [B, C, ...]
        q = q * labelled.unsqueeze(1)  # [B, C, ...]; a missing entry holds zeros
        return self._expected_loss(logits, q.to(logits.dtype), labelled, weight), count

    def _expected_loss(self, logits: Tensor, q: Tensor, labelled: Tensor, weight: Tensor | None) -> Tensor:
        r""":math:`\sum_i \ell_i` (the formula of :class:`Task`) for logits and distributions ``[B, C, ...]``."""
        log_p = F.log_softmax(logits, dim=1)  # [B, C, ...]
        if self.label_smoothing > 0:
            uniform = labelled.unsqueeze(1) / self.num_outputs  # [B, 1, ...]; 0 for a missing entry
            q = (1 - self.label_smoothing) * q + self.label_smoothing * uniform  # [B, C, ...]
        terms = -q * log_p  # [B, C, ...]
        if self.focal_gamma > 0:
            wrong = (-torch.expm1(log_p)).clamp_min(torch.finfo(log_p.dtype).tiny)  # [B, C, ...] 1 - p
            terms = terms * wrong.pow(self.focal_gamma)  # clamped: no infinite gradient where p = 1
        if weight is not None:
            terms = terms * weight  # [B, C, ...]
        return terms.sum()

    def _per_class_tensor(self, values: tuple[float, ...], output: Tensor) -> Tensor:
        """``values`` as a tensor ``[1, C, 1, ...]`` that broadcasts over ``output`` ``[B, C, ...]``."""
        shape = (1, self.num_outputs) + (1,) * (output.dim() - 2)
        return torch.tensor(values, dtype=output.dtype, device=output.device).view(shape)  # [1, C, 1, ...]

    def labelled(self, target: Tensor) -> Tensor:
        """Which entries of ``target`` carry a label: booleans shaped like ``target`` (``-1`` or ``nan`` is missing).

        For soft targets ``[B, C]`` an entry is a row: ``[B]`` booleans, ``False`` for a row of ``nan``.

        Example:
            >>> Task("r", "regression", 2).labelled(torch.tensor([[0.5, float("nan")]]))
            tensor([[ True, False]])
        """
        if self.is_soft_target(target):
            return ~torch.isnan(target).all(dim=1)  # [B]
        if self.kind in ("multiclass", "segmentation"):
            return target != -1
        return ~torch.isnan(target)

    def is_soft_target(self, target: Tensor) -> bool:
        """Whether ``target`` is a soft target: float ``[B, C]`` class probabilities of a multiclass task."""
        return self.kind == "multiclass" and target.is_floating_point() and target.dim() == 2

    def check_soft_target(self, target: Tensor) -> None:
        """Raise ``ValueError`` unless ``target`` holds rows of ``C`` probabilities summing to 1, or of ``nan``.

        A row's sum may differ from 1 by :data:`SOFT_TARGET_TOLERANCE`. One device synchronisation.

        Example:
            >>> Task("c", "multiclass", 2).check_soft_target(torch.tensor([[0.2, 0.8], [float("nan")] * 2]))
        """
        where = f"Task {self.name!r}: a soft target"
        if not self.is_soft_target(target) or target.shape[1] != self.num_outputs:
            raise ValueError(
                f"{where} must be a float tensor [B, {self.num_outputs}] of class probabilities, got "
                f"{target.dtype} of shape {list(target.shape)}"
            )
        missing = torch.isnan(target)  # [B, C]
        complete = ~missing.any(dim=1)  # [B]
        partial = missing.any(dim=1) & ~missing.all(dim=1)  # [B]
        negative = (target < 0).any(dim=1) & complete  # [B]
        off = ((target.sum(dim=1) - 1).abs() > SOFT_TARGET_TOLERANCE) & complete  # [B]
        if not bool((partial | negative | off).any()):
            return
        row = int((partial | negative | off).nonzero()[0, 0])
        values = [round(v, 4) for v in target[row].tolist()]
        if partial[row]:
            raise ValueError(
                f"{where} row {row} is {values}: nan in some entries but not all; mark a missing label with a "
                "whole row of nan"
            )
        if negative[row]:
            raise ValueError(
                f"{where} row {row} is {values}: probabilities cannot be negative; clip them with "
                "target.clamp_min(0), then divide each row by its sum"
            )
        raise ValueError(
            f"{where} row {row} is {values}, which sums to {sum(values):.4g}, not 1 (tolerance "
            f"{SOFT_TARGET_TOLERANCE}); divide each row by its sum: target / target.sum(dim=1, keepdim=True)"
        )

    def hard_target(self, target: Tensor) -> Tensor:
        """``target`` with each soft row replaced by its most probable class (:func:`most_probable_class`).

        The metrics of a multiclass task score soft targets this way. Any other target is returned as it is.

        Example:
            >>> Task("c", "multiclass", 3).hard_target(torch.tensor([[0.2, 0.5, 0.3], [float("nan")] * 3]))
            tensor([ 1, -1])
        """
        return most_probable_class(target) if self.is_soft_target(target) else target


def _is_number(value: object) -> bool:
    """Whether ``value`` is an ``int`` or a ``float`` (not a ``bool``)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def most_probable_class(target: Tensor) -> Tensor:
    """The most probable class ``[B]`` (long) of each soft target row ``[B, C]``; ``-1`` for a ``nan`` row.

    Ties go to the lowest class index, as ``torch.argmax`` breaks them.

    Example:
        >>> most_probable_class(torch.tensor([[0.1, 0.9], [0.5, 0.5], [float("nan")] * 2]))
        tensor([ 1,  0, -1])
    """
    labelled = ~torch.isnan(target).all(dim=1)  # [B]
    return torch.where(labelled, target.nan_to_num(-1.0).argmax(dim=1), -1)  # [B]


def logit_adjustment_offsets(target: Tensor, num_classes: int, tau: float = 1.0) -> tuple[float, ...]:
    r"""The offsets :math:`b_c = \tau \log \pi_c` of ``Task(logit_adjustment=...)`` from training labels.

    :math:`\pi_c` is the fraction of the labelled entries of class :math:`c` (Menon, Jayasumana, Rawat, Jain,
    Veit and Kumar, "Long-tail learning via logit adjustment", ICLR 2021, who use :math:`\tau = 1`).

    Args:
        target: class indices of any shape (``[N]``, or ``[N, H, W]`` for segmentation), ``-1`` for missing.
        num_classes: ``C``; every class needs at least one labelled entry (a prior of 0 has no logarithm).
        tau: the temperature :math:`\tau \ge 0` (default 1; 0 gives offsets of 0, the plain loss).

    Returns:
        ``C`` floats, ready for ``Task(..., logit_adjustment=offsets)``.

    Example:
        >>> offsets = logit_adjustment_offsets(torch.tensor([0, 0, 0, 1, -1]), num_classes=2)
        >>> [round(b, 4) for b in offsets]  # log 0.75, log 0.25
        [-0.2877, -1.3863]

    Used in chapter 10.
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a whole number of classes, at least 1, got {num_classes!r}")
    if not _is_number(tau) or not 0 <= tau < math.inf:
        raise ValueError(f"tau must be a finite number >= 0, got {tau!r}; Menon et al. use 1")
    if not isinstance(target, Tensor) or target.is_floating_point() or target.is_complex():
        raise ValueError(
            "target must be a tensor of class indices (-1 for missing); for soft targets pass their most "
            "probable class, most_probable_class(target)"
        )
    known = target[target != -1]  # [n] labelled entries
    if known.numel() == 0:
        raise ValueError(
            f"target has no labelled entry ({target.numel()} entries, all missing or none); the class priors "
            "need the training labels"
        )
    if bool((known < 0).any() | (known >= num_classes).any()):
        raise ValueError(f"target must hold classes in [0, {num_classes - 1}] or -1 (missing)")
    counts = torch.bincount(known.flatten(), minlength=num_classes)  # [C]
    absent = (counts == 0).nonzero().flatten().tolist()
    if absent:
        raise ValueError(
            f"class(es) {absent} never occur in target: a prior of 0 has no logarithm; give every class at "
            "least one labelled training entry, or leave the class out of the task"
        )
    prior = counts.double() / counts.sum()  # [C]
    return tuple((tau * prior.log()).tolist())


def as_task_dict(tasks: dict[str, Task] | list[Task] | tuple[Task, ...] | Task) -> dict[str, Task]:
    """Normalise one task, a list of tasks or a dict of tasks to a dict keyed by task name."""
    if isinstance(tasks, Task):
        tasks = [tasks]
    items = list(tasks.values()) if isinstance(tasks, dict) else list(tasks)
    if not items:
        raise ValueError("at least one task is needed, got none")
    if not all(isinstance(t, Task) for t in items):
        raise ValueError(f"tasks must be Task objects, got {[type(t).__name__ for t in items]}")
    names = [t.name for t in items]
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique, got {names}")
    return {t.name: t for t in items}


def select_tasks(available: dict[str, Task], names: list[str] | tuple[str, ...] | None) -> dict[str, Task]:
    """Pick tasks by name, in the order given, with an error that lists the valid names.

    Example:
        >>> tasks = {"shape": Task("shape", "multiclass", 4), "size": Task("size", "regression", 1)}
        >>> list(select_tasks(tasks, ["size"]))
        ['size']
    """
    if names is None:
        return dict(available)
    if isinstance(names, str):
        names = [names]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; valid task names are {sorted(available)}")
    return {n: available[n] for n in names}
