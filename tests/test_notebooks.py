"""The tutorials of ``notebooks/``: stored without outputs, and each runs top to bottom.

They are executed here, by the README's test command, in a fresh Jupyter kernel of this interpreter's environment
(``ipykernel``, from the test extras), in the notebooks' folder, with Matplotlib drawing off screen.
"""

import json
import os
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
