"""Build the student notebooks: copies of the chapters that plain Jupyter and Colab render fully.

The chapters in ``notebooks/`` are written for Jupyter Book, in MyST Markdown. Opened in plain Jupyter or on
Colab, MyST shows as raw text. ``make student`` runs this script, which writes for every chapter
``notebooks/NN_name.ipynb`` a file ``_build/student/NN_name.ipynb`` in which:

- a ``literalinclude`` with ``:pyobject:`` is replaced by the source of that object, read with ``ast`` from
  the package, so the listing cannot drift from the code;
- ``{cite}``, ``{cite:p}`` and ``{cite:t}`` become author-year text resolved from the book's bibliography,
  and a "References" section at the end lists the works the chapter cites;
- ``{doc}`` becomes a link to the sibling student notebook, the ``py:`` roles become inline code,
  ``{math}`` becomes ``$...$`` and ``{ref}``/``{term}`` become their text;
- admonitions and exercises become block quotes with a bold title;
- everything between ``solution-start`` and ``solution-end`` leaves the run path: the solution code goes into
  a "Solutions" section at the end, as Markdown that does not run; the learner's cell and the check cell
  stay where they are;
- cells tagged ``remove-cell`` are dropped, code cells keep their source and tags and lose their outputs;
- an "Open in Colab" badge at the top points to where the student notebooks are published (``_config.yml``:
  ``repository.url``, ``launch_buttons.colab_url`` and ``student_notebooks``).

Anything the script cannot convert (an unknown role, directive or option, an unknown citation key) stops the
build with the chapter, the cell and what to change; nothing is dropped silently. After converting, every
Markdown cell is scanned for leftover MyST syntax, and any found also stops the build.

With ``--with-reference-checks`` (what CI runs, ``make notebooks``), each notebook also ends in a section that
runs every exercise's check, reference solution and hidden assertion once more, so that one execution of the
notebook shows both that an unanswered exercise is reported as not answered and that each reference solution
passes its own check. Learners never get that section.

Usage: ``python book/student.py [--out DIR] [--with-reference-checks]`` (default ``_build/student``).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml
from pybtex.backends.plaintext import Backend as PlainText
from pybtex.database import Entry, Person, parse_file
from pybtex.richtext import BaseText, Text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "_build" / "student"
CHAPTER_GLOB = "[0-9][0-9]_*.ipynb"


class StudentBuildError(Exception):
    """A chapter holds something the student notebooks cannot show; the message says where and what to do."""


# --------------------------------------------------------------------------------------------------------
# Configuration and the Colab badge
# --------------------------------------------------------------------------------------------------------


def load_config(root: Path) -> dict:
    """Read the book's ``_config.yml`` from the repository root ``root``."""
    return yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))


def config_value(config: dict, *keys: str) -> str:
    """The string at ``config[keys[0]][keys[1]]...``, or a clear error naming the missing key."""
    value = config
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            dotted = ".".join(keys)
            raise StudentBuildError(
                f"_config.yml has no {dotted}; the student notebooks need it (see README)"
            )
        value = value[key]
    return str(value).strip("/")


def colab_url(config: dict, notebook: str) -> str:
    """The Colab address that opens the published student copy of ``notebook`` (a file name).

    Example: ``https://colab.research.google.com/github/OWNER/NAME/blob/BRANCH/FOLDER/00_meet_the_data.ipynb``
    from ``launch_buttons.colab_url``, ``repository.url`` and ``student_notebooks.{branch, folder}``.
    """
    repository = config_value(config, "repository", "url")
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(\.git)?", repository)
    if match is None:
        raise StudentBuildError(
            f"_config.yml: repository.url must be a GitHub address like https://github.com/OWNER/NAME "
            f"for Colab to open the student notebooks, got {repository!r}"
        )
    colab = config_value(config, "launch_buttons", "colab_url")
    branch = config_value(config, "student_notebooks", "branch")
    folder = config_value(config, "student_notebooks", "folder")
    return f"{colab}/github/{match[1]}/blob/{branch}/{folder}/{notebook}"


def badge_markdown(config: dict, notebook: str) -> str:
    """A Markdown "Open in Colab" badge for ``notebook``."""
    image = config_value(config, "launch_buttons", "colab_url") + "/assets/colab-badge.svg"
    return f"[![Open In Colab]({image})]({colab_url(config, notebook)})"


# --------------------------------------------------------------------------------------------------------
# Bibliography: author-year citations and the reference list
# --------------------------------------------------------------------------------------------------------


def load_bibliography(root: Path, config: dict) -> dict[str, Entry]:
    """Every entry of the ``.bib`` files listed in ``_config.yml`` (``bibtex_bibfiles``), by key."""
    entries: dict[str, Entry] = {}
    for name in config.get("bibtex_bibfiles", []):
        entries.update(parse_file(root / name).entries)
    return entries


PLAIN_TEXT = PlainText()  # made once: pybtex's render_as("text") looks the backend up on every call, slowly


