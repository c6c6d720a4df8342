"""EM for Gaussian mixtures with values missing at random.

Each row is observed on a subset ``o`` of the coordinates (its *pattern*).
The observed-data likelihood of a row is sum_k w_k N(x_o | mu_k,o, Sigma_k,oo);
the E-step also needs, per component, the conditional distribution of the
missing part, x_m | x_o ~ N(x_hat, C), with

    x_hat = mu_m + Sigma_mo Sigma_oo^-1 (x_o - mu_o),
    C     = Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om,

and the M-step the expected sufficient statistics E[x] and E[x x'].

Static shapes, no NaN: a row carries its values with 0 in the missing entries
and the index of its pattern; the M distinct patterns are an (M, D) mask. For a
pattern, Sigma~ = O Sigma O + (I - O) (O = diag(o)) has the determinant of
Sigma_oo and its inverse is Sigma_oo^-1 on the observed block, I elsewhere, so
every quantity above is a masked dense matrix expression.

Everything stays linear in phi(x) = [x_i x_j (i <= j), x, 1]: the observed
log-density of a row is phi(x) . W[pattern, k], so the E-step of all patterns
is one (B x P) @ (P x M K) product, and the conditional mean is affine in x,
x_hat = A x + b, so the expected statistics of a component follow from
per-pattern sums of r, r x and r x x' (the same product on the transposed
side). The cost is that of complete-data EM with M K components instead of K.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve

from .covariance import COVARIANCE_TYPES, FULL, _pack_quad_coef, _unpack_sym, one_at_a_time
from .em import Family
from .gmm import (
    GMMHyper,
    GMMParams,
    MixtureStats,
    features,
    gaussian_vector_form,
    loglik_converged,
    m_step,
    objective_of,
    responsibilities,
)


class Rows(NamedTuple):
    """Rows with missing values, as ``Data.x``.

    Attributes:
        values: (N, D) standardised values, 0 where missing.
        pattern: (N,) int32 index of each row's observed-value pattern.
    """

    values: jax.Array
    pattern: jax.Array


def encode_patterns(observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) bool observed mask -> (pattern index (N,), patterns (M, D) bool).

    M is rounded up to a power of two (extra patterns are fully observed and
    unused) so that data with a few more or fewer patterns share a program.
    """
    observed = np.asarray(observed, bool)
    unique, index = np.unique(observed, axis=0, return_inverse=True)
    m = 1 << int(math.ceil(math.log2(len(unique))))
    patterns = np.ones((m, observed.shape[1]), bool)
    patterns[: len(unique)] = unique
    return index.reshape(-1).astype(np.int32), patterns


def pad_patterns(patterns: np.ndarray) -> np.ndarray:
    """(M, D) patterns padded to a power of two (at least 4) with copies of the first.

    No row refers to the copies, so every sum over patterns gains exact zeros:
    data with a few more or fewer distinct patterns share one compiled program.
    """
    m = len(patterns)
    bucket = max(4, 1 << max(m - 1, 0).bit_length())
    return np.concatenate([patterns, np.repeat(patterns[:1], bucket - m, axis=0)])


