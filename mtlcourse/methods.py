"""Every multi-task method by its short name, and one way to build any of them.

Loss-weighting methods (:mod:`mtlcourse.weighting`) and gradient-aggregation methods
(:mod:`mtlcourse.aggregation`) share one namespace of short names, so an experiment can loop over both.

Used in chapters 05 and 07.
"""

from __future__ import annotations

import inspect

from torch import nn

from mtlcourse.aggregation import METHODS as AGGREGATION_METHODS
from mtlcourse.weighting import METHODS as WEIGHTING_METHODS

METHODS: dict[str, type[nn.Module]] = {**WEIGHTING_METHODS, **AGGREGATION_METHODS}


def make_method(name: str, num_tasks: int, **kwargs: object) -> nn.Module:
    """Build the method called ``name`` for ``num_tasks`` tasks, with the paper's defaults unless overridden.

    Methods that keep one parameter per task take ``num_tasks``; fixed weighting defaults to equal weights.

    Example:
        >>> make_method("uncertainty", num_tasks=3)
        UncertaintyWeighting(num_tasks=3)
        >>> make_method("cagrad", num_tasks=3, c=0.2).c
        0.2
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid names are {sorted(METHODS)}")
    if not isinstance(num_tasks, int) or num_tasks < 1:
        raise ValueError(f"num_tasks must be a positive integer, got {num_tasks!r}")
    cls = METHODS[name]
    parameters = inspect.signature(cls).parameters
    if "num_tasks" in parameters:
        kwargs.setdefault("num_tasks", num_tasks)
    if "weights" in parameters:
        kwargs.setdefault("weights", [1.0] * num_tasks)
    return cls(**kwargs)
