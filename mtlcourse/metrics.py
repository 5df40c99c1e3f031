r"""Metrics for every kind of task, a streaming :class:`TaskMeter`, and the multi-task summary :func:`delta_m`.

Everything here is plain PyTorch: it runs on the device of its inputs and never copies to the CPU except
where a number must be returned. Missing labels follow the conventions of :mod:`mtlcourse.tasks` (``-1``
for class indices, ``nan`` for float targets) and are left out of every count.

The classification metrics all come from a confusion matrix :math:`N` with rows for the true class and
columns for the predicted class. For class :math:`c`,

.. math::

    \mathrm{TP}_c = N_{cc}, \qquad
    \mathrm{FP}_c = \sum_{r \ne c} N_{rc}, \qquad
    \mathrm{FN}_c = \sum_{k \ne c} N_{ck},

.. math::

    P_c = \frac{\mathrm{TP}_c}{\mathrm{TP}_c + \mathrm{FP}_c}, \qquad
    R_c = \frac{\mathrm{TP}_c}{\mathrm{TP}_c + \mathrm{FN}_c}, \qquad
    F_{1,c} = \frac{2 P_c R_c}{P_c + R_c} = \frac{2\,\mathrm{TP}_c}{2\,\mathrm{TP}_c + \mathrm{FP}_c + \mathrm{FN}_c},
    \qquad
    \mathrm{IoU}_c = \frac{\mathrm{TP}_c}{\mathrm{TP}_c + \mathrm{FP}_c + \mathrm{FN}_c}.

A *macro* average is the plain mean of the per-class values (every class counts the same, however rare);
a *micro* average sums :math:`\mathrm{TP}, \mathrm{FP}, \mathrm{FN}` over the classes first (every
example counts the same). For single-label multi-class data micro precision, recall and F1 all equal the
accuracy.

Undefined values, stated once: a precision whose class was never predicted, or a recall whose class never
occurs, is 0 (scikit-learn's default); a class that occurs neither in the targets nor in the predictions has
no value at all (``nan``) and is left out of macro averages, as scikit-learn does for multi-class data when
``labels`` is not given. A metric with no labelled entry at all is ``nan``.

Boundaries (``edge`` tasks) are scored with a tolerance instead of pixel by pixel: :func:`boundary_f1` counts
a predicted boundary pixel as right when a true one lies within a pixel of it, and the other way round.

Calibration (multiclass): :func:`expected_calibration_error` and the per-bin data of a reliability diagram,
:func:`reliability_bins`, with equal-width confidence bins.

Used in chapter 01 (accuracy, confusion, precision, recall, F1), 03 (IoU, MAE, boundary F1), 10
(calibration) and 12 (:func:`delta_m`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mtlcourse.tasks import LOWER_IS_BETTER, METRICS, SOFT_TARGET_TOLERANCE, Task, most_probable_class
from mtlcourse.utils import is_whole_number

AVERAGES = ("macro", "micro", None)

#: How far, in pixels (Chebyshev distance), a predicted boundary may lie from a true one and still count.
BOUNDARY_TOLERANCE = 1

#: Number of equal-width confidence bins of :func:`expected_calibration_error` (Guo et al., ICML 2017, use 15).
CALIBRATION_BINS = 15

#: Every metric name that :func:`delta_m` can orient by itself.
KNOWN_METRICS = frozenset(name for names in METRICS.values() for name in names) | LOWER_IS_BETTER


def _float_dtype(device: torch.device) -> torch.dtype:
    """The dtype for ratios of counts: float64 keeps large counts exact; Apple MPS has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def labelled_mask(target: Tensor) -> Tensor:
    """``True`` where ``target`` holds a label: not ``-1`` for integer targets, not ``nan`` for floats.

    Example:
        >>> labelled_mask(torch.tensor([2, -1, 0]))
        tensor([ True, False,  True])
        >>> labelled_mask(torch.tensor([1.0, float("nan")]))
        tensor([ True, False])
    """
    if target.is_floating_point():
        return ~torch.isnan(target)  # same shape as target
    return target != -1  # same shape as target


def _as_predictions(pred: Tensor, target: Tensor) -> Tensor:
    """Class indices from ``pred``: logits ``[B, C, ...]`` are reduced by ``argmax`` over dim 1.

    ``pred`` with the shape of ``target`` is taken to hold class indices already.
    """
    if pred.dim() == target.dim() + 1:
        pred = pred.argmax(dim=1)  # [B, C, ...] -> [B, ...]
    if pred.shape != target.shape:
        raise ValueError(
            f"predictions of shape {tuple(pred.shape)} do not match targets of shape {tuple(target.shape)}"
        )
    return pred


def accuracy(pred: Tensor, target: Tensor) -> Tensor:
    r"""Fraction of labelled entries predicted exactly right.

    .. math:: \mathrm{accuracy} = \frac{1}{|L|} \sum_{i \in L} [\hat y_i = y_i],
        \quad L = \text{the labelled entries}

    Args:
        pred: class indices with the shape of ``target``, or logits ``[B, C, ...]`` (argmax over dim 1).
        target: labels ``[B, ...]``; ``-1`` (integers) or ``nan`` (floats) marks a missing label.

    Returns:
        A 0-dim tensor on the device of the inputs; ``nan`` when nothing is labelled.

    Example:
        >>> round(float(accuracy(torch.tensor([0, 2, 1, 1]), torch.tensor([0, 1, 1, -1]))), 4)
        0.6667

    Used in chapter 01.
    """
    pred = _as_predictions(pred, target)
    labelled = labelled_mask(target)  # same shape as target
    correct = (pred == target) & labelled  # same shape as target
    dtype = _float_dtype(target.device)
    return correct.sum().to(dtype) / labelled.sum().to(dtype)  # 0/0 gives nan on purpose


