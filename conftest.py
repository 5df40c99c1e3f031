"""Shared pytest set-up: names every doctest may use, a non-interactive matplotlib backend, and the rule for
the check cells of the student notebooks."""

from collections import defaultdict
from pathlib import Path

import matplotlib
import pytest
import torch
from nbval.plugin import IPyNbCell

matplotlib.use("Agg")

#: What `mtlcourse.checks.grade` prints while an exercise still holds its placeholder.
NOT_ANSWERED = "not answered yet"


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace: dict) -> None:
    # Docstring examples read like user code that has already run `import torch`.
    doctest_namespace["torch"] = torch


def cell_output_text(outputs: list) -> str:
    """The text a notebook cell printed or displayed: its streams and the plain text of its results."""
    parts = []
    for output in outputs:
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        else:
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Under nbval, a cell tagged ``check`` must report that its exercise is not answered yet.

    The student notebooks (``make notebooks``) run with every exercise left as its placeholder, as a learner
    who answers nothing would run them: each check cell must then say so, not pass (a solution leaked into
    the run path) and not fail. Every other test is left alone. pytest loads this file only for paths
    inside the repository, as ``_build/ci/`` is.
    """
    result = yield
    if isinstance(item, IPyNbCell) and "check" in item.cell.metadata.get("tags", []):
        printed = cell_output_text(item.test_outputs or [])
        if NOT_ANSWERED not in printed:
            item.raise_cell_error(
                f"this check cell (tag 'check') should print '{NOT_ANSWERED}' while its exercise holds the "
                f"placeholder, but printed: {printed.strip()!r}. Is a solution in the run path, or does the "
                "check not use mtlcourse.checks.grade?"
            )
    return result


#: Seconds each notebook's cells took to run, summed; printed at the end of an nbval run.
NOTEBOOK_SECONDS: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add up the run time of each notebook's cells (nbval makes one test per cell)."""
    if report.when == "call" and ".ipynb::" in report.nodeid:
        NOTEBOOK_SECONDS[Path(report.nodeid.split("::")[0]).name] += report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After an nbval run, each chapter's run time: the budget is 90 s per chapter on a 2-core CPU."""
    if NOTEBOOK_SECONDS:
        terminalreporter.section("notebook run times")
        for name, seconds in sorted(NOTEBOOK_SECONDS.items()):
            terminalreporter.write_line(f"{seconds:7.1f} s  {name}")