def split_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, D) array with NaN gaps -> (values with 0 in the gaps, pattern index (N,), patterns
    padded by :func:`pad_patterns`)."""
    observed = ~np.isnan(x)
    pattern, patterns = encode_patterns(observed)
    return np.where(observed, x, 0.0), pattern, pad_patterns(patterns)


class Conditionals(NamedTuple):
    """Per pattern m and component k (M, K, ...)."""

    natural: jax.Array  # (M, K, P): log w_k N(x_o | ...) = phi(x) . natural
    gain: jax.Array  # (M, K, D, D): A, with E[x | x_o, k] = A x + b
    offset: jax.Array  # (M, K, D): b
    covariance: jax.Array  # (M, K, D, D): Cov[x | x_o, k], zero outside the missing block


def _cholesky_and_inverse(s):
    chol = jnp.linalg.cholesky(s)
    eye = jnp.broadcast_to(jnp.eye(s.shape[-1], dtype=s.dtype), s.shape)
    return chol, cho_solve((chol, True), eye)


def conditionals(cov_type: str, params: GMMParams, patterns) -> Conditionals:
    cov = COVARIANCE_TYPES[cov_type]
    k, d = params.means.shape
    dtype = params.means.dtype
    sigma = cov.dense(params.covariances, k, d)  # (K, D, D)
    o = patterns.astype(dtype)  # (M, D)
    miss = 1.0 - o
    eye = jnp.eye(d, dtype=dtype)
    oo = (o[:, :, None] * o[:, None, :])[:, None]  # (M, 1, D, D)
    sigma_t = sigma[None] * oo + (eye * miss[:, None, :])[:, None]
    # (one LAPACK call a matrix where a batched one would be split over threads: see
    # covariance.LAPACK_SPLIT_FLOPS)
    chol, inverse = one_at_a_time(_cholesky_and_inverse, sigma_t, cost=float(d) ** 3)
    p_o = inverse * oo
    log_det = 2.0 * jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)  # log|Sigma_oo|
    pmu = jnp.einsum("mkij,kj->mki", p_o, params.means)
    const = (jnp.log(params.weights)[None] - 0.5 * o.sum(-1)[:, None] * math.log(2.0 * math.pi)
             - 0.5 * log_det - 0.5 * (params.means[None] * pmu).sum(-1))
    natural = jnp.concatenate([_pack_quad_coef(p_o), pmu, const[..., None]], axis=-1)
    sp = jnp.einsum("kij,mkjl->mkil", sigma, p_o)  # Sigma P_o
    gain = (eye * o[:, None, :])[:, None] + miss[:, None, :, None] * sp
    offset = miss[:, None, :] * (params.means[None] - jnp.einsum("mkij,kj->mki", sp, params.means))
    mm = (miss[:, :, None] * miss[:, None, :])[:, None]
    covariance = (sigma[None] - jnp.einsum("mkij,kjl->mkil", sp, sigma)) * mm
    return Conditionals(natural, gain, offset, covariance)


def _row_logits(cond: Conditionals, values, pattern):
    """(B, K) log w_k N(x_o | mu_k,o, Sigma_k,oo) of each row under its own pattern."""
    m, k, p = cond.natural.shape
    phi = features(FULL, values)
    logits = (phi @ cond.natural.reshape(m * k, p).T).reshape(-1, m, k)
    return jnp.take_along_axis(logits, pattern[:, None, None], axis=1)[:, 0], phi


def expected_statistics(cov_type: str, cond: Conditionals, pattern_stats, d: int):
    """Per-pattern sums (M, K, P) of r phi(x) -> expected statistics (K, Q + D + 1).

    ``pattern_stats[m, k]`` holds, over the rows of pattern m, the sums of
    r_k x x' (packed), r_k x and r_k; with E[x] = A x + b and
    E[x x'] = E[x] E[x]' + C this gives sum_i r_ik E[x_i] and sum_i r_ik E[x_i x_i'].
    """
    q = FULL.n_quad(d)
    t2 = _unpack_sym(pattern_stats[..., :q], d)  # (M, K, D, D)
    t1 = pattern_stats[..., q : q + d]  # (M, K, D)
    r = pattern_stats[..., -1]  # (M, K)
    a, b = cond.gain, cond.offset
    nk = r.sum(0)
    s1 = jnp.einsum("mkij,mkj->ki", a, t1) + (b * r[..., None]).sum(0)
    cross = jnp.einsum("mkij,mkj,mkl->kil", a, t1, b)
    s2 = (jnp.einsum("mkij,mkjl,mknl->kin", a, t2, a) + cross + jnp.swapaxes(cross, -1, -2)
          + jnp.einsum("mk,mki,mkj->kij", r, b, b) + jnp.einsum("mk,mkij->kij", r, cond.covariance))
    cov = COVARIANCE_TYPES[cov_type]
    return jnp.concatenate([cov.pack_moment(s2), s1, nk[:, None]], axis=1)


class MissingContext(NamedTuple):
    params: GMMParams
    cond: Conditionals


@functools.lru_cache(maxsize=None)
def missing_family(cov_type: str) -> Family:
    """EM over the observed values of a Gaussian mixture (objective: observed-data
    log-likelihood). The E-step sums r phi(x) per pattern and component; the
    M-step turns them into expected statistics (:func:`expected_statistics`)."""
    cov = COVARIANCE_TYPES[cov_type]

    def prepare(params: GMMParams, hyper: GMMHyper):
        return MissingContext(params, conditionals(cov_type, params, hyper.patterns))

    def e_step(ctx: MissingContext, x: Rows, w):
        n_patterns = ctx.cond.natural.shape[0]
        logits, phi = _row_logits(ctx.cond, x.values, x.pattern)
        resp, lse = responsibilities(logits, w)
        onehot = (x.pattern[:, None] == jnp.arange(n_patterns)).astype(phi.dtype)
        r_all = (onehot[:, :, None] * resp[:, None, :]).reshape(phi.shape[0], -1)
        return MixtureStats(r_all.T @ phi, (lse * w).sum(), w.sum())

    def m_step_(ctx: MissingContext, stats: MixtureStats, hyper: GMMHyper):
        k, d = ctx.params.means.shape
        n_patterns = ctx.cond.natural.shape[0]
        moments = expected_statistics(cov_type, ctx.cond,
                                      stats.moments.reshape(n_patterns, k, -1), d)
        return m_step(cov, moments, hyper.reg_covar, d, hyper.active, hyper.prior)

    def objective(ctx: MissingContext, stats: MixtureStats, hyper: GMMHyper):
        return objective_of(cov, ctx.params, stats.log_lik, stats.count, hyper)

    return Family(prepare=prepare, e_step=e_step, m_step=m_step_, objective=objective,
                  converged=loglik_converged, name=f"missing/{cov_type}",
                  vector_form=gaussian_vector_form(cov_type))


def observed_log_prob(cov_type: str, params: GMMParams, values, pattern, patterns):
    """(N, K) log w_k + log N(x_o | mu_k,o, Sigma_k,oo) of each row."""
    cond = conditionals(cov_type, params, patterns)
    return _row_logits(cond, values, pattern)[0]


def _conditional_means(cond: Conditionals, values, pattern):
    """(N, K, D) E[x | x_o, component k] of each row (observed entries unchanged)."""
    a, b = cond.gain[pattern], cond.offset[pattern]  # (N, K, D, D), (N, K, D)
    return jnp.einsum("nkij,nj->nki", a, values) + b


def impute(cov_type: str, params: GMMParams, values, pattern, patterns, key=None,
           n_draws: int | None = None):
    """Fill the missing entries of each row.

    Without ``key``: the conditional expectation E[x_m | x_o] under the
    mixture, sum_k P(k | x_o) E[x_m | x_o, k] (N, D). With ``key`` and
    ``n_draws``: (n_draws, N, D) draws from the conditional distribution (a
    component from P(k | x_o), then x_m from that component's conditional
    Gaussian): multiple imputation. Observed entries are returned unchanged.
    """
    cond = conditionals(cov_type, params, patterns)
    logits, _ = _row_logits(cond, values, pattern)
    x_hat = _conditional_means(cond, values, pattern)
    if key is None:
        return jnp.einsum("nk,nki->ni", jax.nn.softmax(logits, axis=1), x_hat)
    o = patterns.astype(values.dtype)[pattern]  # (N, D)
    k_key, z_key = jax.random.split(key)
    comp = jax.random.categorical(k_key, logits, axis=1, shape=(n_draws, values.shape[0]))
    c = cond.covariance[pattern]  # (N, K, D, D)
    # C + diag(o) = blockdiag(I, C_mm): its factor spreads noise on the missing block only.
    chol = jnp.linalg.cholesky(
        c + jnp.eye(values.shape[1], dtype=values.dtype) * o[:, None, None, :]
    )
    z = jax.random.normal(z_key, (n_draws,) + values.shape, values.dtype)
    rows = jnp.arange(values.shape[0])
    mean = x_hat[rows, comp]  # (n_draws, N, D)
    noise = jnp.einsum("snij,snj->sni", chol[rows, comp], z)
    return mean + noise * (1.0 - o)


@functools.partial(jax.jit, static_argnames=("cov_type",))
def assign_batch(params: GMMParams, values, pattern, patterns, *, cov_type: str):
    """For every restart (leading axis R of ``params``): hard labels (R, N),
    uncertainty 1 - max P(k | x_o) (R, N) and the rows with their missing entries
    at the conditional expectation (R, N, D), in standardised units."""
    def one(p):
        cond = conditionals(cov_type, p, patterns)
        logits, _ = _row_logits(cond, values, pattern)
        resp = jax.nn.softmax(logits, axis=1)
        filled = jnp.einsum("nk,nki->ni", resp, _conditional_means(cond, values, pattern))
        return jnp.argmax(logits, axis=1), 1.0 - resp.max(axis=1), filled

    return jax.vmap(one)(params)
