"""MAP estimation: the prior against scipy's densities, the M-step as the posterior mode,
monotone log posterior, and the collapse that maximum likelihood cannot avoid."""

import re

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COV_TYPES
from scipy import stats
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from test_missing import known_mixture, remove_at_random

from emwidgets import GaussianMixture, MixturePrior
from emwidgets.core import conjugate as core_priors
from emwidgets.core import gmm as G
from emwidgets.core.covariance import COVARIANCE_TYPES
from emwidgets.estimators.priors import resolve

K, D = 3, 3


def random_params(cov_type, rng):
    cov = COVARIANCE_TYPES[cov_type]
    a = rng.normal(size=(K, D, D))
    full = a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(D)
    covariances = {"full": full, "tied": full[0], "diag": rng.uniform(0.3, 2.0, (K, D)),
                   "spherical": rng.uniform(0.3, 2.0, K)}[cov_type]
    weights = rng.dirichlet(np.ones(K))
    means = rng.normal(size=(K, D))
    covariances = jnp.asarray(covariances)
    return G.GMMParams(jnp.asarray(weights), jnp.asarray(means), covariances,
                       cov.precision_cholesky(covariances))


def random_prior(cov_type, rng):
    a = rng.normal(size=(D, D))
    scale = {"full": a @ a.T + np.eye(D), "tied": a @ a.T + np.eye(D),
             "diag": rng.uniform(0.5, 2.0, D), "spherical": np.asarray(1.7)}[cov_type]
    return core_priors.Prior(jnp.asarray(2.5), jnp.asarray(0.7), jnp.asarray(rng.normal(size=D)),
                             jnp.asarray(D + 1.5), jnp.asarray(scale))


def scipy_log_prior(cov_type, p, prior):
    """The same prior written with scipy.stats, normalising constants included."""
    w, m, c = (np.asarray(a) for a in (p.weights, p.means, p.covariances))
    alpha, kappa, m0, nu, scale = (np.asarray(a) for a in prior)
    total = stats.dirichlet(np.full(K, float(alpha))).logpdf(w)
    for k in range(K):
        if cov_type in ("full", "tied"):
            sigma = c[k] if cov_type == "full" else c
            if cov_type == "full" or k == 0:
                total += stats.invwishart(df=float(nu), scale=scale).logpdf(sigma)
            total += stats.multivariate_normal(m0, sigma / kappa).logpdf(m[k])
        elif cov_type == "diag":
            total += stats.invgamma(a=nu / 2, scale=scale / 2).logpdf(c[k]).sum()
            total += stats.norm(m0, np.sqrt(c[k] / kappa)).logpdf(m[k]).sum()
        else:
            total += stats.invgamma(a=nu / 2, scale=scale / 2).logpdf(c[k])
            total += stats.multivariate_normal(m0, np.eye(D) * c[k] / kappa).logpdf(m[k])
    return total


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_log_prior_is_the_documented_density(x64, cov_type):
    """Differences of our log prior (defined up to a constant) equal scipy's."""
    rng = np.random.default_rng(0)
    prior = random_prior(cov_type, rng)
    cov = COVARIANCE_TYPES[cov_type]
    active = jnp.ones(K, bool)
    ours, ref = [], []
    for _ in range(4):
        p = random_params(cov_type, rng)
        ours.append(float(core_priors.log_prior(cov, p, prior, active)))
        ref.append(scipy_log_prior(cov_type, p, prior))
    np.testing.assert_allclose(np.diff(ours), np.diff(ref), rtol=1e-10, atol=1e-9)


def expected_log_posterior(cov_type, p, x, resp, prior):
    lp = G.weighted_log_prob(cov_type, p, x)
    return float((resp * lp).sum() + core_priors.log_prior(COVARIANCE_TYPES[cov_type], p, prior,
                                                           jnp.ones(K, bool)))


