"""mtlcourse: multi-task learning for image classification with CNNs, as a course and a small library."""

__version__ = "0.1.0"