def plain(text: BaseText) -> str:
    """Plain text from pybtex's rich text."""
    return text.render(PLAIN_TEXT)


def latex_to_text(latex: str) -> str:
    """Plain text from a BibTeX field: braces dropped, accents decoded (``Val{\\'e}rian`` -> ``Valérian``)."""
    return plain(Text.from_latex(latex))


def authors(entry: Entry) -> list[Person]:
    """The entry's authors, or its editors when it has no authors."""
    persons = entry.persons.get("author") or entry.persons.get("editor")
    if not persons:
        raise StudentBuildError(f"the bibliography entry {entry.key!r} has no author or editor")
    return persons


def surname(person: Person) -> str:
    """The surname as cited, with its particles: ``Van Gansbeke``, ``LeCun``."""
    parts = person.rich_prelast_names + person.rich_last_names
    return " ".join(plain(part) for part in parts)


def year(entry: Entry) -> str:
    """The entry's year, which every cited entry needs."""
    if "year" not in entry.fields:
        raise StudentBuildError(f"the bibliography entry {entry.key!r} has no year")
    return entry.fields["year"]


def join_words(items: list[str]) -> str:
    """``a``; ``a and b``; ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def author_label(entry: Entry) -> str:
    """How the text names the authors: ``Caruana``; ``Sener and Koltun``; ``Kendall et al.``."""
    names = [surname(person) for person in authors(entry)]
    if len(names) >= 3:
        return f"{names[0]} et al."
    return join_words(names)


def cite(keys: list[str], textual: bool, bibliography: dict[str, Entry]) -> str:
    """``(Kendall et al., 2018; Liu et al., 2019)``, or with ``textual`` ``Kendall et al. (2018)``."""
    entries = [bibliography[key] for key in keys]
    if textual:
        return join_words([f"{author_label(entry)} ({year(entry)})" for entry in entries])
    return "(" + "; ".join(f"{author_label(entry)}, {year(entry)}" for entry in entries) + ")"


def entry_link(entry: Entry) -> str | None:
    """The entry's ``url``, else its DOI or arXiv address, else ``None``."""
    fields = entry.fields
    if "url" in fields:
        return fields["url"]
    if "doi" in fields:
        return f"https://doi.org/{fields['doi']}"
    if "eprint" in fields and fields.get("archivePrefix", "").lower() == "arxiv":
        return f"https://arxiv.org/abs/{fields['eprint']}"
    return None


def venue(entry: Entry) -> str:
    """Where the work appeared, in Markdown: ``*Machine Learning*, 28(1), 41–75`` or ``arXiv:1706.05098``."""
    fields = {name: latex_to_text(value) for name, value in entry.fields.items()}
    pages = f", {fields['pages'].replace('--', '–')}" if "pages" in fields else ""
    if "journal" in fields:
        volume = fields.get("volume", "") + (f"({fields['number']})" if "number" in fields else "")
        return f"*{fields['journal']}*" + (f", {volume}" if volume else "") + pages
    if "booktitle" in fields:
        return f"In *{fields['booktitle']}*{pages}"
    for name in ("publisher", "howpublished", "school", "institution"):
        if name in fields:
            return fields[name]
    if "eprint" in fields:
        return f"{fields.get('archivePrefix', 'eprint')}:{fields['eprint']}"
    return ""


def reference_line(entry: Entry) -> str:
    """One item of the reference list: authors, year, title (linked when there is an address), venue."""
    names = []
    for person in authors(entry):
        initials = " ".join(
            plain(part.abbreviate()) for part in person.rich_first_names + person.rich_middle_names
        )
        names.append(f"{surname(person)}, {initials}" if initials else surname(person))
    title = latex_to_text(entry.fields.get("title", entry.key))
    stop = "" if title.endswith((".", "?", "!")) else "."
    link = entry_link(entry)
    title = f"[{title}]({link})" if link else title
    where = venue(entry)
    return f"{join_words(names)} ({year(entry)}). {title}{stop}" + (f" {where}." if where else "")


def references_markdown(keys: list[str], bibliography: dict[str, Entry]) -> str:
    """The "References" section listing the works ``keys``, sorted by author and year."""
    entries = sorted(
        (bibliography[key] for key in dict.fromkeys(keys)), key=lambda e: (author_label(e), year(e), e.key)
    )
    return "## References\n\n" + "\n".join(f"- {reference_line(entry)}" for entry in entries)


# --------------------------------------------------------------------------------------------------------
# MyST Markdown: fences, directives and roles
# --------------------------------------------------------------------------------------------------------

FENCE_OPEN = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
DIRECTIVE_INFO = re.compile(r"^\{(?P<name>[\w:.-]+)\}\s*(?P<argument>.*)$")
OPTION_LINE = re.compile(r"^:(?P<key>[\w-]+):\s*(?P<value>.*)$")
TARGET_LINE = re.compile(r"^\s*\((?P<label>[^()\s]+)\)=\s*$")
ROLE = re.compile(r"\{(?P<name>[A-Za-z][\w:.-]*)\}`(?P<content>[^`]*)`")
EXPLICIT_TITLE = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.DOTALL)