def perturbed(cov_type, p, rng, eps):
    cov = COVARIANCE_TYPES[cov_type]
    w = np.asarray(p.weights) * np.exp(eps * rng.normal(size=K))
    means = np.asarray(p.means) + eps * rng.normal(size=(K, D))
    c = np.asarray(p.covariances)
    if cov_type in ("full", "tied"):
        s = rng.normal(size=c.shape)
        c = c + eps * (s + np.swapaxes(s, -1, -2))
    else:
        c = c * np.exp(eps * rng.normal(size=c.shape))
    c = jnp.asarray(c)
    return G.GMMParams(jnp.asarray(w / w.sum()), jnp.asarray(means), c, cov.precision_cholesky(c))


@pytest.mark.slow
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_map_m_step_maximises_the_expected_log_posterior(x64, cov_type):
    """Given responsibilities, no nearby parameters have a higher expected log posterior."""
    rng = np.random.default_rng(1)
    cov = COVARIANCE_TYPES[cov_type]
    x = jnp.asarray(rng.normal(size=(25, D)) * 2)
    resp = rng.dirichlet(np.ones(K), size=25)
    prior = random_prior(cov_type, rng)
    stats_ = jnp.asarray(resp).T @ G.features(cov, x)
    best, health = G.m_step(cov, stats_, 0.0, D, jnp.ones(K, bool), prior)
    assert bool(health.ok)
    q_best = expected_log_posterior(cov_type, best, x, resp, prior)
    for eps in (1e-3, 1e-2):
        for _ in range(15):
            q = expected_log_posterior(cov_type, perturbed(cov_type, best, rng, eps), x, resp,
                                       prior)
            assert q <= q_best + 1e-10, (eps, q - q_best)


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("missing", [False, True])
def test_log_posterior_never_decreases(x64, cov_type, missing):
    X, *_ = known_mixture(300, seed=1)
    if missing:
        X = remove_at_random(X, 0.3, seed=2)
    gm = GaussianMixture(2, covariance_type=cov_type, prior="default", n_init=6,
                         init_params="random", tol=1e-10, max_iter=40, random_state=0,
                         missing="em" if missing else "raise").fit(X)
    steps = np.diff(gm.restarts_.trace, axis=1)
    assert np.nanmin(steps) >= -1e-10, "the log posterior decreased"
    assert not any(gm.restarts_.failed)


@pytest.mark.slow
def test_map_tends_to_maximum_likelihood_as_the_data_outweigh_the_prior():
    """Repeating the data r times leaves the maximum-likelihood fit unchanged and
    weakens the fixed prior r-fold: the MAP fit must converge to it."""
    X, *_ = known_mixture(150, seed=21)
    ml = GaussianMixture(2, n_init=2, random_state=0, tol=1e-7, max_iter=300).fit(X)
    start = dict(weights_init=ml.weights_, means_init=ml.means_, precisions_init=ml.precisions_)
    prior = resolve("default", X, "full", 2)  # fixed, not recomputed from the repeated data
    gaps = []
    for r in (1, 10, 100):
        mp = GaussianMixture(2, prior=prior, tol=1e-7, max_iter=300, **start)
        mp.fit(np.tile(X, (r, 1)))
        gaps.append(np.abs(mp.means_ - ml.means_).max()
                    + np.abs(mp.covariances_ - ml.covariances_).max())
    assert gaps[0] > 5 * gaps[1] > 25 * gaps[2], gaps
    assert gaps[2] < 0.02 * gaps[0], gaps  # the prior weighs 1/r: the gap shrinks as 1/r


