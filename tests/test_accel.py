"""Accelerated EM (accelerate='squarem', core/accel.py): the same optimum as plain EM,
its properties (monotone, vmap = each restart alone, live = batch), no NaN, and the
convergence-gap estimate against the true remaining gap."""
# ruff: noqa: F811 (the fixtures imported from test_families are arguments here)

import warnings

import jax
import numpy as np
import pytest
from _numerics import PLAIN_EM
from test_families import FAMILIES, family_data, survey  # noqa: F401 (fixtures)

from emwidgets import GaussianHMM, GaussianMixture, PoissonMixture, datasets
from emwidgets.estimators.base import remaining_gap


def _deaths():
    d = datasets.load_deaths()
    return d[["deaths_per_day"]].to_numpy(float), d["n_days"].to_numpy(float)


def _gaussian_cases():
    rng = np.random.default_rng(4)
    X = np.concatenate([rng.normal([0, 0, 0], 1.0, (150, 3)),
                        rng.normal([2.0, 1.5, 0.5], [1.0, 0.6, 1.2], (150, 3))])
    Xm = X.copy()
    Xm[rng.random(len(X)) < 0.25, 1] = np.nan
    kw = dict(n_init=4, tol=1e-11, max_iter=20000, random_state=1)
    cases = {f"gmm {c}": (GaussianMixture(2, covariance_type=c, **kw), X)
             for c in ("full", "diag", "spherical", "tied")}
    cases["gmm missing"] = (GaussianMixture(2, missing="em", **kw), Xm)
    cases["gmm MAP"] = (GaussianMixture(2, prior="default", **kw), X)
    cases["gaussian hmm"] = (GaussianHMM(2, covariance_type="full", n_init=4, tol=1e-11,
                                         n_iter=20000, random_state=1), X)
    return cases


GAUSSIAN = _gaussian_cases()
ALL = list(GAUSSIAN) + list(FAMILIES)


def _case(name, data, accelerate):
    if name in GAUSSIAN:
        est, X = GAUSSIAN[name]
        est = type(est)(**est.get_params())
    else:
        est, X = FAMILIES[name](data)
        budget = "n_iter" if "n_iter" in est.get_params() else "max_iter"
        est.set_params(tol=1e-11, **{budget: 20000})
    return est.set_params(accelerate=accelerate), X


def _fit(est, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X)


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_squarem_reaches_plain_ems_optimum_from_the_same_starts(x64, family_data, name):
    plain = _fit(*_case(name, family_data, None)).restarts_
    fast = _fit(*_case(name, family_data, "squarem")).restarts_
    assert abs(plain.objective.max() - fast.objective.max()) < 1e-8
    # Restart by restart: those that end at the same optimum have the same parameters.
    same = np.flatnonzero(np.abs(plain.objective - fast.objective) < 1e-9)
    assert len(same) >= 2, (plain.objective, fast.objective)
    flat_a = jax.tree_util.tree_flatten_with_path(plain.params)[0]
    for (path, a), b in zip(flat_a, jax.tree.leaves(fast.params)):
        a, b = np.asarray(a)[same], np.asarray(b)[same]
        if "dof" in jax.tree_util.keystr(path):
            # A t component's degrees of freedom near the cap (200: a Gaussian to plotting
            # accuracy) move the log-likelihood by under 1e-9: not identified, compared
            # where they are (below 50).
            keep = (a < 50) & (b < 50)
            a, b = a[keep], b[keep]
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4)
    # It counted its EM maps (three a cycle, one to start), accepted extrapolations, and
    # cost at most a few maps more where plain EM converges fast (a cycle is three maps;
    # the slow cases, where it gains tenfold, are tested below).
    assert (fast.n_evals == 3 * fast.n_iter + 1).all()
    assert fast.accepted.sum() > 0 and plain.accepted is None
    slowest = np.median(plain.n_evals)
    assert np.median(fast.n_evals) <= max(1.25 * slowest, slowest + 6), (fast.n_evals,
                                                                          plain.n_evals)


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_squarem_objective_never_decreases(x64, family_data, name):
    fast = _fit(*_case(name, family_data, "squarem")).restarts_
    for trace in fast.trace:
        trace = trace[np.isfinite(trace)]
        assert len(trace) >= 2
        assert np.all(np.diff(trace) >= -1e-10 * np.abs(trace[1:])), np.diff(trace).min()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gmm full", "gmm missing", "latent class", "poisson hmm",
                                  "student"])
def test_squarem_restarts_batched_equal_each_alone(x64, family_data, name):
    est, X = _case(name, family_data, "squarem")
    est = _fit(est, X)
    r = 1
    alone = est.replay(X, r)
    assert alone.n_iter_ == est.restarts_.n_iter[r]
    np.testing.assert_allclose(alone.restarts_.trace[0], est.restarts_.trace[r], rtol=1e-9)
    for a, b in zip(jax.tree.leaves(alone.restarts_.params), jax.tree.leaves(est.restarts_.params)):
        np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b)[r], rtol=1e-7, atol=1e-12)