@dataclass
class Fence:
    """A fenced block: a code block (``name`` is ``None``) or a MyST directive.

    Attributes:
        source: the block as written, fences included (what a code block is copied as).
        name: the directive's name (``note``, ``exercise``, ...), or ``None`` for a code block.
        argument: the text after ``{name}`` on the opening line.
        options: the ``:key: value`` lines (or the YAML block) at the top of the directive.
        body: the directive's content, without the options.
    """

    source: str
    name: str | None = None
    argument: str = ""
    options: dict[str, str] = field(default_factory=dict)
    body: str = ""


def closing_line(lines: list[str], start: int, fence: str) -> int | None:
    """Index of the line that closes ``fence`` (same character, at least as long), or ``None``."""
    closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
    return next((i for i in range(start, len(lines)) if closing.match(lines[i])), None)


def parse_directive(lines: list[str], name: str, argument: str) -> Fence:
    """A directive from its lines (opening and closing fences included): options first, then the body."""
    content = lines[1:-1]
    options: dict[str, str] = {}
    if content and content[0].strip() == "---":
        end = next((i for i in range(1, len(content)) if content[i].strip() == "---"), None)
        if end is None:
            raise StudentBuildError(f"the options block of the {{{name}}} directive has no closing ---")
        options = {str(k): str(v) for k, v in (yaml.safe_load("\n".join(content[1:end])) or {}).items()}
        content = content[end + 1 :]
    else:
        while content and (match := OPTION_LINE.match(content[0])):
            options[match["key"]] = match["value"].strip()
            content = content[1:]
    body = "\n".join(content).strip("\n")
    return Fence("\n".join(lines), name, argument.strip(), options, body)


def split_blocks(text: str) -> list[str | Fence]:
    """Split Markdown into plain text and fenced blocks (code blocks and directives), in order.

    Fences follow CommonMark: a block ends at the first line of only the same fence character, at least as
    many as opened it (so a directive that holds a code block needs a longer fence). ``:::`` opens a
    block only as a directive (``:::{note}``), as MyST's ``colon_fence`` extension does.
    """
    lines = text.split("\n")
    blocks: list[str | Fence] = []
    plain: list[str] = []
    i = 0
    while i < len(lines):
        match = FENCE_OPEN.match(lines[i])
        info = match["info"].strip() if match else ""
        directive = DIRECTIVE_INFO.match(info)
        is_fence = match is not None and (directive is not None or match["fence"][0] != ":")
        if not is_fence or (match["fence"][0] == "`" and "`" in info):
            plain.append(lines[i])
            i += 1
            continue
        end = closing_line(lines, i + 1, match["fence"])
        if end is None and directive is not None:
            raise StudentBuildError(
                f"the {{{directive['name']}}} directive opened by {lines[i]!r} is never closed"
            )
        end = len(lines) - 1 if end is None else end
        if plain:
            blocks.append("\n".join(plain))
            plain = []
        block = lines[i : end + 1]
        if directive is None:
            blocks.append(Fence("\n".join(block)))
        else:
            blocks.append(parse_directive(block, directive["name"], directive["argument"]))
        i = end + 1
    if plain:
        blocks.append("\n".join(plain))
    return blocks


@dataclass
class Book:
    """What converting any chapter needs to know about the whole book."""

    root: Path
    config: dict
    bibliography: dict[str, Entry]
    titles: dict[str, str]  # chapter file stem -> its title (first "# " heading)
    labels: dict[str, str]  # {ref} label -> the text it shows


@dataclass
class Chapter:
    """One chapter being converted, and what was found in it so far."""

    path: Path
    book: Book
    exercises: dict[str, str]  # exercise label -> title
    cited: list[str] = field(default_factory=list)


PY_ROLES = ("class", "func", "meth", "mod", "attr", "obj", "data", "exc", "const", "type")
CITE_ROLES = ("cite", "cite:p", "cite:t")
ROLE_NAMES = ", ".join(
    ["cite", "cite:p", "cite:t", "doc", "math", "ref", "term"] + [f"py:{r}" for r in PY_ROLES]
)


def convert_cite(content: str, textual: bool, chapter: Chapter) -> str:
    """``{cite}`a,b``` -> author-year text; an unknown key stops the build."""
    keys = [key.strip() for key in content.split(",") if key.strip()]
    bibliography = chapter.book.bibliography
    unknown = [key for key in keys if key not in bibliography]
    if not keys or unknown:
        files = ", ".join(chapter.book.config.get("bibtex_bibfiles", []))
        raise StudentBuildError(
            f"unknown citation key(s) {unknown or [content]} (not in {files}); add them there"
        )
    chapter.cited.extend(key for key in keys if key not in chapter.cited)
    return cite(keys, textual, bibliography)


