"""Model selection and standard errors (issue: choosing K, uncertainty of the estimates)."""

import warnings

import numpy as np
import pytest
from _numerics import finite_difference_hessian
from conftest import make_mixture

from emwidgets import GaussianMixture, ModelSelectionExplorer, select_model


@pytest.fixture(scope="module")
def grid():
    X, _ = make_mixture(500, 2, 3, seed=4, separation=6.0)
    return X, select_model(X, n_components=range(1, 6), n_init=4, random_state=0)


@pytest.mark.slow
def test_table_matches_the_individual_models(grid):
    X, res = grid
    table = res.table
    assert len(table) == 5 * 4
    assert list(table.columns[:7]) == ["n_components", "covariance_type", "log_likelihood",
                                      "n_parameters", "bic", "aic", "icl"]
    for _, row in table.iterrows():
        gm = res.models[(row["n_components"], row["covariance_type"])]
        assert gm.n_components == row["n_components"]
        assert gm.means_.shape == (row["n_components"], 2)
        np.testing.assert_allclose(row["bic"], gm.bic(X), rtol=1e-12)
        np.testing.assert_allclose(row["aic"], gm.aic(X), rtol=1e-12)
        np.testing.assert_allclose(row["log_likelihood"], gm.score(X) * len(X), rtol=1e-12)
        assert row["icl"] >= row["bic"] - 1e-9  # ICL adds a non-negative entropy term
        assert row["n_parameters"] == gm.n_parameters()
    assert res.best is res.models[res.best_key]
    assert res.best.bic(X) == pytest.approx(table["bic"].min())


def test_one_compiled_program_per_covariance_type(grid):
    from emwidgets import _compiles

    X, _ = grid
    for cov_type in ("full", "spherical"):
        select_model(X[:480], n_components=[1, 5], covariance_types=[cov_type], n_init=3)
        with _compiles.count(this_thread=True) as c:
            select_model(X[:480], n_components=range(1, 6), covariance_types=[cov_type],
                         n_init=3)
        assert not [n for n in c.names if "advance" in n or "init_batch" in n], (
            "K = 2, 3, 4 reuse the K = 5 programs", c.names)


