"""The estimators as a user meets them: inputs, errors, attributes, degenerate data."""

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from _numerics import PLAIN_EM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emwidgets import ConvergenceWarning, GaussianMixture, KMeans, NotFittedError


def test_numpy_jax_and_pandas_inputs_agree(blobs):
    X, _ = blobs
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    fits = [
        GaussianMixture(3, n_init=2, random_state=0).fit(data)
        for data in (X, jnp.asarray(X), df)
    ]
    for other in fits[1:]:
        # A JAX array is float32 unless x64 is on: equal up to its rounding.
        np.testing.assert_allclose(other.means_, fits[0].means_, rtol=1e-5)
    assert list(fits[2].feature_names_in_) == ["a", "b", "c"]
    assert not hasattr(fits[0], "feature_names_in_")
    with pytest.raises(ValueError, match="feature names"):
        fits[2].predict(df[["b", "a", "c"]])


def test_fitted_attributes_and_methods(blobs):
    X, _ = blobs
    gm = GaussianMixture(3, n_init=3, random_state=0).fit(X)
    assert gm.weights_.shape == (3,) and gm.means_.shape == (3, 3)
    assert (
        gm.covariances_.shape == gm.precisions_.shape == gm.precisions_cholesky_.shape == (3, 3, 3)
    )
    assert isinstance(gm.converged_, bool) and gm.n_iter_ >= 1
    assert gm.n_features_in_ == 3
    np.testing.assert_array_equal(gm.fit_predict(X), gm.predict(X))
    Xs, ys = gm.sample(500)
    assert Xs.shape == (500, 3) and ys.shape == (500,) and set(np.unique(ys)) <= {0, 1, 2}
    # Samples come from the model: their mean log-density is close to the model's entropy side.
    assert abs(gm.score(Xs) - gm.score(X)) < 0.5
    assert gm.bic(X) > gm.aic(X)  # log(400) > 2


def test_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        GaussianMixture(2).predict(np.zeros((3, 2)))
    with pytest.raises(NotFittedError):
        KMeans(2).predict(np.zeros((3, 2)))


BAD_INPUTS = [
    (np.array([[1.0, np.nan], [2.0, 3.0], [1.0, 1.0]]), "contains NaN"),
    (np.array([[1.0, np.inf], [2.0, 3.0], [1.0, 1.0]]), "infinity"),
    (np.arange(5.0), "Reshape your data"),
    (np.zeros((2, 2, 2)), "3 dimensions"),
    (np.zeros((1, 2)), "n_samples >= n_components"),
    (np.array([["a", "b"], ["c", "d"], ["e", "f"]]), "non-numeric"),
    (np.zeros((3, 2)) + 1j, "Complex data not supported"),
    (np.zeros((0, 2)), "0 sample"),
]


@pytest.mark.parametrize("X, message", BAD_INPUTS)
def test_bad_data_says_what_is_wrong(X, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2).fit(X)


@pytest.mark.parametrize("params, message", [
    ({"tol": 0}, "'tol'"), ({"tol": -1.0}, "'tol'"),
    ({"covariance_type": "banana"}, "covariance_type"),
    ({"init_params": "magic"}, "init_params"), ({"n_components": 0}, "n_components"),
    ({"n_init": 0}, "n_init"), ({"reg_covar": -1e-3}, "reg_covar"),
    ({"means_init": np.zeros((3, 2))}, "means_init"), ({"weights_init": [0.2, 0.2]}, "sum to 1"),
    ({"precisions_init": -np.ones((2, 2, 2))}, "positive-definite"),
])
def test_bad_parameters_say_what_is_wrong(params, message):
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match=message):
        GaussianMixture(**{"n_components": 2, **params}).fit(X)


def test_a_failed_fit_keeps_the_previous_result(blobs):
    X, _ = blobs
    gm = GaussianMixture(3, n_init=2, random_state=0).fit(X)
    means = gm.means_.copy()
    with pytest.raises(ValueError):
        gm.set_params(tol=-1).fit(X)
    np.testing.assert_array_equal(gm.means_, means)


@pytest.mark.slow
def test_duplicates_and_constant_features_never_give_nan():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(5, 2))
    X = np.repeat(base, 20, axis=0)  # 5 distinct points, 100 rows
    X = np.column_stack([X, np.full(len(X), 3.0)])  # and a constant feature
    for cov_type in ("full", "tied", "diag", "spherical"):
        gm = GaussianMixture(4, covariance_type=cov_type, n_init=4, random_state=0).fit(X)
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            assert np.isfinite(getattr(gm, name)).all(), (cov_type, name)
        assert np.isfinite(gm.score_samples(X)).all()


def test_a_collapsing_restart_is_flagged_and_the_others_count(x64):
    """Restart 1 starts with a component far from every sample: with reg_covar=0
    it owns nothing and its covariance collapses; restart 0 is healthy."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + 6])
    est = GaussianMixture(2, reg_covar=0.0, n_init=2, random_state=0, **PLAIN_EM)
    live = est.start(X)  # (plain EM: a SQUAREM state holds the start's EM map as well)
    p = live.run.state.params
    far = (np.array([50.0, 50.0]) - live.scaling.shift) / live.scaling.scale
    live.run.state = live.run.state._replace(params=p._replace(means=p.means.at[1, 0].set(far)))
    live.finish()
    r = est.restarts_
    assert r.status[1] == "degenerate" and r.bad_component[1] == 0 and r.bad_iteration[1] == 0
    assert "component 0" in r.messages[1] and "positive definite" in r.messages[1]
    assert r.status[0] == "converged" and r.best == 0
    assert np.isfinite(est.means_).all() and est.lower_bound_ == pytest.approx(r.objective[0])


def test_every_restart_collapsing_says_what_to_try():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0]]), 10, axis=0)
    with pytest.raises(ValueError, match="increase reg_covar"):
        GaussianMixture(3, reg_covar=0.0, n_init=3, init_params="random_from_data",
                        random_state=0).fit(X)


def test_convergence_warning_when_best_restart_hits_max_iter(blobs):
    X, _ = blobs
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        gm = GaussianMixture(3, max_iter=2, tol=1e-9, init_params="random", random_state=0).fit(X)
    assert gm.restarts_.status[0] == "max_iter reached" and gm.n_iter_ == 2


def test_tol_reg_covar_and_data_do_not_recompile(blobs):
    from emwidgets import _compiles

    X, _ = blobs
    GaussianMixture(3, n_init=4, random_state=0).fit(X)
    with _compiles.count(this_thread=True) as c:
        for tol, reg, shift in [(1e-2, 1e-5, 1.0), (1e-4, 1e-3, -2.0), (3e-3, 1e-6, 0.5)]:
            GaussianMixture(3, n_init=4, tol=tol, reg_covar=reg, random_state=1).fit(X + shift)
        # Nearby sample counts share one padded program too.
        GaussianMixture(3, n_init=4, random_state=0).fit(X[:390])
    assert c.programs == [], c.names
    # A static change (the number of components) does make new programs.
    with _compiles.count(this_thread=True) as c:
        GaussianMixture(7, n_init=4, random_state=0).fit(X)
    names = [p.name for p in c.programs]  # compiled, or loaded from the suite's cache
    assert all(any(p in name for name in names) for p in ("init_batch", "advance")), names


@pytest.mark.slow
def test_memory_of_the_compiled_fit_does_not_grow_with_n():
    """XLA's temporary buffers are bounded by the block, not by N."""
    sizes = {}
    for n in (40_000, 160_000):
        X = np.random.default_rng(0).normal(size=(n, 8))
        # (A random start: the k-means one would run its iterations on 160k rows first.)
        live = GaussianMixture(10, n_init=16, init_params="random", random_state=0).start(X)
        run = live.run
        compiled = run._advance.lower(
            run._device, run.data, run.hyper, run.tol, jnp.int32(1), jnp.int32(run.max_iter)
        ).compile()
        sizes[n] = compiled.memory_analysis().temp_size_in_bytes
    # 4x the samples: temporaries stay flat (a naive vmap would hold R x N x K x D).
    assert sizes[160_000] < 1.2 * sizes[40_000]
    assert sizes[160_000] < 160_000 * 16 * 10 * 4  # well under one (R, N, K) float32 array


@pytest.mark.slow
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(4, 60), d=st.integers(1, 4), k=st.integers(1, 3),
       cov_type=st.sampled_from(["full", "tied", "diag", "spherical"]),
       seed=st.integers(0, 2**16))
def test_shapes_for_any_small_problem(n, d, k, cov_type, seed):
    X = np.random.default_rng(seed).normal(size=(n, d)) * 3 + 1
    gm = GaussianMixture(k, covariance_type=cov_type, n_init=2, random_state=seed,
                         max_iter=20, tol=1e-2)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            gm.fit(X)
        except ValueError as exc:
            # Too few samples for every component to have a full-rank covariance: in
            # float32 a one-sample component can collapse in every restart. Then the
            # error must say what to do, and nothing else is allowed to fail.
            assert n < k * (d + 1) and "increase reg_covar" in str(exc), (n, d, k, str(exc))
            return
    cov_shape = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[cov_type]
    assert gm.covariances_.shape == cov_shape and gm.means_.shape == (k, d)
    proba = gm.predict_proba(X)
    assert proba.shape == (n, k) and np.allclose(proba.sum(1), 1)
    assert np.isfinite(gm.score_samples(X)).all()
    assert gm.restarts_.trace.shape == (2, 20)


@settings(max_examples=20, deadline=None)
@given(shape=st.tuples(st.integers(0, 5), st.integers(0, 3)),
       bad=st.sampled_from([np.nan, np.inf, -np.inf, None]))
def test_bad_shapes_and_values_always_raise_value_error(shape, bad):
    X = np.ones(shape)
    if bad is not None and X.size:
        X[0, 0] = bad
    ok = bad is None or X.size == 0
    if shape[0] >= 2 and shape[1] >= 1 and ok:
        X = X + np.arange(shape[0])[:, None]
        GaussianMixture(2, max_iter=5).fit(X)
    else:
        with pytest.raises(ValueError):
            GaussianMixture(2, max_iter=5).fit(X)
