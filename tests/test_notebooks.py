"""Every notebook runs end to end, with no error output, and is committed without outputs."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def execute(path: Path, kernel_name: str = "python3", cwd: Path | None = None):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name=kernel_name, store_widget_state=True,
                   resources={"metadata": {"path": str(cwd or path.parent)}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", [])
              if o.get("output_type") == "error"
              or (o.get("output_type") == "stream" and o.get("name") == "stderr"
                  and "Traceback" in o.get("text", ""))]
    assert not errors, errors
    return nb


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert names[:4] == ["01_quickstart.ipynb", "02_em_step_by_step.ipynb", "03_restarts.ipynb",
                         "04_covariance_types.ipynb"]


# With Chromium present, test_browser_notebooks runs every notebook in a real JupyterLab
# (and asserts more); running them here too would double the suite's longest part.
IN_BROWSER = os.path.exists(shutil.which("chromium") or "/usr/bin/chromium") and not os.environ.get(
    "EMWIDGETS_NBCLIENT")


@pytest.mark.slow
@pytest.mark.skipif(IN_BROWSER, reason="run in JupyterLab by test_browser_notebooks.py "
                                       "(EMWIDGETS_NBCLIENT=1 runs them here too)")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path):
    nb = execute(path)
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_committed_notebooks_have_no_outputs():
    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    for rel in tracked or [str(p.relative_to(ROOT)) for p in NOTEBOOKS]:
        nb = json.loads((ROOT / rel).read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, rel
