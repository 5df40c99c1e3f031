"""The interface every multi-task model follows."""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor, nn

from mtlcourse.tasks import Task


class MultiTaskModel(nn.Module):
    """A network with one output per task: ``forward(images) -> {task name: output}``.

    Subclasses build ``self.tasks`` (a dict of :class:`~mtlcourse.tasks.Task`), and implement
    :meth:`encode` (images to the shared representation ``z``) and :meth:`decode` (``z`` to one output per
    task). Splitting the forward pass there lets :func:`mtlcourse.backward.mtl_backward` take gradients
    with respect to ``z`` (the representation-level methods of chapter 07).

    :meth:`shared_parameters` and :meth:`task_parameters` split the parameters into the ones every task
    uses and the ones that belong to one task; the two are disjoint and together cover the model.

    Used in chapter 02.
    """

    tasks: dict[str, Task]

    def encode(self, images: Tensor) -> Tensor:
        """The shared representation of a batch of images."""
        raise NotImplementedError(f"{type(self).__name__} must implement encode(images)")

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        """One output per task from the shared representation."""
        raise NotImplementedError(f"{type(self).__name__} must implement decode(z)")

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return self.decode(self.encode(images))

    def check_input(self, images: Tensor) -> None:
        """Raise ``ValueError`` when ``images`` ``[B, C, H, W]`` cannot go through this model, saying how to fix it.

        :func:`~mtlcourse.train.fit`, :func:`~mtlcourse.train.evaluate` and :func:`~mtlcourse.train.predict`
        call it once on their first batch, so a mismatch (channels, size, a backbone that breaks its contract)
        is reported before any step instead of deep inside a layer. Every architecture implements what it
        needs; this default checks nothing.
        """

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters that every task's loss depends on."""
        raise NotImplementedError(f"{type(self).__name__} must implement shared_parameters()")

    def task_parameters(self, task: str | None = None) -> Iterator[nn.Parameter]:
        """Parameters of one task (or of every task when ``task`` is None)."""
        raise NotImplementedError(f"{type(self).__name__} must implement task_parameters(task)")
