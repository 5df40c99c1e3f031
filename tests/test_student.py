"""The student notebooks (book/student.py): each MyST conversion, the solutions' move, and every built chapter."""

import importlib.util
import inspect
import json
import re
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import IPyNbCell, NbCellError
from pybtex.database import parse_string

import conftest
from mtlcourse.models.hard_sharing import HardParameterSharing
from mtlcourse.tasks import Task
from mtlcourse.train import train_one_epoch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("book_student", ROOT / "book" / "student.py")
student = importlib.util.module_from_spec(_spec)
sys.modules["book_student"] = student  # dataclasses look their module up while the file executes
_spec.loader.exec_module(student)

BIB = r"""
@article{solo2001, author = {Solo, Ann}, title = {One Author}, journal = {J. Tests}, year = {2001},
  doi = {10.1/solo}}
@inproceedings{pair2002, author = {Pair, Bob and De Second, Carl}, title = {Two Authors?},
  booktitle = {Proc. Tests}, year = {2002}}
@misc{many2003, author = {Many, Dan and Val{\'e}rian, Eve and Third, Fay}, title = {{Three} Authors},
  year = {2003}, eprint = {2003.00001}, archivePrefix = {arXiv}}
@book{site2004, author = {Site, Gus}, title = {A Book}, publisher = {Press}, year = {2004},
  url = {https://example.org/book}}
"""

CONFIG = {
    "repository": {"url": "https://github.com/owner/course"},
    "launch_buttons": {"colab_url": "https://colab.example.com"},
    "student_notebooks": {"branch": "published", "folder": "student"},
    "bibtex_bibfiles": ["refs.bib"],
}

PACKAGE_SOURCE = '''\
import functools


@functools.lru_cache
def cached(x):
    return x


class Box:
    """A box."""

    size = 1

    @property
    def volume(self):
        return self.size**3

    def grow(self, by):
        self.size += by
'''


