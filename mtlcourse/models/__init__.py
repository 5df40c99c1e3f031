"""Backbones, task heads and multi-task architectures.

``MODELS`` maps each architecture's short name to its class; the contract tests run over it. Every
architecture is built the same way, ``MODELS[name](backbone, tasks, **arguments)``, from a backbone instance
that honours the stage contract (:mod:`mtlcourse.models.backbones`).
"""

from mtlcourse.models.backbones import BACKBONES, ResNet18, SmallCNN
from mtlcourse.models.base import MultiTaskModel
from mtlcourse.models.branched import BranchedNetwork
from mtlcourse.models.cross_stitch import CrossStitchNetwork
from mtlcourse.models.hard_sharing import HardParameterSharing
from mtlcourse.models.heads import DenseHead, GlobalHead, make_head
from mtlcourse.models.mmoe import MMoE
from mtlcourse.models.mtan import MTAN

MODELS = {
    "hard_sharing": HardParameterSharing,
    "branched": BranchedNetwork,
    "cross_stitch": CrossStitchNetwork,
    "mtan": MTAN,
    "mmoe": MMoE,
}

__all__ = [
    "BACKBONES",
    "MODELS",
    "MTAN",
    "BranchedNetwork",
    "CrossStitchNetwork",
    "DenseHead",
    "GlobalHead",
    "HardParameterSharing",
    "MMoE",
    "MultiTaskModel",
    "ResNet18",
    "SmallCNN",
    "make_head",
]
