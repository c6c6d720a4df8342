"""The k-means initialisation of small problems, run on the host in NumPy.

The same algorithm as the compiled one (:func:`kmeans.kmeans_plusplus` seeds
from the same host uniforms, then Lloyd's iteration with the driver's rule:
stop when the summed squared centre shift is at most ``tol``, an empty
cluster keeps its centre), for every restart. On small data the compiled
version's cost is all compilation: seeding and Lloyd's loop were 0.45 s of a
first Old Faithful fit's 0.7 s initialisation program on a 2-core CPU, for a
computation that takes a millisecond here. Large data keep the compiled one
(it runs far faster there): the estimators choose by the work per iteration
(``em.quick_compile``). Up to floating-point rounding both give the same
centres (the tests compare them).
"""

from __future__ import annotations

import numpy as np


def _squared_distances(x, x2, centers, active):
    d2 = x2[:, None] - 2.0 * x @ centers.T + (centers * centers).sum(-1)[None, :]
    d2 = np.maximum(d2, 0.0)
    return d2 if active is None else np.where(active[None, :], d2, np.inf)


def _sample_proportional(u, weights):
    cdf = np.cumsum(weights)
    idx = np.searchsorted(cdf, u * cdf[-1], side="right")
    return np.minimum(idx, len(weights) - 1)


def kmeans_plusplus(u, x, w, n_components: int, n_active: int | None = None):
    """Seeds (K, D) from the uniforms ``u`` (K, L): :func:`kmeans.kmeans_plusplus`."""
    n_local = u.shape[1]
    used = n_local if n_active is None else 2 + int(np.floor(np.log(n_active)))
    n_active = n_components if n_active is None else n_active
    x2 = (x * x).sum(-1)
    tiny = np.finfo(x.dtype).tiny

    def dist_to(idx):
        d = x2[None, :] - 2.0 * x[idx] @ x.T + x2[idx][:, None]
        return np.maximum(d, 0.0) * w[None, :]

    first = _sample_proportional(u[0, :1], w)
    closest = dist_to(first)[0]
    indices = np.full(n_components, first[0])
    for c in range(1, n_active):
        weights = (closest if closest.sum() > 0 else w) + tiny * w
        cand = _sample_proportional(u[c], weights)
        new_closest = np.minimum(closest[None, :], dist_to(cand))
        potential = np.where(np.arange(n_local) < used, new_closest.sum(1), np.inf)
        best = int(np.argmin(potential))
        indices[c], closest = cand[best], new_closest[best]
    return x[indices]


def lloyd(centers, x, w, tol: float, max_iter: int = 300, active=None):
    """Lloyd's iteration from ``centers`` (K, D) with the driver's stopping rule."""
    x2 = (x * x).sum(-1)
    k = len(centers)
    for _ in range(max_iter):
        labels = np.argmin(_squared_distances(x, x2, centers, active), axis=1)
        counts = np.bincount(labels, weights=w, minlength=k).astype(x.dtype)
        sums = np.zeros_like(centers)
        np.add.at(sums, labels, x * w[:, None])
        new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers)
        shift = ((new - centers) ** 2).sum()
        centers = new
        if shift <= tol:
            break
    return centers


def _real_rows(x, w):
    x = np.asarray(x)
    w = np.asarray(w).astype(x.dtype)
    return x[w > 0], w[w > 0]


def kmeans_seeds(uniforms, x, w, n_components: int):
    """(R, K, D) k-means++ seeds of every restart (``uniforms`` (R, K, L))."""
    x, w = _real_rows(x, w)
    return np.stack([kmeans_plusplus(u, x, w, n_components)
                     for u in np.asarray(uniforms).astype(x.dtype)])


def kmeans_centers(uniforms, x, w, n_components: int, n_active: int | None = None,
                   tol: float = 1e-4, max_iter: int = 300):
    """(R, K, D) k-means centres of every restart (``uniforms`` (R, K, L)).

    ``x`` (N, D) and ``w`` (N,) may hold padding rows (weight 0); ``tol`` is
    scikit-learn's, relative to the mean feature variance. Centres past
    ``n_active`` (a masked program's) stay at the first seed and own no sample.
    """
    x, w = _real_rows(x, w)
    n = w.sum()
    mean = (x * w[:, None]).sum(0) / n
    tol_scaled = tol * ((((x - mean) ** 2) * w[:, None]).sum(0) / n).mean()
    active = None if n_active is None else np.arange(n_components) < n_active
    out = np.empty((len(uniforms), n_components, x.shape[1]), x.dtype)
    for r, u in enumerate(np.asarray(uniforms).astype(x.dtype)):
        seeds = kmeans_plusplus(u, x, w, n_components, n_active)
        out[r] = lloyd(seeds, x, w, tol_scaled, max_iter, active)
    return out
