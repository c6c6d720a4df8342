"""EM with missing values: against independent references and EM's properties."""

import numpy as np
import pandas as pd
import pytest
from conftest import COV_TYPES
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from emwidgets import GaussianMixture
from emwidgets.core.covariance import COVARIANCE_TYPES


def remove_at_random(X, fraction, seed):
    """X with about ``fraction`` of its entries set to NaN (MCAR), no row emptied."""
    rng = np.random.default_rng(seed)
    Xm = X.copy()
    holes = rng.random(X.shape) < fraction
    empty = holes.all(axis=1)
    holes[empty, rng.integers(0, X.shape[1], empty.sum())] = False
    Xm[holes] = np.nan
    return Xm


def known_mixture(n, seed):
    """Two well-separated 3-D Gaussians with correlated features: (X, weights, means, covs)."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0, 0.0], [4.0, 3.0, -2.0]])
    covs = np.array([[[1.0, 0.8, 0.3], [0.8, 1.5, 0.5], [0.3, 0.5, 1.0]],
                     [[1.2, -0.6, 0.0], [-0.6, 1.0, 0.4], [0.0, 0.4, 0.8]]])
    weights = np.array([0.4, 0.6])
    labels = rng.choice(2, size=n, p=weights)
    X = np.stack([rng.multivariate_normal(means[k], covs[k]) for k in labels])
    return X, weights, means, covs


def classic_mvn_em(Xm, n_iter=2000, tol=1e-13):
    """EM for one multivariate normal with missing values, written plainly.

    The textbook algorithm (Dempster, Laird & Rubin 1977; Little & Rubin,
    Statistical Analysis with Missing Data, section 11.2): fill each row's
    missing part with its conditional mean given the observed part, add the
    conditional covariance to the second moments, average.
    """
    n, d = Xm.shape
    obs = ~np.isnan(Xm)
    mu = np.nanmean(Xm, axis=0)
    sigma = np.diag(np.nanvar(Xm, axis=0))
    for _ in range(n_iter):
        sum_x = np.zeros(d)
        sum_xx = np.zeros((d, d))
        for x, o in zip(Xm, obs):
            m = ~o
            xh = x.copy()
            c = np.zeros((d, d))
            if m.any():
                s_oo = sigma[np.ix_(o, o)]
                s_mo = sigma[np.ix_(m, o)]
                reg = s_mo @ np.linalg.inv(s_oo)
                xh[m] = mu[m] + reg @ (x[o] - mu[o])
                c[np.ix_(m, m)] = sigma[np.ix_(m, m)] - reg @ s_mo.T
            sum_x += xh
            sum_xx += np.outer(xh, xh) + c
        new_mu = sum_x / n
        new_sigma = sum_xx / n - np.outer(new_mu, new_mu)
        done = np.abs(new_mu - mu).max() < tol and np.abs(new_sigma - sigma).max() < tol
        mu, sigma = new_mu, new_sigma
        if done:
            break
    return mu, sigma


def observed_loglik(Xm, weights, means, covs):
    """(N,) log sum_k w_k N(x_o | mu_k,o, Sigma_k,oo), one row at a time with scipy."""
    out = []
    for x in Xm:
        o = ~np.isnan(x)
        out.append(logsumexp([np.log(w) + multivariate_normal(m[o], c[np.ix_(o, o)]).logpdf(x[o])
                              for w, m, c in zip(weights, means, covs)]))
    return np.array(out)


def dense(gm):
    k, d = gm.means_.shape
    return np.asarray(COVARIANCE_TYPES[gm.covariance_type].dense(gm.covariances_, k, d))


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_nothing_missing_gives_the_complete_data_fit(x64, blobs, cov_type):
    X, _ = blobs
    kw = dict(covariance_type=cov_type, n_init=3, random_state=1, tol=1e-8, max_iter=60)
    complete = GaussianMixture(3, **kw).fit(X)
    by_pattern = GaussianMixture(3, missing="em", **kw).fit(X)
    np.testing.assert_allclose(by_pattern.restarts_.trace, complete.restarts_.trace, rtol=1e-9,
                               atol=1e-9)
    # Restart by restart (the best one is a tie between restarts that found the same optimum
    # with the components in another order, broken by the last bits).
    for name, atol in (("means", 1e-8), ("covariances", 1e-8), ("weights", 1e-10)):
        np.testing.assert_allclose(by_pattern.restarts_.params[name],
                                   complete.restarts_.params[name], atol=atol)
    assert np.isclose(by_pattern.lower_bound_, complete.lower_bound_, rtol=1e-9)


def test_one_gaussian_equals_the_classic_em_reference(x64):
    X, *_ = known_mixture(150, seed=5)
    Xm = remove_at_random(X, 0.25, seed=6)
    assert np.isnan(Xm).any(axis=1).mean() > 0.4
    mu, sigma = classic_mvn_em(Xm)
    gm = GaussianMixture(1, missing="em", tol=1e-14, max_iter=2000, reg_covar=0.0).fit(Xm)
    assert gm.converged_
    np.testing.assert_allclose(gm.means_[0], mu, atol=1e-7)
    np.testing.assert_allclose(gm.covariances_[0], sigma, atol=1e-7)
    # The objective is the observed-data log-likelihood, as scipy computes it.
    ref = observed_loglik(Xm, [1.0], [mu], [sigma]).mean()
    assert gm.lower_bound_ == pytest.approx(ref, abs=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_objective_is_the_observed_loglik_and_never_decreases(x64, cov_type):
    X, *_ = known_mixture(300, seed=1)
    Xm = remove_at_random(X, 0.3, seed=2)
    gm = GaussianMixture(2, covariance_type=cov_type, missing="em", n_init=6,
                         init_params="random", tol=1e-10, max_iter=40, random_state=0).fit(Xm)
    trace = gm.restarts_.trace
    steps = np.diff(trace, axis=1)
    assert np.nanmin(steps) >= -1e-10, "the observed-data log-likelihood decreased"
    assert (np.isfinite(trace[:, 0])).all() and not np.isnan(gm.means_).any()
    # score_samples: the density of the observed values, checked row by row with scipy.
    ref = observed_loglik(Xm, gm.weights_, gm.means_, dense(gm))
    np.testing.assert_allclose(gm.score_samples(Xm), ref, atol=1e-9)
    # The last traced value is the log-likelihood of the parameters before the last M-step.
    assert gm.score(Xm) >= gm.lower_bound_ - 1e-10
    proba = gm.predict_proba(Xm)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)


def _aligned_error(weights, means, covs, true_w, true_m, true_c):
    cost = ((means[:, None, :] - true_m[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    order = cols.argsort()
    return (np.linalg.norm(means[rows][order] - true_m) + np.linalg.norm(covs[rows][order] - true_c)
            + np.abs(weights[rows][order] - true_w).sum())


@pytest.mark.slow
def test_em_over_missing_values_beats_listwise_deletion_and_mean_imputation():
    """20% of entries removed at random: closer to the truth than dropping incomplete rows."""
    em_errors, drop_errors, wins = [], [], 0
    for seed in range(6):
        X, w, m, c = known_mixture(400, seed=10 + seed)
        Xm = remove_at_random(X, 0.2, seed=100 + seed)
        complete_rows = ~np.isnan(Xm).any(axis=1)
        kw = dict(n_init=4, random_state=seed, tol=1e-6, max_iter=300)
        gm = GaussianMixture(2, missing="em", **kw).fit(Xm)
        dropped = GaussianMixture(2, **kw).fit(Xm[complete_rows])
        e_em = _aligned_error(gm.weights_, gm.means_, gm.covariances_, w, m, c)
        e_drop = _aligned_error(dropped.weights_, dropped.means_, dropped.covariances_, w, m, c)
        em_errors.append(e_em)
        drop_errors.append(e_drop)
        wins += e_em < e_drop
        # Imputation: the conditional expectation beats filling in column means.
        holes = np.isnan(Xm)
        rmse_em = np.sqrt(np.mean((gm.impute(Xm) - X)[holes] ** 2))
        mean_fill = np.where(holes, np.nanmean(Xm, axis=0), Xm)
        rmse_mean = np.sqrt(np.mean((mean_fill - X)[holes] ** 2))
        assert rmse_em < 0.8 * rmse_mean, (seed, rmse_em, rmse_mean)
    assert wins >= 5, (em_errors, drop_errors)
    assert np.mean(em_errors) < 0.8 * np.mean(drop_errors), (em_errors, drop_errors)


def test_impute_is_the_conditional_expectation(x64):
    X, *_ = known_mixture(200, seed=3)
    Xm = remove_at_random(X, 0.3, seed=4)
    gm = GaussianMixture(1, missing="em", tol=1e-10, max_iter=500).fit(Xm)
    mu, sigma = gm.means_[0], gm.covariances_[0]
    filled = gm.impute(Xm)
    observed = ~np.isnan(Xm)
    assert np.array_equal(filled[observed], Xm[observed]), "observed values must not change"
    for x, f in zip(Xm[:40], filled[:40]):
        o = ~np.isnan(x)
        m = ~o
        if m.any():
            expected = mu[m] + sigma[np.ix_(m, o)] @ np.linalg.solve(
                sigma[np.ix_(o, o)], x[o] - mu[o]
            )
            np.testing.assert_allclose(f[m], expected, atol=1e-10)


@pytest.mark.slow
def test_multiple_imputation_draws_from_the_conditional_distribution(x64):
    X, *_ = known_mixture(300, seed=7)
    Xm = remove_at_random(X, 0.2, seed=8)
    gm = GaussianMixture(2, missing="em", n_init=3, random_state=0).fit(Xm)
    draws = gm.impute(Xm, n_imputations=4000, random_state=0)
    assert draws.shape == (4000,) + X.shape
    observed = ~np.isnan(Xm)
    assert np.array_equal(draws[:, observed], np.broadcast_to(Xm[observed], (4000, observed.sum())))
    holes = ~observed
    assert draws[:, holes].std(axis=0).min() > 0.05, "draws must vary where values are missing"
    # Their average converges to the conditional expectation (standard error ~ 1/sqrt(4000)).
    np.testing.assert_allclose(draws.mean(axis=0)[holes], gm.impute(Xm)[holes], atol=0.12)
    again = gm.impute(Xm, n_imputations=4000, random_state=0)
    assert np.array_equal(draws, again)


def test_impute_keeps_a_dataframe_a_dataframe():
    X, *_ = known_mixture(120, seed=9)
    frame = pd.DataFrame(remove_at_random(X, 0.2, seed=9), columns=["a", "b", "c"],
                         index=np.arange(100, 220))
    gm = GaussianMixture(2, missing="em", random_state=0).fit(frame)
    out = gm.impute(frame)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["a", "b", "c"]
    assert out.index.equals(frame.index) and not out.isna().any().any()
    assert frame.isna().any().any(), "the input frame must not be modified"


def test_missing_values_get_errors_that_say_what_to_do():
    X, *_ = known_mixture(60, seed=0)
    Xm = X.copy()
    Xm[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"contains NaN .*missing='em'"):
        GaussianMixture(2).fit(Xm)
    empty = Xm.copy()
    empty[5] = np.nan
    with pytest.raises(
        ValueError, match=r"1 rows of X have no observed value \(the first is row 5\)"
    ):
        GaussianMixture(2, missing="em").fit(empty)
    infinite = Xm.copy()
    infinite[7, 0] = np.inf
    with pytest.raises(ValueError, match="contains infinity"):
        GaussianMixture(2, missing="em").fit(infinite)
    with pytest.raises(ValueError, match="'missing'.*'raise', 'em'"):
        GaussianMixture(2, missing="drop").fit(X)
    gm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match=r"contains NaN .*missing='em'"):
        gm.standard_errors(Xm)
    # The failed calls left the fitted model intact.
    assert np.isfinite(gm.score(X))


@pytest.mark.slow
def test_missing_values_in_float32_stay_finite():
    """The default precision: masks, not NaN, inside the compiled program."""
    X, *_ = known_mixture(500, seed=11)
    Xm = remove_at_random(X, 0.35, seed=12)
    for cov_type in ("full", "diag"):  # with and without cross-covariances to condition on
        gm = GaussianMixture(2, covariance_type=cov_type, missing="em", n_init=4,
                             random_state=0).fit(Xm)
        r = gm.restarts_
        assert not any(r.failed), r.messages
        assert np.isfinite(r.objective).all() and np.isfinite(r.params["covariances"]).all()
        assert np.nanmin(np.diff(r.trace, axis=1)) > -1e-4  # float32 rounding only


@pytest.mark.slow
def test_model_selection_over_incomplete_data():
    X, *_ = known_mixture(200, seed=13)
    Xm = remove_at_random(X, 0.2, seed=14)
    from emwidgets import select_model

    with pytest.raises(ValueError, match="missing='em'"):
        select_model(Xm, n_components=[1, 2], covariance_types=["full"], n_init=2)
    result = select_model(Xm, n_components=[1, 2, 3], covariance_types=["full"], n_init=2,
                          missing="em")
    assert result.best_key == (2, "full"), result.table
    assert result.table["converged"].all()
    # The criterion uses the observed-data log-likelihood.
    best = result.best
    assert result.table.set_index(["n_components", "covariance_type"]).loc[
        (2, "full"), "log_likelihood"] == pytest.approx(best.score_samples(Xm).sum())


@pytest.mark.slow
def test_standard_errors_with_missing_values_match_the_large_sample_formula(x64):
    """Bivariate normal, x1 missing at random in 30% of rows, x2 complete. The
    observed information gives Var(mu_1) = s11.2 / n1 + beta^2 s22 / n (Anderson
    1957): between the complete-data s11 / n and the complete-case s11 / n1."""
    rng = np.random.default_rng(0)
    X = rng.multivariate_normal([1.0, -2.0], [[2.0, 1.2], [1.2, 1.5]], size=2000)
    Xm = X.copy()
    Xm[rng.random(len(X)) < 0.3, 0] = np.nan
    n, n1 = len(X), int((~np.isnan(Xm[:, 0])).sum())
    gm = GaussianMixture(1, missing="em", tol=1e-12, max_iter=1000, reg_covar=0.0).fit(Xm)
    se = gm.standard_errors(Xm)
    s = gm.covariances_[0]
    beta = s[0, 1] / s[1, 1]
    expected = np.sqrt((s[0, 0] - beta * s[0, 1]) / n1 + beta**2 * s[1, 1] / n)
    assert se.means[0, 0] == pytest.approx(expected, rel=0.01)
    assert np.sqrt(s[0, 0] / n) < se.means[0, 0] < np.sqrt(s[0, 0] / n1)
    assert se.means[0, 1] == pytest.approx(np.sqrt(s[1, 1] / n), rel=1e-6)  # x2 is complete
