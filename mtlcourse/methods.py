"""Every multi-task method by its short name, and one way to build any of them.

Loss-weighting methods (:mod:`mtlcourse.weighting`) and gradient-aggregation methods
(:mod:`mtlcourse.aggregation`) share one namespace of short names, so an experiment can loop over both.
:func:`resolve_method` turns whatever a user passes as ``fit(..., method=...)`` (an instance, a class or a
short name) into a method instance.

Used in chapters 05 and 07.
"""

from __future__ import annotations

import inspect

from torch import nn

from mtlcourse.aggregation import METHODS as AGGREGATION_METHODS
from mtlcourse.aggregation.base import Aggregator
from mtlcourse.weighting import METHODS as WEIGHTING_METHODS
from mtlcourse.weighting.base import LossWeighting

#: Every method's short name to its class (loss-weighting methods, then aggregation methods).
METHODS: dict[str, type[nn.Module]] = {**WEIGHTING_METHODS, **AGGREGATION_METHODS}

#: The two base classes of every method (one sees the task losses, the other the task gradients).
METHOD_BASES = (LossWeighting, Aggregator)


def make_method(name: str, num_tasks: int, **kwargs: object) -> nn.Module:
    """Build the method called ``name`` for ``num_tasks`` tasks, with the paper's defaults unless overridden.

    Methods that keep one parameter per task take ``num_tasks``; fixed weighting defaults to equal weights.

    Example:
        >>> make_method("uncertainty", num_tasks=3)
        UncertaintyWeighting(num_tasks=3, lr=None)
        >>> make_method("cagrad", num_tasks=3, c=0.2).c
        0.2
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid names are {sorted(METHODS)}")
    return build_method(METHODS[name], num_tasks, **kwargs)


def build_method(cls: type[nn.Module], num_tasks: int, **kwargs: object) -> nn.Module:
    """Build the method class ``cls`` for ``num_tasks`` tasks (the shared path of every way to name a method).

    Example:
        >>> from mtlcourse.weighting import FixedWeighting
        >>> build_method(FixedWeighting, num_tasks=2)
        FixedWeighting(weights=[1.0, 1.0])
    """
    if not isinstance(num_tasks, int) or num_tasks < 1:
        raise ValueError(f"num_tasks must be a positive integer, got {num_tasks!r}")
    parameters = inspect.signature(cls).parameters
    if "num_tasks" in parameters:
        kwargs.setdefault("num_tasks", num_tasks)
    if "weights" in parameters:
        kwargs.setdefault("weights", [1.0] * num_tasks)
    return cls(**kwargs)


def resolve_method(method: str | type[nn.Module] | nn.Module, num_tasks: int) -> nn.Module:
    """The method instance for ``method``: an instance as it is, a class or a short name built for ``num_tasks``.

    Args:
        method: a method instance (``UPGrad()``), a method class (``UPGrad``) or a short name (``"upgrad"``,
            a key of :data:`METHODS`). Classes and names get the paper's defaults (:func:`make_method`).
        num_tasks: the number of tasks, for methods that keep one parameter per task.

    Raises:
        ValueError: for anything else, saying what is accepted (and, for an unknown name, the valid names).

    Example:
        >>> from mtlcourse.aggregation import UPGrad
        >>> resolve_method("upgrad", 2), resolve_method(UPGrad, 2), resolve_method(UPGrad(), 2)
        (UPGrad(level='parameters'), UPGrad(level='parameters'), UPGrad(level='parameters'))

    Used in chapter 05.
    """
    if isinstance(method, METHOD_BASES):
        return method
    if isinstance(method, str):
        return make_method(method, num_tasks)
    if isinstance(method, type) and issubclass(method, METHOD_BASES):
        return build_method(method, num_tasks)
    raise ValueError(
        "method must be a method instance (e.g. UPGrad()), a method class (e.g. UPGrad) or a short name "
        f"(one of {sorted(METHODS)}), got {method!r}; a method of your own subclasses "
        "mtlcourse.weighting.base.LossWeighting or mtlcourse.aggregation.base.Aggregator"
    )
