"""The Binder configuration, checked without Docker.

repo2docker installs only what ``binder/`` names. Build a fresh virtualenv from
exactly those files (from the repository root, as repo2docker runs them), then
import the package with its widget stack and execute the quickstart notebook
with that environment's kernel.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_binder_environment_runs_the_quickstart(tmp_path):
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert runtime.startswith("python-3.")
    venv = tmp_path / "binder-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    # --no-compile: byte-compiling every installed file took half of this test (75 s -> 34 s).
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-compile",
                    "--disable-pip-version-check", "-r", "binder/requirements.txt"],
                   cwd=ROOT, check=True, timeout=900)
    out = subprocess.run(
        [str(py), "-c", "import emwidgets, ipympl, ipywidgets, jupyterlab, nbclient; "
                        "from emwidgets import EMExplorer, datasets; "
                        "print(ipywidgets.__version__, ipympl.__version__)"],
        cwd=tmp_path, check=True, capture_output=True, text=True)
    major = int(out.stdout.split()[0].split(".")[0])
    assert major >= 8
    # Register that environment's kernel under its own name and run the notebook on it.
    subprocess.run([str(py), "-m", "ipykernel", "install", "--prefix", str(venv), "--name", "binder-py"],
                   check=True, capture_output=True)
    code = (
        "import nbformat, sys; from nbclient import NotebookClient\n"
        f"nb = nbformat.read({str(ROOT / 'notebooks' / '01_quickstart.ipynb')!r}, as_version=4)\n"
        "NotebookClient(nb, timeout=600, kernel_name='binder-py').execute()\n"
        "errs = [o for c in nb.cells for o in c.get('outputs', []) if o.get('output_type') == 'error']\n"
        "sys.exit(1 if errs else 0)\n"
    )
    env = {**os.environ, "JUPYTER_PATH": str(venv / "share" / "jupyter")}
    subprocess.run([str(py), "-c", code], cwd=tmp_path, check=True, env=env, timeout=600)
