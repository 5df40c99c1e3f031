"""Backbones, task heads and multi-task architectures.

``MODELS`` maps each architecture's short name to its class; the contract tests run over it.
"""

from mtlcourse.models.backbones import BACKBONES, ResNet18, SmallCNN
from mtlcourse.models.base import MultiTaskModel
from mtlcourse.models.hard_sharing import HardParameterSharing
from mtlcourse.models.heads import DenseHead, GlobalHead, make_head

MODELS = {"hard_sharing": HardParameterSharing}

__all__ = [
    "BACKBONES",
    "MODELS",
    "DenseHead",
    "GlobalHead",
    "HardParameterSharing",
    "MultiTaskModel",
    "ResNet18",
    "SmallCNN",
    "make_head",
]
