"""EM's own guarantees, for every covariance type and initialisation."""

import warnings

import jax
import numpy as np
import pytest
from _numerics import PLAIN_EM
from conftest import COV_TYPES

from emwidgets import GaussianMixture


def is_pd(cov, cov_type):
    mats = {
        "full": lambda c: c,
        "tied": lambda c: c[None],
        "diag": lambda c: np.stack([np.diag(v) for v in c]),
        "spherical": lambda c: c[:, None, None] * np.ones((1, 1, 1)),
    }[cov_type](cov)
    return all(np.linalg.eigvalsh(m).min() > 0 for m in mats)


@pytest.mark.slow
@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random", "random_from_data"])
def test_log_likelihood_never_decreases(x64, blobs, cov_type, init):
    X, _ = blobs
    gm = GaussianMixture(3, covariance_type=cov_type, init_params=init, n_init=6, tol=1e-8,
                         max_iter=60, random_state=1).fit(X)
    for r in range(6):
        trace = gm.restarts_.trace[r]
        trace = trace[~np.isnan(trace)]
        assert len(trace) >= 2
        # EM's monotonicity, up to float64 rounding of a mean of 400 terms.
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:])), (r, np.diff(trace).min())


@pytest.mark.slow
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_float32_trace_is_monotone_up_to_rounding(blobs, cov_type):
    X, _ = blobs
    gm = GaussianMixture(3, covariance_type=cov_type, n_init=4, init_params="random",
                         tol=1e-5, random_state=0).fit(X)
    assert gm.restarts_.trace.dtype == np.float64  # reported in float64 ...
    assert gm.means_.dtype == np.float64
    for trace in gm.restarts_.trace:
        trace = trace[~np.isnan(trace)]
        assert np.all(np.diff(trace) >= -1e-5 * np.abs(trace[1:]))