@pytest.fixture
def book(tmp_path: Path):
    """A small book in ``tmp_path``: a package file to include, a bibliography, two chapter titles."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "box.py").write_text(PACKAGE_SOURCE)
    (tmp_path / "notebooks").mkdir()
    bibliography = dict(parse_string(BIB, "bibtex").entries)
    titles = {"00_intro": "00. Intro", "01_next": "01. Next chapter"}
    labels = {"sec-data": "The data"}
    return student.Book(tmp_path, CONFIG, bibliography, titles, labels)


@pytest.fixture
def chapter(book):
    return student.Chapter(book.root / "notebooks" / "00_intro.ipynb", book, {"ex-one": "First"})


def convert(text: str, chapter) -> str:
    return student.convert_markdown(textwrap.dedent(text).strip("\n"), chapter)


# ---------------------------------------------------------------- citations


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("{cite}`solo2001`", "(Solo, 2001)"),
        ("{cite:p}`pair2002`", "(Pair and De Second, 2002)"),
        ("{cite:t}`many2003`", "Many et al. (2003)"),
        ("{cite:t}`pair2002`", "Pair and De Second (2002)"),
        ("{cite}`many2003,solo2001`", "(Many et al., 2003; Solo, 2001)"),
        ("{cite:p}`solo2001, pair2002`", "(Solo, 2001; Pair and De Second, 2002)"),
        ("{cite:t}`solo2001,pair2002`", "Solo (2001) and Pair and De Second (2002)"),
    ],
)
def test_citations_become_author_year_text(role, expected, chapter):
    assert convert(f"As shown {role}.", chapter) == f"As shown {expected}."


def test_citations_are_listed_in_the_references(chapter):
    convert("{cite}`solo2001` and {cite:t}`many2003,pair2002`, {cite}`solo2001` again", chapter)
    assert chapter.cited == ["solo2001", "many2003", "pair2002"]
    references = student.references_markdown(chapter.cited, chapter.book.bibliography)
    lines = references.split("\n")
    assert lines[0] == "## References"
    assert lines[2:] == [
        "- Many, D., Valérian, E. and Third, F. (2003). [Three Authors](https://arxiv.org/abs/2003.00001)."
        " arXiv:2003.00001.",
        "- Pair, B. and De Second, C. (2002). Two Authors? In *Proc. Tests*.",
        "- Solo, A. (2001). [One Author](https://doi.org/10.1/solo). *J. Tests*.",
    ]
    site = student.reference_line(chapter.book.bibliography["site2004"])
    assert site == "Site, G. (2004). [A Book](https://example.org/book). Press."


def test_an_unknown_citation_key_fails_the_build(chapter):
    with pytest.raises(student.StudentBuildError, match=r"nobody1999.*refs\.bib"):
        convert("{cite}`solo2001,nobody1999`", chapter)


def test_the_book_bibliography_is_read_from_the_config():
    config = student.load_config(ROOT)
    bibliography = student.load_bibliography(ROOT, config)
    assert student.cite(["caruana1997multitask"], True, bibliography) == "Caruana (1997)"


# ---------------------------------------------------------------- cross-references and other roles


def test_doc_links_to_the_sibling_student_notebook(chapter):
    assert convert("See {doc}`01_next`.", chapter) == "See [01. Next chapter](01_next.ipynb)."
    assert convert("See {doc}`that one <01_next>`.", chapter) == "See [that one](01_next.ipynb)."
    with pytest.raises(student.StudentBuildError, match="does not name a chapter"):
        convert("{doc}`../book/setup`", chapter)


@pytest.mark.parametrize(
    ("role", "target", "expected"),
    [
        ("py:class", "~mtlcourse.data.synthetic.MultiShapes", "`MultiShapes`"),
        ("py:class", "mtlcourse.data.synthetic.MultiShapes", "`mtlcourse.data.synthetic.MultiShapes`"),
        ("py:func", "~mtlcourse.train.fit", "`fit()`"),
        ("py:func", "mtlcourse.train.fit", "`mtlcourse.train.fit()`"),
        ("py:meth", "~mtlcourse.models.HardParameterSharing.decode", "`decode()`"),
        (
            "py:meth",
            "mtlcourse.models.HardParameterSharing.decode",
            "`mtlcourse.models.HardParameterSharing.decode()`",
        ),
        ("py:mod", "~mtlcourse.tasks", "`tasks`"),
        ("py:mod", "mtlcourse.tasks", "`mtlcourse.tasks`"),
        ("py:attr", "~mtlcourse.tasks.Task.kind", "`kind`"),
        ("py:attr", "mtlcourse.tasks.Task.kind", "`mtlcourse.tasks.Task.kind`"),
        ("py:obj", "~mtlcourse.checks.PLACEHOLDERS", "`PLACEHOLDERS`"),
        ("py:obj", "mtlcourse.checks.PLACEHOLDERS", "`mtlcourse.checks.PLACEHOLDERS`"),
        ("py:func", "the fit loop <mtlcourse.train.fit>", "`the fit loop`"),
    ],
)
def test_python_roles_become_inline_code(role, target, expected, chapter):
    assert convert(f"Use {{{role}}}`{target}` here.", chapter) == f"Use {expected} here."


def test_math_ref_and_term_roles(chapter):
    assert convert("{math}`x^2` is small", chapter) == "$x^2$ is small"
    assert convert("{ref}`the data section <sec-data>`", chapter) == "the data section"
    assert convert("{ref}`sec-data`", chapter) == "The data"
    assert convert("{term}`tasks <task>`", chapter) == "tasks"
    with pytest.raises(student.StudentBuildError, match="no heading or exercise has the label"):
        convert("{ref}`nowhere`", chapter)


def test_an_unknown_role_fails_the_build(chapter):
    with pytest.raises(student.StudentBuildError, match=r"\{numref\}.*supported roles"):
        convert("{numref}`fig-1`", chapter)


def test_targets_and_comments_are_dropped(chapter):
    assert convert("(sec-data)=\n## The data\n% a comment\ntext", chapter) == "## The data\ntext"


# ---------------------------------------------------------------- admonitions and exercises


def test_admonition_with_title_and_class_becomes_a_block_quote(chapter):
    text = """
    ```{admonition} Learning objectives
    :class: tip
    After this chapter you can
    - cite {cite:t}`solo2001`.
    ```
    Next paragraph.
    """
    assert convert(text, chapter) == (
        "> **💡 Learning objectives**\n>\n> After this chapter you can\n> - cite Solo (2001).\n\nNext paragraph."
    )


@pytest.mark.parametrize(
    ("opening", "closing", "expected_title"),
    [
        ("```{note}", "```", "📝 Note"),
        ("```{tip}", "```", "💡 Tip"),
        ("```{warning}", "```", "⚠️ Warning"),
        ("```{important}", "```", "❗ Important"),
        (":::{note}", ":::", "📝 Note"),
        (":::{admonition} On a GPU\n:class: warning", ":::", "⚠️ On a GPU"),
    ],
)
def test_admonitions_and_colon_fences(opening, closing, expected_title, chapter):
    converted = convert(f"{opening}\nBody text.\n{closing}", chapter)
    assert converted == f"> **{expected_title}**\n>\n> Body text."


def test_admonition_body_keeps_code_and_nested_directives(chapter):
    text = """
    ````{note}
    Run:
    ```python
    x = 1
    ```
    :::{tip}
    Inner.
    :::
    ````
    """
    converted = convert(text, chapter)
    assert "> ```python\n> x = 1\n> ```" in converted
    assert "> > **💡 Tip**" in converted
    assert student.find_raw_myst(converted) == []


def test_math_in_a_block_quote_stays_on_one_line(chapter):
    converted = convert("```{note}\nsee $a +\nb$ and\n$$ x\n= y $$\n```", chapter)
    assert "> see $a + b$ and" in converted
    assert "> $$ x = y $$" in converted


def test_dropdown_admonition_becomes_details(chapter):
    converted = convert("```{admonition} More\n:class: dropdown\nHidden.\n```", chapter)
    assert converted == "<details>\n<summary>📌 More</summary>\n\nHidden.\n\n</details>"


def test_unsupported_admonition_option_fails_the_build(chapter):
    with pytest.raises(student.StudentBuildError, match=r":width:.*not support"):
        convert("```{note}\n:width: 50%\nText.\n```", chapter)


def test_exercise_becomes_a_block_quote(chapter):
    text = (
        "```{exercise} Count the labels\n:label: ex00-labels\n\nStore it in `x`; cite {cite}`solo2001`.\n```"
    )
    assert convert(text, chapter) == (
        "> **✏️ Exercise: Count the labels**\n>\n> Store it in `x`; cite (Solo, 2001)."
    )


def test_unknown_directive_fails_the_build(chapter):
    with pytest.raises(student.StudentBuildError, match=r"\{figure\}.*cannot be shown"):
        convert("```{figure} plot.png\n```", chapter)


def test_unclosed_directive_fails_the_build(chapter):
    with pytest.raises(student.StudentBuildError, match="never closed"):
        convert("```{note}\ntext", chapter)


# ---------------------------------------------------------------- listings


def literalinclude(path: str, pyobject: str) -> str:
    return f"```{{literalinclude}} {path}\n:pyobject: {pyobject}\n```"


@pytest.mark.parametrize(
    ("pyobject", "expected"),
    [
        ("cached", "@functools.lru_cache\ndef cached(x):\n    return x"),
        ("Box.volume", "@property\ndef volume(self):\n    return self.size**3"),
        ("Box.grow", "def grow(self, by):\n    self.size += by"),
    ],
)
def test_literalinclude_inlines_the_object(pyobject, expected, chapter):
    converted = convert(literalinclude("../pkg/box.py", pyobject), chapter)
    assert converted == f"From `pkg/box.py`:\n\n```python\n{expected}\n```"


def test_literalinclude_of_a_class_takes_the_whole_class(chapter):
    converted = convert(literalinclude("../pkg/box.py", "Box"), chapter)
    assert converted.startswith('From `pkg/box.py`:\n\n```python\nclass Box:\n    """A box."""')
    assert converted.endswith("        self.size += by\n```")


@pytest.mark.parametrize(
    ("path", "pyobject", "obj"),
    [
        ("../mtlcourse/train.py", "train_one_epoch", train_one_epoch),
        ("../mtlcourse/tasks.py", "Task", Task),
        ("../mtlcourse/tasks.py", "Task.metrics", Task.metrics.fget),
        ("../mtlcourse/models/hard_sharing.py", "HardParameterSharing.decode", HardParameterSharing.decode),
    ],
)
def test_literalinclude_matches_the_package_source(path, pyobject, obj):
    book = student.Book(ROOT, CONFIG, {}, {}, {})
    chapter = student.Chapter(ROOT / "notebooks" / "00_meet_the_data.ipynb", book, {})
    converted = convert(literalinclude(path, pyobject), chapter)
    expected = textwrap.dedent(inspect.getsource(obj)).rstrip("\n")  # decorators included
    assert converted == f"From `{path.removeprefix('../')}`:\n\n```python\n{expected}\n```"


def test_literalinclude_unknown_object_or_file_fails_the_build(chapter):
    with pytest.raises(
        student.StudentBuildError, match=r"pkg/box.py defines no function or class 'Box.shrink'"
    ):
        convert(literalinclude("../pkg/box.py", "Box.shrink"), chapter)
    with pytest.raises(student.StudentBuildError, match="no file"):
        convert(literalinclude("../pkg/missing.py", "f"), chapter)


def test_literalinclude_unsupported_option_fails_naming_chapter_and_option(book):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# 00. Intro"),
        nbformat.v4.new_markdown_cell(
            "```{literalinclude} ../pkg/box.py\n:pyobject: cached\n:lines: 2-3\n```"
        ),
    ]
    path = book.root / "notebooks" / "00_intro.ipynb"
    with pytest.raises(student.StudentBuildError, match=r"00_intro\.ipynb, cell 1: .*:lines:"):
        student.convert_chapter(path, notebook, book)


def test_a_listing_with_backticks_gets_a_longer_fence():
    assert student.code_fence('x = "```"') == '````python\nx = "```"\n````'


# ---------------------------------------------------------------- solutions, tags, badge


def exercise_notebook(tagged: bool = True) -> nbformat.NotebookNode:
    """A chapter with one exercise in the course's structure; ``tagged=False`` is the older, untagged form."""
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell

    def tag(*names):
        return {"tags": list(names)} if tagged else {}

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        md("# 00. Intro\n\n```{exercise} First\n:label: ex-one\n\nSet `x` to 2.\n```"),
        code("x = None", metadata=tag("exercise")),
        code("grade(check_x)", metadata=tag("check")),
        md("```{solution-start} ex-one\n:class: dropdown\n```"),
        md("Because $1 + 1 = 2$:"),
        code("x = 2  # the solution", metadata=tag("solution"), outputs=[], execution_count=3),
        code("assert grade(check_x)", metadata={"tags": ["solution", "remove-cell"]}),
        md("```{solution-end}\n```\n\n## Afterwards"),
        md("Hidden note", metadata={"tags": ["remove-cell"]}),
        code("print('hidden')", metadata={"tags": ["remove-cell"]}),
        code("print('kept')", metadata={"tags": ["hide-input"]}, execution_count=4),
    ]
    notebook.cells[-1].outputs = [nbformat.v4.new_output("stream", text="kept\n")]
    return notebook


