"""Small helpers shared by the aggregation methods: argument checks and seeded random generators."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def check_range(
    name: str, value: float, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> None:
    """Raise ``ValueError`` unless ``value`` is a number in ``[low, high]`` (ends excluded when ``*_open``)."""
    number = isinstance(value, int | float) and not isinstance(value, bool) and value == value
    below = number and (value <= low if low_open else value < low)
    above = number and (value >= high if high_open else value > high)
    if not number or below or above:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")


def check_positive_int(name: str, value: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_seed(seed: int | None) -> None:
    """Raise ``ValueError`` unless ``seed`` is ``None`` or a non-negative integer."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")


def check_losses_given(method: object, losses: Tensor | None, num_tasks: int) -> Tensor:
    """The detached losses ``[T]``; ``ValueError`` when a method that needs them got none or a wrong shape."""
    name = type(method).__name__
    if losses is None:
        raise ValueError(f"{name} needs the task losses: call it as method(jacobian, losses)")
    if not isinstance(losses, Tensor) or losses.shape != (num_tasks,):
        shape = tuple(losses.shape) if isinstance(losses, Tensor) else type(losses).__name__
        raise ValueError(f"{name} needs losses of shape [{num_tasks}] (one per row of J), got {shape}")
    return losses.detach()


class DeviceGenerator:
    """A ``torch.Generator`` seeded once per device, so that random draws happen where the data lives.

    ``get(device)`` returns the generator of that device (created and seeded on first use), or ``None``
    when ``seed`` is ``None`` (then torch's global generator is used, which
    ``mtlcourse.utils.seed_everything`` seeds). ``reset()`` forgets the generators, so the next draws
    repeat from the seed.
    """

    def __init__(self, seed: int | None) -> None:
        check_seed(seed)
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def get(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def reset(self) -> None:
        self._generators = {}


def random_orders(num_tasks: int, generator: DeviceGenerator, device: torch.device) -> Tensor:
    """For every task ``i``, the other tasks in a random order: ``[T, T - 1]`` integer indices.

    Drawn on ``device``: one uniform key per pair, the diagonal pushed last so that task ``i`` is never
    in its own list, and an argsort of each row.
    """
    keys = torch.rand(num_tasks, num_tasks, generator=generator.get(device), device=device)  # [T, T]
    keys.fill_diagonal_(2.0)  # above every key in [0, 1): task i sorts last in row i
    return keys.argsort(dim=1)[:, : num_tasks - 1]  # [T, T-1]
