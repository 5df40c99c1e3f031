"""Shared pytest set-up: names every doctest may use, and a non-interactive matplotlib backend."""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace: dict) -> None:
    # Docstring examples read like user code that has already run `import torch`.
    doctest_namespace["torch"] = torch