def convert_doc(content: str, chapter: Chapter) -> str:
    """``{doc}`01_single_task_cnn``` -> a link to the sibling student notebook, titled by the chapter."""
    match = EXPLICIT_TITLE.match(content)
    text, target = (match["text"], match["target"]) if match else (None, content)
    stem = target.strip().removesuffix(".ipynb").removesuffix(".md")
    stem = stem.removeprefix("./").removeprefix("/notebooks/").removeprefix("../notebooks/")
    if stem not in chapter.book.titles:
        raise StudentBuildError(
            f"{{doc}}`{content}` does not name a chapter in notebooks/; the student notebooks can only "
            f"link to chapters ({', '.join(sorted(chapter.book.titles))})"
        )
    return f"[{text or chapter.book.titles[stem]}]({stem}.ipynb)"


def convert_py(role: str, content: str) -> str:
    """``{py:class}`~a.b.C``` -> inline code ``C``; ``func`` and ``meth`` get ``()`` as Sphinx shows them."""
    match = EXPLICIT_TITLE.match(content)
    if match:
        return f"`{match['text']}`"
    target = content.strip().lstrip("!")
    shown = target.lstrip("~").lstrip(".")
    if target.startswith("~"):
        shown = shown.split(".")[-1]
    if role in ("func", "meth") and not shown.endswith(")"):
        shown += "()"
    return f"`{shown}`"


def convert_ref(content: str, chapter: Chapter) -> str:
    """``{ref}`text <label>``` -> ``text``; ``{ref}`label``` -> the title of what the label marks."""
    match = EXPLICIT_TITLE.match(content)
    if match:
        return match["text"]
    label = content.strip()
    if label not in chapter.book.labels:
        raise StudentBuildError(f"{{ref}}`{content}`: no heading or exercise has the label {label!r}")
    return chapter.book.labels[label]


def convert_role(name: str, content: str, chapter: Chapter) -> str:
    """The plain Markdown for one role, or an error naming the roles this script knows."""
    if name in CITE_ROLES:
        return convert_cite(content, name == "cite:t", chapter)
    if name == "doc":
        return convert_doc(content, chapter)
    if name.removeprefix("py:") in PY_ROLES:
        return convert_py(name.removeprefix("py:"), content)
    if name == "math":
        return f"${content}$"
    if name == "ref":
        return convert_ref(content, chapter)
    if name == "term":
        match = EXPLICIT_TITLE.match(content)
        return match["text"] if match else content
    raise StudentBuildError(
        f"the role {{{name}}}`{content}` cannot be shown in a student notebook (supported roles: "
        f"{ROLE_NAMES}); write it as plain Markdown, or teach book/student.py to convert it"
    )


def convert_text(text: str, chapter: Chapter) -> str:
    """Plain Markdown from MyST text outside fences: roles converted, targets and ``%`` comments dropped."""
    lines = [line for line in text.split("\n") if not TARGET_LINE.match(line) and not line.startswith("%")]
    return ROLE.sub(lambda m: convert_role(m["name"], m["content"], chapter), "\n".join(lines))


def convert_markdown(text: str, chapter: Chapter) -> str:
    """Plain Markdown from MyST Markdown: every directive and role converted, code blocks kept as written.

    A converted directive gets a blank line before and after it, so that the text after a block quote is
    not pulled into the quote.
    """
    out: list[str] = []
    after_directive = False
    for block in split_blocks(text):
        if isinstance(block, Fence) and block.name is not None:
            if out and out[-1].split("\n")[-1].strip():
                out.append("")
            out.append(convert_directive(block, chapter))
            after_directive = True
            continue
        piece = convert_text(block, chapter) if isinstance(block, str) else block.source
        if after_directive and piece.split("\n")[0].strip():
            out.append("")
        out.append(piece)
        after_directive = False
    return "\n".join(out).strip("\n")


# --------------------------------------------------------------------------------------------------------
# Directives
# --------------------------------------------------------------------------------------------------------

#: Admonition kinds: the title when none is given, and an icon that stands in for the book's colour.
ADMONITIONS = {
    "note": ("Note", "📝"),
    "tip": ("Tip", "💡"),
    "hint": ("Hint", "💡"),
    "important": ("Important", "❗"),
    "seealso": ("See also", "👉"),
    "attention": ("Attention", "⚠️"),
    "caution": ("Caution", "⚠️"),
    "warning": ("Warning", "⚠️"),
    "danger": ("Danger", "⛔"),
    "error": ("Error", "⛔"),
}


def check_options(directive: Fence, allowed: set[str]) -> None:
    """Stop the build on any option of ``directive`` this script does not implement."""
    unsupported = sorted(set(directive.options) - allowed)
    if unsupported:
        options = ", ".join(f":{option}:" for option in unsupported)
        known = ", ".join(f":{option}:" for option in sorted(allowed)) or "none"
        raise StudentBuildError(
            f"the {{{directive.name}}} directive has the option {options}, which the student notebooks do "
            f"not support (supported: {known}); remove it, or teach book/student.py to convert it"
        )


