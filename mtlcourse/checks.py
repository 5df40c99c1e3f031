"""Self-checks for the exercises: one clear line that says whether the learner's answer is right.

Every check prints ``✅ Check passed: ...`` or ``❌ Check failed: ... Hint: ...`` and returns whether it
passed. A failed check only prints while a learner works through a notebook, so that the notebook keeps
running; it raises ``AssertionError`` when ``strict=True``, or, with the default ``strict=None``, when the
environment variable ``CI`` is ``true`` or ``1`` (continuous integration), so that a broken chapter fails
the build. ``strict=False`` never raises.

An exercise of a chapter is three cells: the learner's cell, which starts with a placeholder (``None``, or
a function that returns ``None``); a check function that reads the learner's names, passes their values
through :func:`answer` and returns the result of the checks; and :func:`grade`, which runs it. An answer
that is still the placeholder makes :func:`answer` raise :class:`NotAnswered`, and :func:`grade` prints
``⏳ ... not answered yet ...`` instead of a failure, so that "Run all" goes on; it never raises, in CI
either. The reference solution of a chapter is graded by the same check function.

Example:
    >>> check(2 + 2 == 4, "two plus two is four")
    ✅ Check passed: two plus two is four
    True
    >>> check(2 + 2 == 5, "two plus two is five", hint="count again", strict=False)
    ❌ Check failed: two plus two is five Hint: count again
    False
    >>> my_sum = None  # the learner's cell, not answered yet
    >>> def check_sum():
    ...     return check(answer(my_sum) == 4, "my_sum is two plus two")
    >>> grade(check_sum)
    ⏳ Exercise not answered yet: replace the placeholder in the exercise cell, run it, then run this cell again.
    >>> my_sum = 4  # the learner answers
    >>> grade(check_sum)
    ✅ Check passed: my_sum is two plus two
    True

Used in chapter 00 and in the exercises of every chapter after.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

CI_VALUES = ("true", "1")


def running_in_ci() -> bool:
    """Whether the environment variable ``CI`` says this is a continuous-integration run (``true`` or ``1``)."""
    return os.environ.get("CI", "").strip().lower() in CI_VALUES


def check(condition: bool, message: str, hint: str = "", strict: bool | None = None) -> bool:
    """Print whether ``condition`` holds, and raise on failure in CI or when strict.

    Args:
        condition: the property the learner's answer must have.
        message: what is being checked, written as the statement that should be true.
        hint: printed after a failure to point the learner in the right direction (default ``""``).
        strict: ``True`` raises on failure, ``False`` never raises, ``None`` (default) raises only in CI.

    Returns:
        Whether the check passed.

    Raises:
        AssertionError: on failure, when ``strict`` is ``True``, or ``None`` in CI.

    Example:
        >>> check(3 > 2, "three is more than two")
        ✅ Check passed: three is more than two
        True
        >>> check(False, "this fails", hint="but only prints", strict=False)
        ❌ Check failed: this fails Hint: but only prints
        False

    Used in chapter 00.
    """
    passed = bool(condition)
    if passed:
        print(f"✅ Check passed: {message}")
        return True
    line = f"❌ Check failed: {message}" + (f" Hint: {hint}" if hint else "")
    print(line)
    if strict or (strict is None and running_in_ci()):
        raise AssertionError(line)
    return False


class NotAnswered(Exception):  # noqa: N818 (a state of the exercise, not an error)
    """Raised by :func:`answer` while an exercise's answer is still its placeholder."""


#: The values a learner's cell holds before it is answered, ``None`` and ``...`` (Python's Ellipsis).
PLACEHOLDERS = (None, Ellipsis)


def answer(value: Any) -> Any:
    """Return the learner's ``value``, or raise :class:`NotAnswered` if it is still a placeholder.

    Example:
        >>> answer(0.5)
        0.5
        >>> answer(None)
        Traceback (most recent call last):
        ...
        mtlcourse.checks.NotAnswered: the answer is still the placeholder None

    Used in chapter 00.
    """
    if any(value is placeholder for placeholder in PLACEHOLDERS):
        raise NotAnswered(f"the answer is still the placeholder {value!r}")
    return value


