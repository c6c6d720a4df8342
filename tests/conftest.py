import os
import sys

import jax
import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

from _browser import browser, lab  # noqa: E402, F401  (the browser tests' fixtures)
from _data import make_mixture  # noqa: E402

# Imported here, in pytest-xdist's controller too: a worker's warning whose class lives in
# emwidgets (ConvergenceWarning) makes the controller import its module to rebuild it, from
# one thread per worker; two at once deadlocked on the import lock and took a worker down
# ("_DeadlockError ... emwidgets.estimators.base", seen running the widget tests alone).
import emwidgets  # noqa: E402, F401

COV_TYPES = ("full", "tied", "diag", "spherical")


# `make test` distributes whole files to the two workers (--dist loadfile), so a module's
# fixtures are built once. (--dist loadgroup with xdist_group marks did this before; on
# pytest 9.2 it silently stops grouping: pytest-dev/pytest-xdist#1386.)
#
# Which file goes first is ours to say. xdist hands files out in order of how many tests they
# hold, and a worker takes the next file when it has two tests left; the files with few but
# long tests (the browser, its notebooks, Binder, the architecture walk, the two-device
# children) come last, so whichever of them is handed out last decides when the run ends,
# the other worker idle (50 s of 42m45s in the run measured; up to a whole browser file in
# another order). The longest files go first instead (longest processing time first: the
# other worker fills in with the short ones), so both end within a short file of each other.
# The seconds are one run's (make test at 99b0649 on the 2-core machine, shared with other
# work: 42m45s, about twice a quiet run); only their order matters. A file not named here
# goes by its number of tests, as xdist's order does.
FILE_SECONDS = {
    "test_models.py": 631, "test_families.py": 444, "test_accel.py": 364,
    "test_browser_notebooks.py": 292, "test_missing.py": 263, "test_priors.py": 230,
    "test_em_properties.py": 228, "test_teaching.py": 222, "test_compiles.py": 218,
    "test_browser.py": 215, "test_stream.py": 200, "test_session.py": 187, "test_hmm.py": 180,
    "test_sharding.py": 172, "test_selection_and_errors.py": 155, "test_architecture.py": 134,
    "test_estimator_api.py": 123, "test_right_answers.py": 110, "test_cache.py": 102,
    "test_spurious.py": 94, "test_widgets.py": 87, "test_family_explorer.py": 82,
    "test_weights.py": 55, "test_binder.py": 53, "test_barrage.py": 51, "test_kmeans.py": 31,
    "test_gmm_vs_sklearn.py": 27, "test_selection_explorer.py": 25, "test_programs.py": 20,
    "test_compare.py": 17, "test_threads.py": 12,
    # without Chromium the notebooks run here instead (as long as test_browser_notebooks.py)
    "test_notebooks.py": 292,
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, the longest files first (see FILE_SECONDS)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from collections import OrderedDict

    from xdist.scheduler import LoadFileScheduling

    class LongestFileFirst(LoadFileScheduling):
        ordered = False

        def _assign_work_unit(self, node):
            if not self.ordered:  # the queue is complete before the first file goes out
                self.ordered = True

                def seconds(scope):
                    name = os.path.basename(scope)
                    return FILE_SECONDS.get(name, 0.5 * len(self.workqueue[scope]))

                self.workqueue = OrderedDict(
                    (scope, self.workqueue[scope]) for scope in sorted(self.workqueue,
                                                                       key=seconds,
                                                                       reverse=True))
            super()._assign_work_unit(node)

    return LongestFileFirst(config, log)


def pytest_configure(config):
    """One on-disk JAX compilation cache for the whole run.

    The xdist workers, the notebook kernels, the browser's kernels and the
    Binder environment compile many of the same programs (the quickstart runs
    three times); they share them through a cache directory made fresh for each
    run (so a run measures what a clean machine does). Set by the controller
    before the workers start; they and every kernel inherit the environment.
    """
    if hasattr(config, "workerinput"):
        return
    import tempfile

    directory = tempfile.mkdtemp(prefix="emwidgets-test-jax-cache-")
    settings = {"JAX_COMPILATION_CACHE_DIR": directory,
                "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    # An explorer compiles the other choices in the background after every Run: that work
    # would be paid in every widget test; tests/test_compiles.py turns it on where it is tested.
    settings["EMWIDGETS_BACKGROUND_COMPILE"] = "0"
    os.environ.update(settings)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture(scope="session")
def faithful():
    """Old Faithful as a DataFrame (the explorers' tests share it)."""
    from emwidgets import datasets

    return datasets.load_faithful()


def wait_idle(explorer, timeout=180):
    """Wait until an explorer's session has no run in progress."""
    import time

    t = time.time()
    while explorer.session.running and time.time() - t < timeout:
        time.sleep(0.02)
    assert not explorer.session.running


@pytest.fixture
def x64():
    """Run the test with JAX's 64-bit mode on (float64 everywhere)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="session")
def blobs():
    """Three 3-D clusters of different shapes, 400 samples."""
    X, labels = make_mixture(400, 3, 3, seed=3, separation=3.0)
    return X, labels


def initial_params(X, k, cov_type, seed=0):
    """Deliberately rough starting parameters, as scikit-learn's *_init take them."""
    rng = np.random.default_rng(seed)
    n, d = X.shape
    means = X[rng.choice(n, k, replace=False)]
    weights = np.full(k, 1.0 / k)
    prec = np.linalg.inv(np.cov(X.T) + 0.1 * np.eye(d))
    precisions = {
        "full": np.stack([prec * (1 + 0.3 * i) for i in range(k)]),
        "tied": prec,
        "diag": np.stack([np.diag(prec) * (1 + 0.3 * i) for i in range(k)]),
        "spherical": np.array([np.mean(np.diag(prec)) * (1 + 0.3 * i) for i in range(k)]),
    }[cov_type]
    return weights, means, precisions
