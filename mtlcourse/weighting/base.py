"""The base class of every loss-weighting method."""

from __future__ import annotations

from torch import Tensor, nn


class LossWeighting(nn.Module):
    r"""A method that turns the task losses into the one scalar that is backpropagated.

    A loss-weighting method sees only the task losses ``L`` (shape ``[T]``), never gradients. The default
    objective is the weighted sum

    .. math:: \mathcal{L} = \sum_{t=1}^{T} w_t \, L_t, \qquad w = \texttt{weights}(L)

    with the weights treated as constants (no gradient flows into them). Subclasses implement
    :meth:`weights`; methods with learnable parameters (uncertainty weighting) override :meth:`forward`
    instead, and :func:`mtlcourse.train.fit` adds their parameters to the optimiser.

    The training loop calls the hooks below; a method overrides those it needs and never the loop:

    - :meth:`~mtlcourse.weighting.base.LossWeighting.on_step_end` after every optimiser step, with the step's detached losses and, when the
      method sets ``needs_losses_after_step = True``, the losses of the same batch recomputed after
      the step (FAMO needs them);
    - :meth:`~mtlcourse.weighting.base.LossWeighting.on_epoch_end` after every epoch, with the epoch's mean training losses (DWA needs them);
    - :meth:`reset` before training starts, which clears any state from a previous run.

    ``last_weights`` holds the weights of the latest call, for logging (``None`` before the first).

    Used in chapter 04.
    """

    #: Set to ``True`` in a subclass that wants the losses recomputed after each optimiser step.
    needs_losses_after_step: bool = False
    #: What the method sees; aggregators have ``"parameters"`` or ``"representation"`` here.
    level: str = "losses"
    #: The learning rate of the method's own parameters in :func:`mtlcourse.train.fit`'s optimiser;
    #: ``None`` uses the model's. Methods with parameters take it as an argument.
    lr: float | None = None

    def __init__(self) -> None:
        super().__init__()
        self.last_weights: Tensor | None = None

    def weights(self, losses: Tensor) -> Tensor:
        """Weights ``[T]`` for the detached losses ``[T]``."""
        raise NotImplementedError(f"{type(self).__name__} must implement weights(losses)")

    def forward(self, losses: Tensor) -> Tensor:
        """The scalar to backpropagate for the task losses ``[T]``."""
        check_losses(losses)
        w = self.weights(losses.detach())  # [T]
        self.last_weights = w.detach()
        return (w * losses).sum()

    def on_step_end(self, losses: Tensor, losses_after: Tensor | None = None) -> None:
        """Called after each optimiser step; stateless methods do nothing."""

    def on_epoch_end(self, epoch_losses: Tensor) -> None:
        """Called after each epoch with the mean training loss of every task ``[T]``."""

    def reset(self) -> None:
        """Forget any state from an earlier run (history of losses, step counters)."""
        self.last_weights = None

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())

    def hyperparameters(self) -> dict[str, object]:
        """The constructor arguments of this method, for ``repr`` and experiment logs."""
        return {}


def check_losses(losses: Tensor) -> None:
    """Raise a clear error unless ``losses`` is a 1-D tensor of task losses."""
    if not isinstance(losses, Tensor) or losses.dim() != 1 or losses.numel() == 0:
        shape = tuple(losses.shape) if isinstance(losses, Tensor) else type(losses).__name__
        raise ValueError(f"losses must be a 1-D tensor [T] with one loss per task, got {shape}")


def check_positive(name: str, value: float) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive number."""
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")


def check_task_count(num_tasks: int) -> None:
    """Raise ``ValueError`` unless ``num_tasks`` (a method's constructor argument) is a positive integer."""
    if not isinstance(num_tasks, int) or num_tasks < 1:
        raise ValueError(f"num_tasks must be a positive integer, got {num_tasks!r}")


def check_positive_losses(method: nn.Module, losses: Tensor) -> None:
    """Raise ``ValueError`` unless every loss is positive (methods that take logarithms of the losses)."""
    if not bool((losses > 0).all()):
        raise ValueError(f"{type(method).__name__} needs positive losses, got {losses.detach().tolist()}")


def check_num_tasks(method: nn.Module, expected: int, losses: Tensor) -> None:
    """Raise ``ValueError`` when a method built for ``expected`` tasks sees another number of losses."""
    if losses.shape[0] != expected:
        raise ValueError(
            f"{type(method).__name__} was built for num_tasks={expected} but got {losses.shape[0]} losses"
        )
