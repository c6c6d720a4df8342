"""Synthetic mixtures for benchmarks and tests: K clusters with random covariances."""

import numpy as np


def make_mixture(n_samples: int, n_features: int, n_components: int, seed: int = 0,
                 separation: float = 4.0):
    """Samples of a Gaussian mixture with random means, covariances and weights.

    Returns (X, labels).
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=separation, size=(n_components, n_features))
    weights = rng.dirichlet(np.full(n_components, 5.0))
    labels = rng.choice(n_components, size=n_samples, p=weights)
    X = np.empty((n_samples, n_features))
    for k in range(n_components):
        a = rng.normal(size=(n_features, n_features)) / np.sqrt(n_features)
        cov = a @ a.T + 0.3 * np.eye(n_features)
        idx = labels == k
        X[idx] = rng.multivariate_normal(means[k], cov, size=idx.sum())
    return X, labels
