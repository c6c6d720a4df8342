"""Mixtures of factor analysers: GaussianMixture(covariance_type="factor", n_factors=q),
each component's covariance low rank plus diagonal, L_k L_k' + diag(psi_k) (issue 30).

References: an EM for the same model written here in NumPy, from the same start (Ghahramani
& Hinton 1996's updates: the responsibilities, each component's weighted mean, then one
EM step of the factor model on its weighted scatter about that mean); one component is a
factor analysis, against scikit-learn's FactorAnalysis (both maximum likelihood)."""

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from emwidgets import GaussianMixture


def two_groups(n=300, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, 1)) @ rng.normal(size=(1, 6)) * 2 + rng.normal(size=(n, 6)) * 0.5
    b = (rng.normal(size=(n, 2)) @ rng.normal(size=(2, 6)) + 4
         + rng.normal(size=(n, 6)) * rng.uniform(0.2, 0.6, 6))
    return np.concatenate([a, b])


def numpy_mfa(X, weights, means, loadings, psi, iterations, reg):
    """Plain EM for a mixture of factor analysers, the log-likelihood of each iteration's
    parameters traced (before its M-step)."""
    n, d = X.shape
    trace = []
    for _ in range(iterations):
        cov = loadings @ np.swapaxes(loadings, 1, 2) + psi[:, :, None] * np.eye(d)
        log = np.stack([np.log(w) + multivariate_normal(m, c).logpdf(X)
                        for w, m, c in zip(weights, means, cov)], axis=1)
        total = logsumexp(log, axis=1)
        trace.append(total.mean())
        r = np.exp(log - total[:, None])
        nk = r.sum(0)
        weights = nk / n
        means = (r.T @ X) / nk[:, None]
        new_l, new_psi = [], []
        for k in range(len(nk)):
            dx = X - means[k]
            s = (r[:, k, None] * dx).T @ dx / nk[k]
            beta = loadings[k].T @ np.linalg.inv(cov[k])
            ezz = np.eye(loadings.shape[2]) - beta @ loadings[k] + beta @ s @ beta.T
            lk = s @ beta.T @ np.linalg.inv(ezz)
            new_l.append(lk)
            new_psi.append(np.diag(s - lk @ beta @ s) + reg)
        loadings, psi = np.array(new_l), np.array(new_psi)
    return trace, (weights, means, loadings, psi)


def test_a_mixture_of_factor_analysers_is_the_numpy_em_from_the_same_start():
    X = two_groups()
    kw = dict(covariance_type="factor", n_factors=2, n_init=1, random_state=3,
              accelerate=None, convergence="change", tol=1e-300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = GaussianMixture(2, max_iter=0, **kw).fit(X)
        fit = GaussianMixture(2, max_iter=40, **kw).fit(X)
    assert start.loadings_.shape == (2, 6, 2) and start.noise_variance_.shape == (2, 6)
    np.testing.assert_allclose(  # covariances_ are the full matrices of the model
        start.covariances_, start.loadings_ @ np.swapaxes(start.loadings_, 1, 2)
        + start.noise_variance_[:, :, None] * np.eye(6), rtol=1e-12, atol=1e-12)
    trace, (w, mu, lo, psi) = numpy_mfa(X, start.weights_, start.means_, start.loadings_,
                                        start.noise_variance_, 40, fit.reg_covar)
    np.testing.assert_allclose(fit.lower_bounds_, trace, rtol=1e-10)
    assert np.all(np.diff(trace) > -1e-12)  # EM's climb (a generalised EM step)
    np.testing.assert_allclose(fit.weights_, w, rtol=1e-8)
    np.testing.assert_allclose(fit.means_, mu, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(fit.noise_variance_, psi, rtol=1e-7)
    # loadings are defined up to a rotation of the factors: compare L L'
    np.testing.assert_allclose(fit.loadings_ @ np.swapaxes(fit.loadings_, 1, 2),
                               lo @ np.swapaxes(lo, 1, 2), rtol=1e-7, atol=1e-9)
    # and the fitted model scores and predicts with its full covariances
    dense = [multivariate_normal(m, c) for m, c in zip(fit.means_, fit.covariances_)]
    ll = logsumexp(np.stack([np.log(wk) + d.logpdf(X) for wk, d in zip(fit.weights_, dense)],
                            axis=1), axis=1)
    np.testing.assert_allclose(fit.score_samples(X), ll, rtol=1e-10)


def test_one_factor_analyser_is_scikit_learns_factor_analysis():
    from sklearn.decomposition import FactorAnalysis

    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 3)) @ rng.normal(size=(3, 12)) + rng.normal(size=(2000, 12)) * (
        rng.uniform(0.5, 1.5, 12))
    ours = GaussianMixture(1, covariance_type="factor", n_factors=3, n_init=2, random_state=0,
                           reg_covar=0.0).fit(X)
    ref = FactorAnalysis(3, tol=1e-10, max_iter=100_000).fit(X)
    assert ours.converged_
    assert ours.score(X) == pytest.approx(ref.score(X), abs=1e-6)
    np.testing.assert_allclose(ours.noise_variance_[0], ref.noise_variance_, rtol=1e-3)
    np.testing.assert_allclose(ours.covariances_[0], ref.get_covariance(), rtol=1e-3,
                               atol=1e-3)
    assert ours.n_parameters() == 12 * 3 + 12 - 3 + 12  # loadings + noise - rotations + means


