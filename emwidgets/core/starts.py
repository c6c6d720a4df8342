"""The random draws of an initialisation, made on the host with NumPy.

Every restart has a key (two uint32 words drawn from the fit's seed). Its
initialisation draws come from NumPy generators seeded by those words and a
stream number, one stream per purpose, so a replayed restart (same key) draws
the same. They are drawn here and passed to the compiled programs as arrays
instead of being drawn inside them: JAX's counter-based generator (threefry)
made up about 40% of an initialisation program's compile time (1.0-1.2 s of
2.7 s for Old Faithful on a 2-core CPU), for draws that take microseconds on
the host. The programs hold no random-number generator at all.

Every draw is *prefix-stable* in the number of components: what component c
draws depends on the key and c only, so a program holding more components
than used (the extra ones masked) starts exactly where the exact-size one does.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np

# One stream per purpose (hmm.dirichlet_draws uses 1).
STREAM_DIRICHLET, STREAM_SEEDING, STREAM_INDICES, STREAM_RESP, STREAM_PARAMS = 1, 2, 3, 4, 5

#: Candidates drawn per k-means++ centre, whatever the number of centres: the
#: rows of the uniforms are this wide so that row c is the same for every K
#: (scikit-learn's 2 + log K candidates are at most 8 up to K = 403).
SEEDING_WIDTH = 8


class InitDraws(NamedTuple):
    """One initialisation's draws, leading axis R (restarts); None where unused.

    Attributes:
        uniforms: (R, K, L) uniforms for k-means++ (L = 2 + log K candidates).
        indices: (R, K) distinct sample indices (``random_from_data``, k-means ``random``).
        resp: (R, N, K) uniforms, random responsibilities (``random``); padding rows 0.
        centers: (R, K, D) k-means centres already computed on the host
            (``kmeans`` on small data, :mod:`host_kmeans`): the program skips k-means.
    """

    uniforms: Optional[Any] = None
    indices: Optional[Any] = None
    resp: Optional[Any] = None
    centers: Optional[Any] = None


def generator(words, stream: int) -> np.random.Generator:
    """The generator of one restart's key (its uint32 words) for one purpose."""
    return np.random.default_rng([int(w) for w in np.asarray(words).ravel()] + [stream])


def _rows(key_data) -> np.ndarray:
    key_data = np.asarray(key_data)
    return key_data.reshape(len(key_data), -1)


def n_candidates(n_components: int) -> int:
    """scikit-learn's k-means++ candidates per centre: 2 + log K."""
    return 2 + int(np.log(n_components))


def seeding_uniforms(key_data, n_components: int, dtype=np.float64) -> np.ndarray:
    """(R, K, 2 + log K) uniforms for :func:`kmeans.kmeans_plusplus`, row c the same for any K."""
    width = max(SEEDING_WIDTH, n_candidates(n_components))
    u = np.stack([generator(w, STREAM_SEEDING).random((n_components, width))
                  for w in _rows(key_data)])
    return u[:, :, :n_candidates(n_components)].astype(dtype)


def distinct_indices(key_data, n: int, n_draws: int) -> np.ndarray:
    """(R, n_draws) distinct indices in ``range(n)``, uniform without replacement.

    Integers are drawn in fixed chunks and the first occurrences kept, so the
    first m of more draws are the m draws.
    """
    if n_draws > n:
        raise ValueError(f"cannot draw {n_draws} distinct samples out of {n}")
    return _distinct_draws(key_data, n, n_draws, lambda v: v)


def distinct_rows(key_data, rows: np.ndarray, n_draws: int) -> np.ndarray:
    """(R, n_draws) indices of rows with distinct values, uniform without replacement
    among the draws (as :func:`distinct_indices`, a row equal to one already drawn is
    passed over): a start of K components at K rows never puts two components on the same
    values (in a count column of many zeros two zero rows made both components the same, a
    fixed point EM cannot leave). Data with fewer distinct rows than ``n_draws`` get
    :func:`distinct_indices`."""
    n = len(rows)
    flat = np.ascontiguousarray(np.asarray(rows).reshape(n, -1))
    if len(np.unique(flat, axis=0)) < n_draws:
        return distinct_indices(key_data, n, n_draws)
    return _distinct_draws(key_data, n, n_draws, lambda v: flat[v].tobytes())


def _distinct_draws(key_data, n: int, n_draws: int, value) -> np.ndarray:
    """Indices drawn in chunks of 64 per restart, each kept where ``value(index)`` is new."""
    out = np.empty((len(key_data), n_draws), np.int32)
    for r, w in enumerate(_rows(key_data)):
        g, seen, chosen = generator(w, STREAM_INDICES), set(), []
        while len(chosen) < n_draws:
            for v in g.integers(n, size=64).tolist():
                key = value(v)
                if key not in seen:
                    seen.add(key)
                    chosen.append(v)
                    if len(chosen) == n_draws:
                        break
        out[r] = chosen
    return out


def uniform_columns(key_data, n: int, n_padded: int, n_components: int,
                    dtype=np.float64) -> np.ndarray:
    """(R, n_padded, K) uniforms, column c the c-th run of n draws; padding rows 0."""
    out = np.zeros((len(key_data), n_padded, n_components), dtype)
    for r, w in enumerate(_rows(key_data)):
        g = generator(w, STREAM_RESP)
        for c in range(n_components):
            out[r, :n, c] = g.random(n)
    return out


def for_method(method: str, key_data, n: int, n_padded: int, n_components: int,
               dtype=np.float64) -> InitDraws:
    """The draws an initialisation ``method`` uses, for restarts with keys ``key_data``.

    ``n`` samples (the first rows of ``n_padded``); methods: GaussianMixture's
    ``init_params``, KMeans' ``init`` (``k-means++``, ``random``: distinct
    samples) and GaussianHMM's (``kmeans``, ``random``: distinct samples, as
    ``random_from_data``).
    """
    if method in ("kmeans", "k-means++"):
        return InitDraws(uniforms=seeding_uniforms(key_data, n_components, dtype))
    if method in ("random_from_data", "random_samples"):
        return InitDraws(indices=distinct_indices(key_data, n, n_components))
    if method == "random":
        return InitDraws(resp=uniform_columns(key_data, n, n_padded, n_components, dtype))
    return InitDraws()
