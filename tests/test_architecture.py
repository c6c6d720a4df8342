"""The layering of DESIGN.md, checked: the core and the estimators never load the UI stack."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UI_STACK = ("ipywidgets", "matplotlib", "ipympl", "IPython", "sklearn")


@pytest.mark.slow
def test_core_and_estimators_import_no_widgets_or_matplotlib():
    code = (
        "import sys, emwidgets, emwidgets.core.em, emwidgets.core.gmm\n"
        "import emwidgets.estimators.gaussian_mixture, emwidgets.estimators.kmeans\n"
        "import emwidgets.estimators.gaussian_hmm\n"
        "emwidgets.GaussianMixture(2).fit([[0.0], [1.0], [5.0], [6.0]])\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {UI_STACK!r})\n"
        "print(bad)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# Fits every public estimator and select_model, then calls every public method and reads
# every public attribute and property of each, and of every emwidgets object they return
# (restarts_, standard errors, live fits, selection results...), found by dir(): a new
# method is covered without editing this list. A required argument with no value in ARGS
# is an error, so a new method's new argument must be named here.
WALK = r'''
import inspect, json, sys, warnings
import jax
import jax.numpy as jnp
import numpy as np
import emwidgets as E

rng = np.random.default_rng(0)
X = np.concatenate([rng.normal(0, 1, (30, 2)), rng.normal(4, 1, (30, 2))])
LINKAGE = np.array([125.0, 18.0, 20.0, 34.0])
X_nan = X.copy()
X_nan[::7, 1] = np.nan
ARGS = {"y": None, "lengths": None, "restart": 0, "n_samples": 3, "random_state": 0,
        "n_imputations": 2, "deep": True, "level": 0.95, "n_iterations": 1,
        "sample_weight": None, "iteration": 1, "n_components": 3}
SKIP = {"set_params"}  # called without arguments below
# EM's half steps compile a program pair per family, and a replay (at) is a LiveFit this walk
# would finish again (tests/test_teaching.py runs both): not called here, where they doubled
# this test's time; they are core code like the rest.
# live_view draws a fit in progress and profile_of a run's restarts for the explorers' views
# (tests/test_session.py, tests/test_family_explorer.py call both with what they need); a
# LiveFit's to_restarts and conclude are what its snapshot and finish call (walked).
# StandardErrors.mean_covariances is for models with means (the explorer's interval ellipses,
# tests/test_widgets.py); a Poisson mixture's refuses in one sentence.
NOT_CALLED = {"e_step", "m_step", "at", "live_view", "profile_of", "to_restarts", "conclude",
              "mean_covariances"}
called, seen = [], set()


def call(obj, name, member, data):
    sig = inspect.signature(member)
    args = {}
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in ("X", "data"):  # (EM's data: any pytree)
            args[p.name] = data
        elif p.name in ARGS:
            args[p.name] = ARGS[p.name]
        elif p.default is p.empty:
            raise TypeError(f"{type(obj).__name__}.{name} needs {p.name!r}: add it to ARGS")
    return member(**args)


def identity(obj):
    """Objects of one class with the same settings are walked once (replay's result, say)."""
    get_params = getattr(obj, "get_params", None)
    return (type(obj).__name__, repr(get_params())) if get_params else id(obj)


def walk(obj, data, depth=0):
    if identity(obj) in seen or depth > 3:
        return
    seen.add(identity(obj))
    cls = type(obj)
    for name in sorted(n for n in dir(obj) if not n.startswith("_")):
        value = getattr(obj, name)  # properties run here
        if inspect.ismethod(value) and name not in NOT_CALLED:
            try:
                value = call(obj, name, value, data) if name not in SKIP else value()
            except (ValueError, NotImplementedError):
                if name != "standard_errors":  # (its one-sentence refusal on a rough fit)
                    raise
        called.append(f"{cls.__name__}.{name}")
        for v in (value if isinstance(value, (tuple, list)) else
                  value.values() if isinstance(value, dict) else [value]):
            if type(v).__module__.startswith("emwidgets"):
                walk(v, data, depth + 1)


# Plain EM by scikit-learn's rule: the walk is about what the methods import, and the default
# SQUAREM programs compile for longer (this test took 112 s before issue 28's defaults, 184 s
# with them, in .ci/run)
Q = dict(accelerate=None, convergence="change", tol=1e-3)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fitted = [
        (E.GaussianMixture(2, n_init=2, missing="em", prior="default", random_state=0, **Q)
         .fit(X_nan), X_nan),
        (E.KMeans(2, n_init=2, random_state=0).fit(X), X),
        (E.GaussianHMM(2, n_init=2, random_state=0, **Q).fit(X), X),
        (E.PoissonMixture(2, n_init=2, random_state=0, **Q).fit(np.round(np.abs(X))),
         np.round(np.abs(X))),
        (E.LatentClassModel(2, n_init=2, random_state=0, **Q).fit(X > 1), X > 1),
        (E.MultinomialMixture(2, n_init=2, random_state=0, **Q).fit(np.round(np.abs(X))),
         np.round(np.abs(X))),
        (E.PoissonHMM(2, n_init=2, random_state=0, **Q).fit(np.round(np.abs(X))),
         np.round(np.abs(X))),
        (E.CategoricalHMM(2, n_init=2, random_state=0, **Q).fit(X[:, :1] > 1), X[:, :1] > 1),
        (E.StudentMixture(2, covariance_type="diag", n_init=2, random_state=0, **Q).fit(X), X),
        (E.MixtureModel(lambda t, x: -0.5 * ((x - t["m"]) ** 2).sum(),
                        lambda rng, X: {"m": X[rng.integers(len(X))]}, n_components=2,
                        n_init=2, random_state=0, **Q).fit(X), X),
        (E.FactorAnalysis(1, n_init=2, random_state=0, **Q).fit(X), X),
        (E.EM(lambda key, y: {"t": jax.random.uniform(key, minval=0.1, maxval=0.9)},
              lambda p, y: y[0] * p["t"] / (2 + p["t"]),
              lambda x2, y: {"t": (x2 + y[3]) / (x2 + y[1] + y[2] + y[3])},
              lambda p, y: (y[0] * jnp.log(2 + p["t"]) + (y[1] + y[2]) * jnp.log1p(-p["t"])
                            + y[3] * jnp.log(p["t"])), n_init=2, random_state=0, **Q
              ).fit(LINKAGE), LINKAGE),
        # Its models are mixtures on complete data, walked through best and models.
        (E.select_model(X, n_components=[2], covariance_types=("full",), n_init=2,
                        **Q), X),
    ]
    for est, data in fitted:
        walk(est, data)
    for name in dir(E.datasets):
        if name.startswith("load_"):
            getattr(E.datasets, name)()
            called.append(f"datasets.{name}")
bad = sorted(m for m in sys.modules if m.split('.')[0] in UI_STACK)
print(json.dumps({"called": called, "ui": bad}))
'''


@pytest.mark.slow  # about 90 s of CPU, nearly all compilation (a fresh process compiles all)
def test_every_public_method_of_every_estimator_loads_no_ui():
    code = f"UI_STACK = {UI_STACK!r}\n" + WALK
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout
    result = json.loads(out.strip().splitlines()[-1])
    called = set(result["called"])
    # The walk reached what it should (a sample of names, not the list it covers).
    for name in ("GaussianMixture.compile_for", "GaussianHMM.replay", "GaussianHMM.bic",
                 "KMeans.replay", "GaussianMixture.impute", "GaussianMixture.standard_errors",
                 "GaussianMixture.replay", "GaussianMixture.sample", "GaussianMixture.bic",
                 "GaussianMixture.aic", "GaussianMixture.score_samples", "GaussianHMM.covars_",
                 "GaussianHMM.sample", "GaussianHMM.decode", "GaussianHMM.predict_proba",
                 "KMeans.transform", "PoissonMixture.sample", "LatentClassModel.profiles",
                 "LatentClassModel.replay", "PoissonHMM.decode",
                 "CategoricalHMM.emissionprob_", "StudentMixture.dof_", "MixtureModel.params_",
                 "MultinomialMixture.sample", "MultinomialMixture.probabilities_",
                 "EM.standard_errors", "EM.replay", "EM.score", "FactorAnalysis.transform",
                 "MixtureModel.standard_errors",
                 "Restarts.to_frame", "StandardErrors.intervals",
                 "SelectionResult.best", "LiveFit.snapshot",
                 "GaussianMixture.restart", "GaussianHMM.restart", "datasets.load_geyser",
                 "datasets.load_carcinoma"):
        assert name in called, name
    assert result["ui"] == [], f"the estimators loaded {result['ui']}"


def test_plotting_imports_no_jax():
    code = (
        "import sys, importlib.util\n"
        "spec = importlib.util.spec_from_file_location('plotting', 'emwidgets/plotting.py')\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['plotting'] = m\n"
        "spec.loader.exec_module(m)\n"
        "assert 'jax' not in sys.modules, 'plotting must not need JAX'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_widgets_import_no_core_internals():
    """The widgets reach the engine through the estimators only (``start``, ``LiveFit``, the
    estimators' live-assignment hooks): a new family or a new driver changes no widget."""
    import ast

    offenders = []
    for path in sorted((ROOT / "emwidgets" / "widgets").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                names = [a.name for a in node.names]
                if (node.level == 2 and (module == "core" or module.startswith("core."))) or (
                        node.level == 2 and not module and "core" in names) or (
                        module.startswith("emwidgets.core")):
                    offenders.append(f"{path.name}:{node.lineno}")
            elif isinstance(node, ast.Import):
                offenders += [f"{path.name}:{node.lineno}" for a in node.names
                              if a.name.startswith("emwidgets.core")]
    assert offenders == []


# --- the house's shape (issue 27): checked on the source, as text and AST ------------------

PACKAGE = ROOT / "emwidgets"
SHORT_ALIASES_ALLOWED = {"np", "pd", "jnp", "plt"}


def _modules():
    """{dotted module name: AST} of every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = (path, ast.parse(path.read_text()))
    return out


def _imports(name, path, tree):
    """The package's modules that module ``name`` imports, anywhere in it (a function-level
    import is an arrow too: it is how the core's one circle hid)."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = base[: len(base) - (node.level - 1)]
                module = ".".join(pkg + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def _graph():
    modules = _modules()
    return modules, {name: {m for m in _imports(name, *modules[name]) if m in modules
                            and m != name and not name.startswith(m + ".")}
                     for name in modules}


def test_the_core_imports_nothing_above_it():
    modules, graph = _graph()
    offenders = sorted(f"{name} -> {m}" for name, deps in graph.items()
                       if name.startswith("emwidgets.core.")
                       for m in deps if not m.startswith("emwidgets.core"))
    assert offenders == []


def test_no_import_circle():
    _, graph = _graph()
    circles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                circles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # the package's __init__ imports its parts, which import their siblings through it not
    assert circles == []


def test_modules_are_imported_by_their_names():
    """No ``V``, ``P``, ``SE``: a short alias hides which module a name comes from."""
    offenders = []
    for path, tree in _modules().values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {a.name} as {a.asname}"
                              for a in node.names if a.asname and len(a.asname) <= 3
                              and a.asname not in SHORT_ALIASES_ALLOWED]
    assert offenders == []


def test_no_two_modules_share_a_name():
    """A module's name says which one it is (hmm.py in two layers did not)."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__init__.py":
            names.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert {n: p for n, p in names.items() if len(p) > 1} == {}


def test_threads_start_in_one_place():
    """Every background thread of the package starts through widgets/runner.py (its
    ``in_background``: daemon, named, awaited at exit when it may compile): no module
    constructs a thread of its own (the selection explorer, intervals and basin maps each
    had one)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "runner.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "Thread"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == [], found