def test_masked_components_take_no_part(grid):
    X, res = grid
    gm = res.models[(2, "full")]
    assert gm.weights_.shape == (2,) and np.isclose(gm.weights_.sum(), 1)
    for trace in gm.restarts_.trace:
        t = trace[~np.isnan(trace)]
        assert np.all(np.diff(t) >= -1e-5 * np.abs(t[1:]))
    # The same model fitted directly reaches the same optimum.
    direct = GaussianMixture(2, n_init=4, random_state=0).fit(X)
    assert direct.lower_bound_ == pytest.approx(gm.lower_bound_, abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_selects_the_true_number_of_components(seed):
    X, _ = make_mixture(600, 2, 3, seed=10 + seed, separation=8.0)
    res = select_model(X, n_components=range(1, 5), covariance_types=("full", "diag"), n_init=3,
                       random_state=seed)
    assert res.best_key[0] == 3


def test_bad_grid():
    X = np.random.default_rng(0).normal(size=(5, 2))
    with pytest.raises(ValueError, match="lower the largest"):
        select_model(X, n_components=range(1, 8))
    with pytest.raises(ValueError, match="criterion"):
        select_model(X, criterion="r2")


@pytest.mark.slow
def test_model_selection_widget_fills_in():
    X, _ = make_mixture(300, 2, 2, seed=1, separation=8.0)
    w = ModelSelectionExplorer(X, n_components=(1, 3), n_init=2)
    w.types["tied"].value = False
    w.run(block=True)
    assert "Done" in w.status.value and len(w.result.table) == 9
    x, y = w.plot.artists.lines["full"].get_data()
    np.testing.assert_array_equal(x, [1, 2, 3])
    table = w.result.table  # drawn as the gap to the lowest BIC
    full = table.query("covariance_type == 'full'")
    np.testing.assert_allclose(y, full["bic"] - table["bic"].min())
    assert w.plot.artists.lines["tied"].get_data()[0].size == 0


# -- standard errors ----------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("cov_type", ["full", "tied", "diag"])
def test_one_component_mean_error_is_sigma_over_root_n(cov_type):
    rng = np.random.default_rng(0)
    X = rng.multivariate_normal([1.0, -2.0], [[2.0, 0.6], [0.6, 1.0]], size=400)
    gm = GaussianMixture(1, covariance_type=cov_type).fit(X)
    se = gm.standard_errors(X)
    var = {"full": lambda c: np.diag(c[0]), "tied": np.diag, "diag": lambda c: c[0]}[cov_type](
        gm.covariances_)
    np.testing.assert_allclose(se.means[0], np.sqrt(var / len(X)), rtol=1e-6)
    np.testing.assert_allclose(se.means[0], X.std(0) / np.sqrt(len(X)), rtol=1e-3)
    assert se.weights[0] == pytest.approx(0.0, abs=1e-8)  # one component: weight fixed at 1
    lower, upper = se.intervals(0.95)["means"]
    assert (lower < gm.means_).all() and (gm.means_ < upper).all()


@pytest.mark.slow
def test_standard_errors_match_a_finite_difference_hessian_written_here(x64):
    """A Gaussian mixture's standard errors against the inverse of a central-difference
    Hessian of a log-likelihood written here (scipy's densities) in the natural
    coordinates: the first weight, the means, each covariance's upper triangle (the
    parameter count is scikit-learn's n_parameters)."""
    from scipy.stats import multivariate_normal

    X, _ = make_mixture(300, 2, 2, seed=2, separation=5.0)
    gm = GaussianMixture(2, n_init=3, random_state=0, tol=1e-12, max_iter=5000).fit(X)
    iu = np.triu_indices(2)

    def loglik(t):
        w = np.array([t[0], 1.0 - t[0]])
        means = t[1:5].reshape(2, 2)
        covs = []
        for k in range(2):
            c = np.zeros((2, 2))
            c[iu] = t[5 + 3 * k: 8 + 3 * k]
            covs.append(c + c.T - np.diag(np.diag(c)))
        dens = sum(w[k] * multivariate_normal(means[k], covs[k]).pdf(X) for k in range(2))
        return float(np.log(dens).sum())

    theta = np.r_[gm.weights_[0], gm.means_.ravel(),
                  np.concatenate([c[iu] for c in gm.covariances_])]
    assert len(theta) == gm.n_parameters()
    expected = np.sqrt(np.diag(np.linalg.inv(-finite_difference_hessian(loglik, theta))))
    se = gm.standard_errors(X)
    got = np.r_[se.weights[0], se.means.ravel(),
                np.concatenate([c[iu] for c in se.covariances])]
    np.testing.assert_allclose(got, expected, rtol=2e-3)
    assert se.weights[1] == pytest.approx(se.weights[0], rel=1e-9)


@pytest.mark.slow
def test_singular_information_says_why():
    X, _ = make_mixture(200, 2, 1, seed=3)
    gm = GaussianMixture(2, n_init=2, random_state=0).fit(X)
    # Both components at the one-Gaussian fit: a stationary point where the weights
    # change nothing (not a point that merely is no maximum).
    gm.means_ = np.stack([X.mean(0)] * 2)
    gm.covariances_ = np.stack([np.cov(X.T, bias=True)] * 2)
    # (at a saddle or a flat ridge, by the sign of the data's fourth moments: either way
    # the sentence names the cause)
    with pytest.raises(ValueError, match="information matrix is (singular|not positive "
                                         "definite).*components (may )?coincide"):
        gm.standard_errors(X)


@pytest.mark.slow
def test_standard_errors_agree_with_a_parametric_bootstrap():
    X, _ = make_mixture(400, 2, 2, seed=5, separation=6.0)
    gm = GaussianMixture(2, n_init=4, random_state=0).fit(X)
    se = gm.standard_errors(X)
    draws = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in range(60):
            Xb, _ = gm.sample(len(X))
            fit = GaussianMixture(2, means_init=gm.means_, weights_init=gm.weights_,
                                  precisions_init=gm.precisions_, random_state=b).fit(Xb)
            # Started at the estimate, the components keep their labels.
            assert np.abs(fit.means_ - gm.means_).max() < 1.0
            draws.append(fit.means_)
    boot = np.std(np.array(draws), axis=0)
    ratio = boot / se.means
    assert np.all((ratio > 0.6) & (ratio < 1.6)), ratio
