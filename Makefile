# The two commands of the course: `make book` builds the executed book, `make test` runs every check.
# Each target creates .venv with the pinned tools the first time it runs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# _config.yml with execution switched off, for book-check.
define NO_EXECUTE
import yaml
config = yaml.safe_load(open("_config.yml"))
config["execute"]["execute_notebooks"] = "off"
print(yaml.safe_dump(config, sort_keys=False))
endef
export NO_EXECUTE

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

# Run every chapter once, as CI does: its student notebook top to bottom as a learner who answers no exercise
# (every cell must run, every check cell must report "not answered yet": conftest.py), followed by each
# exercise's reference solution and the assertion that it passes its own check (book/student.py
# --with-reference-checks). CI=true makes a failing check raise. The run time of each chapter is printed.
notebooks: $(STAMP)
	$(BIN)/python book/student.py --out _build/ci --with-reference-checks
	CI=true $(BIN)/python -m pytest --nbval-lax -o addopts="-p no:cacheprovider" _build/ci/

# Plain .ipynb copies of the chapters for Jupyter and Colab: no MyST, solutions at the end (book/student.py).
student: $(STAMP)
	$(BIN)/python book/student.py

# The book's structure, cross-references and citations, with warnings as errors. It does not execute the
# chapters again (`make notebooks` has just run each of them): `make book` builds the executed book.
book-check: $(STAMP)
	rm -rf _build/html _build/.doctrees _build/jupyter_execute
	mkdir -p _build
	$(BIN)/python -c "$$NO_EXECUTE" > _build/config-no-execute.yml
	$(BIN)/jupyter-book build . --all -W -n --keep-going --config _build/config-no-execute.yml

clean:
	rm -rf _build $(VENV) .pytest_cache .ruff_cache *.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +
