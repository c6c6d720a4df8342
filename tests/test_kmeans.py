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
