"""Small helpers: seeding, choosing a device, counting parameters, timing, checking whole numbers."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) and return a CPU generator seeded the same way.

    Call it before building a model: the initial weights come from PyTorch's global generator, which
    :func:`mtlcourse.train.fit` leaves alone (its own ``seed`` fixes only the order of the batches).

    Example:
        >>> _ = seed_everything(0); a = torch.rand(1)
        >>> _ = seed_everything(0); bool(torch.rand(1) == a)
        True

    Used in chapter 01.
    """
    generator = seeded_generator(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return generator


def seeded_generator(seed: int) -> torch.Generator:
    """A new CPU ``torch.Generator`` seeded with ``seed``; the global generators are not touched.

    Example:
        >>> a = torch.rand(2, generator=seeded_generator(3))
        >>> bool((torch.rand(2, generator=seeded_generator(3)) == a).all())
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return torch.Generator().manual_seed(seed)


def get_device(device: str | torch.device | None = None) -> torch.device:
    """The device to train on: the one asked for, else ``cpu``.

    The default is the CPU on purpose: every chapter runs there in about a minute, and results are the
    same on every machine. Pass ``"cuda"`` (or ``"auto"`` for CUDA, then Apple MPS, when available) to use
    an accelerator.

    Example:
        >>> get_device()
        device(type='cpu')

    Used in chapter 01.
    """
    if device is None:
        return torch.device("cpu")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch.cuda.is_available() is False; use 'cpu'")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for but torch.backends.mps.is_available() is False")
    return device


def count_parameters(module: nn.Module | list[nn.Parameter], trainable_only: bool = True) -> int:
    """Number of (trainable) scalar parameters in a module or a list of parameters.

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8

    Used in chapter 01.
    """
    params = module.parameters() if isinstance(module, nn.Module) else module
    return sum(p.numel() for p in params if p.requires_grad or not trainable_only)


def is_whole_number(value: object, low: int, high: int | None = None) -> bool:
    """Whether ``value`` is an ``int`` (not a ``bool``) from ``low`` to ``high`` (no upper bound if ``None``).

    Example:
        >>> is_whole_number(3, 1), is_whole_number(3.0, 1), is_whole_number(True, 0), is_whole_number(5, 1, 4)
        (True, False, False, False)
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return low <= value and (high is None or value <= high)


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` so that a wall-clock reading is honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@contextmanager
def timer(device: torch.device | None = None) -> Iterator[dict[str, float]]:
    """Measure the wall-clock time of a block, waiting for the device first.

    Example:
        >>> with timer() as t:
        ...     _ = sum(range(1000))
        >>> t["seconds"] >= 0
        True
    """
    device = device or torch.device("cpu")
    result = {"seconds": float("nan")}
    synchronize(device)
    start = time.perf_counter()
    yield result
    synchronize(device)
    result["seconds"] = time.perf_counter() - start