def join_math_lines(markdown: str) -> str:
    """Put every ``$...$`` and ``$$...$$`` on one line, so that a block quote's ``>`` cannot enter the math."""
    math = re.compile(r"\$\$.+?\$\$|\$[^$\n]+(?:\n[^$\n]+)*?\$", re.DOTALL)
    return math.sub(lambda m: " ".join(m[0].split("\n")), markdown)


def blockquote(title: str, body: str) -> str:
    """A Markdown block quote: the title in bold, a blank line, then ``body``."""
    lines = [f"**{title}**", "", *join_math_lines(body).split("\n")] if body else [f"**{title}**"]
    return "\n".join(f"> {line}" if line.strip() else ">" for line in lines)


def details(summary: str, body: str) -> str:
    """A collapsed ``<details>`` block; the blank lines let Jupyter render the Markdown inside it."""
    return f"<details>\n<summary>{summary}</summary>\n\n{body}\n\n</details>"


def convert_admonition(directive: Fence, chapter: Chapter) -> str:
    """``{admonition} Title`` (with ``:class:``) and ``{note}``, ``{tip}``, ... -> a block quote."""
    check_options(directive, {"class", "name"})
    classes = directive.options.get("class", "").split()
    kind = (
        directive.name
        if directive.name in ADMONITIONS
        else next((c for c in classes if c in ADMONITIONS), "")
    )
    default_title, icon = ADMONITIONS.get(kind, ("", "📌"))
    body = directive.body
    if directive.name == "admonition":
        if not directive.argument:
            raise StudentBuildError("an {admonition} directive needs a title: ```{admonition} Title")
        title = directive.argument
    else:  # {note} and the others take no title: text on the opening line is the start of the body
        title = default_title
        body = f"{directive.argument}\n{body}".strip("\n")
    title = convert_text(title, chapter)
    body = convert_markdown(body, chapter)
    if "dropdown" in classes:
        return details(f"{icon} {title}", body)
    return blockquote(f"{icon} {title}", body)


def convert_exercise(directive: Fence, chapter: Chapter) -> str:
    """``{exercise} Title`` -> a block quote headed **Exercise: Title**."""
    check_options(directive, {"label", "class", "nonumber"})
    title = convert_text(directive.argument, chapter)
    heading = f"✏️ Exercise: {title}" if title else "✏️ Exercise"
    return blockquote(heading, convert_markdown(directive.body, chapter))


def find_definition(
    body: list[ast.stmt], name: str
) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | None:
    """The function or class called ``name`` defined directly in ``body``, if there is one."""
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return next((node for node in body if isinstance(node, kinds) and node.name == name), None)


def python_object_source(source: str, dotted: str, filename: str) -> str:
    """The source of ``dotted`` (``function``, ``Class`` or ``Class.method``) in ``source``, dedented.

    Decorators are included, as Sphinx's ``:pyobject:`` includes them.
    """
    body: list[ast.stmt] = ast.parse(source).body
    node = None
    for part in dotted.split("."):
        node = find_definition(body, part)
        if node is None:
            raise StudentBuildError(f"literalinclude: {filename} defines no function or class {dotted!r}")
        body = node.body
    assert node is not None  # dotted has at least one part
    start = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
    lines = source.split("\n")[start - 1 : node.end_lineno]
    return textwrap.dedent("\n".join(lines))


def code_fence(code: str, language: str = "python") -> str:
    """``code`` in a fenced block, with a fence longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{code.strip(chr(10))}\n{fence}"


def convert_literalinclude(directive: Fence, chapter: Chapter) -> str:
    """``{literalinclude} ../mtlcourse/x.py`` with ``:pyobject:`` -> the object's source, named by its file."""
    check_options(directive, {"pyobject", "language"})
    path = (chapter.path.parent / directive.argument).resolve()
    root = chapter.book.root.resolve()
    if not path.is_file() or not path.is_relative_to(root):
        raise StudentBuildError(
            f"literalinclude: no file {directive.argument!r} in the repository (from notebooks/)"
        )
    filename = path.relative_to(root).as_posix()
    code = path.read_text(encoding="utf-8")
    if "pyobject" in directive.options:
        code = python_object_source(code, directive.options["pyobject"], filename)
    language = directive.options.get("language", "python" if path.suffix == ".py" else "")
    return f"From `{filename}`:\n\n{code_fence(code, language)}"


def convert_math(directive: Fence, chapter: Chapter) -> str:
    """``{math}`` block -> ``$$ ... $$``."""
    check_options(directive, set())
    return f"$$\n{directive.body}\n$$"


DIRECTIVES = {
    "admonition": convert_admonition,
    **dict.fromkeys(ADMONITIONS, convert_admonition),
    "exercise": convert_exercise,
    "literalinclude": convert_literalinclude,
    "math": convert_math,
}


