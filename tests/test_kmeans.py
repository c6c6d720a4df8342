"""K-means as hard EM, against scikit-learn's Lloyd iteration."""

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.metrics import adjusted_rand_score

from emwidgets import KMeans


def test_same_centres_labels_and_iterations_from_the_same_start(x64, blobs):
    X, _ = blobs
    init = X[[0, 1, 2]]
    ours = KMeans(3, init=init, n_init=1, tol=1e-4).fit(X)
    ref = SkKMeans(3, init=init, n_init=1, tol=1e-4, algorithm="lloyd").fit(X)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-9)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(ours.inertia_, ref.inertia_, rtol=1e-9)
    np.testing.assert_allclose(ours.transform(X), ref.transform(X), rtol=1e-7)
    np.testing.assert_allclose(ours.score(X), ref.score(X), rtol=1e-9)


def test_restarts_find_the_clusters_and_the_objective_never_rises(blobs):
    X, labels = blobs
    km = KMeans(3, n_init=10, random_state=0).fit(X)
    ref = SkKMeans(3, n_init=10, random_state=0).fit(X)
    assert km.inertia_ <= ref.inertia_ * (1 + 1e-5)
    assert adjusted_rand_score(labels, km.labels_) > 0.8
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    assert len(km.restarts_.objective) == 10
    for trace in km.restarts_.trace:  # minus the mean squared distance: non-decreasing
        t = trace[~np.isnan(trace)]
        assert np.all(np.diff(t) >= -1e-5 * np.abs(t[1:]))
    assert km.inertia_ == pytest.approx(-km.restarts_.objective.max() * len(X), rel=1e-6)


def test_n_init_auto_follows_sklearn(blobs):
    X, _ = blobs
    assert len(KMeans(3, random_state=0).fit(X).restarts_.objective) == 1
    assert len(KMeans(3, init="random", random_state=0).fit(X).restarts_.objective) == 10


def test_bad_input():
    with pytest.raises(ValueError, match="n_clusters"):
        KMeans(5).fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="'init' array"):
        KMeans(2, init=np.zeros((3, 2))).fit(np.random.default_rng(0).normal(size=(10, 2)))


@pytest.mark.slow
@pytest.mark.parametrize("n, d, k, k_active", [(272, 2, 2, 2), (500, 3, 5, 5), (400, 2, 6, 3)])
def test_the_host_kmeans_of_small_data_is_the_compiled_one(n, d, k, k_active):
    """Small problems seed and run k-means in NumPy (core/host_kmeans.py) instead of
    compiling it: the same centres as the compiled driver from the same uniforms,
    with padding rows, sample weights and masked centres."""
    import jax.numpy as jnp

    from emwidgets.core import hard_em as km
    from emwidgets.core import host_kmeans as HK
    from emwidgets.core import starts as D
    from emwidgets.core.em import Data
    from emwidgets.core.gmm import kmeans_tol_scaled, run_kmeans

    rng = np.random.default_rng(n + k)
    x = np.concatenate([rng.normal(size=(n, d)) + 3 * rng.integers(0, 3, (n, 1)),
                        np.zeros((12, d))]).astype(np.float32)
    w = np.r_[rng.integers(1, 4, n), np.zeros(12)].astype(np.float32)  # weights, then padding
    u = D.seeding_uniforms(rng.integers(0, 2**32, (8, 2), dtype=np.uint32), k, np.float32)
    data = Data(jnp.asarray(x), jnp.asarray(w))
    active = None if k_active == k else jnp.arange(k) < k_active
    compiled = run_kmeans(jnp.asarray(u), data, k, len(x),
                          kmeans_tol_scaled(data, jnp.float32(1e-4)), active=active)
    host = HK.kmeans_centers(u, x, w, k, k_active)
    np.testing.assert_allclose(host, np.asarray(compiled), atol=1e-5)
    seeds = jnp.stack([km.kmeans_plusplus(jnp.asarray(r), data.x, data.w, k)[0] for r in u])
    np.testing.assert_allclose(HK.kmeans_seeds(u, x, w, k), np.asarray(seeds), atol=1e-6)
    # A real clustering, not a copy of the seeds: Lloyd moved the centres.
    assert np.abs(host - HK.kmeans_seeds(u, x, w, k)).max() > 1e-3
