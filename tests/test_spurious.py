"""Spurious maxima (a component at the covariance floor, or on fewer points than its
parameters) are flagged, ranked after regular solutions, warned about and said."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone

from emwidgets import GaussianHMM, GaussianMixture, Restarts, SpuriousSolutionWarning, datasets
from emwidgets.compare import POINTS_NEEDED, rank_restarts, spurious_report
from emwidgets.widgets.session import FitSession, snapshot_from_estimator

NOTEBOOK_03 = dict(init_params="random_from_data", n_init=32, tol=1e-4, max_iter=300,
                   random_state=2)


@pytest.fixture(scope="module")
def iris():
    return datasets.load_iris().drop(columns="Species").to_numpy()


@pytest.fixture(scope="module")
def iris_fits(iris):
    """Notebook 03's configuration, ranked both ways (one compiled program)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ranked = GaussianMixture(3, **NOTEBOOK_03).fit(iris)
        allowed = GaussianMixture(3, spurious="allow", **NOTEBOOK_03).fit(iris)
    return ranked, allowed, caught


def synthetic_restarts(objective, status, spurious, spurious_last=True):
    r = len(objective)
    failed = np.isin(status, ["degenerate", "non-finite objective"])
    order = rank_restarts(objective, failed, spurious, spurious_last)
    return Restarts(objective=np.asarray(objective, float), n_iter=np.ones(r, int),
                    converged=np.asarray(status) == "converged", status=list(status),
                    trace=np.zeros((r, 1)), params={}, keys=np.zeros((r, 2), np.uint32),
                    bad_component=np.full(r, -1), bad_iteration=np.full(r, -1),
                    best=int(order[0]), messages=[""] * r, spurious=np.asarray(spurious),
                    spurious_last=spurious_last)


def test_ranking_puts_spurious_after_regular_and_failed_last():
    objective = [5.0, -1.0, -0.5, 9.0, -3.0, 2.0]
    status = ["converged", "converged", "max_iter reached", "degenerate", "converged",
              "converged"]
    spurious = [True, False, False, False, False, True]
    r = synthetic_restarts(objective, status, spurious)
    np.testing.assert_array_equal(r.ranking(), [2, 1, 4, 0, 5, 3])
    assert r.best == 2
    frame = r.to_frame()
    assert list(frame["rank"]) == [4, 2, 1, 6, 3, 5]
    assert list(frame["spurious"]) == spurious
    # 'allow': by objective alone (failed still last); every restart spurious: the best of them.
    allow = synthetic_restarts(objective, status, spurious, spurious_last=False)
    np.testing.assert_array_equal(allow.ranking(), [0, 5, 2, 1, 4, 3])
    every = synthetic_restarts(objective, status, [True] * 6)
    assert every.best == 0


@pytest.mark.parametrize("cov_type", ["full", "tied", "diag", "spherical"])
def test_the_two_rules_at_their_thresholds(cov_type):
    d, k = 3, 2
    needed = POINTS_NEEDED[cov_type](d)
    assert needed == {"full": 4, "tied": 1, "diag": 2, "spherical": 2}[cov_type]
    shape = {"full": (2, k, d, d), "tied": (2, d, d), "diag": (2, k, d), "spherical": (2, k)}
    eye = {"full": np.eye(d), "tied": np.eye(d), "diag": np.ones(d), "spherical": 1.0}[cov_type]
    covs = np.broadcast_to(eye, shape[cov_type]).copy()
    nk = np.array([[needed - 0.5, 50.0], [needed + 0.5, 50.0]])
    rep = spurious_report(cov_type, nk, covs, d, reg_covar=1e-6, data_variance=1.0, eps=0.0)
    np.testing.assert_array_equal(rep.spurious, [True, False])
    assert rep.component[0] == 0 and "fewer than the" in rep.reasons[0]
    # A covariance 10 x reg_covar is at the floor; 11 x is not (float64: no rounding term).
    nk = np.full((2, k), 100.0)
    for r, factor in enumerate((10.0, 11.0)):
        if cov_type == "full":
            covs[r, 1] = np.diag([1.0, factor * 1e-6, 1.0])
        elif cov_type == "tied":
            covs[r] = np.diag([1.0, factor * 1e-6, 1.0])
        elif cov_type == "diag":
            covs[r, 1] = [1.0, factor * 1e-6, 1.0]
        else:
            covs[r, 1] = factor * 1e-6
    rep = spurious_report(cov_type, nk, covs, d, reg_covar=1e-6, data_variance=1.0, eps=0.0)
    np.testing.assert_array_equal(rep.spurious, [True, False])
    assert "reg_covar floor" in rep.reasons[0]
    if cov_type != "spherical":
        assert "along feature 1" in rep.reasons[0]
    # With reg_covar = 0 the floor is the rounding level: 10 epsilons of the column's
    # variance (here 1): 10 x 10 x 1.05e-7 flags the first restart's 1e-5, not 1.1e-5.
    rep = spurious_report(cov_type, nk, covs, d, reg_covar=0.0, data_variance=1.0,
                          eps=1.05e-7)
    np.testing.assert_array_equal(rep.spurious, [True, False])
    assert "collapsed" in rep.reasons[0]


