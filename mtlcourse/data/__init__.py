"""Multi-task datasets: in-memory tensors with one target per task.

Used in chapter 00 and every chapter after.
"""

from mtlcourse.data.base import TensorMultiTaskDataset
from mtlcourse.data.digits import MultiDigits
from mtlcourse.data.synthetic import MultiShapes

#: Short name to dataset class; tests run over this dict.
DATASETS = {"multishapes": MultiShapes, "digits": MultiDigits}

__all__ = ["DATASETS", "MultiDigits", "MultiShapes", "TensorMultiTaskDataset"]
