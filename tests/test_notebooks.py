"""Notebook and book hygiene: no stored outputs, the table of contents matches, every chapter follows the template."""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = (ROOT / "_toc.yml").read_text()


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def text(path: Path, kind: str) -> str:
    return "\n".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == kind)


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 3


def test_toc_and_notebooks_folder_agree():
    listed = set(re.findall(r"notebooks/([\w\-]+)", TOC))
    assert listed == {nb.stem for nb in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    code = [c for c in cells(path) if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_name_follows_the_convention(path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+", path.stem)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_cell_installs_from_the_configured_repository(path):
    first_code = next(c for c in cells(path) if c["cell_type"] == "code")
    source = "".join(first_code["source"])
    assert f'REPOSITORY = "{CONFIG["repository"]["url"]}"' in source
    assert '"google.colab" in sys.modules' in source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_follows_the_template(path):
    markdown = text(path, "markdown")
    for part in ("Learning objectives", "**Time**", "## Summary", "## Further reading", "{cite"):
        assert part in markdown, f"{path.name} lacks {part!r}"
    labels = re.findall(r"```\{exercise\}[^\n]*\n:label: ([\w-]+)", markdown)
    assert labels, f"{path.name} has no exercise"
    for label in labels:
        assert f"```{{solution-start}} {label}\n:class: dropdown" in markdown, (
            f"{label} has no hidden solution"
        )
    code = text(path, "code")
    assert re.search(r"check(_\w+)?\(", code), f"{path.name} has no self-check"
    assert "assert " in code, f"{path.name} asserts none of its results"


def test_every_citation_is_in_the_bibliography():
    keys = set(re.findall(r"@\w+\{([\w-]+),", (ROOT / "book" / "references.bib").read_text()))
    sources = [text(nb, "markdown") for nb in NOTEBOOKS] + [
        p.read_text() for p in (ROOT / "book").glob("*.md")
    ]
    cited = {
        k.strip()
        for s in sources
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", s)
        for k in group.split(",")
    }
    assert cited and cited <= keys, f"unknown citation keys: {sorted(cited - keys)}"
