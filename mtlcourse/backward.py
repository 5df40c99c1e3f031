"""The one module that calls autograd for multi-task learning.

A loss-weighting method (:class:`~mtlcourse.weighting.base.LossWeighting`) only needs one ordinary backward pass
of the scalar it returns. A gradient-aggregation method (:class:`~mtlcourse.aggregation.base.Aggregator`) needs
the Jacobian of the task losses, one row per task:

.. math:: J = \\begin{bmatrix} \\nabla_\\theta L_1 & \\cdots & \\nabla_\\theta L_T \\end{bmatrix}^\\top
    \\in \\mathbb{R}^{T \\times P}

This module computes ``J`` (for the shared parameters, or for the shared representation), hands it to the
method, and writes the direction the method returns into ``.grad``. Methods themselves never call autograd.

Two routes compute ``J``, with the same result:

- ``"loop"``: one ``torch.autograd.grad`` call per task, keeping the graph between calls;
- ``"batched"``: one call with ``is_grads_batched=True``, which vectorises the T backward passes with vmap.

Measured on the course's 2-core CPU with the SmallCNN and four tasks, the loop was the faster route
(``benchmarks/bench_jacobian.py`` prints the comparison), so ``"auto"`` picks the loop there; vmap's
batching pays off on a GPU, where ``"auto"`` picks it.

Used in chapters 06 and 07.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mtlcourse.extra_losses import ExtraLoss
from mtlcourse.models.base import MultiTaskModel
from mtlcourse.tasks import Task

ROUTES = ("auto", "loop", "batched")


def task_losses(outputs: dict[str, Tensor], targets: dict[str, Tensor], tasks: dict[str, Task]) -> Tensor:
    """One loss per task, stacked in the order of ``tasks``: ``[T]``.

    Example:
        >>> tasks = {"a": Task("a", "multiclass", 2), "b": Task("b", "regression", 1)}
        >>> outputs = {"a": torch.zeros(3, 2), "b": torch.zeros(3, 1)}
        >>> task_losses(outputs, {"a": torch.tensor([0, 1, 1]), "b": torch.ones(3, 1)}, tasks)
        tensor([0.6931, 1.0000])
    """
    return torch.stack([task.loss(outputs[name], targets[name]) for name, task in tasks.items()])  # [T]


def choose_route(route: str, device: torch.device) -> str:
    """Resolve ``"auto"`` to the route measured fastest on this kind of device."""
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, got {route!r}")
    if route != "auto":
        return route
    return "batched" if device.type == "cuda" else "loop"


def per_task_gradients(losses: Tensor, params: Sequence[Tensor], route: str = "auto") -> list[Tensor]:
    """Gradient of every task loss with respect to every parameter: one ``[T, *p.shape]`` per parameter.

    A parameter that a task's loss does not reach gets zeros in that task's row (a head of another task).
    """
    T = losses.shape[0]
    route = choose_route(route, losses.device)
    if route == "batched":
        eye = torch.eye(T, device=losses.device, dtype=losses.dtype)  # [T, T]: one one-hot seed per task
        grads = torch.autograd.grad(
            losses, params, grad_outputs=eye, is_grads_batched=True, allow_unused=True
        )
    else:
        rows = [
            torch.autograd.grad(losses[t], params, retain_graph=True, allow_unused=True) for t in range(T)
        ]
        grads = tuple(stack_rows([row[i] for row in rows], p) for i, p in enumerate(params))
    return [
        torch.zeros(T, *p.shape, device=p.device, dtype=p.dtype) if g is None else g
        for g, p in zip(grads, params)
    ]


def stack_rows(rows: list[Tensor | None], param: Tensor) -> Tensor | None:
    """Stack per-task gradients of one parameter into ``[T, *param.shape]``; ``None`` if no task reaches it."""
    if all(r is None for r in rows):
        return None
    return torch.stack([torch.zeros_like(param) if r is None else r for r in rows])  # [T, *param.shape]


def jacobian(losses: Tensor, params: Sequence[Tensor], route: str = "auto") -> Tensor:
    """The Jacobian ``[T, P]`` of the task losses with respect to ``params`` (flattened and concatenated).

    Example:
        >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> jacobian(torch.stack([x.pow(2).sum(), 3 * x[0]]), [x])
        tensor([[2., 4.],
                [3., 0.]])
    """
    grads = per_task_gradients(losses, list(params), route)
    return torch.cat([g.flatten(1) for g in grads], dim=1)  # [T, P]


def accumulate_grad(param: Tensor, grad: Tensor) -> None:
    """Add ``grad`` to ``param.grad`` the way ``Tensor.backward`` does."""
    if param.grad is None:
        param.grad = grad.detach().clone()
    else:
        param.grad += grad.detach()


def mtl_backward(
    method: nn.Module,
    losses: Tensor,
    shared_params: Sequence[Tensor],
    task_params: Sequence[Tensor] = (),
    route: str = "auto",
) -> Tensor | None:
    """Fill ``.grad`` of the parameters for one multi-task step and return the task weights used.

    For a loss-weighting method, this backpropagates ``method(losses)``. For an aggregator, the shared
    parameters get the aggregated direction ``d = method(J, losses)`` and every task-specific parameter
    gets the sum of the task gradients that reach it (its own task's gradient, for a head).

    Args:
        method: a :class:`~mtlcourse.weighting.base.LossWeighting` or an :class:`~mtlcourse.aggregation.base.Aggregator`.
        losses: the task losses ``[T]``, still attached to the graph.
        shared_params: the parameters (or the representation tensor) every task depends on.
        task_params: the task-specific parameters.
        route: how to compute the Jacobian (see the module docstring).

    Returns:
        The task weights ``[T]`` the method used (``method.last_weights``), or ``None`` when it has none.

    Example:
        >>> from mtlcourse.weighting import EqualWeighting
        >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> mtl_backward(EqualWeighting(), torch.stack([x.pow(2).sum(), 3 * x[0]]), [x])
        tensor([1., 1.])
        >>> x.grad
        tensor([5., 4.])
    """
    name, T = type(method).__name__, losses.shape[0]
    if method.level == "losses":
        objective = method(losses)
        check_output(objective, (), f"{name}.forward must return a scalar, the loss to backpropagate")
        check_weights(method, T)
        objective.backward()
        return method.last_weights
    shared_params, task_params = list(shared_params), list(task_params)
    grads = per_task_gradients(losses, shared_params + task_params, route)
    J = torch.cat([g.flatten(1) for g in grads[: len(shared_params)]], dim=1)  # [T, P]
    d = method(J, losses.detach())  # [P]
    entries = (
        "entry of the shared representation z (P = batch size x features per image)"
        if method.level == "representation"
        else "shared parameter (P = the number of scalars in the model's shared parameters)"
    )
    check_output(
        d,
        (J.shape[1],),
        f"{name}.forward must return a direction [P] = [{J.shape[1]}], one entry per {entries}",
    )
    check_weights(method, T)
    offset = 0
    for p in shared_params:
        accumulate_grad(p, d[offset : offset + p.numel()].view_as(p))  # [P] slice -> p.shape
        offset += p.numel()
    for p, g in zip(task_params, grads[len(shared_params) :]):
        accumulate_grad(p, g.sum(0))  # [T, *p.shape] -> p.shape
    return method.last_weights


def check_output(output: Tensor, shape: tuple[int, ...], requirement: str) -> None:
    """Raise ``ValueError`` stating ``requirement`` unless ``output`` is a tensor of ``shape``."""
    got = list(output.shape) if isinstance(output, Tensor) else type(output).__name__
    if not isinstance(output, Tensor) or tuple(output.shape) != shape:
        raise ValueError(f"{requirement}; got {got}")


def check_weights(method: nn.Module, T: int) -> None:
    """Raise ``ValueError`` unless the method's ``last_weights`` (when it has them) hold one weight per task."""
    if method.last_weights is not None:
        name = type(method).__name__
        check_output(
            method.last_weights, (T,), f"{name}.weights must return one weight per task, [T] = [{T}]"
        )


def mtl_step(
    model: MultiTaskModel,
    images: Tensor,
    targets: dict[str, Tensor],
    method: nn.Module,
    route: str = "auto",
    extra_losses: Sequence[ExtraLoss] = (),
) -> tuple[Tensor, Tensor | None]:
    """Forward a batch, compute the task losses and fill ``.grad`` for ``method``.

    With a method whose ``level`` is ``"representation"``, the Jacobian is taken with respect to the shared
    representation ``z = model.encode(images)`` instead of the shared parameters: the T backward passes
    stop at ``z``, and the aggregated ``dL/dz`` goes once through the encoder. This is the cheap route of
    MGDA-UB (Sener and Koltun, NeurIPS 2018). It needs a model whose heads all read one ``z``
    (``model.has_shared_representation``); for any other model it raises ``ValueError``.

    Extra loss terms (:class:`~mtlcourse.extra_losses.ExtraLoss`) are backpropagated first, on their own,
    and the method's update is then added to the same ``.grad``: the parameters get the method's update
    plus each term's weighted gradient (the rule of :mod:`mtlcourse.extra_losses`). Each term's value is
    left in its ``last_value``.

    Returns:
        The detached task losses ``[T]`` and the task weights (or ``None``).
    """
    on_representation = method.level == "representation"
    if on_representation:
        check_shared_representation(model, method)
        z = model.encode(images)
        # Cutting the graph at z makes the per-task backward passes stop there.
        z_in = z.detach().requires_grad_()
        outputs = model.decode(z_in)
    else:
        outputs = model(images)
    losses = task_losses(outputs, targets, model.tasks)  # [T]
    check_finite(losses, model.tasks)
    if extra_losses:  # .grad starts with the terms' gradient; the method's update is added to it below
        backward_extra_losses(outputs, targets, extra_losses)
    if method.level == "losses":  # one backward pass of the weighted sum fills every .grad: no Jacobian
        return losses.detach(), mtl_backward(method, losses, ())
    task_params = list(model.task_parameters())
    shared = [z_in] if on_representation else list(model.shared_parameters())
    weights = mtl_backward(method, losses, shared, task_params, route)
    if on_representation:
        z.backward(z_in.grad)
    return losses.detach(), weights


def backward_extra_losses(
    outputs: dict[str, Tensor], targets: dict[str, Tensor], extra_losses: Sequence[ExtraLoss]
) -> Tensor:
    r"""Backpropagate :math:`\sum_k \lambda_k E_k` of the extra terms, keeping the graph for the task losses.

    Every parameter the terms reach (the heads of the tasks they read, the shared layers) gets its
    gradient in ``.grad``. With outputs computed from a detached representation ``z`` (a
    representation-level method), the terms' gradient stops at ``z``, like the task losses' gradients, and
    goes through the encoder with them.

    Returns:
        The unweighted values ``[K]`` of the terms, detached.

    Example:
        >>> from mtlcourse.extra_losses import ExtraLoss
        >>> x = torch.tensor([1.0, 3.0], requires_grad=True)
        >>> term = ExtraLoss("agree", lambda o, t: (o["a"] - o["b"]).pow(2), ["a", "b"], weight=0.5)
        >>> backward_extra_losses({"a": x[0], "b": x[1]}, {}, [term])
        tensor([4.])
        >>> x.grad  # 0.5 * d/dx (a - b)^2 = (a - b, b - a)
        tensor([-2.,  2.])
    """
    values = torch.stack([term(outputs, targets) for term in extra_losses])  # [K]
    weights = torch.tensor([term.weight for term in extra_losses], dtype=values.dtype, device=values.device)
    (weights @ values).backward(retain_graph=True)  # the task losses' backward passes still need the graph
    return values.detach()


def check_shared_representation(model: MultiTaskModel, method: nn.Module) -> None:
    """Raise ``ValueError`` when a representation-level ``method`` meets a model without a single shared ``z``."""
    if not model.has_shared_representation:
        name = type(method).__name__
        raise ValueError(
            f"{name} works at the representation level, on the gradients with respect to one shared "
            f"representation z that every head reads, but {type(model).__name__} has none (its heads read "
            f"features of their own, so has_shared_representation is False); use the method's parameter "
            f"level instead: {name}(level='parameters')"
        )


def check_finite(losses: Tensor, tasks: dict[str, Task]) -> None:
    """Raise ``FloatingPointError`` naming the tasks whose loss is NaN or infinite."""
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        bad = [name for name, ok in zip(tasks, finite.tolist()) if not ok]
        raise FloatingPointError(f"non-finite loss for task(s) {bad}: {losses.tolist()}")
