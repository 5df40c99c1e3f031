"""The base classes of every gradient-aggregation method."""

from __future__ import annotations

from torch import Tensor, nn

LEVELS = ("parameters", "representation")


class Aggregator(nn.Module):
    r"""A method that combines per-task gradients into one update direction.

    An aggregator maps the Jacobian ``J`` of the task losses (shape ``[T, P]``, row ``t`` is the
    gradient of task ``t``) to one direction ``d`` (shape ``[P]``) that the optimiser follows as if it
    were the gradient. :func:`mtlcourse.backward.mtl_backward` computes ``J`` (an aggregator never calls
    autograd and never touches ``.grad``), puts ``d`` into the shared parameters' ``.grad`` and gives the
    task-specific parameters their ordinary gradients.

    ``level`` says with respect to what ``J`` is taken:

    - ``"parameters"``: the shared parameters (exact, costs one backward pass per task);
    - ``"representation"``: the shared representation ``z`` that the heads read (cheap: the per-task
      backward passes stop at ``z``; ``d`` is then backpropagated once through the encoder). This is the
      "upper bound" route of MGDA-UB (Sener and Koltun, 2018).

    Hooks, as for :class:`mtlcourse.weighting.base.LossWeighting`: :meth:`~mtlcourse.weighting.base.LossWeighting.on_step_end`, :meth:`~mtlcourse.weighting.base.LossWeighting.on_epoch_end`,
    :meth:`reset`. ``last_weights`` holds the task weights of the latest call when the method has them.

    Used in chapter 06.
    """

    needs_losses_after_step: bool = False
    #: Whether the direction never conflicts with a task gradient (``J d >= 0``) whatever ``J`` is;
    #: a method that promises it sets ``True``, and the property tests hold it to that promise.
    non_conflicting: bool = False

    def __init__(self, level: str = "parameters") -> None:
        super().__init__()
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        self.level = level
        self.last_weights: Tensor | None = None

    def forward(self, jacobian: Tensor, losses: Tensor | None = None) -> Tensor:
        """Direction ``[P]`` for the Jacobian ``[T, P]``; ``losses`` ``[T]`` for methods that use them."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(jacobian, losses)")

    def on_step_end(self, losses: Tensor, losses_after: Tensor | None = None) -> None:
        """Called after each optimiser step; stateless methods do nothing."""

    def on_epoch_end(self, epoch_losses: Tensor) -> None:
        """Called after each epoch with the mean training loss of every task ``[T]``."""

    def reset(self) -> None:
        """Forget any state from an earlier run."""
        self.last_weights = None

    def hyperparameters(self) -> dict[str, object]:
        """The constructor arguments of this method, for ``repr`` and experiment logs."""
        return {}

    def extra_repr(self) -> str:
        args = {**self.hyperparameters(), "level": self.level}
        return ", ".join(f"{k}={v!r}" for k, v in args.items())


class GramianWeighting(Aggregator):
    r"""An aggregator whose direction is a weighted sum of the task gradients, weights from the Gramian.

    .. math:: G = J J^\top \in \mathbb{R}^{T \times T}, \qquad w = \texttt{weights}(G), \qquad d = J^\top w

    Many methods (MGDA, IMTL-G, Nash-MTL, CAGrad, UPGrad, Aligned-MTL) only need the inner products
    between task gradients, so they see ``G`` and return ``w``; the product with ``J`` is shared here.

    Used in chapter 06.
    """

    def weights(self, gramian: Tensor) -> Tensor:
        """Task weights ``[T]`` for the Gramian ``[T, T]``."""
        raise NotImplementedError(f"{type(self).__name__} must implement weights(gramian)")

    def forward(self, jacobian: Tensor, losses: Tensor | None = None) -> Tensor:
        check_jacobian(jacobian)
        G = jacobian @ jacobian.T  # [T, T]
        w = self.weights(G)  # [T]
        self.last_weights = w.detach()
        return w @ jacobian  # [P]


def check_jacobian(jacobian: Tensor) -> None:
    """Raise a clear error unless ``jacobian`` is a 2-D tensor ``[T, P]``."""
    if not isinstance(jacobian, Tensor) or jacobian.dim() != 2 or jacobian.shape[0] == 0:
        shape = tuple(jacobian.shape) if isinstance(jacobian, Tensor) else type(jacobian).__name__
        raise ValueError(f"jacobian must be a 2-D tensor [T, P] with one row per task, got {shape}")
