"""The layering of DESIGN.md, checked: the core and the estimators never load the UI stack."""

import subprocess
import sys


def test_core_and_estimators_import_no_widgets_or_matplotlib():
    code = (
        "import sys, emwidgets, emwidgets.core.em, emwidgets.core.gmm, emwidgets.estimators\n"
        "emwidgets.GaussianMixture(2).fit([[0.0], [1.0], [5.0], [6.0]])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ipywidgets', 'matplotlib', 'ipympl', 'sklearn'))\n"
        "print(bad)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_plotting_imports_no_jax():
    code = (
        "import sys, importlib.util\n"
        "spec = importlib.util.spec_from_file_location('plotting', 'emwidgets/plotting.py')\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['plotting'] = m\n"
        "spec.loader.exec_module(m)\n"
        "assert 'jax' not in sys.modules, 'plotting must not need JAX'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
