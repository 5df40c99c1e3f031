r"""The classic two-objective problem in two dimensions, and a runner for any multi-task method.

The problem of the CAGrad, Nash-MTL, FAMO and Aligned-MTL papers. With :math:`x = (x_1, x_2)`,
:math:`\epsilon = 5 \cdot 10^{-6}`, :math:`c_1 = \max(\tanh(x_2/2), 0)` and
:math:`c_2 = \max(\tanh(-x_2/2), 0)`:

.. math::

    L_1(x) &= c_1 \big(\log \max(|\tfrac{1}{2}(-x_1 - 7) - \tanh(-x_2)|, \epsilon) + 6\big)
            + c_2 \big(\tfrac{1}{10}((x_1 - 7)^2 + 0.1 (x_2 + 8)^2) - 20\big) \\
    L_2(x) &= c_1 \big(\log \max(|\tfrac{1}{2}(-x_1 + 3) + \tanh(-x_2) + 2|, \epsilon) + 6\big)
            + c_2 \big(\tfrac{1}{10}((x_1 + 7)^2 + 0.1 (x_2 + 8)^2) - 20\big)

In the upper half-plane each loss is a narrow logarithmic valley; in the lower half-plane it is a wide
bowl with its minimum at :math:`x_1 = \pm 7`. The task minima are at :math:`(\pm 7, -8.4345)`, and the
Pareto set joins them near :math:`x_2 = -8.36`, bending up slightly in the middle (it is not the flat line
the papers draw). Every loss is above ``LOSS_LOWER_BOUND`` (-20); near the minima both are negative, so
methods that take logarithms or ratios of the losses need ``offset`` in :func:`run_toy` (or, for FAMO,
``min_losses``).

Used in chapter 06.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mtlcourse.backward import jacobian, mtl_backward

#: :math:`\epsilon`, the floor inside the logarithms of the upper half-plane.
EPS = 5e-6

#: Every value of both losses is above this bound (the bowls' floor, reached by neither loss).
LOSS_LOWER_BOUND = -20.0

#: The five start points used in the literature, ``[5, 2]``.
START_POINTS = torch.tensor([[-8.5, 7.5], [0.0, 0.0], [9.0, 9.0], [-7.5, -0.5], [9.0, -1.0]])  # [5, 2]

#: Bracket of :math:`x_2` in which the Pareto set (and both minima) lie; checked when it is used.
X2_BRACKET = (-10.0, -8.0)

OPTIMIZERS = ("adam", "sgd")


def toy_losses(x: Tensor) -> Tensor:
    """Both losses at ``x``: ``[2] -> [2]``, or for a batch of points ``[..., 2] -> [..., 2]``.

    Example:
        >>> toy_losses(torch.tensor([0.0, 0.0]))
        tensor([0., 0.])
        >>> toy_losses(torch.tensor([[9.0, -1.0], [7.0, -8.4345]]))
        tensor([[ -8.8311,   2.8143],
                [-19.9894,  -0.3979]])

    Used in chapter 06.
    """
    if x.shape[-1:] != (2,):
        raise ValueError(f"x must have shape [2] or [..., 2], got {tuple(x.shape)}")
    x1, x2 = x[..., 0], x[..., 1]  # [...] each
    t = torch.tanh(x2 / 2)  # [...]
    # max(t, 0) and max(-t, 0), written so that the gradient passes at t = 0: the start (0, 0) lies on
    # that kink, and torch.clamp's gradient there is 0, which would leave it stuck for every method.
    c1 = t * (t >= 0)  # [...]
    c2 = -t * (t <= 0)  # [...]
    valley1 = torch.clamp((0.5 * (-x1 - 7) - torch.tanh(-x2)).abs(), min=EPS).log() + 6  # [...]
    valley2 = torch.clamp((0.5 * (-x1 + 3) + torch.tanh(-x2) + 2).abs(), min=EPS).log() + 6  # [...]
    bowl1 = ((x1 - 7) ** 2 + 0.1 * (x2 + 8) ** 2) / 10 - 20  # [...]
    bowl2 = ((x1 + 7) ** 2 + 0.1 * (x2 + 8) ** 2) / 10 - 20  # [...]
    return torch.stack([c1 * valley1 + c2 * bowl1, c1 * valley2 + c2 * bowl2], dim=-1)  # [..., 2]


def pareto_set(num: int = 100) -> Tensor:
    r"""Points of the Pareto set, ``[num, 2]``, ordered by :math:`x_1` from -7 to 7, computed numerically.

    Each point minimises :math:`(1 - \lambda) L_1 + \lambda L_2` for one :math:`\lambda \in [0, 1]`.
    In the lower half-plane (:math:`c_1 = 0`) the derivative in :math:`x_1` vanishes exactly at
    :math:`x_1 = 7 (1 - 2\lambda)`; the derivative in :math:`x_2` is then solved by bisection, in double
    precision, with the gradient taken by autograd from :func:`toy_losses` itself. The end points are the
    task minima (``TASK_MINIMA``).

    Example:
        >>> pareto_set(3)
        tensor([[-7.0000, -8.4345],
                [ 0.0000, -8.3551],
                [ 7.0000, -8.4345]])

    Used in chapter 06.
    """
    if not isinstance(num, int) or num < 2:
        raise ValueError(f"num must be an integer of at least 2, got {num!r}")
    lam = torch.linspace(1, 0, num, dtype=torch.float64)  # [num]; lambda = 1 is task 2's minimum, x1 = -7
    x1 = 7 * (1 - 2 * lam)  # [num]
    x2 = stationary_x2(x1, lam)  # [num]
    return torch.stack([x1, x2], dim=-1).to(torch.get_default_dtype())  # [num, 2]


def stationary_x2(x1: Tensor, lam: Tensor, iterations: int = 60) -> Tensor:
    r"""Solve :math:`\partial_{x_2} [(1 - \lambda) L_1 + \lambda L_2](x_1, x_2) = 0` by bisection in ``X2_BRACKET``.

    ``x1`` and ``lam`` are ``[N]`` (double precision); returns ``[N]``. Raises if the derivative does not
    change sign over the bracket, the one case where bisection would return a wrong point.
    """

    def slope(x2: Tensor) -> Tensor:
        x2 = x2.detach().requires_grad_()  # [N]
        with torch.enable_grad():
            losses = toy_losses(torch.stack([x1, x2], dim=-1))  # [N, 2]
            weighted = ((1 - lam) * losses[:, 0] + lam * losses[:, 1]).sum()  # points are independent
            return torch.autograd.grad(weighted, x2)[0]  # [N]

    lo = torch.full_like(x1, X2_BRACKET[0])  # [N]
    hi = torch.full_like(x1, X2_BRACKET[1])  # [N]
    if not bool((slope(lo) < 0).all() and (slope(hi) > 0).all()):
        raise RuntimeError(f"the x2-derivative does not change sign in {X2_BRACKET}")
    for _ in range(iterations):
        mid = (lo + hi) / 2  # [N]
        rising = slope(mid) > 0  # [N]: the minimum is below mid
        hi = torch.where(rising, mid, hi)  # [N]
        lo = torch.where(rising, lo, mid)  # [N]
    return (lo + hi) / 2  # [N]


def task_minima() -> Tensor:
    """The minimiser of each loss, ``[2, 2]``: row 0 minimises :math:`L_1`, row 1 minimises :math:`L_2`."""
    x1 = torch.tensor([7.0, -7.0], dtype=torch.float64)  # [2]
    lam = torch.tensor([0.0, 1.0], dtype=torch.float64)  # [2]: all weight on task 1, then on task 2
    x2 = stationary_x2(x1, lam)  # [2]
    return torch.stack([x1, x2], dim=-1).to(torch.get_default_dtype())  # [2, 2]


#: The task minima, ``[2, 2]``, computed numerically at import: about :math:`(7, -8.4345)` and
#: :math:`(-7, -8.4345)`.
TASK_MINIMA = task_minima()  # [2, 2]


def landscape(
    x1_range: tuple[float, float] = (-10.0, 10.0),
    x2_range: tuple[float, float] = (-10.0, 10.0),
    num: int = 200,
) -> tuple[Tensor, Tensor, Tensor]:
    """Both losses on a ``num`` by ``num`` grid, for contour plots.

    Returns ``X1`` and ``X2`` (``[num, num]``, as ``numpy.meshgrid`` makes them, so
    ``plt.contour(X1, X2, L[..., 0])`` draws task 1) and the losses ``L`` (``[num, num, 2]``).

    Example:
        >>> X1, X2, L = landscape(num=5)
        >>> X1.shape, L.shape
        (torch.Size([5, 5]), torch.Size([5, 5, 2]))
        >>> L[2, 2]  # the centre of the grid, (0, 0)
        tensor([0., 0.])

    Used in chapter 06.
    """
    if not isinstance(num, int) or num < 2:
        raise ValueError(f"num must be an integer of at least 2, got {num!r}")
    x1 = torch.linspace(*x1_range, num)  # [num]
    x2 = torch.linspace(*x2_range, num)  # [num]
    X1, X2 = torch.meshgrid(x1, x2, indexing="xy")  # [num, num] each; rows follow x2
    return X1, X2, toy_losses(torch.stack([X1, X2], dim=-1))  # [num, num, 2]


def run_toy(
    method: nn.Module,
    start: Sequence[float] | Tensor,
    steps: int = 10_000,
    lr: float = 5e-3,
    optimizer: str = "adam",
    scales: tuple[float, float] = (1.0, 1.0),
    offset: float = 0.0,
    steps_per_epoch: int = 100,
    betas: tuple[float, float] = (0.9, 0.999),
) -> Tensor:
    """Follow ``method`` from ``start`` on the toy problem; returns the trajectory ``[steps + 1, 2]``.

    Each step computes both losses, lets :func:`mtlcourse.backward.mtl_backward` fill the gradient of
    ``x`` for the method (a loss weighting or a gradient aggregator alike), takes an optimiser step and
    calls the method's hooks, just as :func:`mtlcourse.train.fit` does: :meth:`~mtlcourse.weighting.base.LossWeighting.on_step_end` after every
    step (with the losses recomputed after the step when the method asks for them) and
    :meth:`~mtlcourse.weighting.base.LossWeighting.on_epoch_end`, with the mean losses, every ``steps_per_epoch`` steps, since the toy has no data
    to make epochs of. The method is reset first, and its own parameters (uncertainty weighting's
    log-variances) are trained by the same optimiser as ``x``.

    Args:
        method: any multi-task method; it is moved to the device of ``start``.
        start: the start point ``(x1, x2)``; a tensor keeps its device and floating dtype.
        steps: optimiser steps.
        lr: the learning rate. The papers run Adam at ``lr=1e-3`` for tens of thousands of steps. The
            defaults (10,000 steps at ``5e-3``) give the same picture for equal weighting: from the three
            starts in the lower half-plane it reaches the Pareto set at :math:`(0, -8.355)`, from the two
            in the upper half-plane it stays in the valleys.
        optimizer: ``"adam"`` (as in the papers) or ``"sgd"``.
        scales: multiply the two losses; FAMO's and Nash-MTL's version of the problem uses
            ``(0.1, 1.0)`` to make the tasks unbalanced.
        offset: added to both (scaled) losses before the method sees them. It changes no gradient of a
            plain sum, but methods that need positive losses (DWA, GLS, scale-invariant) need one of at
            least 20 (every loss is above ``LOSS_LOWER_BOUND``).
        steps_per_epoch: steps per pretend epoch, for :meth:`~mtlcourse.weighting.base.LossWeighting.on_epoch_end`.
        betas: Adam's two decay rates (default ``(0.9, 0.999)``, PyTorch's and the papers'); ignored by SGD.

    Example:
        >>> from mtlcourse.weighting import EqualWeighting
        >>> path = run_toy(EqualWeighting(), (9.0, -1.0), steps=100, lr=0.05)
        >>> path.shape
        torch.Size([101, 2])
        >>> bool(toy_losses(path[-1]).sum() < toy_losses(path[0]).sum())
        True

    Used in chapter 06.
    """
    check_run_arguments(steps, lr, optimizer, scales, steps_per_epoch, betas)
    x = nn.Parameter(start_tensor(start))  # [2]
    scale = torch.tensor(scales, device=x.device, dtype=x.dtype)  # [2]
    method.to(device=x.device).reset()
    opt = make_optimizer([x, *method.parameters()], optimizer, lr, betas)
    trajectory = [x.detach().clone()]
    epoch_sum = torch.zeros_like(x.detach())  # [2]
    for step in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        losses = toy_losses(x) * scale + offset  # [2]
        mtl_backward(method, losses, [x])
        opt.step()
        after = toy_losses(x.detach()) * scale + offset if method.needs_losses_after_step else None  # [2]
        method.on_step_end(losses.detach(), after)
        epoch_sum += losses.detach()
        if step % steps_per_epoch == 0:
            method.on_epoch_end(epoch_sum / steps_per_epoch)
            epoch_sum.zero_()
        trajectory.append(x.detach().clone())
    return torch.stack(trajectory)  # [steps + 1, 2]


@dataclass(frozen=True)
class ToyRuns:
    """What :func:`run_toy_many` recorded for ``N`` runs of ``steps`` steps.

    Attributes:
        paths: ``[N, steps + 1, 2]``, every run's point before the first step and after every step; a run
            that stopped stays at its last point.
        directions: ``[N, steps, 2]``, what each run's optimiser received at each step (the aggregated
            direction, or the gradient of a loss weighting's objective); zero after the run stopped.
            ``None`` when not recorded.
        jacobians: ``[N, steps, 2, 2]``, both task gradients at each step's point (rows: tasks). ``None``
            when not recorded.
        stopped: ``[N]``, the number of steps each run took (``steps`` when it ran to the end), so that
            ``paths[n, stopped[n]]`` is its final point.
        reasons: why each run stopped: ``""`` (it did not), ``"done"`` (``done`` said so) or the error its
            method raised, as ``"RuntimeError: ..."``.
    """

    paths: Tensor
    directions: Tensor | None
    jacobians: Tensor | None
    stopped: Tensor
    reasons: tuple[str, ...]


def run_toy_many(
    methods: Sequence[nn.Module],
    starts: Tensor,
    steps: int = 10_000,
    lr: float = 5e-3,
    optimizer: str = "adam",
    scales: tuple[float, float] = (1.0, 1.0),
    offset: float = 0.0,
    steps_per_epoch: int = 100,
    betas: tuple[float, float] = (0.9, 0.999),
    done: Callable[[Tensor], Tensor] | None = None,
    stop_on: tuple[type[Exception], ...] = (),
    record: bool = True,
) -> ToyRuns:
    """Follow ``methods[n]`` from ``starts[n]`` for every ``n`` at once: :func:`run_toy` for a batch of runs.

    The points are independent, so one autograd call gives every point's two task gradients, and one Adam
    over the stack of points ``[N, 2]`` is exactly one Adam per point (Adam updates every coordinate on its
    own). Each step then does for each run what :func:`run_toy` does for one: the method's direction (a
    loss weighting's objective is backpropagated, an aggregator gets its point's Jacobian ``[2, 2]``), the
    optimiser step, and the hooks. Every argument :func:`run_toy` takes means the same here.

    A run stops, and stays where it is for the remaining steps, when its method raises one of the
    exceptions in ``stop_on`` (by default none: the error propagates), or when ``done`` (a function of the
    points ``[N, 2]`` that returns ``[N]`` booleans, checked after every step) says so. Stopped runs cost
    nothing more.

    Args:
        methods: one method object per run (the same object may not serve two runs: methods have state).
        starts: the start points ``[N, 2]``; their device and floating dtype are kept.
        done: optional; a run whose point makes it return ``True`` stops after that step.
        stop_on: exception types that stop a run instead of propagating (e.g. ``(RuntimeError,)`` for a
            solver that can fail).
        record: whether to keep every step's directions and Jacobians (``False`` saves memory on long runs).

    Returns:
        A :class:`ToyRuns`.

    Example:
        >>> from mtlcourse.weighting import EqualWeighting
        >>> runs = run_toy_many([EqualWeighting(), EqualWeighting()], START_POINTS[3:], steps=100, lr=0.05)
        >>> runs.paths.shape, runs.stopped.tolist()
        (torch.Size([2, 101, 2]), [100, 100])
        >>> torch.equal(runs.paths[1], run_toy(EqualWeighting(), START_POINTS[4], steps=100, lr=0.05))
        True

    Used in chapter 06.
    """
    check_run_arguments(steps, lr, optimizer, scales, steps_per_epoch, betas)
    x = nn.Parameter(start_points(starts, len(methods)))  # [N, 2]
    if len({id(m) for m in methods}) != len(methods):
        raise ValueError("every run needs its own method object: methods keep state between steps")
    scale = torch.tensor(scales, device=x.device, dtype=x.dtype)  # [2]
    for method in methods:
        method.to(device=x.device).reset()
    opt = make_optimizer([x, *(p for m in methods for p in m.parameters())], optimizer, lr, betas)
    N, steps_taken, reasons = len(methods), torch.full((len(methods),), steps), [""] * len(methods)
    paths, directions, jacobians = [x.detach().clone()], [], []
    epoch_sum = torch.zeros_like(x.detach())  # [N, 2]
    for step in range(1, steps + 1):
        running = [n for n in range(N) if not reasons[n]]
        opt.zero_grad(set_to_none=True)
        losses = toy_losses(x) * scale + offset  # [N, 2]; point n's losses depend on x[n] only
        J = jacobian(losses.sum(0), [x], route="loop").view(2, N, 2).transpose(0, 1)  # [N, 2 tasks, 2]
        for n, error in step_directions(methods, running, x, losses, J, stop_on):
            steps_taken[n], reasons[n] = step - 1, f"{type(error).__name__}: {error}"
        still = torch.tensor([not reasons[n] for n in range(N)], device=x.device)  # [N]
        before = x.detach().clone()  # [N, 2]
        opt.step()
        with torch.no_grad():
            x.copy_(torch.where(still[:, None], x, before))  # a stopped run stays where it is
        call_hooks(methods, [n for n in running if not reasons[n]], x, losses, scale, offset)
        epoch_sum += losses.detach()
        if step % steps_per_epoch == 0:
            for n in running:
                if not reasons[n]:
                    methods[n].on_epoch_end(epoch_sum[n] / steps_per_epoch)
            epoch_sum.zero_()
        if done is not None:
            for n in done(x.detach()).nonzero().flatten().tolist():
                if not reasons[n]:
                    steps_taken[n], reasons[n] = step, "done"
        paths.append(x.detach().clone())
        if record:
            directions.append(
                torch.zeros_like(before) if x.grad is None else x.grad.detach() * still[:, None]
            )
            jacobians.append(J.detach())
        if all(reasons):
            break
    paths += [paths[-1]] * (steps + 1 - len(paths))  # every run stopped early: they all stay put
    fill = steps - len(directions) if record else 0
    return ToyRuns(
        paths=torch.stack(paths, 1),  # [N, steps + 1, 2]
        directions=torch.stack(directions + [torch.zeros_like(x.detach())] * fill, 1) if record else None,
        jacobians=torch.stack(jacobians + [jacobians[-1]] * fill, 1) if record and jacobians else None,
        stopped=steps_taken,
        reasons=tuple(reasons),
    )


def step_directions(
    methods: Sequence[nn.Module],
    running: list[int],
    x: Tensor,
    losses: Tensor,
    J: Tensor,
    stop_on: tuple[type[Exception], ...],
) -> list[tuple[int, Exception]]:
    """Fill ``x.grad`` ``[N, 2]`` with each running method's direction, as ``mtl_backward`` would for one
    point; return the runs whose method raised one of ``stop_on``, with the error."""
    failed, objective, d = [], None, torch.zeros_like(x.detach())  # d: [N, 2]
    for n in running:
        try:
            if methods[n].level == "losses":  # backpropagated below, as mtl_backward does
                term = methods[n](losses[n])
                objective = term if objective is None else objective + term
            else:
                d[n] = methods[n](J[n], losses[n].detach())  # [2]
        except stop_on as error:
            failed.append((n, error))
    if objective is not None:
        objective.backward()  # the points are independent: row n gets its own method's gradient
    for n, _ in failed:
        d[n] = 0.0
    x.grad = d if x.grad is None else x.grad + d  # a loss weighting's row of d is 0, an aggregator's of .grad
    for n, _ in failed:
        x.grad[n] = 0.0
    return failed


def call_hooks(
    methods: Sequence[nn.Module], running: list[int], x: Tensor, losses: Tensor, scale: Tensor, offset: float
) -> None:
    """``on_step_end`` of every running method, with the losses after the step when it asks for them."""
    after = toy_losses(x.detach()) * scale + offset  # [N, 2]
    for n in running:
        method = methods[n]
        method.on_step_end(losses[n].detach(), after[n] if method.needs_losses_after_step else None)


def start_points(starts: Tensor, num_runs: int) -> Tensor:
    """``starts`` as a fresh floating-point tensor ``[N, 2]``, one row per run."""
    if not isinstance(starts, Tensor):
        starts = torch.tensor([[float(v) for v in point] for point in starts])
    x = starts.detach().clone()
    x = x if x.is_floating_point() else x.to(torch.get_default_dtype())
    if x.dim() != 2 or x.shape[1] != 2 or x.shape[0] != num_runs:
        raise ValueError(
            f"starts must be [N, 2] with one row per method (N = {num_runs}), got {tuple(x.shape)}"
        )
    return x


def start_tensor(start: Sequence[float] | Tensor) -> Tensor:
    """``start`` as a fresh floating-point tensor ``[2]``."""
    if isinstance(start, Tensor):
        x = start.detach().clone()
        x = x if x.is_floating_point() else x.to(torch.get_default_dtype())
    else:
        x = torch.tensor([float(v) for v in start])  # [2]
    if x.shape != (2,):
        raise ValueError(f"start must be a point (x1, x2), got shape {tuple(x.shape)}")
    return x


def make_optimizer(
    params: list[Tensor], optimizer: str, lr: float, betas: tuple[float, float]
) -> torch.optim.Optimizer:
    """Adam (with ``betas``) or plain SGD over ``params``."""
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas)
    return torch.optim.SGD(params, lr=lr)


def check_run_arguments(
    steps: int,
    lr: float,
    optimizer: str,
    scales: tuple[float, float],
    steps_per_epoch: int,
    betas: tuple[float, float] = (0.9, 0.999),
) -> None:
    """Raise ``ValueError`` for arguments :func:`run_toy` and :func:`run_toy_many` cannot use."""
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if len(scales) != 2 or not all(v > 0 for v in scales):
        raise ValueError(f"scales must be two positive numbers, got {scales!r}")
    if not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be a positive integer, got {steps_per_epoch!r}")
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