def sources(notebook, kind):
    return [cell.source for cell in notebook.cells if cell.cell_type == kind]


@pytest.mark.parametrize("tagged", [True, False], ids=["tagged", "untagged"])
def test_solutions_move_to_the_appendix(tagged, book):
    path = book.root / "notebooks" / "00_intro.ipynb"
    result = student.convert_chapter(path, exercise_notebook(tagged), book)
    code = sources(result, "code")
    assert code == ["x = None", "grade(check_x)", "print('kept')"]
    markdown = sources(result, "markdown")
    assert markdown[1].startswith("# 00. Intro\n\n> **✏️ Exercise: First**")
    assert markdown[2:4] == [student.SOLUTION_POINTER, "## Afterwards"]
    assert markdown[4] == student.SOLUTIONS_INTRO
    assert markdown[5] == (
        "### Exercise: First\n\n<details>\n<summary>Show the solution</summary>\n\n"
        "Because $1 + 1 = 2$:\n\n```python\nx = 2  # the solution\n```\n\n</details>"
    )
    assert len(markdown) == 6  # no References: nothing cited
    everything = json.dumps(result)
    assert "hidden" not in everything.lower() and "assert grade" not in everything


def test_reference_checks_follow_the_chapter_only_when_asked(book):
    path = book.root / "notebooks" / "00_intro.ipynb"
    plain = student.convert_chapter(path, exercise_notebook(), book)
    checked = student.convert_chapter(path, exercise_notebook(), book, with_reference_checks=True)
    assert [cell.source for cell in checked.cells[: len(plain.cells)]] == [
        cell.source for cell in plain.cells
    ]
    extra = checked.cells[len(plain.cells) :]
    assert extra[0].source == student.REFERENCE_CHECKS_INTRO
    # The check runs again before the reference solution, then the hidden assertion grades the reference.
    assert sources(nbformat.v4.new_notebook(cells=extra), "code") == [
        "grade(check_x)",
        "x = 2  # the solution",
        "assert grade(check_x)",
    ]
    assert all(cell.get("outputs", []) == [] for cell in extra)


