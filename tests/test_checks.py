"""Self-checks: the printed line, the return value, and raising only when strict or in CI."""

import math

import numpy as np
import pytest
import torch

from mtlcourse.checks import check, check_between, check_close, check_shape, running_in_ci


@pytest.fixture
def not_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)


@pytest.mark.usefixtures("not_ci")
def test_check_prints_one_line_and_returns_the_result(capsys):
    assert check(True, "the loss is finite") is True
    assert capsys.readouterr().out == "✅ Check passed: the loss is finite\n"
    assert check(False, "the loss is finite", hint="lower the learning rate") is False
    assert capsys.readouterr().out == "❌ Check failed: the loss is finite Hint: lower the learning rate\n"
    assert check(0, "zero is falsy") is False
    assert capsys.readouterr().out == "❌ Check failed: zero is falsy\n"


@pytest.mark.parametrize(
    "value, raises", [("true", True), ("1", True), ("TRUE", True), ("false", False), ("", False)]
)
def test_failures_raise_in_ci_only(monkeypatch, capsys, value, raises):
    monkeypatch.setenv("CI", value)
    assert running_in_ci() is raises
    if raises:
        with pytest.raises(AssertionError, match="Check failed: answer Hint: look again"):
            check(False, "answer", hint="look again")
    else:
        assert check(False, "answer", hint="look again") is False
    assert capsys.readouterr().out.startswith("❌ Check failed: answer")
    assert check(True, "answer") is True  # a passing check never raises
    assert check(False, "answer", strict=False) is False  # strict=False overrides CI


@pytest.mark.usefixtures("not_ci")
def test_strict_raises_outside_ci():
    with pytest.raises(AssertionError, match="Check failed: shapes agree"):
        check(False, "shapes agree", strict=True)
    with pytest.raises(AssertionError, match=r"logits has shape \(2, 3\), expected \(any, 4\)"):
        check_shape(torch.zeros(2, 3), (None, 4), name="logits", strict=True)


@pytest.mark.usefixtures("not_ci")
def test_check_close_on_numbers_arrays_and_tensors(capsys):
    assert check_close(0.30001, 0.3, name="x", rtol=1e-3)
    assert capsys.readouterr().out == "✅ Check passed: x = 0.30001 is close to 0.3\n"
    assert check_close(np.array([1.0, 2.0]), torch.tensor([1.0, 2.0]), name="v")
    assert check_close(torch.tensor([[1.0, 2.0]]), 1.5, name="v", atol=0.6)  # broadcast
    capsys.readouterr()
    assert not check_close(0.5, 0.6, name="fraction", atol=0.05, hint="count the missing labels")
    assert capsys.readouterr().out == (
        "❌ Check failed: fraction = 0.5, expected 0.6 (largest difference 0.1; rtol=0.0001, atol=0.05) "
        "Hint: count the missing labels\n"
    )
    assert not check_close(math.nan, math.nan, name="nan")
    assert not check_close(torch.zeros(3), torch.zeros(2), name="v")
    assert "v has shape (3,), expected a shape like (2,)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="rtol and atol must be at least 0"):
        check_close(1.0, 1.0, name="x", atol=-1.0)


@pytest.mark.usefixtures("not_ci")
def test_check_shape_and_check_between(capsys):
    assert check_shape(torch.zeros(8, 4), (8, 4), name="logits")
    assert check_shape(torch.zeros(8, 4), (None, 4), name="logits")
    assert not check_shape(torch.zeros(8, 4), (8, 4, 1), name="logits")
    assert not check_shape(torch.zeros(8), (4,), name="bias")
    assert capsys.readouterr().out.splitlines()[-1] == "❌ Check failed: bias has shape (8,), expected (4,)"
    assert check_between(torch.tensor(0.5), 0.0, 1.0, name="accuracy")
    assert check_between(1.0, 0.0, 1.0, name="accuracy")  # closed interval
    assert not check_between(1.2, 0.0, 1.0, name="accuracy")
    assert not check_between(math.nan, 0.0, 1.0, name="accuracy")
    assert capsys.readouterr().out.splitlines()[-2] == "❌ Check failed: accuracy = 1.2 is not in [0, 1]"
    with pytest.raises(ValueError, match="high must be at least low"):
        check_between(0.5, 1.0, 0.0, name="x")
    with pytest.raises(ValueError, match="must be a single number"):
        check_between(torch.zeros(2), 0.0, 1.0, name="x")


def test_grade_reports_each_outcome_once(monkeypatch, capsys):
    from mtlcourse.checks import answer, grade

    monkeypatch.setenv("CI", "true")
    value = None
    assert grade(lambda: check(answer(value) == 1, "value is one")) is None  # never raises, in CI either
    assert "not answered yet" in capsys.readouterr().out
    value = 2
    with pytest.raises(AssertionError, match="Check failed: value is one"):
        grade(lambda: check(answer(value) == 1, "value is one"))
    assert capsys.readouterr().out.count("Check failed") == 1  # printed once, not again by grade

    def broken():
        raise TypeError("unsupported operand")

    with pytest.raises(AssertionError, match="your answer raised TypeError: unsupported operand"):
        grade(broken)
    monkeypatch.delenv("CI")
    assert grade(broken) is False  # outside CI the notebook goes on
    with pytest.raises(TypeError, match="must return True or False"):
        grade(lambda: 1)