@pytest.mark.parametrize("change, words", [
    (dict(n_factors=None), "needs n_factors"),
    (dict(n_factors=6), "more than 6 features"),
    (dict(n_factors=0), "n_factors"),
    (dict(missing="em"), "does not take missing='em'"),
    (dict(prior="default"), "does not take a prior"),
    (dict(standardize=True), "does not take standardize=True"),
    (dict(covariance_type="full"), "n_factors=2 is for covariance_type='factor'"),
])
def test_what_a_factor_mixture_refuses_is_one_sentence(change, words):
    X = two_groups(60)
    est = GaussianMixture(2, **{"covariance_type": "factor", "n_factors": 2, **change})
    with pytest.raises(ValueError, match=words):
        est.fit(X)


def test_no_lapack_call_is_split_over_threads_for_the_digits_size():
    """jaxlib 0.10's CPU LAPACK kernels split a batch of large matrices over the thread
    pool and block on it; two such calls side by side deadlocked a full-covariance fit of
    the digits (core.covariance.LAPACK_SPLIT_FLOPS). The precision factors of 10 components
    of 64 x 64, and SQUAREM's Cholesky factors, are one matrix per LAPACK call; the factor
    type's precision needs only q x q ones; missing-value EM's conditional Gaussians of 4
    patterns likewise; and with the restarts vmapped around them, their batch counts."""
    import re

    import jax
    import jax.numpy as jnp

    from emwidgets.core import accel
    from emwidgets.core.covariance import COVARIANCE_TYPES

    covs = jnp.broadcast_to(jnp.eye(64), (10, 64, 64))
    packed = jnp.concatenate([jnp.ones((10, 64, 4)), jnp.ones((10, 64, 1))], axis=-1)

    def lapack_operands(fn, *args):
        text = jax.jit(fn).lower(*args).as_text()
        return re.findall(r"lapack_\w+_ffi.*?\((tensor<[^>]*>)", text)

    from emwidgets.core import gmm, observed

    params = gmm.GMMParams(jnp.full(10, 0.1), jnp.zeros((10, 64)), covs, covs)
    patterns = jnp.asarray(np.random.default_rng(0).random((4, 64)) > 0.2)
    for fn, args in ((lambda p, m: observed.conditionals("full", p, m).gain, (params, patterns)),
                     (COVARIANCE_TYPES["full"].precision_cholesky, (covs,)),
                     # 16 restarts vmapped (as the driver does) of 3 components of 20 x 20
                     (jax.vmap(COVARIANCE_TYPES["full"].precision_cholesky),
                      (jnp.broadcast_to(jnp.eye(20), (16, 3, 20, 20)),)),
                     (lambda c: accel._to("cholesky", c), (covs,)),
                     (COVARIANCE_TYPES["factor/4"].precision_cholesky, (packed,))):
        shapes = lapack_operands(fn, *args)
        assert shapes, "no LAPACK call found: the test no longer looks at the right thing"
        for shape in shapes:
            dims = [int(x) for x in re.findall(r"(\d+)x", shape)]
            batch, n = int(np.prod(dims[:-2])) if len(dims) > 2 else 1, dims[-1]
            assert batch * n**3 / 3 < 200_000 or batch == 1, shape