def grade(check_answer: Callable[[], bool], strict: bool | None = None) -> bool | None:
    """Run an exercise's check function and report on the learner's answer in one line.

    Args:
        check_answer: a function without arguments that reads the learner's answer (through
            :func:`answer`), runs the checks of this module on it and returns whether they all passed.
        strict: as in :func:`check` (default ``None``: raise only in CI); used when the learner's code
            raises an error.

    Returns:
        ``True`` when the answer passes, ``False`` when it fails, ``None`` when it is not answered yet: the
        placeholder is still there, or the learner's function raises ``NotImplementedError``. Not answered
        is never an error, in CI either, so that a notebook runs to the end before the learner starts.

    Raises:
        AssertionError: when the learner's code raises any other error (its type and message are printed),
            if ``strict`` is ``True``, or ``None`` in CI.
        TypeError: when ``check_answer`` does not return ``True`` or ``False``.

    Example:
        >>> def check_one():
        ...     return check_close(answer(1 / 3), 0.333, name="one third", atol=1e-3)
        >>> grade(check_one)
        ✅ Check passed: one third = 0.333333 is close to 0.333
        True

    Used in chapter 00.
    """
    try:
        passed = check_answer()
    except (NotAnswered, NotImplementedError):
        print(
            "⏳ Exercise not answered yet: replace the placeholder in the exercise cell, run it, then run "
            "this cell again."
        )
        return None
    except AssertionError:  # a check already printed its failure and raised (strict, or in CI)
        raise
    except Exception as error:  # the learner's code failed: say how, in one line, and let the notebook go on
        message = f"your answer raised {type(error).__name__}: {error}"
        return check(
            False, message, hint="run the exercise cell on its own and read the error", strict=strict
        )
    if not isinstance(passed, bool):
        raise TypeError(f"a check function must return True or False, got {passed!r}")
    return passed


def _as_float_tensor(value: float | Sequence | Tensor) -> Tensor:
    """A float64 CPU tensor holding ``value`` (a number, a sequence, an array or a tensor on any device)."""
    if isinstance(value, Tensor):
        return value.detach().to("cpu", torch.float64)
    return torch.as_tensor(value, dtype=torch.float64)


def _describe(value: Tensor) -> str:
    """A short text for a number or a small tensor, for the one-line messages."""
    if value.dim() == 0:
        return f"{value.item():.6g}"
    if value.numel() <= 8:
        return "[" + ", ".join(f"{v:.6g}" for v in value.reshape(-1).tolist()) + "]"
    return f"a tensor of shape {tuple(value.shape)}"


def check_close(
    actual: float | Sequence | Tensor,
    expected: float | Sequence | Tensor,
    name: str,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    hint: str = "",
    strict: bool | None = None,
) -> bool:
    r"""Check that ``actual`` is close to ``expected``, element by element.

    .. math:: |a - e| \le \mathrm{atol} + \mathrm{rtol} \, |e|

    Args:
        actual: the learner's value: a number, a sequence, an array or a tensor (any device).
        expected: the reference value, broadcastable to ``actual``.
        name: what the value is, for the message.
        rtol: relative tolerance (default ``1e-4``, loose enough for float32 arithmetic); at least 0.
        atol: absolute tolerance (default ``1e-6``); at least 0.
        hint: printed after a failure (default ``""``).
        strict: as in :func:`check` (default ``None``: raise only in CI).

    Returns:
        Whether the check passed. ``nan`` is never close to anything.

    Example:
        >>> check_close(0.1 + 0.2, 0.3, name="0.1 + 0.2")
        ✅ Check passed: 0.1 + 0.2 = 0.3 is close to 0.3
        True
        >>> check_close(torch.tensor([1.0, 2.5]), [1.0, 2.0], name="means", strict=False)
        ❌ Check failed: means = [1, 2.5], expected [1, 2] (largest difference 0.5; rtol=0.0001, atol=1e-06)
        False

    Used in chapter 00.
    """
    if rtol < 0 or atol < 0:
        raise ValueError(f"rtol and atol must be at least 0, got rtol={rtol}, atol={atol}")
    a, e = _as_float_tensor(answer(actual)), _as_float_tensor(expected)
    try:
        torch.broadcast_shapes(a.shape, e.shape)
    except RuntimeError:
        message = f"{name} has shape {tuple(a.shape)}, expected a shape like {tuple(e.shape)}"
        return check(False, message, hint=hint or "compare the shapes first", strict=strict)
    passed = bool(torch.isclose(a, e, rtol=rtol, atol=atol).all())
    if passed:
        return check(True, f"{name} = {_describe(a)} is close to {_describe(e)}", strict=strict)
    difference = (a - e).abs().max().item() if a.numel() and e.numel() else math.nan
    message = (
        f"{name} = {_describe(a)}, expected {_describe(e)} (largest difference {difference:.3g}; "
        f"rtol={rtol:g}, atol={atol:g})"
    )
    return check(False, message, hint=hint, strict=strict)


