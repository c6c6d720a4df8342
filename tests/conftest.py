import os
import sys

import jax
import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

from _data import make_mixture  # noqa: E402

COV_TYPES = ("full", "tied", "diag", "spherical")


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
