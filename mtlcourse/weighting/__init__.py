"""Loss-weighting methods: they see the task losses ``[T]`` and return the scalar to backpropagate.

``METHODS`` maps each method's short name to its class; the contract tests run over it.
"""

from mtlcourse.weighting.base import LossWeighting
from mtlcourse.weighting.dwa import DWA
from mtlcourse.weighting.equal import EqualWeighting
from mtlcourse.weighting.famo import FAMO
from mtlcourse.weighting.fixed import FixedWeighting, tradeoff_weights
from mtlcourse.weighting.gls import GLS
from mtlcourse.weighting.imtl_l import IMTLL
from mtlcourse.weighting.rlw import RLW
from mtlcourse.weighting.scale_invariant import ScaleInvariant
from mtlcourse.weighting.uncertainty import UncertaintyWeighting

METHODS = {
    "equal": EqualWeighting,
    "fixed": FixedWeighting,
    "uncertainty": UncertaintyWeighting,
    "dwa": DWA,
    "rlw": RLW,
    "famo": FAMO,
    "gls": GLS,
    "scale_invariant": ScaleInvariant,
    "imtl_l": IMTLL,
}

__all__ = [
    "DWA",
    "FAMO",
    "GLS",
    "IMTLL",
    "METHODS",
    "RLW",
    "EqualWeighting",
    "FixedWeighting",
    "LossWeighting",
    "ScaleInvariant",
    "UncertaintyWeighting",
    "tradeoff_weights",
]