def convert_directive(directive: Fence, chapter: Chapter) -> str:
    """Plain Markdown for one directive, or an error naming the directives this script knows."""
    if directive.name in DIRECTIVES:
        return DIRECTIVES[directive.name](directive, chapter)
    if directive.name in SOLUTION_MARKERS:
        raise StudentBuildError(
            f"{{{directive.name}}} must stand at the top level of a Markdown cell, not inside another directive"
        )
    raise StudentBuildError(
        f"the directive {{{directive.name}}} cannot be shown in a student notebook (supported: "
        f"{', '.join(DIRECTIVES)}); write it as plain Markdown, or teach book/student.py to convert it"
    )


# --------------------------------------------------------------------------------------------------------
# Chapters: solutions out of the run path, and the notebook around them
# --------------------------------------------------------------------------------------------------------

SOLUTION_MARKERS = ("solution-start", "solution-end")
SOLUTION_POINTER = "*Stuck? A solution is in the **Solutions** section at the end of this notebook.*"
SOLUTIONS_INTRO = (
    "## Solutions\n\nTry each exercise before you open its solution. To use one, copy it into the exercise "
    "cell, run that cell, then run the check cell below it again."
)
REFERENCE_CHECKS_INTRO = (
    "## Reference checks (CI only)\n\nThe chapter has run as a learner who answers nothing. Each exercise's "
    "check now runs again, then its reference solution and the assertion that the reference passes."
)


def split_solution_markers(text: str) -> list[tuple[str, str]]:
    """Split a Markdown cell at its solution markers: ``("text", markdown)``, ``("start", label)``, ``("end", "")``."""
    pieces: list[tuple[str, str]] = []
    for block in split_blocks(text):
        if isinstance(block, Fence) and block.name in SOLUTION_MARKERS:
            check_options(block, {"class"})
            kind = "start" if block.name == "solution-start" else "end"
            pieces.append((kind, block.argument))
        else:
            source = block if isinstance(block, str) else block.source
            if pieces and pieces[-1][0] == "text":
                pieces[-1] = ("text", pieces[-1][1] + "\n" + source)
            else:
                pieces.append(("text", source))
    return pieces


def tags(cell: dict) -> list[str]:
    """The cell's tags."""
    return list(cell.get("metadata", {}).get("tags", []))


def same_id(cell: dict) -> dict[str, str]:
    """``{"id": ...}`` to keep the cell's id in its student copy (nbformat makes one if it has none)."""
    return {"id": cell["id"]} if cell.get("id") else {}


