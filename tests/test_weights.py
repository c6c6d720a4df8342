"""sample_weight in GaussianMixture.fit (every mixture family has it): a row of weight w
is w copies of it, exactly; a weight of 0 drops the row."""

import warnings

import numpy as np
import pytest
from conftest import COV_TYPES

from emwidgets import GaussianMixture


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = np.r_[rng.normal(0, 1, (60, 2)), rng.normal([3, 1], [1, 0.5], (60, 2))]
    w = rng.integers(0, 4, len(X))  # zeros included
    return X, w


def _fit(X, w=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(2, n_init=4, tol=1e-12, max_iter=2000, random_state=0,
                               **kw).fit(X, sample_weight=w)


@pytest.mark.slow
@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("init", ["kmeans", "given"])
def test_weighted_rows_are_repeated_rows(x64, cov_type, init):
    X, w = _data()
    kw = dict(covariance_type=cov_type)
    if init == "given":
        kw["means_init"] = [[0.0, 0.0], [3.0, 1.0]]
    a, b = _fit(X, w, **kw), _fit(np.repeat(X, w, axis=0), **kw)
    assert a.lower_bound_ == pytest.approx(b.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(a.weights_, b.weights_, atol=1e-6)
    np.testing.assert_allclose(a.means_, b.means_, atol=1e-6)
    np.testing.assert_allclose(a.covariances_, b.covariances_, atol=1e-6)
    np.testing.assert_array_equal(a.restarts_.n_iter, b.restarts_.n_iter)


@pytest.mark.slow
def test_weighted_missing_values_are_repeated_rows(x64):
    X, w = _data(1)
    X[np.random.default_rng(2).random(len(X)) < 0.25, 1] = np.nan
    kw = dict(missing="em", means_init=[[0.0, 0.0], [3.0, 1.0]])
    a, b = _fit(X, w, **kw), _fit(np.repeat(X, w, axis=0), **kw)
    assert a.lower_bound_ == pytest.approx(b.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(a.means_, b.means_, atol=1e-6)


def test_unit_weights_change_nothing_and_bad_weights_are_one_sentence():
    X, _ = _data()
    a, b = _fit(X), _fit(X, np.ones(len(X)))
    np.testing.assert_array_equal(a.restarts_.trace, b.restarts_.trace)
    with pytest.raises(ValueError, match="one per row"):
        _fit(X, np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        _fit(X, -np.ones(len(X)))