def test_reference_checks_need_a_check_cell(book):
    path = book.root / "notebooks" / "00_intro.ipynb"
    with pytest.raises(student.StudentBuildError, match="ex-one has no cell tagged 'check'"):
        student.convert_chapter(path, exercise_notebook(tagged=False), book, with_reference_checks=True)


def test_code_cells_keep_source_and_tags_and_lose_outputs(book):
    path = book.root / "notebooks" / "00_intro.ipynb"
    result = student.convert_chapter(path, exercise_notebook(), book)
    cells = [cell for cell in result.cells if cell.cell_type == "code"]
    assert [cell.metadata.get("tags") for cell in cells] == [["exercise"], ["check"], ["hide-input"]]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in cells)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda cells: cells.pop(7), "solution-start ex-one has no solution-end"),
        (lambda cells: [cells.pop(3), cells.pop(4)], "cell 5: solution-end without a solution-start"),
        (lambda cells: cells.insert(4, cells.pop(2)), "cell 4: the cell tagged 'check' lies between"),
        (lambda cells: cells.insert(9, cells.pop(5)), "cell 9: a cell tagged 'solution' lies outside"),
        (lambda cells: cells[3].update(source="```{solution-start} ex-two\n```"), "names no exercise"),
    ],
    ids=["unclosed", "end-without-start", "check-inside", "solution-outside", "unknown-label"],
)
def test_a_broken_exercise_structure_fails_the_build(change, message, book):
    notebook = exercise_notebook()
    change(notebook.cells)
    with pytest.raises(student.StudentBuildError, match=re.escape(message)):
        student.convert_chapter(book.root / "notebooks" / "00_intro.ipynb", notebook, book)


