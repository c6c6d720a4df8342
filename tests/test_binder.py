"""The Binder configuration, checked without Docker.

repo2docker installs only what ``binder/`` names. Build a fresh virtualenv from
exactly those files (from the repository root, as repo2docker runs them), check
that it holds the pinned versions of constraints.txt, then import the package
with its widget stack and fit in an explorer with that environment's Python.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "binder" / "requirements.txt"


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def pins_of(lines):
    """{name: version} of the `name==version` lines (a pip freeze, or constraints.txt)."""
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, _, version = line.partition("==")
            pins[canonical(name)] = version.strip()
    return pins


def test_binder_installs_the_package_under_the_pinned_constraints():
    lines = [ln.split("#", 1)[0].strip() for ln in REQUIREMENTS.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    assert "." in lines  # the package itself (Binder installs nothing from pyproject.toml alone)
    constraints = [ln.split(None, 1)[1] for ln in lines if ln.split()[0] in ("-c", "--constraint")]
    assert constraints, "binder/requirements.txt must install under the pinned constraints"
    # pip reads a -c path relative to the requirements file
    assert [(REQUIREMENTS.parent / c).resolve() for c in constraints] == [ROOT / "constraints.txt"]
    # anything binder pins itself must agree with constraints.txt
    own = pins_of(lines)
    pinned = pins_of((ROOT / "constraints.txt").read_text().splitlines())
    assert {k: v for k, v in own.items() if pinned.get(k) != v} == {}


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
    # Binder gets exactly the stack the suite passed with.
    freeze = subprocess.run([str(py), "-m", "pip", "freeze", "--exclude-editable",
                             "--disable-pip-version-check"],
                            check=True, capture_output=True, text=True).stdout.splitlines()
    installed = pins_of(freeze)
    pinned = pins_of((ROOT / "constraints.txt").read_text().splitlines())
    assert {"jax", "jaxlib", "numpy", "ipywidgets", "ipympl", "jupyterlab"} <= installed.keys()
    unpinned = sorted(set(installed) - set(pinned) - {"emwidgets", "pip", "setuptools"})
    assert unpinned == [], f"installed on Binder without a pin in constraints.txt: {unpinned}"
    differ = {k: (v, pinned[k]) for k, v in installed.items() if k in pinned and pinned[k] != v}
    assert differ == {}, differ
    out = subprocess.run(
        [str(py), "-c", "import emwidgets, ipympl, ipywidgets, jupyterlab, nbclient; "
                        "from emwidgets import EMExplorer, datasets; "
                        "print(ipywidgets.__version__, ipympl.__version__)"],
        cwd=tmp_path, check=True, capture_output=True, text=True)
    major = int(out.stdout.split()[0].split(".")[0])
    assert major >= 8
    # The quickstart's first cells in that environment: an explorer shown and fitted. (Every
    # notebook runs in JupyterLab in test_browser_notebooks.py; here what matters is that this
    # environment's stack works together, not the notebooks a second time.)
    code = ("from emwidgets import EMExplorer, datasets\n"
            "ex = EMExplorer(datasets.load_faithful(), n_components=2, n_init=4)\n"
            "ex.run(block=True)\n"
            "print(ex.session.status)\n")
    out = subprocess.run([str(py), "-c", code], cwd=tmp_path, check=True, capture_output=True,
                         text=True, timeout=600)
    assert out.stdout.startswith("Done"), out.stdout + out.stderr