def test_the_rounding_floor_is_each_columns_own():
    """Wine's case: a column of variance 0.01 beside proline's 1e5. A component with 0.009
    along the small column is regular (the old rule, 10 epsilons of the *mean* variance,
    33,000, put the float32 floor at 0.33 and called it collapsed); one with 1e-9 there,
    1e-7 of the column's variance, has collapsed."""
    variance = np.array([1e5, 1.0, 1e-2])
    covs = np.array([[np.diag([5e4, 0.5, 0.009]), np.diag([5e4, 0.5, 1e-9])]])
    rep = spurious_report("full", np.array([[60.0, 60.0]]), covs, 3, reg_covar=0.0,
                          data_variance=variance, eps=1.2e-7)
    np.testing.assert_array_equal(rep.at_floor, [[False, True]])
    assert "collapsed along feature 2" in rep.reasons[0]
    # (measured against the mean variance, as before, the regular component is flagged)
    old = spurious_report("full", np.array([[60.0]]), covs[:, :1], 3, reg_covar=0.0,
                          data_variance=np.full(3, variance.mean()), eps=1.2e-7)
    assert old.spurious.all()


def test_notebook_03_collapse_is_flagged_and_not_kept(iris, iris_fits):
    ranked, allowed, caught = iris_fits
    r = ranked.restarts_
    top = int(np.argmax(r.objective))
    # An independent look at the highest-likelihood restart: a component with a covariance
    # eigenvalue at reg_covar, centred on petal width 0.2 (29 setosa flowers share it).
    covs = r.params["covariances"][top]
    smallest = np.linalg.eigvalsh(covs).min(axis=1)
    j = int(np.argmin(smallest))
    assert smallest[j] < 1e-5 and (iris[:, 3] == 0.2).sum() == 29
    assert r.params["means"][top][j][3] == pytest.approx(0.2, abs=1e-3)
    assert r.params["weights"][top][j] * len(iris) == pytest.approx(29, abs=0.5)
    assert r.spurious[top] and "reg_covar floor along feature 3" in r.messages[top]
    # Not kept: the best regular restart is, and every fitted attribute is its.
    b = r.best
    assert not r.spurious[b] and r.objective[b] < r.objective[top]
    regular = ~r.spurious & ~r.failed
    assert r.objective[b] == pytest.approx(r.objective[regular].max())
    assert np.linalg.eigvalsh(ranked.covariances_).min() > 1e-3
    np.testing.assert_array_equal(ranked.means_, r.params["means"][b])
    np.testing.assert_array_equal(ranked.covariances_, r.params["covariances"][b])
    assert ranked.lower_bound_ == r.objective[b]
    assert ranked.score(iris) == pytest.approx(r.objective[b], abs=1e-4)
    frame = r.to_frame()
    assert frame.loc[b, "rank"] == 1 and frame.loc[top, "rank"] > regular.sum()
    # Warned at fit; 'allow' keeps the collapse, flagged, and says so.
    messages = [str(w.message) for w in caught if w.category is SpuriousSolutionWarning]
    assert any("rank after the regular solutions" in m for m in messages)
    assert allowed.restarts_.best == top and allowed.lower_bound_ == r.objective[top]
    assert any("(spurious='allow')" in m for m in messages)
    # The status line says it.
    summary = FitSession._summary(snapshot_from_estimator(ranked, iris))
    assert f"best regular solution {r.objective[b]:.4f} (restart {b})" in summary
    assert f"{int(r.spurious.sum())} restarts spurious, ranked last" in summary