@pytest.mark.slow
def test_squarem_live_chunks_equal_the_batch_fit_exactly(family_data):
    est, X = _case("gmm full", family_data, "squarem")
    batch = _fit(est, X).restarts_
    live_est, _ = _case("gmm full", family_data, "squarem")
    live = live_est.start(X)
    while not live.done:
        live.advance(2)
    live.finish()
    np.testing.assert_array_equal(live_est.restarts_.trace, batch.trace)
    np.testing.assert_array_equal(live_est.restarts_.n_evals, batch.n_evals)
    np.testing.assert_array_equal(live_est.means_, est.means_)


@pytest.mark.slow
def test_deaths_maximum_likelihood_and_no_nan_over_a_thousand_starts(x64):
    """Hasselblad (1969): the published two-component Poisson mixture, p = 0.3599,
    lambda = 1.256, 2.663 (the SQUAREM paper's example); R's SQUAREM crashed on a NaN
    once in 50 starts."""
    X, w = _deaths()
    est = PoissonMixture(2, n_init=1000, tol=1e-12, max_iter=5000, accelerate="squarem",
                         init_params="random", random_state=0).fit(X, sample_weight=w)
    r = est.restarts_
    assert np.isfinite(r.objective).all() and np.isfinite(r.trace[:, 0]).all()
    for leaf in jax.tree.leaves(r.params):
        assert np.isfinite(leaf).all()
    assert not r.failed.any()
    o = np.argsort(est.rates_[:, 0])
    np.testing.assert_allclose(est.weights_[o][0], 0.3599, atol=5e-5)
    np.testing.assert_allclose(est.rates_[o, 0], [1.256, 2.663], atol=5e-4)


@pytest.mark.slow
def test_squarem_on_degenerate_data_flags_and_never_returns_nan(x64):
    rng = np.random.default_rng(0)
    X = np.concatenate([np.repeat(rng.normal(size=(5, 2)), 20, axis=0),  # duplicated points
                        np.column_stack([rng.normal(size=50), np.full(50, 3.0)])])  # constant
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = GaussianMixture(4, n_init=64, tol=1e-10, max_iter=2000, accelerate="squarem",
                              random_state=0).fit(X)
    r = est.restarts_
    ok = ~r.failed
    assert ok.any()
    assert np.isfinite(r.objective[ok]).all()
    for leaf in jax.tree.leaves(r.params):
        assert np.isfinite(np.asarray(leaf)[ok]).all()
    assert np.isfinite(est.means_).all() and np.isfinite(est.covariances_).all()


@pytest.mark.slow
def test_the_gap_estimate_tracks_the_true_remaining_gap(x64):
    """Plain EM stopped by scikit-learn's rule on an overlapping mixture stops short; the
    Aitken estimate from its last objectives is within a factor 2 of the true gap to the
    limit it would reach (the same start run on to 1e-13)."""
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, 1000), rng.normal(1.5, 1, 1000)][:, None]
    kw = dict(n_components=2, n_init=4, max_iter=100000, random_state=0, **PLAIN_EM)
    short = GaussianMixture(tol=1e-6, **kw).fit(X).restarts_
    limit = GaussianMixture(tol=1e-13, **kw).fit(X).restarts_
    true_gap = np.array([limit.trace[r][np.isfinite(limit.trace[r])][-1]
                         - short.trace[r][np.isfinite(short.trace[r])][-1] for r in range(4)])
    assert (true_gap > 1e-5).all()  # a real premature stop: 1e-6 per step, far more to go
    ratio = short.gap / true_gap
    assert ((ratio > 0.5) & (ratio < 2.0)).all(), (short.gap, true_gap)
    assert "gap" in short.to_frame()


def test_remaining_gap_of_a_geometric_series():
    steps = 0.1 * 0.9 ** np.arange(40)
    trace = np.r_[0.0, np.cumsum(steps)]
    limit = 0.1 / (1 - 0.9)
    np.testing.assert_allclose(remaining_gap(trace[None])[0], limit - trace[-1], rtol=1e-9)
    assert np.isnan(remaining_gap(np.array([[0.0, 1.0]]))[0])  # too short to say
    assert remaining_gap(np.array([[0.0, 1.0, 1.0]]))[0] == 0.0


def test_a_bad_accelerate_value_is_one_sentence():
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="accelerate.*None.*squarem"):
        GaussianMixture(2, accelerate="fast").fit(X)


