"""A seeded zoo of Jacobians for the aggregator tests (a helper module, imported by the test files).

Every case is a float64 CPU tensor ``[T, P]`` with positive task losses ``[T]`` and two facts the tests
need: whether the rows are linearly independent (``full_rank``) and whether zero lies in the convex hull of
the rows (``zero_in_hull``: a Pareto-stationary point, where MGDA and Nash-MTL return 0). The facts hold by
construction, not by calling the code under test.

Set ``MTLCOURSE_TEST_DEVICE=cuda`` to run the device-dependent tests on a GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor

DEVICE = torch.device(os.environ.get("MTLCOURSE_TEST_DEVICE", "cpu"))


@dataclass(frozen=True)
class Case:
    name: str
    jacobian: Tensor  # [T, P] float64 on the CPU
    losses: Tensor  # [T] positive
    full_rank: bool
    zero_in_hull: bool

    def __repr__(self) -> str:
        return self.name


def _randn(g: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64)  # [*shape]


def jacobian_zoo() -> list[Case]:
    """The zoo: shapes T = 1, 2, 3, 5 and P up to 50, ranks 1 to 5, zero rows, opposite rows, wild scales."""
    g = torch.Generator().manual_seed(0)
    u = _randn(g, 7)  # [7]
    opposite = _randn(g, 6)  # [6]
    positive_first = _randn(g, 5, 3)  # [5, 3]
    positive_first[:, 0] = positive_first[:, 0].abs() + 0.5  # every row has x_0 > 0: 0 is not in the hull
    zero_row = _randn(g, 3, 8)  # [3, 8]
    zero_row[1] = 0.0
    common = _randn(g, 12)  # [12]
    scales = torch.tensor([1e-3, 1e-1, 1.0, 1e1, 1e3], dtype=torch.float64)  # [5]
    raw = [
        ("one_task", _randn(g, 1, 9), True, False),
        ("T2_P5", _randn(g, 2, 5), True, False),
        ("T3_P10", _randn(g, 3, 10), True, False),
        ("T5_P50", _randn(g, 5, 50), True, False),
        ("T5_P3_rank3_positive_side", positive_first, False, False),
        ("rank1_mixed_signs", torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)[:, None] * u, False, True),
        ("zero_row", zero_row, False, True),
        ("g_and_minus_g", torch.stack([opposite, -opposite]), False, True),
        ("scales_1e-3_to_1e3", _randn(g, 5, 20) * scales[:, None], True, False),
        ("all_agreeing", common + 0.3 * _randn(g, 4, 12), True, False),
    ]
    cases = []
    for name, J, full_rank, zero_in_hull in raw:
        losses = 0.5 + torch.rand(J.shape[0], generator=g, dtype=torch.float64)  # [T]
        cases.append(Case(name, J, losses, full_rank, zero_in_hull))
    agreeing = cases[[c.name for c in cases].index("all_agreeing")].jacobian
    assert ((agreeing @ agreeing.T) > 0).all(), "the all_agreeing case must have no conflicting pair"
    return cases


ZOO = jacobian_zoo()
