"""mtlcourse: multi-task learning for image classification with CNNs, as a course and a small library.

The names used most often are importable from the top level::

    from mtlcourse import MultiShapes, HardParameterSharing, SmallCNN, fit, evaluate, make_method, seed_everything
"""

from mtlcourse.data import MultiDigits, MultiShapes
from mtlcourse.methods import METHODS, make_method
from mtlcourse.models import HardParameterSharing, SmallCNN
from mtlcourse.tasks import Task
from mtlcourse.train import History, evaluate, fit
from mtlcourse.utils import seed_everything

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "HardParameterSharing",
    "History",
    "MultiDigits",
    "MultiShapes",
    "SmallCNN",
    "Task",
    "evaluate",
    "fit",
    "make_method",
    "seed_everything",
]