def test_badge_url_is_built_from_the_config(book):
    result = student.convert_chapter(book.root / "notebooks" / "00_intro.ipynb", exercise_notebook(), book)
    url = "https://colab.example.com/github/owner/course/blob/published/student/00_intro.ipynb"
    badge = "https://colab.example.com/assets/colab-badge.svg"
    assert result.cells[0].source == f"[![Open In Colab]({badge})]({url})"


def test_badge_url_of_the_real_config():
    config = student.load_config(ROOT)
    repository = config["repository"]["url"].removeprefix("https://github.com/")
    where = config["student_notebooks"]
    url = student.colab_url(config, "00_meet_the_data.ipynb")
    assert url == (
        f"{config['launch_buttons']['colab_url']}/github/{repository}/blob/{where['branch']}/{where['folder']}"
        "/00_meet_the_data.ipynb"
    )


def test_badge_needs_a_github_repository_and_the_student_key():
    config = {**CONFIG, "repository": {"url": "https://gitlab.com/owner/course"}}
    with pytest.raises(student.StudentBuildError, match="GitHub address"):
        student.colab_url(config, "00_intro.ipynb")
    config = {key: value for key, value in CONFIG.items() if key != "student_notebooks"}
    with pytest.raises(student.StudentBuildError, match=r"_config.yml has no student_notebooks\.branch"):
        student.colab_url(config, "00_intro.ipynb")


# ---------------------------------------------------------------- the leftover scan


@pytest.mark.parametrize(
    "text",
    [
        "see {cite}`solo2001`",
        "```{note}",
        "> :::{tip}",
        ":label: ex-one",
        ">   :class: dropdown",
        "(sec-data)=",
        "{glue:text}`value`",
    ],
)
def test_the_scan_finds_raw_myst(text):
    assert student.find_raw_myst(f"Text before.\n{text}\nText after.")