class StudentNotebook:
    """Builds one student notebook cell by cell; the solutions are collected for the appendix."""

    def __init__(self, chapter: Chapter) -> None:
        self.chapter = chapter
        self.cells: list[nbformat.NotebookNode] = []
        self.solutions: dict[str, list[str]] = {}  # exercise label -> Markdown pieces of its solution
        self.open_solution: str | None = None
        # The latest check cell: the next solution's reference check re-runs it.
        self.last_check: nbformat.NotebookNode | None = None
        self.reference_cells: list[nbformat.NotebookNode] = []  # each solution's check, code and assertions
        self.unchecked: list[str] = []  # exercises without a check cell above their solution

    def add(self, cell: nbformat.NotebookNode) -> None:
        """Convert one cell of the chapter and add it, or its solution part, where it belongs."""
        if cell.cell_type == "code" and self.open_solution is not None:
            # Hidden assertions (remove-cell) inside a solution belong to the reference checks too.
            self.add_reference(nbformat.v4.new_code_cell(cell.source))
        if "remove-cell" in tags(cell):
            return
        if cell.cell_type == "markdown":
            self.add_markdown(cell)
        elif cell.cell_type == "code":
            self.add_code(cell)
        else:
            self.cells.append(cell)

    def add_markdown(self, cell: nbformat.NotebookNode) -> None:
        """Keep the text outside solutions, file the text inside them, and mark where a solution was."""
        kept: list[str] = []
        for kind, value in split_solution_markers(cell.source):
            if kind == "start":
                self.start_solution(value)
                kept.append(SOLUTION_POINTER)
            elif kind == "end":
                if self.open_solution is None:
                    raise StudentBuildError("solution-end without a solution-start before it")
                self.open_solution = None
            elif self.open_solution is not None:
                if value.strip():
                    self.solutions[self.open_solution].append(convert_markdown(value, self.chapter))
            else:
                kept.append(convert_markdown(value, self.chapter))
        text = "\n\n".join(part for part in kept if part.strip())
        if text:
            self.cells.append(nbformat.v4.new_markdown_cell(text, **same_id(cell), metadata=cell.metadata))

    def start_solution(self, label: str) -> None:
        """Open the solution of exercise ``label``."""
        if self.open_solution is not None:
            raise StudentBuildError(
                f"solution-start {label} opens before solution-end closes {self.open_solution}"
            )
        if label not in self.chapter.exercises:
            raise StudentBuildError(
                f"solution-start {label!r} names no exercise of this chapter "
                f"(exercise labels: {', '.join(self.chapter.exercises) or 'none'})"
            )
        if label in self.solutions:
            raise StudentBuildError(f"exercise {label} has two solutions")
        self.open_solution = label
        self.solutions[label] = []
        self.add_reference(nbformat.v4.new_markdown_cell(f"Reference solution of exercise `{label}`:"))
        if self.last_check is None:
            self.unchecked.append(label)
        else:
            # Its check runs again first, so that the check function its assertion grades with is its own.
            self.add_reference(nbformat.v4.new_code_cell(self.last_check.source))
        self.last_check = None

    def add_reference(self, cell: nbformat.NotebookNode) -> None:
        """File a cell of the reference checks, with a stable id so that rebuilding gives the same file."""
        cell.id = f"reference-{len(self.reference_cells)}"
        self.reference_cells.append(cell)

    def add_code(self, cell: nbformat.NotebookNode) -> None:
        """Keep a code cell without outputs, or file it as part of the open solution."""
        cell_tags = tags(cell)
        if self.open_solution is not None:
            for tag in ("exercise", "check"):
                if tag in cell_tags:
                    raise StudentBuildError(
                        f"the cell tagged {tag!r} lies between solution-start and solution-end, so learners "
                        "would never see it; move it above solution-start"
                    )
            self.solutions[self.open_solution].append(code_fence(cell.source))
            return
        if "solution" in cell_tags:
            raise StudentBuildError(
                "a cell tagged 'solution' lies outside solution-start ... solution-end; move it between them"
            )
        if "check" in cell_tags:
            self.last_check = cell
        self.cells.append(
            nbformat.v4.new_code_cell(cell.source, **same_id(cell), metadata=cell.metadata, outputs=[])
        )

    def appendix(self) -> list[nbformat.NotebookNode]:
        """The Solutions section (one cell per exercise) and the References section."""
        cells = []
        if self.solutions:
            cells.append(nbformat.v4.new_markdown_cell(SOLUTIONS_INTRO, id="student-solutions"))
        for label, pieces in self.solutions.items():
            if not pieces:
                raise StudentBuildError(f"the solution of exercise {label} is empty")
            title = convert_text(self.chapter.exercises[label], self.chapter)
            text = f"### Exercise: {title}\n\n" + details("Show the solution", "\n\n".join(pieces))
            cells.append(nbformat.v4.new_markdown_cell(text, id=f"student-solution-{label}"[:64]))
        if self.chapter.cited:
            references = references_markdown(self.chapter.cited, self.chapter.book.bibliography)
            cells.append(nbformat.v4.new_markdown_cell(references, id="student-references"))
        return cells

    def reference_checks(self) -> list[nbformat.NotebookNode]:
        """For CI only: every exercise's check, reference solution and hidden assertion, run after the chapter."""
        if self.unchecked:
            raise StudentBuildError(
                f"exercise {', '.join(self.unchecked)} has no cell tagged 'check' above its solution, so CI "
                "cannot grade its reference solution; tag the cell that calls grade(...) 'check'"
            )
        if not self.reference_cells:
            return []
        intro = nbformat.v4.new_markdown_cell(REFERENCE_CHECKS_INTRO, id="reference-checks")
        return [intro, *self.reference_cells]


def chapter_title(notebook: nbformat.NotebookNode, path: Path) -> str:
    """The text of the chapter's first ``# `` heading."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.split("\n"):
                if line.startswith("# "):
                    return line[2:].strip()
    raise StudentBuildError(f"{path.name} has no '# ' title heading")


def find_exercises(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """Every labelled exercise of a chapter: label -> title (as written, roles not yet converted)."""
    exercises: dict[str, str] = {}
    pending = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    while pending:
        for block in split_blocks(pending.pop()):
            if isinstance(block, Fence) and block.name:
                if block.name == "exercise" and "label" in block.options:
                    exercises[block.options["label"]] = block.argument
                pending.append(block.body)
    return exercises


def find_targets(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """Every ``(label)=`` target of a chapter followed by a heading: label -> the heading's text."""
    targets: dict[str, str] = {}
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        lines = [line for line in cell.source.split("\n") if line.strip()]
        for line, following in zip(lines, [*lines[1:], ""]):
            match = TARGET_LINE.match(line)
            if match and following.startswith("#"):
                targets[match["label"]] = following.lstrip("#").strip()
    return targets


def chapter_paths(root: Path) -> list[Path]:
    """The chapters, ``notebooks/NN_name.ipynb``, in order."""
    return sorted((root / "notebooks").glob(CHAPTER_GLOB))


def load_book(root: Path) -> tuple[Book, dict[Path, nbformat.NotebookNode]]:
    """Read the configuration, the bibliography and every chapter; collect titles and labels."""
    config = load_config(root)
    notebooks = {path: nbformat.read(path, as_version=4) for path in chapter_paths(root)}
    titles = {path.stem: chapter_title(notebook, path) for path, notebook in notebooks.items()}
    labels: dict[str, str] = {}
    for notebook in notebooks.values():
        labels.update(find_targets(notebook))
        labels.update({label: f"Exercise: {title}" for label, title in find_exercises(notebook).items()})
    return Book(root, config, load_bibliography(root, config), titles, labels), notebooks


def convert_chapter(
    path: Path, notebook: nbformat.NotebookNode, book: Book, with_reference_checks: bool = False
) -> nbformat.NotebookNode:
    """The student notebook of one chapter; errors name the chapter and the cell.

    With ``with_reference_checks``, the notebook ends in the reference checks that CI runs (never for learners).
    """
    chapter = Chapter(path, book, find_exercises(notebook))
    student = StudentNotebook(chapter)
    for index, cell in enumerate(notebook.cells):
        try:
            student.add(cell)
        except StudentBuildError as error:
            raise StudentBuildError(f"{path.name}, cell {index}: {error}") from None
    if student.open_solution is not None:
        raise StudentBuildError(f"{path.name}: solution-start {student.open_solution} has no solution-end")
    try:
        appendix = student.appendix()
    except StudentBuildError as error:
        raise StudentBuildError(f"{path.name}: {error}") from None
    badge = nbformat.v4.new_markdown_cell(badge_markdown(book.config, path.name), id="student-colab-badge")
    result = nbformat.v4.new_notebook(metadata=notebook.metadata)
    result.cells = [badge, *student.cells, *appendix]
    if with_reference_checks:
        result.cells += student.reference_checks()
    check_no_raw_myst(result, path.name)
    nbformat.validate(result)
    return result


# --------------------------------------------------------------------------------------------------------
# The final check: no MyST left
# --------------------------------------------------------------------------------------------------------

RAW_MYST = {
    "a role": re.compile(r"\{[\w:.-]+\}`"),
    "a directive fence": re.compile(r"^\s*(`{3,}|~{3,}|:{3,})\s*\{"),
    "a directive option line": re.compile(r"^\s*:[\w-]+:(\s|$)"),
    "a (target)= line": re.compile(r"^\s*\([^()\s]+\)=\s*$"),
    "a glue reference": re.compile(r"\{glue"),
}
QUOTE_PREFIX = re.compile(r"^\s*(>\s?)*")
CODE_FENCE = re.compile(r"^\s*(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def find_raw_myst(markdown: str) -> list[str]:
    """The lines of ``markdown`` that still hold MyST syntax, each with what was found; code blocks are skipped."""
    found = []
    fence = None
    for line in markdown.split("\n"):
        text = QUOTE_PREFIX.sub("", line)
        if fence is not None:
            if re.fullmatch(rf"\s*{re.escape(fence[0])}{{{len(fence)},}}\s*", text):
                fence = None
            continue
        match = CODE_FENCE.match(text)
        if match and not match["info"].strip().startswith("{"):
            fence = match["fence"]
            continue
        found += [
            f"{what}: {line.strip()[:100]!r}" for what, pattern in RAW_MYST.items() if pattern.search(text)
        ]
    return found


def check_no_raw_myst(notebook: nbformat.NotebookNode, name: str) -> None:
    """Stop the build if any Markdown cell of a converted ``notebook`` still holds MyST syntax."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown" and (found := find_raw_myst(cell.source)):
            raise StudentBuildError(
                f"{name}: cell {index} of the student notebook still holds MyST syntax, which Jupyter and Colab "
                f"show as raw text: {'; '.join(found)}. Teach book/student.py to convert it"
            )


# --------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------


def build_all(root: Path = ROOT, out: Path = DEFAULT_OUT, with_reference_checks: bool = False) -> list[Path]:
    """Write the student notebook of every chapter of ``root`` into ``out``; return the files written.

    Old ``.ipynb`` files in ``out`` are removed first, so that a renamed chapter leaves no stale copy.
    ``with_reference_checks`` appends the reference checks that CI runs (:func:`convert_chapter`).
    """
    book, notebooks = load_book(root)
    students = {
        path: convert_chapter(path, notebook, book, with_reference_checks)
        for path, notebook in notebooks.items()
    }
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.ipynb"):
        old.unlink()
    written = []
    for path, student in students.items():
        nbformat.write(student, out / path.name)
        written.append(out / path.name)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: build the student notebooks; print the error and return 1 if a chapter cannot be built."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="folder to write (default _build/student)"
    )
    parser.add_argument(
        "--with-reference-checks",
        action="store_true",
        help="end each notebook with every exercise's reference solution and its check (for CI, not learners)",
    )
    args = parser.parse_args(argv)
    try:
        written = build_all(ROOT, args.out, args.with_reference_checks)
    except StudentBuildError as error:
        print(f"make student failed: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} student notebooks to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