def test_five_rows_with_five_components_are_flagged():
    X = np.random.default_rng(0).normal(size=(5, 2))
    with pytest.warns(SpuriousSolutionWarning, match="Every restart ended on a spurious"):
        gm = GaussianMixture(5, n_init=4, random_state=0).fit(X)
    r = gm.restarts_
    assert r.spurious.all() and all("holds 1.0 points" in m for m in r.messages)
    assert r.best == int(np.argmax(r.objective))  # the best of them, flagged
    summary = FitSession._summary(snapshot_from_estimator(gm, X))
    assert "no regular solution" in summary and "spurious maximum" in summary


@pytest.mark.parametrize("cov_type, flagged", [("full", True), ("diag", True),
                                               ("spherical", False)])
def test_a_constant_column_is_flagged_where_it_makes_the_likelihood_unbounded(cov_type, flagged):
    """full/tied/diag variances along a constant column sit at reg_covar (the likelihood
    grows as reg_covar shrinks); a spherical variance averages over the columns and stays
    proper, so there is nothing spurious to flag."""
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=(120, 2)), np.full(120, 3.0)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gm = GaussianMixture(2, covariance_type=cov_type, n_init=3, random_state=0).fit(X)
    assert bool(gm.restarts_.spurious.all()) is flagged
    assert any(w.category is SpuriousSolutionWarning for w in caught) is flagged
    if flagged:
        assert "along feature 2" in gm.restarts_.messages[gm.restarts_.best]


@pytest.mark.parametrize("cov_type", ["full", "tied", "diag", "spherical"])
def test_regular_fits_are_not_flagged(blobs, cov_type):
    X, _ = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpuriousSolutionWarning)
        gm = GaussianMixture(3, covariance_type=cov_type, n_init=3, random_state=0).fit(X)
    assert not gm.restarts_.spurious.any()
    assert "spurious" not in FitSession._summary(snapshot_from_estimator(gm, X))


