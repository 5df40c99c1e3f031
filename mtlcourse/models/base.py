"""The interface every multi-task model follows."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from torch import Tensor, nn

from mtlcourse.tasks import Task


class MultiTaskModel(nn.Module):
    """A network with one output per task: ``forward(images) -> {task name: output}``.

    Subclasses build ``self.tasks`` (a dict of :class:`~mtlcourse.tasks.Task`), and implement
    :meth:`encode` (images to the shared representation ``z``) and :meth:`decode` (``z`` to one output per
    task). Splitting the forward pass there lets :func:`mtlcourse.backward.mtl_backward` take gradients
    with respect to ``z`` (the representation-level methods of chapter 07).

    Not every architecture has such a ``z``: in a cross-stitch network, MTAN or MMoE (chapter 08) every task
    reads features of its own, mixed, attended or gated from the shared ones, so no single tensor stands
    between the shared parameters and all the heads. Those models set :attr:`has_shared_representation` to ``False``,
    override :meth:`forward` instead of :meth:`encode` and :meth:`decode`, and
    :func:`mtlcourse.backward.mtl_step` refuses representation-level methods for them.

    :meth:`shared_parameters` and :meth:`task_parameters` split the parameters into the ones every task
    uses and the ones that belong to one task; the two are disjoint and together cover the model.

    Used in chapter 02.
    """

    tasks: dict[str, Task]

    #: Whether :meth:`~mtlcourse.models.base.MultiTaskModel.encode` returns one tensor that every task's output
    #: is computed from by :meth:`~mtlcourse.models.base.MultiTaskModel.decode`.
    has_shared_representation: bool = True

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

    def check_task(self, task: str) -> str:
        """Return ``task`` if it is one of this model's task names; raise ``ValueError`` listing them if not."""
        if task not in self.tasks:
            raise ValueError(f"unknown task {task!r}; this model's tasks are {list(self.tasks)}")
        return task

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters that every task's loss depends on."""
        raise NotImplementedError(f"{type(self).__name__} must implement shared_parameters()")

    def task_modules(self, task: str) -> list[nn.Module]:
        """The modules that belong to ``task`` alone (its head, and its branch, gate or attention modules)."""
        raise NotImplementedError(f"{type(self).__name__} must implement task_modules(task)")

    def task_parameters(self, task: str | None = None) -> Iterator[nn.Parameter]:
        """Parameters of one task (or of every task when ``task`` is None): those of :meth:`task_modules`."""
        names = list(self.tasks) if task is None else [self.check_task(task)]
        modules = [module for name in names for module in self.task_modules(name)]
        return itertools.chain.from_iterable(module.parameters() for module in modules)