def collapsing_data():
    """Two Gaussian clusters and a third made of two distinct points repeated: in 3-D
    its covariance has rank 1, so maximum likelihood (reg_covar=0) collapses."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 3))
    b = rng.normal(size=(60, 3)) + [8.0, 0.0, 0.0]
    c = np.repeat([[0.0, 9.0, 0.0], [0.4, 9.5, 0.3]], 15, axis=0)
    return np.concatenate([a, b, c])


@pytest.mark.slow
def test_prior_prevents_the_collapse_that_maximum_likelihood_hits(x64):
    X = collapsing_data()
    # An independent witness that maximum likelihood fails here.
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        SkGaussianMixture(3, reg_covar=0.0, n_init=4, random_state=0).fit(X)
    with pytest.raises(ValueError, match=r"collapsed.*prior='default'"):
        GaussianMixture(3, reg_covar=0.0, n_init=4, random_state=0).fit(X)
    gm = GaussianMixture(3, reg_covar=0.0, n_init=4, random_state=0, prior="default").fit(X)
    assert not any(gm.restarts_.failed)
    assert np.isfinite(gm.covariances_).all()
    assert min(np.linalg.eigvalsh(c).min() for c in gm.covariances_) > 1e-3
    # The degenerate cluster is found and given a small but proper covariance.
    k = int(np.argmin(np.abs(gm.means_ - [0.2, 9.25, 0.15]).sum(1)))
    np.testing.assert_allclose(gm.means_[k], [0.2, 9.25, 0.15], atol=0.05)
    assert gm.weights_[k] == pytest.approx(30 / 150, abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("x64_mode", [False, True], ids=["float32", "float64"])
def test_the_collapse_is_refused_or_flagged_and_the_prior_avoids_it(x64_mode):
    """Without a prior, maximum likelihood collapses onto the rank-1 cluster. Whether the
    collapsed covariance still factorises is an accident of rounding (in float32 it does on
    some CPUs, not on others), so the test asserts what holds either way: the fit is
    refused with the sentence that names reg_covar and the prior, or it ends and every
    restart that did not fail is flagged spurious, with a warning. With the prior, no
    restart fails or is spurious and every covariance is well conditioned."""
    import warnings

    import jax

    from emwidgets import SpuriousSolutionWarning

    X = collapsing_data()
    smallest = lambda covs: min(np.linalg.eigvalsh(c).min() for c in covs)  # noqa: E731
    with jax.enable_x64(x64_mode):
        ml = GaussianMixture(3, reg_covar=0.0, n_init=4, random_state=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                ml.fit(X)
            except ValueError as exc:
                refused = str(exc)
            else:
                refused = None
        if refused is not None:
            assert re.search(r"restarts collapsed .*increase reg_covar.*prior='default'", refused)
        else:
            r = ml.restarts_
            assert all(r.failed | r.spurious), r.to_frame()
            assert r.spurious[r.best] and "spurious" in r.messages[r.best]
            assert any(issubclass(w.category, SpuriousSolutionWarning) for w in caught)
            # The component flagged is the one on the rank-1 cluster.
            k = r.spurious_component[r.best]
            np.testing.assert_allclose(ml.means_[k], [0.2, 9.25, 0.15], atol=0.05)
        with warnings.catch_warnings():
            warnings.simplefilter("error", SpuriousSolutionWarning)
            mp = GaussianMixture(3, reg_covar=0.0, n_init=4, random_state=0,
                                 prior="default").fit(X)
    assert not (mp.restarts_.failed | mp.restarts_.spurious).any()
    assert smallest(mp.covariances_) > 1e-3


def test_default_prior_follows_priorcontrol():
    X, *_ = known_mixture(200, seed=4)
    p = resolve("default", X, "full", 3)
    assert p.shrinkage == 0.01 and p.dof == 5 and p.weight_concentration == 1
    np.testing.assert_allclose(p.mean, X.mean(0))
    np.testing.assert_allclose(p.scale, np.cov(X.T) / 3 ** (2 / 3))
    s = resolve(MixturePrior(dof=7.0), X, "spherical", 2)
    assert s.dof == 7.0 and s.scale == pytest.approx(X.var(0, ddof=0).mean() / 2 ** (2 / 3))


@pytest.mark.parametrize("prior, cov_type, message", [
    (MixturePrior(dof=1.0), "full", r"dof must be > 2 for covariance_type='full'"),
    (MixturePrior(scale=np.eye(2)), "full",
     r"scale must be a symmetric positive-definite \(3, 3\)"),
    (MixturePrior(scale=-1.0), "spherical", "scale must be one positive number"),
    (MixturePrior(weight_concentration=0.5), "diag", "weight_concentration must be >= 1"),
    (MixturePrior(mean=[0.0, 1.0]), "tied", "mean must be 3 finite numbers"),
    ("flat", "full", "Invalid value for 'prior'"),
])
def test_bad_priors_are_refused_with_a_sentence(prior, cov_type, message):
    X, *_ = known_mixture(50, seed=0)
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2, covariance_type=cov_type, prior=prior).fit(X)
