"""Multi-task datasets: in-memory tensors with one target per task.

MultiShapes and MultiDigits need no file. MultiMNIST, MultiFashion, CIFAR100 and CelebA read the
original files of their datasets from one data folder (:mod:`mtlcourse.data.files`).

Used in chapter 00 and every chapter after; the real datasets in chapter 13.
"""

from mtlcourse.data.base import TensorMultiTaskDataset
from mtlcourse.data.celeba import CelebA
from mtlcourse.data.cifar100 import CIFAR100
from mtlcourse.data.digits import MultiDigits
from mtlcourse.data.files import CorruptDataError, MissingDataError, data_root
from mtlcourse.data.mnist_pairs import MultiFashion, MultiMNIST
from mtlcourse.data.synthetic import MultiShapes

#: Short name to dataset class; tests run over this dict. The last four read files (see their ``root``).
DATASETS = {
    "multishapes": MultiShapes,
    "digits": MultiDigits,
    "multimnist": MultiMNIST,
    "multifashion": MultiFashion,
    "cifar100": CIFAR100,
    "celeba": CelebA,
}

__all__ = [
    "CIFAR100",
    "DATASETS",
    "CelebA",
    "CorruptDataError",
    "MissingDataError",
    "MultiDigits",
    "MultiFashion",
    "MultiMNIST",
    "MultiShapes",
    "TensorMultiTaskDataset",
    "data_root",
]