@pytest.mark.slow
def test_missing_values_and_prior_paths_are_checked(blobs):
    X, _ = blobs
    holed = X.copy()
    holed[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    gm = GaussianMixture(3, missing="em", n_init=3, random_state=0).fit(holed)
    assert not gm.restarts_.spurious.any()
    # Five rows, five components: a prior keeps every covariance proper, but one point per
    # component still cannot determine its parameters.
    few = np.random.default_rng(0).normal(size=(5, 2))
    with pytest.warns(SpuriousSolutionWarning):
        mp = GaussianMixture(5, n_init=3, random_state=0, prior="default").fit(few)
    assert mp.restarts_.spurious.all()
    assert all("fewer than the 3 its full covariance needs" in m and "floor" not in m
               for m in mp.restarts_.messages)


def test_float32_collapse_without_reg_covar_is_refused_or_flagged():
    """Whatever the CPU's rounding: maximum likelihood on a cluster of two tied points
    either fails with the reg_covar sentence or is flagged; the prior's fit is regular."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(60, 3)), rng.normal(size=(60, 3)) + [8.0, 0, 0],
                        np.repeat([[0.0, 9.0, 0.0], [0.4, 9.5, 0.3]], 15, axis=0)])
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            ml = GaussianMixture(3, reg_covar=0.0, n_init=4, random_state=0).fit(X)
    except ValueError as exc:
        assert "increase reg_covar" in str(exc)
    else:
        collapsed = [np.linalg.eigvalsh(c).min() < 1e-4 for c in ml.covariances_]
        assert not any(collapsed) or ml.restarts_.spurious[ml.restarts_.best]
    mp = GaussianMixture(3, reg_covar=0.0, n_init=4, random_state=0, prior="default").fit(X)
    assert not mp.restarts_.spurious.any()


def test_hmm_state_on_a_constant_regime_is_flagged():
    rng = np.random.default_rng(0)
    regime = np.repeat([0, 1, 0, 1], 60)
    noisy = np.where(regime[:, None] == 1, 5.0, 0.0) + rng.normal(size=(240, 2))
    tied = noisy.copy()
    tied[regime == 1] = [5.0, 5.0]  # one regime is a single repeated value
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpuriousSolutionWarning)
        regular = GaussianHMM(2, covariance_type="full", n_init=3, random_state=0).fit(noisy)
    assert not regular.restarts_.spurious.any()
    with pytest.warns(SpuriousSolutionWarning, match="min_covar floor"):
        hmm = GaussianHMM(2, covariance_type="full", n_init=3, random_state=0).fit(tied)
    assert hmm.restarts_.spurious.all()


def test_the_policy_is_a_parameter_scikit_learn_can_clone():
    gm = GaussianMixture(2, spurious="allow")
    assert clone(gm).get_params()["spurious"] == "allow"
    assert GaussianMixture().get_params()["spurious"] == "rank_last"
    assert clone(GaussianHMM(spurious="allow")).spurious == "allow"
    with pytest.raises(ValueError, match="spurious"):
        GaussianMixture(2, spurious="drop").fit(np.random.default_rng(0).normal(size=(20, 2)))


def test_model_selection_passes_over_models_whose_every_restart_collapsed():
    """Fifteen points in three groups of five: a fourth full-covariance component must split
    a group and hold fewer points than its five parameters, so every restart with four
    components is spurious. That model is marked and the best is a regular one."""
    import warnings

    from emwidgets import select_model

    rng = np.random.default_rng(0)
    X = np.repeat(np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]]), 5, axis=0)
    X = X + rng.normal(scale=0.5, size=X.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing leaks out of the grid as a warning
        result = select_model(X, range(1, 5), ["full"], n_init=4, random_state=0)
    table = result.table.set_index("n_components")
    assert list(table["spurious"]) == [False, False, False, True], table
    assert "spurious maximum" in table.loc[4, "message"]
    best = result.best.restarts_
    assert result.best_key[0] != 4 and not best.spurious[best.best]


def test_the_ranking_axis_stays_readable_at_a_tiny_tolerance():
    """tol=1e-300 (a run to max_iter, as the teaching tests use): the symlog axis was linear
    within 1e-300 and drew 300 decades of nothing above gaps of 1e-5 (seen in a browser
    screenshot); it is linear within a billionth of the objective at least."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emwidgets.plotting import draw_ranking

    objective = -3.8763 - np.array([0.0, 1.5e-5, 4e-5, 5e-5, 2e-3])
    fig, ax = plt.subplots()
    draw_ranking(ax, objective, np.arange(5), 0, tol_objective=1e-300)
    lo, hi = ax.get_ylim()
    assert lo < -2e-3 and ax.yaxis.get_transform().linthresh >= 3e-9
    fig.canvas.draw()
    decades = [t for t in ax.get_yticks() if lo <= t <= hi and t != 0]
    assert len(decades) <= 8, decades  # about -1e-2 .. -1e-9, not -1e-5 .. -1e-299
    plt.close(fig)


def test_a_spurious_component_is_named_along_the_users_column():
    # The reason named "feature 2" where the user's frame calls it Petal.Length.
    X = datasets.load_iris().select_dtypes("number")
    gm = GaussianMixture(8, n_init=16, covariance_type="diag", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
    along = [m for m in gm.restarts_.spurious_reasons if " along " in m]
    assert along, gm.restarts_.spurious_reasons
    assert all(any(f"along {c} " in m for c in X.columns) for m in along), along
    assert not any("feature " in m for m in gm.restarts_.spurious_reasons)