def check_shape(
    tensor: Tensor, shape: Sequence[int | None], name: str, hint: str = "", strict: bool | None = None
) -> bool:
    """Check the shape of a tensor; ``None`` in ``shape`` accepts any size along that dimension.

    Args:
        tensor: the learner's tensor (anything with a ``shape``).
        shape: the expected shape, e.g. ``(None, 4)`` for "any batch size, 4 columns".
        name: what the tensor is, for the message.
        hint: printed after a failure (default ``""``).
        strict: as in :func:`check` (default ``None``: raise only in CI).

    Returns:
        Whether the check passed.

    Example:
        >>> check_shape(torch.zeros(8, 4), (None, 4), name="logits")
        ✅ Check passed: logits has shape (8, 4)
        True
        >>> check_shape(torch.zeros(8, 3), (8, 4), name="logits", hint="one column per class", strict=False)
        ❌ Check failed: logits has shape (8, 3), expected (8, 4) Hint: one column per class
        False

    Used in chapter 01.
    """
    actual = tuple(answer(tensor).shape)
    expected = tuple(shape)
    matches = len(actual) == len(expected) and all(e is None or a == e for a, e in zip(actual, expected))
    if matches:
        return check(True, f"{name} has shape {actual}", strict=strict)
    message = f"{name} has shape {actual}, expected {_format_shape(expected)}"
    return check(False, message, hint=hint, strict=strict)


def _format_shape(shape: tuple[int | None, ...]) -> str:
    """``(None, 4)`` -> ``"(any, 4)"``, written like a Python tuple."""
    sizes = ["any" if size is None else str(size) for size in shape]
    return "(" + ", ".join(sizes) + ("," if len(sizes) == 1 else "") + ")"


def check_between(
    value: float | Tensor, low: float, high: float, name: str, hint: str = "", strict: bool | None = None
) -> bool:
    """Check that a number lies in the closed interval ``[low, high]``.

    Args:
        value: the learner's number (a float or a 0-dim tensor on any device).
        low: the smallest accepted value.
        high: the largest accepted value; at least ``low``.
        name: what the number is, for the message.
        hint: printed after a failure (default ``""``).
        strict: as in :func:`check` (default ``None``: raise only in CI).

    Returns:
        Whether the check passed. ``nan`` is never in the interval.

    Example:
        >>> check_between(0.83, 0.5, 1.0, name="accuracy")
        ✅ Check passed: accuracy = 0.83 is in [0.5, 1]
        True
        >>> check_between(1.7, 0.0, 1.0, name="a probability", strict=False)
        ❌ Check failed: a probability = 1.7 is not in [0, 1]
        False

    Used in chapter 01.
    """
    if high < low:
        raise ValueError(f"high must be at least low, got low={low}, high={high}")
    number = _as_float_tensor(answer(value))
    if number.numel() != 1:
        raise ValueError(f"{name} must be a single number, got a tensor of shape {tuple(number.shape)}")
    x = number.item()
    if low <= x <= high:
        return check(True, f"{name} = {x:.6g} is in [{low:g}, {high:g}]", strict=strict)
    return check(False, f"{name} = {x:.6g} is not in [{low:g}, {high:g}]", hint=hint, strict=strict)
