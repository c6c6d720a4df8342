"""Against scikit-learn in float64, from the same initial parameters."""

import warnings

import numpy as np
import pytest
from _numerics import PLAIN_EM
from conftest import COV_TYPES, initial_params
from sklearn.mixture import GaussianMixture as SkGM

from emwidgets import GaussianMixture

RTOL = 1e-6


def fit_both(X, cov_type, max_iter=200, tol=1e-6):
    w, m, p = initial_params(X, 3, cov_type)
    kw = dict(covariance_type=cov_type, weights_init=w, means_init=m, precisions_init=p,
              tol=tol, max_iter=max_iter)
    ours = GaussianMixture(3, **kw, **PLAIN_EM).fit(X)
    ref = SkGM(3, **kw).fit(X)
    return ours, ref


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_same_iterations_and_parameters(x64, blobs, cov_type):
    X, _ = blobs
    ours, ref = fit_both(X, cov_type)
    assert ours.converged_ and ref.converged_
    assert ours.n_iter_ == ref.n_iter_ > 3
    np.testing.assert_allclose(ours.lower_bounds_, ref.lower_bounds_, rtol=RTOL)
    np.testing.assert_allclose(ours.lower_bound_, ref.lower_bound_, rtol=RTOL)
    np.testing.assert_allclose(ours.weights_, ref.weights_, rtol=RTOL)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=RTOL)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, rtol=RTOL)
    np.testing.assert_allclose(ours.precisions_, ref.precisions_, rtol=RTOL)
    # The Cholesky factor of the precision is only unique up to form; the
    # precision it builds is what both use.
    pc = ours.precisions_cholesky_
    if cov_type in ("full", "tied"):
        rebuilt = pc @ np.swapaxes(pc, -1, -2)
    else:
        rebuilt = pc**2
    np.testing.assert_allclose(rebuilt, ref.precisions_, rtol=RTOL)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_same_predictions_and_criteria(x64, blobs, cov_type):
    X, _ = blobs
    ours, ref = fit_both(X, cov_type)
    Xnew = X[::7] + 0.25
    np.testing.assert_allclose(
        ours.predict_proba(Xnew), ref.predict_proba(Xnew), rtol=RTOL, atol=1e-12
    )
    np.testing.assert_allclose(ours.score_samples(Xnew), ref.score_samples(Xnew), rtol=RTOL)
    np.testing.assert_array_equal(ours.predict(Xnew), ref.predict(Xnew))
    np.testing.assert_allclose(ours.score(X), ref.score(X), rtol=RTOL)
    np.testing.assert_allclose(ours.bic(X), ref.bic(X), rtol=RTOL)
    np.testing.assert_allclose(ours.aic(X), ref.aic(X), rtol=RTOL)
    assert ours.n_parameters() == ref._n_parameters()


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_truncated_runs_agree_every_iteration(x64, blobs, cov_type):
    """Stopped at max_iter, both keep the same parameters and warn alike."""
    X, _ = blobs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours, ref = fit_both(X, cov_type, max_iter=3, tol=1e-12)
    assert not ours.converged_ and not ref.converged_
    assert sum("did not converge" in str(w.message) for w in caught) == 2
    np.testing.assert_allclose(ours.lower_bounds_, ref.lower_bounds_, rtol=RTOL)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=RTOL)


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random", "random_from_data"])
def test_best_of_restarts_is_as_good_as_sklearn(blobs, init):
    """Different random streams, same optimum: best log-likelihoods agree (float32)."""
    X, _ = blobs
    # Three random points fall one per cluster in about 2 starts of 9, and EM does not always
    # recover from the others: 8 such starts miss the optimum for a few seeds in a hundred, 32
    # for about none. (The other methods find it from nearly every start.)
    n_init = 32 if init == "random_from_data" else 8
    ours = GaussianMixture(3, n_init=n_init, init_params=init, random_state=0).fit(X)
    ref = SkGM(3, n_init=8, init_params=init, random_state=0).fit(X)
    assert ours.lower_bound_ >= ref.lower_bound_ - 1e-3
    assert ours.score(X) == pytest.approx(ours.lower_bound_, abs=2e-3)