def count_confusion(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """Confusion counts ``[C, C]`` without validation and without a device sync.

    Unlabelled entries (target ``-1``) add a weight of 0 at index 0 instead of being removed, because
    boolean indexing would make the GPU wait for the CPU. Use :func:`confusion_matrix` for checked inputs.
    """
    C = num_classes
    labelled = (target != -1).reshape(-1)  # [N]
    index = torch.where(labelled, target.reshape(-1) * C + pred.reshape(-1), 0)  # [N]
    counts = torch.zeros(C * C, dtype=torch.long, device=target.device)  # [C * C]
    counts.index_add_(0, index.long(), labelled.long())
    return counts.view(C, C)  # [C, C]


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """Counts of (true class, predicted class) pairs over the labelled entries.

    Args:
        pred: class indices with the shape of ``target``, or logits ``[B, C, ...]`` (argmax over dim 1).
        target: class indices ``[B, ...]`` in ``[0, num_classes)``, or ``-1`` for a missing label.
        num_classes: ``C``, at least 1.

    Returns:
        ``[C, C]`` (long) with rows for the true class and columns for the predicted class.

    Example:
        >>> confusion_matrix(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, -1]), num_classes=2)
        tensor([[1, 1],
                [0, 1]])

    Used in chapter 01.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    pred = _as_predictions(pred, target)
    if pred.is_floating_point() or target.is_floating_point():
        raise ValueError(f"class indices must be integers, got {pred.dtype} and {target.dtype}")
    labelled = target != -1  # same shape as target
    # One sync to check the ranges: this function is for one-off use; TaskMeter uses count_confusion.
    bad_target = ((target < -1) | (target >= num_classes)).any()
    bad_pred = (labelled & ((pred < 0) | (pred >= num_classes))).any()
    if bad_target or bad_pred:
        raise ValueError(f"class indices must lie in [0, {num_classes}) (targets may also be -1)")
    return count_confusion(pred, target, num_classes)


def _ratio(numerator: Tensor, denominator: Tensor, present: Tensor) -> Tensor:
    """``numerator / denominator``, 0 where the denominator is 0 but the class is present, else ``nan``."""
    value = numerator / denominator.clamp(min=1)  # counts are integers, so clamp(min=1) only hits 0
    zero = torch.zeros_like(value)
    nan = torch.full_like(value, math.nan)
    return torch.where(present, torch.where(denominator > 0, value, zero), nan)


def _prf_from_counts(
    tp: Tensor, predicted: Tensor, support: Tensor, average: str | None = "macro"
) -> tuple[Tensor, Tensor, Tensor]:
    """Precision, recall and F1 from per-class counts ``[C]``: true positives, predictions, true labels."""
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    dtype = _float_dtype(tp.device)
    tp, predicted, support = tp.to(dtype), predicted.to(dtype), support.to(dtype)  # [C] each
    if average == "micro":
        tp, predicted, support = tp.sum(), predicted.sum(), support.sum()  # [] each
    present = (predicted + support) > 0  # [C] or []
    precision = _ratio(tp, predicted, present)
    recall = _ratio(tp, support, present)
    f1 = _ratio(2 * tp, predicted + support, present)  # 2TP / (2TP + FP + FN)
    if average == "macro":
        return precision.nanmean(), recall.nanmean(), f1.nanmean()
    return precision, recall, f1


def precision_recall_f1(confusion: Tensor, average: str | None = "macro") -> tuple[Tensor, Tensor, Tensor]:
    r"""Precision, recall and F1 from a confusion matrix (rows true, columns predicted).

    .. math::

        P^{\mathrm{macro}} = \frac{1}{C} \sum_c P_c, \qquad
        P^{\mathrm{micro}} = \frac{\sum_c \mathrm{TP}_c}{\sum_c (\mathrm{TP}_c + \mathrm{FP}_c)},

    and the same for recall; macro F1 is the mean of the per-class F1 (not the F1 of macro precision and
    macro recall), micro F1 is the F1 of the summed counts. See the module docstring for undefined values.

    Args:
        confusion: ``[C, C]`` counts, rows for the true class, columns for the predicted class.
        average: ``"macro"`` (default), ``"micro"``, or ``None`` for one value per class.

    Returns:
        ``(precision, recall, f1)``: 0-dim tensors, or ``[C]`` each when ``average`` is ``None``.

    Example:
        >>> confusion = torch.tensor([[3, 1], [2, 4]])
        >>> [round(float(x), 4) for x in precision_recall_f1(confusion, average="micro")]
        [0.7, 0.7, 0.7]
        >>> precision, recall, f1 = precision_recall_f1(confusion, average=None)
        >>> precision.tolist(), recall.tolist()
        ([0.6, 0.8], [0.75, 0.6666666666666666])

    Used in chapter 01.
    """
    _check_confusion(confusion)
    tp = confusion.diagonal()  # [C]
    return _prf_from_counts(tp, confusion.sum(0), confusion.sum(1), average)


def _check_confusion(confusion: Tensor) -> None:
    """Raise ``ValueError`` unless ``confusion`` is a square ``[C, C]`` matrix."""
    if confusion.dim() != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion must be a square [C, C] matrix, got shape {tuple(confusion.shape)}")


def iou(confusion: Tensor) -> Tensor:
    r"""Intersection over union (Jaccard index) per class, from a confusion matrix.

    .. math:: \mathrm{IoU}_c = \frac{|\hat Y_c \cap Y_c|}{|\hat Y_c \cup Y_c|}
        = \frac{\mathrm{TP}_c}{\mathrm{TP}_c + \mathrm{FP}_c + \mathrm{FN}_c}

    Args:
        confusion: ``[C, C]`` counts, rows for the true class, columns for the predicted class.

    Returns:
        ``[C]``; ``nan`` for a class that is neither true nor predicted anywhere (empty union).

    Example:
        >>> iou(torch.tensor([[3, 1, 0], [2, 4, 0], [0, 0, 0]])).tolist()
        [0.5, 0.5714285714285714, nan]

    Used in chapter 03.
    """
    _check_confusion(confusion)
    dtype = _float_dtype(confusion.device)
    tp = confusion.diagonal().to(dtype)  # [C]
    union = confusion.sum(0).to(dtype) + confusion.sum(1).to(dtype) - tp  # [C]
    return _ratio(tp, union, union > 0)


def mean_iou(confusion: Tensor) -> Tensor:
    r"""Mean IoU over the classes that occur in the targets or the predictions.

    .. math:: \mathrm{mIoU} = \frac{1}{|C'|} \sum_{c \in C'} \mathrm{IoU}_c

    Example:
        >>> round(float(mean_iou(torch.tensor([[3, 1, 0], [2, 4, 0], [0, 0, 0]]))), 4)
        0.5357

    Used in chapter 03.
    """
    return iou(confusion).nanmean()


def _regression_errors(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Sums of absolute and squared errors over the labelled entries, and their count (0-dim each)."""
    if pred.shape != target.shape:
        raise ValueError(f"pred of shape {tuple(pred.shape)} does not match target {tuple(target.shape)}")
    dtype = _float_dtype(target.device)
    labelled = labelled_mask(target)  # same shape as target
    error = torch.where(labelled, pred.to(dtype) - target.to(dtype), 0.0)  # same shape; 0 where missing
    return error.abs().sum(), error.square().sum(), labelled.sum().to(dtype)


def mae(pred: Tensor, target: Tensor) -> Tensor:
    r"""Mean absolute error over the labelled entries (``nan`` targets are skipped).

    .. math:: \mathrm{MAE} = \frac{1}{|L|} \sum_{i \in L} |\hat y_i - y_i|

    Example:
        >>> float(mae(torch.tensor([1.0, 2.0, 5.0]), torch.tensor([2.0, 2.0, float("nan")])))
        0.5

    Used in chapter 03.
    """
    abs_sum, _, count = _regression_errors(pred, target)
    return abs_sum / count


def rmse(pred: Tensor, target: Tensor) -> Tensor:
    r"""Root mean squared error over the labelled entries (``nan`` targets are skipped).

    .. math:: \mathrm{RMSE} = \sqrt{\frac{1}{|L|} \sum_{i \in L} (\hat y_i - y_i)^2}

    Example:
        >>> float(rmse(torch.tensor([1.0, 4.0]), torch.tensor([2.0, 2.0])))
        1.5811...

    Used in chapter 03.
    """
    _, sq_sum, count = _regression_errors(pred, target)
    return (sq_sum / count).sqrt()


def dilate(mask: Tensor, tolerance: int) -> Tensor:
    """``[B, H, W]`` booleans: the pixels within ``tolerance`` pixels of a ``True`` pixel of ``mask`` ``[B, H, W]``.

    Distance is the Chebyshev (chessboard) distance, so this is a max-pool over a ``(2 t + 1) x (2 t + 1)``
    window centred on each pixel; pixels outside the image count as ``False``.

    Example:
        >>> dilate(torch.tensor([[[False, False, False, True]]]), tolerance=1)
        tensor([[[False, False,  True,  True]]])
    """
    if tolerance == 0:
        return mask
    window = 2 * tolerance + 1
    pooled = F.max_pool2d(mask[:, None].float(), window, stride=1, padding=tolerance)  # [B, 1, H, W]
    return pooled[:, 0] > 0  # [B, H, W]


def boundary_matches(pred: Tensor, target: Tensor, tolerance: int = BOUNDARY_TOLERANCE) -> dict[str, Tensor]:
    """The pixel maps ``[B, H, W]`` (booleans) behind :func:`boundary_f1`, over the labelled pixels only.

    ``predicted`` and ``true`` are the predicted (logit above 0) and true boundary pixels;
    ``matched_predicted`` the predicted ones with a true boundary pixel within ``tolerance``,
    ``matched_true`` the true ones with a predicted boundary pixel within ``tolerance``; ``labelled`` the
    pixels whose target is not ``nan``. A predicted pixel that is not matched is a false alarm; a true one
    that is not matched is a miss.
    """
    labelled = ~torch.isnan(target)  # [B, H, W]
    predicted = (pred > 0) & labelled  # [B, H, W]; a logit above 0 is a probability above 0.5
    true = (target == 1) & labelled  # [B, H, W]
    return {
        "predicted": predicted,
        "matched_predicted": predicted & dilate(true, tolerance),  # [B, H, W] a true boundary lies near
        "true": true,
        "matched_true": true & dilate(predicted, tolerance),  # [B, H, W] a predicted boundary lies near
        "labelled": labelled,
    }


def boundary_counts(pred: Tensor, target: Tensor, tolerance: int = BOUNDARY_TOLERANCE) -> Tensor:
    """The six counts ``[6]`` behind :func:`boundary_f1`, without validation and without a device sync.

    In order: predicted boundary pixels, those with a true boundary pixel within ``tolerance``, true
    boundary pixels, those with a predicted boundary pixel within ``tolerance`` (the maps of
    :func:`boundary_matches`), pixels predicted exactly right, labelled pixels.
    """
    maps = boundary_matches(pred, target, tolerance)
    correct = (maps["predicted"] == maps["true"]) & maps["labelled"]  # [B, H, W]
    order = ["predicted", "matched_predicted", "true", "matched_true"]
    return torch.stack([maps[name].sum() for name in order] + [correct.sum(), maps["labelled"].sum()])  # [6]


def _boundary_metrics(counts: Tensor) -> dict[str, Tensor]:
    """Boundary F1, precision, recall and pixel accuracy (0-dim tensors) from :func:`boundary_counts`."""
    dtype = _float_dtype(counts.device)
    predicted, matched_predicted, true, matched_true, correct, labelled = counts.to(dtype)  # [] each
    present = (predicted + true) > 0  # a boundary somewhere, predicted or true
    precision = _ratio(matched_predicted, predicted, present)
    recall = _ratio(matched_true, true, present)
    total = precision + recall
    f1 = 2 * precision * recall / torch.where(total > 0, total, 1.0)  # 0 when both are 0
    f1 = torch.where(present, f1, torch.full_like(f1, math.nan))
    return {"boundary_f1": f1, "precision": precision, "recall": recall, "pixel_accuracy": correct / labelled}


def boundary_f1(pred: Tensor, target: Tensor, tolerance: int = BOUNDARY_TOLERANCE) -> Tensor:
    r"""F1 score of predicted boundaries, where a boundary found within ``tolerance`` pixels counts as found.

    With :math:`\hat B` the predicted boundary pixels (logit above 0), :math:`B` the true ones, and
    :math:`D_t(X)` the pixels within Chebyshev distance :math:`t` of :math:`X` (a max-pool, :func:`dilate`):

    .. math::

        P = \frac{|\hat B \cap D_t(B)|}{|\hat B|}, \qquad
        R = \frac{|B \cap D_t(\hat B)|}{|B|}, \qquad
        F_1 = \frac{2 P R}{P + R}.

    This follows the boundary benchmark of BSDS (Martin, Fowlkes and Malik, TPAMI 2004), which also matches
    boundaries within a tolerance, but it is simpler: BSDS matches pixels one to one (a bipartite
    matching), while here several predicted pixels may match the same true pixel, so a thick prediction
    near a thin boundary is not penalised for its thickness. With ``tolerance=0`` it is the ordinary F1 of
    the boundary pixels. The default tolerance is 1 pixel: one-pixel-wide MultiShapes boundaries found one
    pixel off still count.

    Undefined values follow the module's rule: a precision with no predicted boundary, or a recall with no
    true boundary, is 0 (and then so is F1); with no boundary at all, predicted or true, or no labelled
    pixel, the F1 is ``nan``. Unlabelled pixels (target ``nan``) are left out.

    Args:
        pred: logits ``[B, H, W]`` (a boundary where the logit is above 0), or a 0/1 map.
        target: ``[B, H, W]``, 1 on a boundary, 0 elsewhere, ``nan`` where unlabelled.
        tolerance: how far, in pixels, a match may be (default :data:`BOUNDARY_TOLERANCE` = 1).

    Returns:
        A 0-dim tensor on the device of the inputs.

    Example:
        >>> target = torch.tensor([[[0.0, 1.0, 0.0, 0.0]]])  # one true boundary pixel
        >>> shifted = torch.tensor([[[0.0, 0.0, 1.0, 0.0]]])  # found one pixel to the right
        >>> float(boundary_f1(shifted, target)), float(boundary_f1(shifted, target, tolerance=0))
        (1.0, 0.0)

    Used in chapter 03.
    """
    _check_boundary_arguments(pred, target, tolerance)
    return _boundary_metrics(boundary_counts(pred, target, tolerance))["boundary_f1"]


def _check_boundary_arguments(pred: Tensor, target: Tensor, tolerance: int) -> None:
    """Raise ``ValueError`` unless ``pred`` and ``target`` are ``[B, H, W]`` maps and ``tolerance`` is >= 0."""
    if pred.dim() != 3 or pred.shape != target.shape:
        raise ValueError(
            f"pred and target must both be [B, H, W] maps, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if not target.is_floating_point():
        raise ValueError(f"target must be a float map (1, 0 or nan), got dtype {target.dtype}")
    _check_tolerance(tolerance)


def _check_tolerance(tolerance: int) -> None:
    """Raise ``ValueError`` unless ``tolerance`` is a whole number of pixels, at least 0."""
    if not is_whole_number(tolerance, 0):
        raise ValueError(f"tolerance must be a whole number of pixels, at least 0, got {tolerance!r}")


@dataclass(frozen=True)
class ReliabilityBins:
    r"""The per-bin data of a reliability diagram, as :func:`reliability_bins` returns it.

    Bin :math:`m` (counted from 0) holds the labelled examples whose confidence lies in
    ``(edges[m], edges[m + 1]]``; the first bin also holds a confidence of exactly 0.

    Attributes:
        edges: ``[M + 1]`` equal-width bin edges from 0 to 1.
        count: ``[M]`` labelled examples per bin (long).
        accuracy: ``[M]`` fraction of them predicted right; ``nan`` for an empty bin.
        confidence: ``[M]`` their mean confidence; ``nan`` for an empty bin.

    Used in chapter 10.
    """

    edges: Tensor
    count: Tensor
    accuracy: Tensor
    confidence: Tensor

    @property
    def ece(self) -> Tensor:
        r"""The expected calibration error of these bins (see :func:`expected_calibration_error`).

        .. math:: \mathrm{ECE} = \sum_{m} \frac{n_m}{N} \, |\mathrm{acc}_m - \mathrm{conf}_m|

        A 0-dim tensor; empty bins add 0; ``nan`` when no example is labelled.
        """
        share = self.count.to(self.accuracy.dtype) / self.count.sum()  # [M] n_m / N
        gap = (self.accuracy - self.confidence).abs().nan_to_num(0.0)  # [M]; 0 for an empty bin
        return (share * gap).sum()


def reliability_bins(
    output: Tensor, target: Tensor, num_bins: int = CALIBRATION_BINS, from_logits: bool = True
) -> ReliabilityBins:
    r"""Accuracy and mean confidence of a multiclass classifier in equal-width confidence bins.

    The confidence of example :math:`i` is its largest predicted probability
    :math:`\hat p_i = \max_c p_{ic}`, its prediction :math:`\hat y_i = \arg\max_c p_{ic}`. With :math:`M`
    bins of width :math:`1/M` on :math:`[0, 1]`, over the labelled examples :math:`L`,

    .. math::

        B_m = \{ i \in L : \tfrac{m - 1}{M} < \hat p_i \le \tfrac{m}{M} \}, \qquad
        \mathrm{acc}(B_m) = \frac{1}{|B_m|} \sum_{i \in B_m} [\hat y_i = y_i], \qquad
        \mathrm{conf}(B_m) = \frac{1}{|B_m|} \sum_{i \in B_m} \hat p_i,

    for :math:`m = 1, \dots, M` (a confidence of exactly 0 joins :math:`B_1`). A reliability diagram
    (DeGroot and Fienberg, 1983; Niculescu-Mizil and Caruana, ICML 2005) draws :math:`\mathrm{acc}(B_m)` per
    bin: the bars of a calibrated model follow the diagonal, those of an overconfident one lie below it.

    Args:
        output: logits ``[N, C]`` (a softmax gives the probabilities), or probabilities ``[N, C]`` with
            ``from_logits=False`` (non-negative rows that sum to 1 within
            :data:`~mtlcourse.tasks.SOFT_TARGET_TOLERANCE`).
        target: class indices ``[N]``, ``-1`` for a missing label; or soft targets ``[N, C]``, scored by
            their most probable class (a row of ``nan`` is missing).
        num_bins: :math:`M`, at least 1 (default :data:`CALIBRATION_BINS` = 15).
        from_logits: whether ``output`` holds logits (default ``True``) or probabilities.

    Returns:
        :class:`ReliabilityBins` on the device of ``output``.

    Example:
        >>> probs = torch.tensor([[0.9, 0.05, 0.05], [0.7, 0.2, 0.1], [0.4, 0.3, 0.3], [0.2, 0.45, 0.35]])
        >>> bins = reliability_bins(probs, torch.tensor([0, 1, 0, 2]), num_bins=2, from_logits=False)
        >>> bins.count.tolist(), bins.accuracy.tolist(), [round(c, 3) for c in bins.confidence.tolist()]
        ([2, 2], [0.5, 0.5], [0.425, 0.8])

    Used in chapter 10.
    """
    confidence, predicted, target = _calibration_inputs(output, target, num_bins, from_logits)
    M, dtype, device = num_bins, confidence.dtype, confidence.device
    edges = torch.arange(M + 1, dtype=dtype, device=device) / M  # [M + 1] exactly m / M
    index = (torch.bucketize(confidence, edges) - 1).clamp(0, M - 1)  # [N]: (edges[m], edges[m + 1]] -> m
    labelled = (target != -1).to(dtype)  # [N]; a missing label adds a weight of 0, without a device sync
    correct = (predicted == target).to(dtype)  # [N]
    zeros = torch.zeros(M, dtype=dtype, device=device)  # [M]
    count = zeros.index_add(0, index, labelled)  # [M]
    hits = zeros.index_add(0, index, labelled * correct)  # [M]
    confidence_sum = zeros.index_add(0, index, labelled * confidence)  # [M]
    return ReliabilityBins(edges, count.long(), hits / count, confidence_sum / count)  # 0 / 0 = nan if empty


def expected_calibration_error(
    output: Tensor, target: Tensor, num_bins: int = CALIBRATION_BINS, from_logits: bool = True
) -> Tensor:
    r"""Expected calibration error (ECE) of a multiclass classifier, with equal-width confidence bins.

    .. math::

        \mathrm{ECE} = \sum_{m=1}^{M} \frac{|B_m|}{|L|} \, \bigl| \mathrm{acc}(B_m) - \mathrm{conf}(B_m) \bigr|

    with the bins :math:`B_m = \{ i \in L : (m - 1)/M < \hat p_i \le m/M \}` of the confidences
    :math:`\hat p_i = \max_c p_{ic}` of the labelled examples :math:`L`, and their accuracy and mean
    confidence (:func:`reliability_bins`) (Naeini, Cooper and Hauskrecht, AAAI 2015; Guo, Pleiss, Sun and
    Weinberger, "On calibration of modern neural networks", ICML 2017, who use :math:`M = 15`). ECE lies in
    :math:`[0, 1]`; 0 means that in every bin the accuracy equals the mean confidence. It depends on the
    binning, and on few examples per bin it is biased upwards, so compare models with the same bins and
    the same test set.

    Args:
        output: logits ``[N, C]``, or probabilities with ``from_logits=False``.
        target: class indices ``[N]`` (``-1`` for missing) or soft targets ``[N, C]`` (most probable class).
        num_bins: :math:`M`, at least 1 (default :data:`CALIBRATION_BINS` = 15).
        from_logits: whether ``output`` holds logits (default ``True``) or probabilities.

    Returns:
        A 0-dim tensor on the device of ``output``; ``nan`` when no example is labelled.

    Example:
        >>> probs = torch.tensor([[0.9, 0.05, 0.05], [0.7, 0.2, 0.1], [0.4, 0.3, 0.3], [0.2, 0.45, 0.35]])
        >>> ece = expected_calibration_error(probs, torch.tensor([0, 1, 0, 2]), num_bins=2, from_logits=False)
        >>> round(float(ece), 4)  # 2/4 * |0.5 - 0.425| + 2/4 * |0.5 - 0.8|
        0.1875

    Used in chapter 10.
    """
    return reliability_bins(output, target, num_bins, from_logits).ece


def _calibration_inputs(
    output: Tensor, target: Tensor, num_bins: int, from_logits: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Checked confidences ``[N]``, predicted classes ``[N]`` and class targets ``[N]`` (``-1`` missing)."""
    if not is_whole_number(num_bins, 1):
        raise ValueError(f"num_bins must be a whole number of bins, at least 1, got {num_bins!r}")
    output = torch.as_tensor(output).detach()
    if output.dim() != 2 or not output.is_floating_point():
        raise ValueError(
            f"output must be float logits or probabilities [N, C], got {output.dtype} of shape "
            f"{list(output.shape)}"
        )
    N, C = output.shape
    target = torch.as_tensor(target).detach().to(output.device)
    if target.is_floating_point() and target.shape == output.shape:
        target = most_probable_class(target)  # [N, C] -> [N]
    if target.shape != (N,) or target.is_floating_point():
        raise ValueError(
            f"target must be class indices [{N}] (-1 for missing) or soft targets [{N}, {C}] like output, got "
            f"{target.dtype} of shape {list(target.shape)}"
        )
    if target.numel() and not bool(((target >= -1) & (target < C)).all()):
        raise ValueError(f"target must hold classes in [0, {C - 1}] or -1 (missing)")
    probs = output.to(_float_dtype(output.device))  # [N, C]
    probs = probs.softmax(dim=1) if from_logits else _check_probabilities(probs)  # [N, C]
    confidence, predicted = probs.max(dim=1)  # [N] each
    return confidence, predicted, target


def _check_probabilities(probs: Tensor) -> Tensor:
    """``probs`` ``[N, C]``, or ``ValueError`` unless its rows are non-negative and sum to 1."""
    off = (probs.sum(dim=1) - 1).abs() > SOFT_TARGET_TOLERANCE  # [N]
    if not bool(((probs >= 0).all(dim=1) & ~off).all()):  # nan and negative entries fail too
        raise ValueError(
            "output must hold probabilities when from_logits=False: non-negative rows that sum to 1 (within "
            f"{SOFT_TARGET_TOLERANCE}); pass logits with from_logits=True, or probabilities from a softmax"
        )
    return probs


def _flatten_scores(scores: Mapping, what: str) -> dict[str, float]:
    """``{task: {metric: v}}`` or ``{name: v}`` -> ``{"task/metric": v}`` or ``{name: v}`` as floats."""
    flat: dict[str, float] = {}
    for key, value in scores.items():
        if isinstance(value, Mapping):
            for metric, inner in value.items():
                flat[f"{key}/{metric}"] = float(inner)
        else:
            flat[str(key)] = float(value)
    if not flat:
        raise ValueError(f"{what} is empty")
    return flat


def _directions(keys: list[str], higher_is_better: Mapping | None) -> dict[str, bool]:
    """Whether each flattened key is better when higher: given, or read from the metric name."""
    if higher_is_better is not None:
        given = {k: bool(v) for k, v in _flatten_scores(higher_is_better, "higher_is_better").items()}
        missing = [k for k in keys if k not in given]
        if missing:
            raise ValueError(f"higher_is_better has no entry for {missing}")
        return given
    unknown = [k for k in keys if k.rsplit("/", 1)[-1] not in KNOWN_METRICS]
    if unknown:
        raise ValueError(
            f"cannot tell whether {unknown} are better when higher or lower; pass higher_is_better "
            f"(known metric names are {sorted(KNOWN_METRICS)})"
        )
    return {k: k.rsplit("/", 1)[-1] not in LOWER_IS_BETTER for k in keys}


def delta_m(metrics: Mapping, baseline: Mapping, higher_is_better: Mapping | None = None) -> float:
    r"""Mean relative change against single-task baselines, in percent; positive means better.

    .. math::

        \Delta_m = \frac{100}{K} \sum_{k=1}^{K} (-1)^{l_k} \, \frac{M_k - B_k}{|B_k|},
        \qquad l_k = \begin{cases} 1 & \text{lower is better for metric } k \\ 0 & \text{otherwise} \end{cases}

    over the :math:`K` (task, metric) pairs, with :math:`M_k` the multi-task model's value and :math:`B_k`
    the single-task baseline's (Maninis, Radosavovic and Kokkinos, CVPR 2019; averaged over metrics as in
    Vandenhende et al., TPAMI 2021). One sign convention throughout: :math:`\Delta_m > 0` means the
    multi-task model is better on average. For the positive metrics used here :math:`|B_k| = B_k`; the
    absolute value keeps the convention if a baseline is negative. A task with more metrics weighs more;
    pass only each task's primary metric to weigh tasks equally.

    Args:
        metrics: ``{task: {metric: value}}`` or a flat ``{name: value}``.
        baseline: the same keys as ``metrics``.
        higher_is_better: the same keys with booleans; ``None`` (default) reads the direction from the
            metric names (``mae``, ``rmse`` and ``loss`` are better when lower).

    Returns:
        :math:`\Delta_m` in percent.

    Example:
        >>> model = {"shape": {"accuracy": 0.9}, "size": {"mae": 0.08}}
        >>> single = {"shape": {"accuracy": 0.8}, "size": {"mae": 0.10}}
        >>> delta_m(model, single)  # (+12.5 % + 20 %) / 2
        16.25

    Used in chapter 12.
    """
    scores, base = _flatten_scores(metrics, "metrics"), _flatten_scores(baseline, "baseline")
    if scores.keys() != base.keys():
        raise ValueError(
            "metrics and baseline must have the same keys; only in metrics: "
            f"{sorted(scores.keys() - base.keys())}, only in baseline: {sorted(base.keys() - scores.keys())}"
        )
    better = _directions(list(base), higher_is_better)
    changes = []
    for key, b in base.items():
        if b == 0:
            raise ValueError(f"baseline {key!r} is 0: a change relative to 0 is undefined")
        if not (math.isfinite(b) and math.isfinite(scores[key])):
            raise ValueError(f"{key!r} is not finite (metrics {scores[key]}, baseline {b})")
        sign = 1.0 if better[key] else -1.0
        changes.append(sign * (scores[key] - b) / abs(b))
    return 100.0 * sum(changes) / len(changes)


class TaskMeter:
    r"""Streaming metrics for one task: call :meth:`update` per batch, then :meth:`compute` once.

    The meter keeps counts, never predictions: a confusion matrix ``[C, C]`` (multiclass, segmentation),
    ``[2, 2]`` (binary), one ``[2, 2]`` matrix per label ``[K, 2, 2]`` (multilabel), the six counts of
    :func:`boundary_counts` (edge), or the sums of absolute and squared errors and their count (regression). The counts live on the device of the outputs and
    :meth:`update` never waits for it; :meth:`compute` makes the one copy to the CPU. Binary and multilabel
    logits are thresholded at 0 (probability 0.5); multiclass and segmentation predict the argmax. Soft
    targets ``[B, C]`` of a multiclass task are scored against their most probable class
    (:meth:`~mtlcourse.tasks.Task.hard_target`, ties to the lowest class; a row of ``nan`` is missing).

    The metrics (the first is the task's primary metric, see :data:`mtlcourse.tasks.METRICS`):

    - multiclass: ``accuracy``, ``macro_f1``, ``micro_f1``;
    - binary: ``accuracy`` and the ``f1``, ``precision``, ``recall`` of the positive class;
    - multilabel: ``micro_f1``, ``macro_f1`` (over labels) and the element-wise ``accuracy``;
    - segmentation: ``miou`` (mean IoU over classes) and ``pixel_accuracy``;
    - edge: ``boundary_f1`` with its ``precision`` and ``recall`` (:func:`boundary_f1`, within
      ``tolerance`` pixels), and the exact ``pixel_accuracy``;
    - regression: ``mae`` and ``rmse`` over all labelled values.

    Args:
        task: the :class:`~mtlcourse.tasks.Task` whose outputs and targets are measured.
        tolerance: for edge tasks, how far in pixels a boundary may be found and still count (default
            :data:`BOUNDARY_TOLERANCE` = 1); other kinds ignore it.

    Shape:
        ``update(output, target)`` takes the output and target conventions of :mod:`mtlcourse.tasks`.

    Example:
        >>> meter = TaskMeter(Task("shape", "multiclass", 3))
        >>> meter.update(torch.tensor([[2.0, 0, 0], [0, 2.0, 0]]), torch.tensor([0, 2]))
        >>> meter.update(torch.tensor([[0, 0, 2.0]]), torch.tensor([-1]))  # a missing label
        >>> meter.compute()
        {'accuracy': 0.5, 'macro_f1': 0.333..., 'micro_f1': 0.5}
        >>> meter.confusion
        tensor([[1, 0, 0],
                [0, 0, 0],
                [0, 1, 0]])

    Used in chapter 01 (and by :func:`mtlcourse.train.evaluate` everywhere).
    """

    def __init__(self, task: Task, tolerance: int = BOUNDARY_TOLERANCE) -> None:
        if not isinstance(task, Task):
            raise ValueError(f"task must be a Task, got {type(task).__name__}")
        _check_tolerance(tolerance)
        self.task = task
        self.tolerance = tolerance
        self.counts: Tensor | None = None

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self.counts = None

    @property
    def confusion(self) -> Tensor:
        """Confusion counts so far, ``[C, C]``, ``[2, 2]`` (binary) or ``[K, 2, 2]`` (multilabel)."""
        kind, C = self.task.kind, self.task.num_outputs
        if kind in ("regression", "edge"):
            raise ValueError(f"task {self.task.name!r} is a {kind} task: it has no confusion matrix")
        if self.counts is not None:
            return self.counts[0] if kind == "binary" else self.counts
        shape = {"multilabel": (C, 2, 2), "binary": (2, 2)}.get(kind, (C, C))
        return torch.zeros(shape, dtype=torch.long)  # [C, C], [2, 2] or [K, 2, 2]: nothing seen yet

    def update(self, output: Tensor, target: Tensor) -> None:
        """Add one batch: ``output`` as the model returns it, ``target`` with missing labels marked."""
        output = output.detach()
        target = target.detach().to(output.device)
        kind = self.task.kind
        if kind == "binary" and output.dim() == 2 and output.shape[1] == 1:
            output = output.squeeze(1)  # [B, 1] -> [B]
        if self.task.is_soft_target(target) and target.shape == output.shape:
            target = self.task.hard_target(target)  # [B, C] -> [B]: the most probable class of each row
        self._check_shapes(output, target)
        if kind in ("multiclass", "segmentation"):
            batch = count_confusion(output.argmax(dim=1), target, self.task.num_outputs)  # [C, C]
        elif kind in ("binary", "multilabel"):
            batch = _count_label_confusions(output.reshape(len(output), -1), target.reshape(len(target), -1))
        elif kind == "edge":
            batch = boundary_counts(output, target, self.tolerance)  # [6]
        else:
            batch = torch.stack(_regression_errors(output, target))  # [3]: |e| sum, e^2 sum, count
        self.counts = batch if self.counts is None else self.counts + batch

    def _check_shapes(self, output: Tensor, target: Tensor) -> None:
        """Raise ``ValueError`` unless output and target follow the task's conventions."""
        kind, C = self.task.kind, self.task.num_outputs
        if kind in ("multiclass", "segmentation"):
            ok = output.dim() == target.dim() + 1 and output.shape[1] == C
            ok = ok and output.shape[:1] + output.shape[2:] == target.shape
            ok = ok and output.dim() == (2 if kind == "multiclass" else 4)
        elif kind in ("binary", "edge"):
            ok = output.dim() == (1 if kind == "binary" else 3) and output.shape == target.shape
        else:
            ok = output.dim() == 2 and output.shape[1] == C and output.shape == target.shape
        if not ok:
            raise ValueError(
                f"task {self.task.name!r} ({kind}, num_outputs={C}): output of shape {tuple(output.shape)} "
                f"and target of shape {tuple(target.shape)} do not follow the conventions of mtlcourse.tasks"
            )

    def compute(self) -> dict[str, float]:
        """The task's metrics over every batch so far, ``nan`` where nothing was labelled."""
        if self.counts is None:
            return {name: math.nan for name in self.task.metrics}
        values = _metric_tensors(self.task.kind, self.counts)  # name -> 0-dim tensor
        stacked = torch.stack(
            [values[name].to(_float_dtype(self.counts.device)) for name in self.task.metrics]
        )
        return dict(zip(self.task.metrics, stacked.tolist()))  # the one device-to-host copy

    def __repr__(self) -> str:
        return f"TaskMeter({self.task.name!r}, kind={self.task.kind!r})"


def _count_label_confusions(output: Tensor, target: Tensor) -> Tensor:
    """One ``[2, 2]`` confusion matrix per label ``[K, 2, 2]`` for logits and 0/1/nan targets ``[B, K]``."""
    K = output.shape[1]
    labelled = ~torch.isnan(target)  # [B, K]
    true = torch.where(labelled, target, 0.0).long()  # [B, K]
    predicted = (output > 0).long()  # [B, K]; logit 0 is probability 0.5
    label = torch.arange(K, device=output.device)  # [K]
    index = torch.where(labelled, label * 4 + true * 2 + predicted, 0)  # [B, K]; weight 0 where missing
    counts = torch.zeros(K * 4, dtype=torch.long, device=output.device)  # [K * 4]
    counts.index_add_(0, index.reshape(-1), labelled.reshape(-1).long())
    return counts.view(K, 2, 2)  # [K, 2, 2]


def _metric_tensors(kind: str, counts: Tensor) -> dict[str, Tensor]:
    """Every metric of a task kind from the meter's counts, as 0-dim tensors on the counts' device."""
    if kind == "regression":
        abs_sum, sq_sum, count = counts  # [] each
        return {"mae": abs_sum / count, "rmse": (sq_sum / count).sqrt()}
    if kind == "multiclass":
        _, _, macro_f1 = precision_recall_f1(counts, "macro")
        _, _, micro_f1 = precision_recall_f1(counts, "micro")
        return {"accuracy": _trace_fraction(counts), "macro_f1": macro_f1, "micro_f1": micro_f1}
    if kind == "segmentation":
        return {"miou": mean_iou(counts), "pixel_accuracy": _trace_fraction(counts)}
    if kind == "edge":
        return _boundary_metrics(counts)
    # binary and multilabel: counts [K, 2, 2], one confusion matrix per label (K = 1 for binary)
    tp = counts[:, 1, 1]  # [K]
    predicted, support = counts[:, :, 1].sum(1), counts[:, 1, :].sum(1)  # [K] each
    correct = counts.diagonal(dim1=1, dim2=2).sum()  # true negatives + true positives
    dtype = _float_dtype(counts.device)
    accuracy_ = correct.to(dtype) / counts.sum().to(dtype)
    if kind == "binary":
        precision, recall, f1 = _prf_from_counts(tp, predicted, support, average=None)  # [1] each
        return {"accuracy": accuracy_, "f1": f1[0], "precision": precision[0], "recall": recall[0]}
    _, _, micro_f1 = _prf_from_counts(tp, predicted, support, "micro")
    _, _, macro_f1 = _prf_from_counts(tp, predicted, support, "macro")
    return {"micro_f1": micro_f1, "macro_f1": macro_f1, "accuracy": accuracy_}


def _trace_fraction(confusion: Tensor) -> Tensor:
    """Accuracy from a confusion matrix: the diagonal over the total (``nan`` when empty)."""
    dtype = _float_dtype(confusion.device)
    return confusion.diagonal().sum().to(dtype) / confusion.sum().to(dtype)