def _overlapping(n=1000, seed=0):
    """A 1-D mixture of two unit Gaussians 1.5 sd apart: EM's slow case."""
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(0, 1, n // 2), rng.normal(1.5, 1, n // 2)][:, None]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["deaths", "overlapping"])
def test_squarem_needs_far_fewer_em_maps_where_em_is_slow(x64, case):
    """The slow cases of the SQUAREM literature (Hasselblad's deaths table; two components
    1.5 sd apart): from the same 12 random starts, to a tight tolerance, the same best
    optimum with at least 5x fewer EM maps in the median and in the slowest restart
    (which sets a batch's time). bench_accel.py reports the figures."""
    if case == "deaths":
        X, w = _deaths()
        make = lambda acc: PoissonMixture(  # noqa: E731
            2, n_init=12, tol=1e-10, max_iter=100000, init_params="random", random_state=0,
            accelerate=acc, convergence="change")
        fit = lambda est: est.fit(X, sample_weight=w)  # noqa: E731
    else:
        X = _overlapping()
        make = lambda acc: GaussianMixture(  # noqa: E731
            2, n_init=12, tol=1e-10, max_iter=100000, init_params="random", random_state=0,
            accelerate=acc, convergence="change")
        fit = lambda est: est.fit(X)  # noqa: E731
    plain, fast = fit(make(None)).restarts_, fit(make("squarem")).restarts_
    # The same optimum, or closer to it: plain EM's steps of 1e-10 here still leave 1e-8 to
    # go (the slow convergence that the gap estimate reports).
    assert fast.objective.max() >= plain.objective.max() - 1e-10
    assert fast.objective.max() - plain.objective.max() < 1e-6
    assert np.median(plain.n_evals) >= 5 * np.median(fast.n_evals), (plain.n_evals,
                                                                     fast.n_evals)
    assert plain.n_evals.max() >= 5 * fast.n_evals.max()


@pytest.mark.slow
def test_the_explorer_accelerates_and_counts_em_maps_on_its_axis():
    """The explorer's accelerate checkbox fits with SQUAREM; its convergence plot then
    counts EM maps (three a cycle), so a plain run and an accelerated one share an axis;
    the status names a premature stop of plain EM and not the accelerated one's."""
    from emwidgets import EMExplorer

    X = _overlapping()
    ex = EMExplorer(X, n_components=2, n_init=4, tol=1e-4, max_iter=5000)
    ex.run(block=True)
    s = ex.session
    assert s.estimator.accelerate is None
    assert ex.convergence.artists.ax.get_xlabel() == "iteration"
    assert "short of its limit" in s.status, s.status  # 1e-4 a step, 1e-3 to come
    ex.controls["accelerate"].value = True
    assert s.stale
    ex.run(block=True)
    est = s.estimator
    assert est.accelerate == "squarem" and est.restarts_.accepted.sum() > 0
    line = ex.convergence.artists.best_line
    assert ex.convergence.artists.ax.get_xlabel().startswith("EM maps")
    np.testing.assert_array_equal(np.diff(line.get_xdata()), 3)  # three EM maps a cycle
    assert est.restarts_.objective.max() > s.snapshot.restarts.objective.max() - 1e-6
    plain_best = GaussianMixture(2, n_init=4, tol=1e-4, max_iter=5000, random_state=0,
                                 **PLAIN_EM).fit(X).restarts_.objective.max()
    assert est.restarts_.objective.max() > plain_best  # closer to the optimum


@pytest.mark.slow
def test_the_gap_rule_stops_near_the_limit_where_the_change_rule_stops_short(x64):
    """convergence="gap" (Aitken's estimate of the distance still to go below tol as well):
    on two Gaussians 1.5 sd apart, scikit-learn's rule at tol=1e-6 stops about 4e-4 below
    the limit (an EM step there gains under 1e-6); the gap rule stops within a few tol."""
    X = _overlapping()
    kw = dict(n_components=2, n_init=4, max_iter=100000, random_state=0)
    limit = GaussianMixture(tol=1e-13, **kw, **PLAIN_EM).fit(X).restarts_.objective
    change = GaussianMixture(tol=1e-6, **kw, **PLAIN_EM).fit(X).restarts_
    gap = GaussianMixture(tol=1e-6, convergence="gap", accelerate=None, **kw).fit(X).restarts_
    assert (limit - change.objective).min() > 1e-4
    assert (limit - gap.objective).max() < 5e-6
    assert (gap.n_iter > change.n_iter).all()
    # Under SQUAREM the gap rule needs an accepted extrapolation that gains under tol too.
    fast = GaussianMixture(tol=1e-6, convergence="gap", accelerate="squarem", **kw).fit(X)
    assert (limit - fast.restarts_.objective).max() < (limit - change.objective).min() / 5
    assert (fast.restarts_.n_evals < gap.n_evals / 10).all()


def test_the_gap_rule_live_equals_batch_and_bad_values_are_one_sentence():
    X = _overlapping()
    kw = dict(n_components=2, n_init=4, tol=1e-5, max_iter=5000, random_state=0,
              convergence="gap")
    batch = GaussianMixture(**kw).fit(X)
    live_est = GaussianMixture(**kw)
    live = live_est.start(X)
    while not live.done:
        live.advance(3)  # chunks of three: the rule's memory crosses the seams
    live.finish()
    np.testing.assert_array_equal(live_est.restarts_.trace, batch.restarts_.trace)
    np.testing.assert_array_equal(live_est.restarts_.n_iter, batch.restarts_.n_iter)
    with pytest.raises(ValueError, match="convergence.*'change'.*'gap'"):
        GaussianMixture(2, convergence="aitken").fit(X)