def test_the_scan_ignores_code_blocks():
    text = 'A listing:\n\n```python\n"""``{task: value}``"""\n:label: x\n```\n\n> ```\n> {cite}`x`\n> ```'
    assert student.find_raw_myst(text) == []


def test_the_build_fails_on_leftover_myst(book):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# 00. Intro\n\n```\n:::{note}\n```\n\n:class: tip")]
    with pytest.raises(student.StudentBuildError, match=r"00_intro.ipynb: cell 1 .*':class: tip'"):
        student.convert_chapter(book.root / "notebooks" / "00_intro.ipynb", notebook, book)


# ---------------------------------------------------------------- every chapter, built


CHAPTERS = student.chapter_paths(ROOT)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student")
    assert student.main(["--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_built_chapter_is_plain_jupyter(path, built):
    source = nbformat.read(path, as_version=4)
    result = nbformat.read(built / path.name, as_version=4)
    config = student.load_config(ROOT)
    assert result.cells[0].source == student.badge_markdown(config, path.name)
    for index, cell in enumerate(result.cells):
        cell_tags = cell.metadata.get("tags", [])
        assert "remove-cell" not in cell_tags, f"cell {index} is tagged remove-cell"
        if cell.cell_type == "markdown":
            assert student.find_raw_myst(cell.source) == [], f"cell {index} holds raw MyST"
        if cell.cell_type == "code":
            assert "solution" not in cell_tags, f"cell {index} is a solution in the run path"
            assert cell.outputs == [] and cell.execution_count is None
    markdown = "\n".join(sources(source, "markdown"))
    if "{cite" in markdown:
        assert result.cells[-1].source.startswith("## References\n")
    listings = len(re.findall(r"\{literalinclude\}", markdown))
    assert (
        sum(cell.source.count("\nFrom `") + cell.source.startswith("From `") for cell in result.cells)
        == listings
    )
    exercises_with_solutions = re.findall(r"\{solution-start\} ([\w-]+)", markdown)
    titles = [cell.source for cell in result.cells if cell.source.startswith("### Exercise: ")]
    assert len(titles) == len(exercises_with_solutions)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_built_chapter_keeps_one_check_cell_per_exercise(path, built):
    source = nbformat.read(path, as_version=4)
    exercises = len(re.findall(r"\{exercise\}", "\n".join(sources(source, "markdown"))))
    if not any("check" in cell.metadata.get("tags", []) for cell in source.cells):
        pytest.skip(f"{path.name} does not tag its cells 'exercise' and 'check' yet")
    result = nbformat.read(built / path.name, as_version=4)
    checks = [cell for cell in result.cells if "check" in cell.metadata.get("tags", [])]
    learners = [cell for cell in result.cells if "exercise" in cell.metadata.get("tags", [])]
    assert len(checks) == len(learners) == exercises


# ---------------------------------------------------------------- the check-cell rule of conftest.py


def nbval_cell(printed: str, cell_tags: list[str]) -> IPyNbCell:
    """An nbval cell item after its run, without a kernel: the hook only reads these attributes."""
    item = IPyNbCell.__new__(IPyNbCell)
    item.cell = nbformat.v4.new_code_cell("grade(check_x)", metadata={"tags": cell_tags})
    item.cell_num = 7
    item.test_outputs = [nbformat.v4.new_output("stream", text=printed)]
    return item


def run_hook(item) -> None:
    hook = conftest.pytest_runtest_call(item)
    next(hook)
    with pytest.raises(StopIteration):
        hook.send(None)


def test_check_cell_that_says_not_answered_passes():
    run_hook(nbval_cell("⏳ Exercise not answered yet: replace the placeholder ...\n", ["check"]))


@pytest.mark.parametrize("printed", ["✅ Check passed: x = 2\n", "❌ Check failed: x = 3\n"])
def test_check_cell_that_grades_an_answer_fails(printed):
    with pytest.raises(NbCellError, match="should print 'not answered yet'"):
        run_hook(nbval_cell(printed, ["check"]))


class OtherItem(pytest.Item):
    def runtest(self) -> None:
        pass


def test_other_cells_and_tests_are_left_alone():
    run_hook(nbval_cell("✅ Check passed\n", ["exercise"]))
    run_hook(OtherItem.__new__(OtherItem))