@pytest.mark.slow
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_responsibilities_and_covariances(blobs, cov_type):
    X, _ = blobs
    gm = GaussianMixture(3, covariance_type=cov_type, n_init=5, random_state=0).fit(X)
    resp = gm.predict_proba(X)
    np.testing.assert_allclose(resp.sum(1), 1.0, rtol=1e-12)
    assert (resp >= 0).all()
    for r in range(5):
        assert is_pd(gm.restarts_.params["covariances"][r], cov_type)
    np.testing.assert_allclose(gm.restarts_.params["weights"].sum(1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_best_restart_beats_every_other(blobs):
    X, _ = blobs
    gm = GaussianMixture(3, n_init=12, init_params="random_from_data", random_state=2).fit(X)
    r = gm.restarts_
    assert gm.lower_bound_ == pytest.approx(r.objective.max())
    assert (gm.lower_bound_ >= r.objective).all()
    np.testing.assert_allclose(gm.means_, r.params["means"][r.best])
    frame = r.to_frame()
    assert frame.loc[r.best, "rank"] == 1
    assert sorted(frame["rank"]) == list(range(1, 13))


@pytest.mark.parametrize("rule", ["default", "scikit-learn"])
def test_restart_trace_ends_where_the_restart_stopped(blobs, rule):
    """Every restart's trace holds its iterations and nothing after; by scikit-learn's rule a
    restart converged exactly when its last change was below tol."""
    X, _ = blobs
    kw = dict(PLAIN_EM, tol=1e-3) if rule == "scikit-learn" else {}
    gm = GaussianMixture(3, n_init=6, init_params="random", random_state=0, **kw).fit(X)
    r = gm.restarts_
    for i in range(6):
        n = r.n_iter[i]
        assert np.isfinite(r.trace[i, :n]).all() and np.isnan(r.trace[i, n:]).all()
        assert r.trace[i, n - 1] == pytest.approx(r.objective[i])
        if rule == "scikit-learn":
            assert r.converged[i] == (abs(r.trace[i, n - 1] - r.trace[i, n - 2]) < gm.tol)


@pytest.mark.slow
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_vmapped_restarts_equal_a_loop_over_restarts(x64, blobs, cov_type):
    """Each restart replayed alone (its own key, batch of one) gives the same fit."""
    X, _ = blobs
    # (plain EM: SQUAREM's extrapolations amplify a batch's other rounding into 1e-9
    # differences; the property list's vmap row holds every estimator to it as well)
    gm = GaussianMixture(3, covariance_type=cov_type, n_init=4, init_params="kmeans",
                         random_state=5, **PLAIN_EM).fit(X)
    for r in range(4):
        alone = gm.replay(X, r)
        assert alone.n_iter_ == gm.restarts_.n_iter[r]
        np.testing.assert_allclose(alone.means_, gm.restarts_.params["means"][r], rtol=1e-9)
        np.testing.assert_allclose(alone.covariances_, gm.restarts_.params["covariances"][r],
                                   rtol=1e-9)
        np.testing.assert_allclose(alone.restarts_.trace[0], gm.restarts_.trace[r], rtol=1e-9)


def test_chunked_run_equals_batch_fit_exactly(blobs):
    X, _ = blobs
    kw = dict(n_components=3, n_init=6, init_params="random", tol=1e-6, random_state=3)
    batch = GaussianMixture(**kw).fit(X)
    live_est = GaussianMixture(**kw)
    live = live_est.start(X)
    seen = []
    while not live.done:
        live.advance(2)
        seen.append(live.iteration)
        snap = live.snapshot()
        assert snap.trace.shape == batch.restarts_.trace.shape
    live.finish()
    assert seen == sorted(seen) and len(seen) > 2
    np.testing.assert_array_equal(live_est.restarts_.trace, batch.restarts_.trace)
    np.testing.assert_array_equal(live_est.means_, batch.means_)
    np.testing.assert_array_equal(live_est.covariances_, batch.covariances_)


def test_same_random_state_same_result_and_different_seed_differs(blobs):
    X, _ = blobs
    a = GaussianMixture(3, n_init=4, init_params="random", random_state=7).fit(X)
    b = GaussianMixture(3, n_init=4, init_params="random", random_state=7).fit(X)
    c = GaussianMixture(3, n_init=4, init_params="random", random_state=8).fit(X)
    np.testing.assert_array_equal(a.restarts_.trace, b.restarts_.trace)
    np.testing.assert_array_equal(a.restarts_.keys, b.restarts_.keys)
    assert not np.array_equal(a.restarts_.keys, c.restarts_.keys)


def test_each_fit_computes_in_its_own_precision(blobs):
    """``dtype``: float64 by default on a CPU and float32 when asked, whatever JAX's global
    x64 flag says, which a fit leaves as it was; a live fit advanced from another thread
    (the explorer's worker) keeps its precision."""
    import threading

    X, _ = blobs
    assert jax.default_backend() != "cpu" or not jax.config.jax_enable_x64
    live = GaussianMixture(2, n_init=2, init_params="random", random_state=0,
                           tol=1e-12).start(X)
    assert live.run.state.params.means.dtype == np.float64
    assert not jax.config.jax_enable_x64
    worker = threading.Thread(target=live.advance, args=(3,))
    worker.start()
    worker.join()
    assert live.iteration == 3 and live.run.state.params.means.dtype == np.float64
    with jax.enable_x64(True):
        live32 = GaussianMixture(2, n_init=2, random_state=0, dtype="float32").start(X)
        assert jax.config.jax_enable_x64
    assert live32.advance(2).run.state.params.means.dtype == np.float32
    with pytest.raises(ValueError, match="Invalid value for 'dtype'"):
        GaussianMixture(2, dtype="float16").fit(X)


@pytest.mark.slow
def test_kmeans_init_is_the_hard_em_limit(blobs):
    """The k-means initialisation equals our KMeans run on the same key."""
    from emwidgets import KMeans

    X, labels = blobs
    for seed in range(3):
        # No EM iteration: the means are those of the final k-means partition (the
        # samples nearest to each final centre: one more Lloyd step, in NumPy here).
        gm = GaussianMixture(3, n_init=1, random_state=seed, max_iter=0).fit(X)
        km = KMeans(3, n_init=1, random_state=seed).fit(X)
        nearest = ((X[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1).argmin(1)
        partition_means = np.stack([X[nearest == c].mean(0) for c in range(3)])
        np.testing.assert_allclose(gm.means_, partition_means, rtol=1e-5, atol=1e-6)
    from sklearn.metrics import adjusted_rand_score

    gm = GaussianMixture(3, n_init=4, random_state=0, max_iter=1, tol=1e9).fit(X)
    assert adjusted_rand_score(labels, gm.predict(X)) > 0.8


@pytest.mark.slow
def test_grouped_restarts_equal_one_batch(x64, blobs):
    """Restarts run as sequential vmapped groups give the batch's results."""
    import jax.numpy as jnp

    from emwidgets.core import em

    X, _ = blobs
    live = GaussianMixture(3, n_init=8, init_params="random", random_state=0).start(X)
    run = live.run
    results = {}
    for g in (8, 4, 1):
        advance = em.make_runner(G_model(), 448, g)
        results[g] = advance(run.state, run.data, run.hyper, run.tol, jnp.int32(100))
    for g in (4, 1):
        np.testing.assert_array_equal(results[g].n_iter, results[8].n_iter)
        np.testing.assert_allclose(results[g].trace, results[8].trace, rtol=1e-10)
        np.testing.assert_allclose(results[g].params.means, results[8].params.means, rtol=1e-10)
    assert int(results[1].iteration) == int(results[8].iteration)
    # And the k-means grouping rule: big problems run one restart at a time.
    assert em.group_size_for(16, 1e6, 2**20) == 2 and em.group_size_for(16, 2**20, 2**20) == 1
    assert em.group_size_for(10, 100, 2**20) == 10 and em.group_size_for(12, 2**18, 2**20) == 4


def G_model():
    from emwidgets.core import gmm

    return gmm.gmm_family("full")


def test_coarser_blocks_divide_the_padded_data():
    from emwidgets.core.layout import coarser_block

    assert coarser_block(13 * 8192, 8192, 10, budget=2**22) == 13 * 8192
    assert coarser_block(12 * 1024, 1024, 1000, budget=4096 * 1000) == 4096
    assert coarser_block(12 * 1024, 1024, 10**9, budget=1) == 1024


def test_a_stopping_rule_is_an_object_the_driver_takes(x64, blobs):
    """A rule written outside the driver (here: stop once the log-likelihood reaches a
    level) plugs into it unchanged (core/iteration.py): each restart stops at the first
    iteration of its full run whose objective reaches the level, and a restart that never
    reaches it runs on as before."""
    import dataclasses

    import jax.numpy as jnp

    from emwidgets.core import em, iteration

    @dataclasses.dataclass(frozen=True)
    class Reached(iteration.ChangeRule):
        level: float = 0.0
        key = "reached"

        def plain(self, change, before, objective, new_objective, params, new_params, tol,
                  active, finite):
            return new_objective >= self.level, before

    X, _ = blobs
    live = GaussianMixture(3, n_init=6, init_params="random", random_state=0, tol=1e-12,
                           max_iter=60).start(X)
    run = live.run
    full = em.make_runner(G_model(), run.block_size)(run.state, run.data, run.hyper, run.tol,
                                                     jnp.int32(60))
    trace = np.asarray(full.trace)
    level = float(np.nanmedian(trace[:, 5]))
    stopped = em.make_runner(G_model(), run.block_size, rule=Reached(level))(
        run.state, run.data, run.hyper, run.tol, jnp.int32(60))
    for r in range(6):
        reached = np.flatnonzero(trace[r] >= level)
        ran = np.isfinite(np.asarray(stopped.trace[r])).sum()
        if len(reached):
            assert ran == reached[0] + 1 and int(stopped.status[r]) == em.CONVERGED
            np.testing.assert_array_equal(stopped.trace[r, :ran], trace[r, :ran])
        else:
            assert ran == np.isfinite(trace[r]).sum()
    # The rule took effect: some restart stopped before the full run's did.
    assert (np.isfinite(np.asarray(stopped.trace)).sum(1) < np.isfinite(trace).sum(1)).any()


def test_a_fit_that_stopped_short_says_so():
    """The change rule stops EM where it crawls while the objective has far to go: the fit
    warns with Aitken's estimate of the distance (two 1-D Gaussians 1.5 sd apart, default
    tol: about 2e-3 nats per sample to go, twice tol); a random start on Old Faithful that
    stops after two iterations on a plateau says it could not tell; a converged fit (Old
    Faithful from k-means starts) and the gap rule's fit of the first case say nothing."""
    from emwidgets import ConvergenceWarning, datasets

    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0.5, 1, 860), rng.normal(2.0, 1, 140)][:, None]
    sklearn = dict(PLAIN_EM, tol=1e-3)  # scikit-learn's rule, the defaults before issue 28
    with pytest.warns(ConvergenceWarning, match="nats per sample short of its limit"):
        short = GaussianMixture(2, random_state=0, **sklearn).fit(X)
    assert short.restarts_.gap[short.restarts_.best] > short.tol
    faithful = datasets.load_faithful()
    with pytest.warns(ConvergenceWarning, match="after 2 iterations, too few"):
        GaussianMixture(2, init_params="random", n_init=16, random_state=0, **sklearn).fit(
            faithful)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        GaussianMixture(2, n_init=4, random_state=0, **sklearn).fit(faithful)
        gap = GaussianMixture(2, random_state=0, convergence="gap", tol=1e-3,
                              accelerate=None, max_iter=5000).fit(X)
        default = GaussianMixture(2, random_state=0).fit(X)
        GaussianMixture(2, init_params="random", n_init=16, random_state=0).fit(faithful)
    assert gap.lower_bound_ > short.lower_bound_ + 1e-3
    assert default.lower_bound_ > gap.lower_bound_
