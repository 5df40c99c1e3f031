"""Gradient-aggregation methods: they see the Jacobian ``[T, P]`` of the task losses and return a direction.

``METHODS`` maps each method's short name to its class; the contract tests run over it. Every class can be
built with no arguments (the papers' defaults). ``non_conflicting`` on a class says whether it promises
``J d >= 0`` for every Jacobian.
"""

from mtlcourse.aggregation.aligned_mtl import AlignedMTL, AlignedMTLUB
from mtlcourse.aggregation.base import Aggregator, GramianWeighting
from mtlcourse.aggregation.cagrad import CAGrad
from mtlcourse.aggregation.dbmtl import DBMTL
from mtlcourse.aggregation.graddrop import GradDrop
from mtlcourse.aggregation.gradnorm import GradNorm
from mtlcourse.aggregation.gradvac import GradVac
from mtlcourse.aggregation.imtlg import IMTLG
from mtlcourse.aggregation.mean import Mean
from mtlcourse.aggregation.mgda import MGDA, MGDAUB
from mtlcourse.aggregation.nash_mtl import NashMTL
from mtlcourse.aggregation.pcgrad import PCGrad
from mtlcourse.aggregation.sum import Sum
from mtlcourse.aggregation.upgrad import UPGrad

METHODS: dict[str, type[Aggregator]] = {
    "mean": Mean,
    "sum": Sum,
    "mgda": MGDA,
    "mgda_ub": MGDAUB,
    "pcgrad": PCGrad,
    "cagrad": CAGrad,
    "imtlg": IMTLG,
    "nash_mtl": NashMTL,
    "graddrop": GradDrop,
    "gradvac": GradVac,
    "aligned_mtl": AlignedMTL,
    "aligned_mtl_ub": AlignedMTLUB,
    "upgrad": UPGrad,
    "dbmtl": DBMTL,
    "gradnorm": GradNorm,
}

__all__ = [
    "DBMTL",
    "IMTLG",
    "METHODS",
    "MGDA",
    "MGDAUB",
    "Aggregator",
    "AlignedMTL",
    "AlignedMTLUB",
    "CAGrad",
    "GradDrop",
    "GradNorm",
    "GradVac",
    "GramianWeighting",
    "Mean",
    "NashMTL",
    "PCGrad",
    "Sum",
    "UPGrad",
]
