"""FactorAnalysis (emwidgets.FactorAnalysis, EM written on emwidgets.EM) against
scikit-learn's and against Rubin and Thayer's EM written in NumPy in the test."""

import jax
import numpy as np
import pytest
from sklearn.datasets import load_linnerud, load_wine
from sklearn.decomposition import FactorAnalysis as SkFactorAnalysis
from sklearn.preprocessing import StandardScaler

from emwidgets import FactorAnalysis
from emwidgets.estimators.factor_analysis import fa_init


@pytest.mark.parametrize("data, k", [(load_wine().data, 3), (load_linnerud().data, 1)],
                         ids=["wine-3", "linnerud-1"])
def test_the_maximum_likelihood_scikit_learn_reaches_on_standardised_columns(x64, data, k):
    """Both are maximum likelihood, and the model is equivariant under each column's scale:
    scikit-learn's fit to the standardised columns, mapped back, is ours on the raw data.
    On wine's raw columns (proline near 1,000 beside hues near 1) scikit-learn's own start
    ends lower, at a Heywood case (proline's noise variance at 1e-5 of its variance)."""
    X = np.asarray(data, np.float64)
    s = X.std(0)
    ours = FactorAnalysis(k, random_state=0).fit(X)
    assert ours.converged_
    ref = SkFactorAnalysis(k, tol=1e-12, max_iter=100_000).fit(StandardScaler().fit_transform(X))
    ll_ref = ref.score(StandardScaler().fit_transform(X)) - np.log(s).sum()
    assert ours.score(X) == pytest.approx(ll_ref, abs=1e-8)
    cov_ref = ref.get_covariance() * np.outer(s, s)
    np.testing.assert_allclose(ours.get_covariance(), cov_ref, rtol=1e-5,
                               atol=1e-6 * np.abs(cov_ref).max())
    raw = SkFactorAnalysis(k, tol=1e-12, max_iter=100_000).fit(X)
    assert ours.score(X) >= raw.score(X) - 1e-9
    # the factors: E[z | x] (unique up to a rotation; one factor: up to its sign)
    if k == 1:
        corr = np.corrcoef(ours.transform(X)[:, 0], ref.transform(
            StandardScaler().fit_transform(X))[:, 0])[0, 1]
        assert abs(corr) == pytest.approx(1.0, abs=1e-8)
    for trace in ours.restarts_.trace:
        t = trace[np.isfinite(trace)]
        assert np.all(np.diff(t) >= -1e-9 * np.abs(t[1:]))


def test_rubin_and_thayers_em_written_in_numpy_from_the_same_start(x64):
    X = np.asarray(load_linnerud().data, np.float64)
    fa = FactorAnalysis(2, n_init=1, random_state=4, accelerate=None, convergence="change",
                        tol=1e-300, max_iter=20).fit(X)
    Z = (X - X.mean(0)) / X.std(0)
    n = len(Z)
    S = Z.T @ Z / n
    p = fa_init(jax.random.wrap_key_data(fa.restarts_.keys[0]), {"S": jax.numpy.asarray(S)},
                n_factors=2)
    w, psi = np.asarray(p["w"]), np.asarray(p["psi"])
    # (row by row, as Rubin and Thayer write it: E[z | x] for each row, then the sums)
    for _ in range(20):
        g = np.linalg.inv(np.eye(2) + (w / psi[:, None]).T @ w)
        beta = g @ (w / psi[:, None]).T  # E[z | x] = beta x
        ez = Z @ beta.T
        ezz = n * g + ez.T @ ez
        w = (Z.T @ ez) @ np.linalg.inv(ezz)
        psi = np.diag(S - w @ (ez.T @ Z) / n)
    np.testing.assert_allclose(fa.components_, (w * X.std(0)[:, None]).T, rtol=1e-9)
    np.testing.assert_allclose(fa.noise_variance_, psi * X.var(0), rtol=1e-9)


def test_bad_input_is_one_sentence():
    X = np.asarray(load_linnerud().data, np.float64)
    with pytest.raises(ValueError, match="at most as many factors as features"):
        FactorAnalysis(4).fit(X)
    X[:, 1] = 3.0
    with pytest.raises(ValueError, match="Column 1 of X is constant"):
        FactorAnalysis(1).fit(X)


def test_a_restart_replayed_alone_is_that_restart(x64):
    X = np.asarray(load_wine().data, np.float64)
    fa = FactorAnalysis(2, n_init=3, random_state=0).fit(X)
    for r in range(3):
        alone = fa.replay(X, r)
        np.testing.assert_allclose(alone.restarts_.trace[0], fa.restarts_.trace[r], rtol=1e-9)


def test_integer_weights_are_repeated_rows(x64):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 2)) @ rng.normal(size=(2, 6)) + rng.normal(size=(300, 6))
    w = rng.integers(0, 4, 300)
    weighted = FactorAnalysis(2, random_state=0).fit(X, sample_weight=w.astype(float))
    repeated = FactorAnalysis(2, random_state=0).fit(np.repeat(X, w, axis=0))
    assert weighted.score(X[w > 0]) == pytest.approx(repeated.score(X[w > 0]), rel=1e-9)
    np.testing.assert_allclose(weighted.get_covariance(), repeated.get_covariance(),
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(weighted.mean_, repeated.mean_, rtol=1e-12)
    np.testing.assert_allclose(weighted.loglike_[-1], repeated.loglike_[-1], rtol=1e-10)
    with pytest.raises(ValueError, match="sample_weight"):
        FactorAnalysis(2).fit(X, sample_weight=-np.ones(300))
