r"""Ensembles of any models' predictions: averaging, majority voting and stacking.

Every function here works on *predictions*, tensors with one row per image, not on model objects: the
networks of an ensemble may be single-task, multi-task, of different architectures, or not networks at all.
:func:`collect_predictions` gets a model's class probabilities for one task of a dataset.

- :func:`average`: the mean of the models' probabilities, :math:`\bar p = \frac1M \sum_m p_m`;
- :func:`vote`: each model votes for one class, the most voted class wins (ties: see :func:`vote`);
- :class:`StackingCombiner`: a small model (multinomial logistic regression) that learns how to combine the
  models' predictions. It must be fit on *held-out* predictions (the validation images), never on the
  images it is scored on: a combiner judged on its own training data looks better than it is. It keeps a
  fingerprint of the predictions it was fit on and refuses, with ``ValueError``, to predict on them.

Used in chapter 11.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from mtlcourse.models.base import MultiTaskModel
from mtlcourse.tasks import Task
from mtlcourse.train import predict

#: The kinds whose outputs are logits that :func:`probabilities` turns into probabilities.
SOFTMAX_KINDS = ("multiclass", "segmentation")
SIGMOID_KINDS = ("binary", "multilabel", "edge")


def probabilities(outputs: Tensor, task: Task) -> Tensor:
    """The probabilities a model's ``outputs`` (logits, :mod:`mtlcourse.tasks`) give for ``task``.

    A softmax over the classes (dimension 1) for multiclass and segmentation, a sigmoid for binary,
    multilabel and edge tasks. Regression outputs are no probabilities: average them directly.

    Example:
        >>> probabilities(torch.tensor([[0.0, 0.0], [0.0, 100.0]]), Task("c", "multiclass", 2))
        tensor([[0.5000, 0.5000],
                [0.0000, 1.0000]])
    """
    if task.kind in SOFTMAX_KINDS:
        return outputs.softmax(dim=1)  # [N, C, ...]
    if task.kind in SIGMOID_KINDS:
        return outputs.sigmoid()  # like outputs
    raise ValueError(
        f"task {task.name!r} is {task.kind}: its outputs are values, not logits; average them directly "
        "(average works on any tensors of the same shape)"
    )


def collect_predictions(
    model: MultiTaskModel,
    data: Dataset,
    task: str,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> Tensor:
    """The probabilities ``model`` gives for ``task`` on every image of ``data``, in order, on the CPU.

    It runs :func:`mtlcourse.train.predict` (the model in evaluation mode, no gradients) and
    :func:`probabilities`; a regression task gives its predicted values.

    Example:
        >>> from mtlcourse.data import MultiShapes
        >>> from mtlcourse.models import HardParameterSharing, SmallCNN
        >>> data = MultiShapes("val", num_images=8, tasks=["shape", "size"])
        >>> collect_predictions(HardParameterSharing(SmallCNN(width=4), data.tasks), data, "shape").shape
        torch.Size([8, 4])
    """
    spec = model.tasks.get(task)
    if spec is None:
        raise ValueError(f"the model has no task {task!r}; its tasks are {list(model.tasks)}")
    outputs = predict(model, data, batch_size=batch_size, device=device)[task]
    return outputs if spec.kind == "regression" else probabilities(outputs, spec)


def check_predictions(predictions: Sequence[Tensor], what: str) -> list[Tensor]:
    """Raise ``ValueError`` unless ``predictions`` holds at least one tensor, all of the same shape."""
    predictions = list(predictions)
    if not predictions or not all(isinstance(p, Tensor) for p in predictions):
        raise ValueError(f"{what} takes a list of prediction tensors, one per model, got {predictions!r:.80}")
    shapes = [list(p.shape) for p in predictions]
    if any(shape != shapes[0] for shape in shapes):
        raise ValueError(f"{what}: the models' predictions must all have the same shape, got {shapes}")
    return predictions


def average(predictions: Sequence[Tensor]) -> Tensor:
    r"""The mean of the models' predictions, :math:`\bar p = \frac1M \sum_{m=1}^M p_m`, same shape as each.

    Averaging probabilities (not logits) keeps the result a probability; averaging regression values gives
    the mean prediction.

    Example:
        >>> average([torch.tensor([[0.9, 0.1]]), torch.tensor([[0.3, 0.7]])])
        tensor([[0.6000, 0.4000]])
    """
    predictions = check_predictions(predictions, "average")
    return torch.stack(predictions).float().mean(dim=0)  # [M, N, ...] -> [N, ...]


def vote(predictions: Sequence[Tensor]) -> Tensor:
    """Majority vote: the class most models predict, for every image (or pixel).

    Each model's prediction is either class indices ``[N, ...]`` (integers) or scores ``[N, C, ...]``
    (floats: probabilities or logits, whose argmax over dimension 1 is its vote).

    Ties: among the classes with the most votes, the winner is the vote of the *first* model in the list
    that voted for one of them. So with two models, a disagreement goes to the first, and listing the
    models from best to worst (on validation data) makes the best one break ties.

    Returns:
        Class indices ``[N, ...]``.

    Example:
        >>> a, b, c = torch.tensor([0, 1, 2, 2]), torch.tensor([0, 2, 1, 0]), torch.tensor([1, 2, 0, 1])
        >>> vote([a, b, c])  # image 3: one vote each for 2, 0, 1, so the first model's 2 wins
        tensor([0, 2, 2, 2])
    """
    predictions = check_predictions(predictions, "vote")
    votes = torch.stack(
        [p if not p.is_floating_point() else p.argmax(dim=1) for p in predictions]
    )  # [M, N, ...]
    if votes.numel() and int(votes.min()) < 0:
        raise ValueError("vote: class indices must be at least 0, got a negative class")
    shape = votes.shape[1:]
    votes = votes.flatten(1)  # [M, L] with L the images (times pixels)
    counts = F.one_hot(votes).sum(dim=0)  # [M, L, C] -> [L, C] votes per class
    tied = counts == counts.max(dim=1, keepdim=True).values  # [L, C] the classes with the most votes
    for_tied = tied.gather(1, votes.T)  # [L, M] whether model m voted for a tied class
    first = for_tied.float().argmax(dim=1)  # [L] the first such model (argmax returns the first maximum)
    return votes.T.gather(1, first[:, None])[:, 0].view(shape)  # [L] -> [N, ...]


def fingerprint(features: Tensor) -> str:
    """A digest of the rows of ``features`` ``[N, D]`` that ignores their order (same rows, same digest).

    Example:
        >>> x = torch.tensor([[0.1, 0.9], [0.7, 0.3]])
        >>> fingerprint(x) == fingerprint(x.flip(0)), fingerprint(x) == fingerprint(x[:1])
        (True, False)
    """
    rows = features.detach().cpu().contiguous()
    digests = sorted(hashlib.sha256(row.numpy().tobytes()).hexdigest() for row in rows)
    return hashlib.sha256(f"{list(rows.shape)}{rows.dtype}{''.join(digests)}".encode()).hexdigest()


class StackingCombiner:
    r"""Stacking: a multinomial logistic regression on the concatenated predictions of ``M`` models.

    .. math:: P(y = c \mid x) = \operatorname{softmax}\big(W^\top [p_1(x); \dots; p_M(x)] + b\big)_c

    fit by minimising the mean cross-entropy plus :math:`\frac{\lambda}{2} \lVert W \rVert^2` (the bias is
    not penalised), a convex problem solved with L-BFGS from :math:`W = 0` on the CPU in float64, with its
    gradient written out, :math:`\nabla_W = X^\top (P - Y) / n + \lambda W`: the same data give the same
    combiner. The combiner learns which model to trust for which class, which averaging and voting cannot.

    It must be fit on held-out predictions (e.g. the models' predictions on the validation images) and
    evaluated on others (the test images). It keeps an order-insensitive :func:`fingerprint` of the
    predictions it was fit on, and :meth:`predict_proba` refuses them with ``ValueError``.

    Args:
        l2: :math:`\lambda`, the L2 penalty, at least 0 (a little keeps the problem well posed when the
            models are very confident).
        max_iter: L-BFGS iterations, a whole number.

    Example:
        >>> val = [torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), torch.tensor([[0.4, 0.6], [0.5, 0.5], [0.8, 0.2]])]
        >>> combiner = StackingCombiner().fit(val, torch.tensor([0, 1, 0]))
        >>> combiner.predict([torch.tensor([[0.7, 0.3]]), torch.tensor([[0.6, 0.4]])])
        tensor([0])
        >>> combiner.predict(val)
        Traceback (most recent call last):
        ...
        ValueError: StackingCombiner: these are the predictions it was fit on...

    Used in chapter 11.
    """

    def __init__(self, l2: float = 1e-3, max_iter: int = 200) -> None:
        if not (isinstance(l2, (int, float)) and l2 >= 0):
            raise ValueError(f"StackingCombiner: l2 must be at least 0, got {l2!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(
                f"StackingCombiner: max_iter must be a whole number, at least 1, got {max_iter!r}"
            )
        self.l2, self.max_iter = float(l2), max_iter
        self.W: Tensor | None = None  # [D + 1, C], the last row the bias
        self.fit_fingerprint: str | None = None
        self.num_models, self.width = 0, 0

    def __repr__(self) -> str:
        state = "fit" if self.W is not None else "not fit"
        return f"StackingCombiner(l2={self.l2:g}, max_iter={self.max_iter}) [{state}]"

    def features(self, predictions: Sequence[Tensor]) -> Tensor:
        """The models' predictions ``M x [N, C]`` side by side with a column of ones: ``[N, M C + 1]``."""
        predictions = check_predictions(predictions, "StackingCombiner")
        if predictions[0].dim() != 2:
            raise ValueError(
                f"StackingCombiner takes one row of class scores per image, [N, C], got {list(predictions[0].shape)}"
            )
        X = torch.cat([p.detach().cpu().double() for p in predictions], dim=1)  # [N, M C]
        return torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype)], dim=1)  # [N, M C + 1]

    def fit(self, predictions: Sequence[Tensor], labels: Tensor) -> StackingCombiner:
        """Fit on held-out ``predictions`` (``M`` tensors ``[N, C]``) and their class ``labels`` ``[N]`` (``-1``: missing)."""
        X = self.features(predictions)  # [N, D + 1]
        C = predictions[0].shape[1]
        y = check_labels(labels, X.shape[0], C)  # [N]
        keep = y >= 0  # [N] images with a label
        X, Y = X[keep], F.one_hot(y[keep], C).double()  # [n, D + 1], [n, C]
        W = torch.zeros(X.shape[1], C, dtype=torch.float64)  # [D + 1, C]
        optimizer = torch.optim.LBFGS([W], max_iter=self.max_iter, line_search_fn="strong_wolfe")
        optimizer.step(lambda: self.objective(W, X, Y))
        self.W, self.fit_fingerprint = W, fingerprint(X)
        self.num_models, self.width = len(predictions), C
        return self

    def objective(self, W: Tensor, X: Tensor, Y: Tensor) -> Tensor:
        """The penalised mean cross-entropy at ``W``; its gradient is written into ``W.grad`` for L-BFGS."""
        logits = X @ W  # [n, C]
        penalty = torch.ones_like(W)  # [D + 1, C]
        penalty[-1] = 0.0  # the bias row is not penalised
        loss = -(Y * logits.log_softmax(dim=1)).sum(dim=1).mean() + 0.5 * self.l2 * (penalty * W * W).sum()
        W.grad = X.T @ (logits.softmax(dim=1) - Y) / X.shape[0] + self.l2 * penalty * W  # [D + 1, C]
        return loss

    def predict_proba(self, predictions: Sequence[Tensor]) -> Tensor:
        """The combined class probabilities ``[N, C]`` for new predictions (``M`` tensors ``[N, C]``)."""
        if self.W is None:
            raise ValueError("StackingCombiner: call fit on held-out predictions before predicting")
        X = self.features(predictions)  # [N, D + 1]
        if len(predictions) != self.num_models or predictions[0].shape[1] != self.width:
            raise ValueError(
                f"StackingCombiner was fit on {self.num_models} models with {self.width} classes, got "
                f"{len(predictions)} models with {predictions[0].shape[1]} classes"
            )
        if fingerprint(X) == self.fit_fingerprint:
            raise ValueError(
                "StackingCombiner: these are the predictions it was fit on, and a combiner scored on its own "
                "training data looks better than it is; fit it on held-out predictions (the validation "
                "images) and predict on others (the test images)"
            )
        return (X @ self.W).softmax(dim=1).float()  # [N, C]

    def predict(self, predictions: Sequence[Tensor]) -> Tensor:
        """The combined class ``[N]`` for new predictions (the argmax of :meth:`predict_proba`)."""
        return self.predict_proba(predictions).argmax(dim=1)  # [N]


def check_labels(labels: Tensor, num_images: int, num_classes: int) -> Tensor:
    """Raise ``ValueError`` unless ``labels`` are ``[N]`` class indices in ``[-1, C - 1]``; return them on the CPU."""
    if not isinstance(labels, Tensor) or labels.dtype != torch.long or tuple(labels.shape) != (num_images,):
        got = f"{list(labels.shape)} {labels.dtype}" if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(
            f"labels must be class indices [N] = [{num_images}] of dtype torch.long (-1 for missing), got {got}"
        )
    labels = labels.cpu()
    if bool(((labels < -1) | (labels >= num_classes)).any()):
        raise ValueError(f"labels must be in [0, {num_classes - 1}] or -1 (missing)")
    if not bool((labels >= 0).any()):
        raise ValueError("labels has no label at all (every entry is -1); the combiner needs labelled images")
    return labels
