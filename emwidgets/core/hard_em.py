"""K-means as hard EM: assign each sample to its nearest centre, move the centres.

The E-step is a hard assignment (responsibilities are one-hot) and the
objective is the negative mean squared distance to the assigned centre, so the
same driver, traces and restart machinery serve K-means and mixtures.
Convergence follows scikit-learn's Lloyd iteration: stop when the summed
squared centre shift is at most ``tol`` (already scaled by the data variance).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .em import Family, Health


class KMeansParams(NamedTuple):
    """Attributes: centers (K, D)."""

    centers: jax.Array


def squared_distances(x, centers, active=None):
    """(B, D), (K, D) -> (B, K) squared Euclidean distances, clipped at 0.

    Centres where ``active`` (K,) is False are infinitely far away.
    """
    d2 = (x * x).sum(-1)[:, None] - 2.0 * x @ centers.T + (centers * centers).sum(-1)[None, :]
    d2 = jnp.maximum(d2, 0.0)
    return d2 if active is None else jnp.where(active[None, :], d2, jnp.inf)


def assignment_stats(x, w, centers, active=None):
    """Per-block sums for a hard E-step: ([sum x | count] per centre, inertia)."""
    k = centers.shape[0]
    d2 = squared_distances(x, centers, active)
    labels = jnp.argmin(d2, axis=1)
    onehot = (labels[:, None] == jnp.arange(k)[None, :]).astype(x.dtype) * w[:, None]
    xa = jnp.concatenate([x, jnp.ones_like(x[:, :1])], axis=1)
    inertia = (jnp.min(d2, axis=1) * w).sum()
    return onehot.T @ xa, inertia


class KMeansStats(NamedTuple):
    """Per-block sums: (K, D + 1) summed samples and counts per centre, the
    inertia (summed squared distance to the nearest centre) and the weight."""

    sums: jax.Array
    inertia: jax.Array
    count: jax.Array


def _e_step(ctx, x, w):
    centers, active = ctx
    stats, inertia = assignment_stats(x, w, centers.centers, active)
    return KMeansStats(stats, inertia, w.sum())


def _m_step(ctx, stats: KMeansStats, hyper):
    """Centres at their samples' mean. An empty cluster keeps its centre
    (scikit-learn instead relocates it to a far point; the restarts are there to
    escape such optima)."""
    centers = ctx[0].centers
    counts, sums = stats.sums[:, -1], stats.sums[:, :-1]
    new = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1)[:, None], centers)
    return KMeansParams(new), Health(jnp.bool_(True), jnp.int32(-1))


def kmeans_converged(prev_objective, objective, params, new_params, tol):
    shift = ((new_params.centers - params.centers) ** 2).sum()
    return shift <= tol


@functools.lru_cache(maxsize=None)
def kmeans_family() -> Family:
    """Lloyd's iteration. ``hyper`` is None or a (K,) mask of the centres in use
    (the others stay put and own no sample); the objective is minus the mean
    squared distance to the nearest centre of the input centres."""
    return Family(prepare=lambda params, hyper: (params, hyper), e_step=_e_step, m_step=_m_step,
                  objective=lambda ctx, stats, hyper: -stats.inertia / stats.count,
                  converged=kmeans_converged, name="kmeans")


def _sample_proportional(u, weights):
    """Indices drawn with probability proportional to ``weights`` (inverse CDF).

    ``u`` holds one uniform per draw. A cumulative sum and a binary search,
    instead of one Gumbel variate per sample and draw: k-means++ on 10^5
    samples was dominated by those.
    """
    cdf = jnp.cumsum(weights)
    idx = jnp.searchsorted(cdf, u * cdf[-1], side="right", method="compare_all")
    return jnp.minimum(idx, weights.shape[0] - 1).astype(jnp.int32)


def kmeans_plusplus(u, x, w, n_components: int, n_active=None):
    """Greedy k-means++ seeding (scikit-learn's), from uniforms drawn on the host.

    Args:
        u: (K, L) uniforms, L = 2 + log K candidates per centre
            (:func:`draws.seeding_uniforms`; row c depends on the key and c only).
        x: (N, D) samples (padded rows allowed), w: (N,) weights (0 = padding).
        n_components: K.
        n_active: (traced) the centres used, the first ones (default K); the
            draws of those are the same as with ``n_components = n_active``.
    Returns:
        centers (K, D) and the indices (K,) of the samples chosen.
    """
    n_local = u.shape[1]
    # scikit-learn's 2 + log(K) candidates per centre, for the K actually used.
    used = n_local if n_active is None else 2 + jnp.floor(jnp.log(n_active)).astype(jnp.int32)
    x2 = (x * x).sum(-1)
    tiny = jnp.finfo(x.dtype).tiny

    def dist_to(idx):  # (m,) indices -> (m, N)
        c = x[idx]
        d = x2[None, :] - 2.0 * c @ x.T + x2[idx][:, None]
        return jnp.maximum(d, 0.0) * w[None, :]

    first = _sample_proportional(u[0, :1], w)
    closest = dist_to(first)[0]
    indices = jnp.zeros((n_components,), jnp.int32).at[0].set(first[0])

    def body(c, carry):
        indices, closest = carry
        # If every sample sits on a centre already, fall back to uniform draws.
        weights = jnp.where(closest.sum() > 0, closest, w) + tiny * w
        cand = _sample_proportional(u[c], weights)
        new_closest = jnp.minimum(closest[None, :], dist_to(cand))
        potential = jnp.where(jnp.arange(n_local) < used, new_closest.sum(1), jnp.inf)
        best = jnp.argmin(potential)
        if n_active is None:
            return indices.at[c].set(cand[best]), new_closest[best]
        on = c < n_active  # centres past the used ones: masked, never update the distances
        return (indices.at[c].set(jnp.where(on, cand[best], indices[0])),
                jnp.where(on, new_closest[best], closest))

    indices, _ = lax.fori_loop(1, n_components, body, (indices, closest))
    return x[indices], indices


def nearest_labels(x, centers, active=None):
    """(B, D), (K, D) -> (B,) index of the nearest (active) centre."""
    return jnp.argmin(squared_distances(x, centers, active), axis=1)
