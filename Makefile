# The two commands of the course: `make book` builds the executed book, `make test` runs every check.
# Each target creates .venv with the pinned tools the first time it runs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: book test lint unit notebooks student book-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[book,test]"
	touch $@

book: $(STAMP)
	$(BIN)/jupyter-book build . --all
	@echo "The book is in _build/html/index.html"

test: lint unit notebooks book-check

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(STAMP)
	$(BIN)/python -m pytest

# Run every student notebook top to bottom, as a learner who answers no exercise would: every cell must
# run, and every check cell must report "not answered yet" (conftest.py). CI=true makes a failing check raise.
notebooks: student
	CI=true $(BIN)/python -m pytest --nbval-lax -o addopts="-p no:cacheprovider" _build/student/

# Plain .ipynb copies of the chapters for Jupyter and Colab: no MyST, solutions at the end (book/student.py).
student: $(STAMP)
	$(BIN)/python book/student.py

book-check: $(STAMP)
	rm -rf _build
	$(BIN)/jupyter-book build . --all -W -n --keep-going

clean:
	rm -rf _build $(VENV) .pytest_cache .ruff_cache *.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +
