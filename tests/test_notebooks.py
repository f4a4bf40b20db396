"""The tutorials of ``notebooks/``: stored without outputs, and each runs top to bottom.

They are executed here, by the README's test command, in a fresh Jupyter kernel of this interpreter's environment
(``ipykernel``, from the test extras), in the notebooks' folder, with Matplotlib drawing off screen.
"""

import json
import os
import re
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
#: Seconds a cell may take before the run fails (each notebook is meant to take under 30 s in all on two cores).
CELL_TIMEOUT = 120


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    """Outputs are made by running a notebook, never committed: no outputs, no execution counts."""
    cells = json.loads(path.read_text())["cells"]
    stored = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])]
    assert not stored, f"{path.name}: cells {stored} hold outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    """Every cell runs without an error, in order, in a fresh kernel."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute(cwd=os.fspath(NOTEBOOK_DIR))


# ---- the course's budgets and shape (docs/tutorials.md, "How a notebook is built") ----

#: Words of prose a notebook may hold, and a single Markdown cell.
MAX_WORDS, MAX_CELL_WORDS = 1500, 250
#: Lines a code cell may hold, and characters a code line (the site's code column shows them without scrolling).
MAX_CODE_LINES, MAX_CODE_WIDTH = 20, 88
#: Headings every notebook has, and the phrase its recap begins its summary with.
COURSE_HEADINGS = ("## What you will learn", "## Recap")
RECAP_PHRASE = "you should now be able to explain"
#: The box where the official code departs from the paper, in every stage notebook.
PAPER_VS_CODE = "**Paper vs official code.**"


def _cells(path, kind):
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == kind]


def prose_words(markdown):
    """Words of a Markdown cell's prose: display math and code blocks count as one word each, inline math as one."""
    text = re.sub(r"\$\$.*?\$\$", " MATH ", markdown, flags=re.S)
    text = re.sub(r"```.*?```", " CODE ", text, flags=re.S)
    text = re.sub(r"\$[^$\n]+\$", "MATH", text)
    text = re.sub(r"<[^>]+>", " ", text)  # HTML tags (an image, a line break) are not words
    return len(re.findall(r"[^\s#|*>-]\S*", text))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_keeps_to_the_course_budgets(path):
    """At most 1,500 words of prose, 250 a Markdown cell, 20 lines a code cell and 88 characters a code line."""
    words = [prose_words(cell) for cell in _cells(path, "markdown")]
    assert sum(words) <= MAX_WORDS, f"{path.name}: {sum(words)} words of prose (at most {MAX_WORDS})"
    long = [(i, w) for i, w in enumerate(words) if w > MAX_CELL_WORDS]
    assert not long, f"{path.name}: Markdown cells (index among Markdown cells, words) over {MAX_CELL_WORDS}: {long}"
    for i, code in enumerate(_cells(path, "code")):
        lines = code.splitlines()
        assert len(lines) <= MAX_CODE_LINES, f"{path.name}: code cell {i} has {len(lines)} lines"
        wide = [line for line in lines if len(line) > MAX_CODE_WIDTH]
        assert not wide, f"{path.name}: code cell {i} has lines over {MAX_CODE_WIDTH} characters: {wide}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_the_course_shape(path):
    """What you will learn, a recap, the paper-vs-code box in every stage notebook, the oracle said in 00."""
    markdown = "\n".join(_cells(path, "markdown"))
    for heading in COURSE_HEADINGS:
        assert re.search(rf"^{re.escape(heading)}\b", markdown, re.M), f"{path.name}: no '{heading}' heading"
    assert RECAP_PHRASE in markdown.lower(), f"{path.name}: the recap does not say '{RECAP_PHRASE} ...'"
    if path.stem[:2] != "00":
        assert PAPER_VS_CODE in markdown, f"{path.name}: no '{PAPER_VS_CODE}' box"
        assert "exercises.check(" in "\n".join(_cells(path, "code")), f"{path.name}: no exercise"
    else:
        assert re.search(r"^##+ .*oracle", markdown, re.M | re.I), f"{path.name}: no section on what the oracle is"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_puts_no_display_math_in_a_list(path):
    """``$$`` inside a list item renders as text with stray dollars on the site: display math stands alone."""
    for cell in _cells(path, "markdown"):
        item = False
        for line in cell.splitlines():
            if re.match(r"\s*([-*+]|\d+[.)])\s", line):
                item = True
            elif not line.strip():
                item = False
            if "$$" in line and (item or line[:1].isspace()):
                raise AssertionError(f"{path.name}: display math in a list item or indented: {line.strip()!r}")
