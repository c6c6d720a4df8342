"""Covariance types as data: one small bundle of pure functions per type.

Every Gaussian log-density is linear in a fixed feature map of the sample,

    log N(x | mu, P^-1) = phi(x) . [c(P), P mu, const],   phi(x) = [quad(x), x, 1],

where ``quad(x)`` depends on the covariance type (all products x_i x_j for
``full``/``tied``, the squares x_i^2 for ``diag``, |x|^2 for ``spherical``).
The E-step of a whole batch of restarts is then one matrix product
``phi(X) @ W`` and the M-step's sufficient statistics are ``resp.T @ phi(X)``:
counts, first moments and second moments in one pass. Each type below says
how to build its quadratic coefficients and how to turn summed statistics into
a covariance, so the algorithm code has no branches on the type.

``factor/q`` (:func:`factor_type`) is a mixture of factor analysers' covariance, low
rank plus diagonal, Sigma_k = L_k L_k' + diag(psi_k), with q factors: its E-step is the
full type's (the precision is a dense matrix), its M-step one EM step of the factor
model on each component's scatter about its new mean (Ghahramani & Hinton 1996; a
generalised EM step, so the likelihood never falls), its parameters packed as
(K, D, q + 1) = [L_k | psi_k].

Shapes (K components, D features, Q quadratic features):

=========  ===============  ===========  ===========
type       covariances      prec. chol.  Q
=========  ===============  ===========  ===========
full       (K, D, D)        (K, D, D)    D (D + 1) / 2
tied       (D, D)           (D, D)       D (D + 1) / 2
diag       (K, D)           (K, D)       D
spherical  (K,)             (K,)         1
factor/q   (K, D, q + 1)    (K, D, D)    D (D + 1) / 2
=========  ===============  ===========  ===========
"""

from __future__ import annotations

import functools
import re
from typing import Callable, NamedTuple, Optional

import jax
import jax.custom_batching
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular


class CovarianceType(NamedTuple):
    """The functions that make one covariance type.

    Attributes:
        n_quad: D -> number of quadratic features Q.
        quad_features: (..., D) -> (..., Q) quadratic part of phi(x).
        estimate: (nk (K,), means (K, D), s2 (K, Q) summed quad features, reg)
            -> covariances.
        precision_cholesky: covariances -> Cholesky factor of the precision.
        from_precisions: precisions -> Cholesky factor of the precision.
        precisions: Cholesky factor -> precisions.
        covariances_from_precision_cholesky: Cholesky factor -> covariances.
        quad_coef: (prec_chol, K) -> (K, Q) coefficients of -x'Px/2 on quad(x).
        precision_apply: (prec_chol, means (K, D)) -> P_k mu_k, (K, D).
        log_det: (prec_chol, K, D) -> (K,) log det of the Cholesky factor (= half
            the log determinant of the precision).
        n_parameters: (K, D) -> number of free covariance parameters.
        per_component_finite: (prec_chol, K) -> (K,) bool, factor is finite.
        scale_noise: (covariances, labels (n,), z (n, D) standard normal)
            -> (n, D) zero-mean draws from each sample's component.
        first_components: (params with a leading restart axis, k) -> the same
            params restricted to the first k components.
        dense: (covariances, K, D) -> (K, D, D) full matrices (for the
            conditional Gaussians of missing-data EM).
        pack_moment: (..., D, D) second moments -> (..., Q) in the layout of
            summed quadratic features (the inverse view of ``quad_features``).
        map_estimate: (nk, n_aug, means, s2_aug, scale, dof, active)
            -> covariances at the posterior mode under the conjugate prior
            (see :mod:`priors`); ``n_aug``/``s2_aug`` include the prior's
            pseudo-observations at its mean.
        log_prior: (prec_chol, dev (K, D) = means - prior mean, scale, dof,
            shrinkage, active) -> the log prior density of covariances and
            means, up to a constant.
    """

    n_quad: Callable
    quad_features: Callable
    estimate: Callable
    precision_cholesky: Callable
    from_precisions: Callable
    precisions: Callable
    covariances_from_precision_cholesky: Callable
    quad_coef: Callable
    precision_apply: Callable
    log_det: Callable
    n_parameters: Callable
    per_component_finite: Callable
    scale_noise: Callable
    first_components: Callable
    dense: Callable
    pack_moment: Callable
    map_estimate: Callable
    log_prior: Callable
    #: Its covariances are symmetric matrices (full, tied), else variances (diag, spherical).
    matrices: bool = False
    #: ``(previous covariances, nk, means, s2, reg) -> covariances``: the M-step of a type
    #: whose maximiser needs the current parameters (factor: one EM step of the factor
    #: model on each component's scatter); None: ``estimate``, which then only starts.
    update: Optional[Callable] = None
    #: ``(covariances, active) -> covariances`` with a harmless value where a component is
    #: masked (None: the identity matrix or unit variances, :func:`gmm.unit_where_inactive`).
    unit_where_inactive: Optional[Callable] = None
    #: The covariances' kind in the unconstrained form when not the default below.
    kind: Optional[str] = None

    @property
    def vector_kind(self) -> str:
        """The kind of its covariances in the unconstrained form (:mod:`accel`): a
        log-Cholesky factor of a matrix, or the log of a variance (factor loadings free,
        their noise variances as logs: ``"factor"``)."""
        return self.kind or ("cholesky" if self.matrices else "log")


def _triu(d: int):
    return np.triu_indices(d)


def _full_quad_features(x):
    i, j = _triu(x.shape[-1])
    return x[..., i] * x[..., j]


def _unpack_sym(s2, d):
    """(..., Q) upper-triangle sums -> (..., D, D) symmetric matrices."""
    i, j = _triu(d)
    m = jnp.zeros(s2.shape[:-1] + (d, d), s2.dtype)
    m = m.at[..., i, j].set(s2)
    return m.at[..., j, i].set(s2)


def _pack_quad_coef(p):
    """-x'Px/2 as coefficients on the upper-triangle products x_i x_j."""
    d = p.shape[-1]
    i, j = _triu(d)
    scale = jnp.where(i == j, -0.5, -1.0).astype(p.dtype)
    return p[..., i, j] * scale


#: jaxlib 0.10's CPU LAPACK kernels split a batch of matrices whose work (their flop
#: estimate) reaches this over XLA's intra-op thread pool, and the calling pool thread
#: blocks until the pieces are done. Two such calls side by side (independent covariance
#: factorisations in one program: SQUAREM's candidates) can hold every thread of a 2-core
#: pool, each waiting for pieces queued behind the other: the program never ends (seen:
#: a full-covariance mixture of the digits, 10 components x 64 pixels; jaxlib 0.11.2
#: compiles the split out). :func:`one_at_a_time` never issues such a call.
LAPACK_SPLIT_FLOPS = 200_000


def one_at_a_time(fn: Callable, *arrays, cost: float):
    """``fn`` of matrices (the last two axes of ``arrays``, the same leading batch axes),
    one LAPACK call per matrix (``lax.map``) where the batch's work (``cost`` flops a
    matrix) would be split over threads on a CPU (:data:`LAPACK_SPLIT_FLOPS`); otherwise
    one batched call, as before. The results are the same bits either way. Under ``vmap``
    (the driver's restarts) the vmapped axis joins the batch before the choice, and
    derivatives are ``fn``'s own."""
    if jax.default_backend() != "cpu":
        return fn(*arrays)
    return _split_safe(fn, float(cost))(*arrays)


def _one_call_each(fn, cost, arrays):
    batch = arrays[0].shape[:-2]
    n = int(np.prod(batch)) if batch else 1
    if n <= 1 or n * cost < LAPACK_SPLIT_FLOPS:
        return fn(*arrays)
    flat = tuple(a.reshape((n,) + a.shape[len(batch):]) for a in arrays)
    out = jax.lax.map(lambda xs: fn(*xs), flat)
    return jax.tree.map(lambda o: o.reshape(batch + o.shape[1:]), out)


@functools.lru_cache(maxsize=None)
def _split_safe(fn: Callable, cost: float) -> Callable:
    @jax.custom_batching.custom_vmap
    def batched(*arrays):
        return _one_call_each(fn, cost, arrays)

    @batched.def_vmap
    def _rule(axis_size, in_batched, *arrays):
        arrays = [a if b else jnp.broadcast_to(a, (axis_size,) + a.shape)
                  for a, b in zip(arrays, in_batched)]
        out = batched(*arrays)
        return out, jax.tree.map(lambda _: True, out)

    # (custom_vmap has no reverse-mode rule: the derivatives are fn's, by its own jvp)
    @jax.custom_jvp
    def safe(*arrays):
        return batched(*arrays)

    @safe.defjvp
    def _jvp(primals, tangents):
        return jax.jvp(fn, primals, tangents)

    return safe


def _chol_prec(cov):
    d = cov.shape[-1]
    cov_chol = jnp.linalg.cholesky(cov)
    eye = jnp.broadcast_to(jnp.eye(d, dtype=cov.dtype), cov.shape)
    return jnp.swapaxes(solve_triangular(cov_chol, eye, lower=True), -1, -2)


def _chol_of_cov_to_prec(cov):
    d = cov.shape[-1]
    return one_at_a_time(_chol_prec, cov, cost=float(d) ** 3)


def _mat_precisions(pc):
    return pc @ jnp.swapaxes(pc, -1, -2)


def _mat_cov_from_pc(pc):
    p = _mat_precisions(pc)
    return jnp.linalg.inv(p)


def _full_estimate(nk, means, s2, reg):
    d = means.shape[-1]
    second = _unpack_sym(s2, d) / nk[:, None, None]
    cov = second - means[:, :, None] * means[:, None, :]
    cov = 0.5 * (cov + jnp.swapaxes(cov, -1, -2))
    return cov + reg * jnp.eye(d, dtype=means.dtype)


def _tied_estimate(nk, means, s2, reg):
    d = means.shape[-1]
    total = _unpack_sym(s2.sum(0), d)
    cov = (total - jnp.einsum("k,ki,kj->ij", nk, means, means)) / nk.sum()
    cov = 0.5 * (cov + cov.T)
    return cov + reg * jnp.eye(d, dtype=means.dtype)


def _diag_estimate(nk, means, s2, reg):
    # A variance cannot be negative; rounding in the moment form can make it so.
    return jnp.maximum(s2 / nk[:, None] - means**2, 0.0) + reg


def _spherical_estimate(nk, means, s2, reg):
    d = means.shape[-1]
    return jnp.maximum(s2[:, 0] / nk - (means**2).sum(-1), 0.0) / d + reg


def _take_components(params, k, shared):
    """First k components of batched mixture parameters (R, K, ...)."""
    cut = lambda a: a[:, :k]  # noqa: E731
    return params._replace(
        weights=cut(params.weights), means=cut(params.means),
        covariances=params.covariances if shared else cut(params.covariances),
        precisions_cholesky=(params.precisions_cholesky if shared
                             else cut(params.precisions_cholesky)),
    )


def _pack_sym(m):
    """(..., D, D) symmetric matrices -> (..., Q) upper triangles (inverse of _unpack_sym)."""
    i, j = _triu(m.shape[-1])
    return m[..., i, j]


def _diag_of(m):
    return jnp.diagonal(m, axis1=-2, axis2=-1)


# -- Conjugate priors: the posterior mode and the log density, per type -------
# The mean of component k has prior N(m0, Sigma_k / kappa); the covariance an
# inverse-Wishart IW(nu, Lambda) (full), one shared IW (tied), independent
# inverse-gammas IG(nu / 2, lambda_j / 2) per variance (diag) or one
# IG(nu / 2, lambda / 2) per component (spherical): the models and posterior
# modes of Fraley & Raftery (2007), the priors of R's mclust. ``n_aug`` and
# ``s2_aug`` are the counts and second moments with kappa pseudo-observations
# at m0 added, so the estimate below is the augmented scatter; its divisor
# comes from the powers of |Sigma| in likelihood and prior.

def _full_map(nk, n_aug, means, s2_aug, scale, dof, active):
    d = means.shape[-1]
    scatter = _full_estimate(n_aug, means, s2_aug, 0.0) * n_aug[:, None, None]
    return (scale + scatter) / (dof + nk + d + 2)[:, None, None]


def _tied_map(nk, n_aug, means, s2_aug, scale, dof, active):
    d = means.shape[-1]
    scatter = _tied_estimate(n_aug, means, s2_aug, 0.0) * n_aug.sum()
    return (scale + scatter) / (dof + nk.sum() + d + 1 + active.sum())


def _diag_map(nk, n_aug, means, s2_aug, scale, dof, active):
    scatter = _diag_estimate(n_aug, means, s2_aug, 0.0) * n_aug[:, None]
    return (scale + scatter) / (dof + nk + 3)[:, None]


def _spherical_map(nk, n_aug, means, s2_aug, scale, dof, active):
    d = means.shape[-1]
    scatter = _spherical_estimate(n_aug, means, s2_aug, 0.0) * n_aug * d
    return (scale + scatter) / (dof + (nk + 1) * d + 2)


def _full_log_prior(pc, dev, scale, dof, shrinkage, active):
    d = dev.shape[-1]
    p = _mat_precisions(pc)
    log_det = jnp.log(_diag_of(pc)).sum(-1)  # = -log|Sigma| / 2
    trace = (scale * p).sum((-2, -1))
    quad = jnp.einsum("ki,kij,kj->k", dev, p, dev)
    per_k = (dof + d + 2) * log_det - 0.5 * trace - 0.5 * shrinkage * quad
    return jnp.where(active, per_k, 0.0).sum()


def _tied_log_prior(pc, dev, scale, dof, shrinkage, active):
    d = dev.shape[-1]
    p = _mat_precisions(pc)
    log_det = jnp.log(jnp.diagonal(pc)).sum()
    quad = jnp.einsum("ki,ij,kj->k", dev, p, dev)
    return ((dof + d + 1 + active.sum()) * log_det - 0.5 * (scale * p).sum()
            - 0.5 * shrinkage * jnp.where(active, quad, 0.0).sum())


def _diag_log_prior(pc, dev, scale, dof, shrinkage, active):
    per = (dof + 3) * jnp.log(pc) - 0.5 * (scale + shrinkage * dev**2) * pc**2
    return jnp.where(active, per.sum(-1), 0.0).sum()


def _spherical_log_prior(pc, dev, scale, dof, shrinkage, active):
    d = dev.shape[-1]
    per = (dof + d + 2) * jnp.log(pc) - 0.5 * (scale + shrinkage * (dev**2).sum(-1)) * pc**2
    return jnp.where(active, per, 0.0).sum()


def _eye_like(d, dtype):
    return jnp.eye(d, dtype=dtype)


FULL = CovarianceType(
    n_quad=lambda d: d * (d + 1) // 2,
    quad_features=_full_quad_features,
    estimate=_full_estimate,
    precision_cholesky=_chol_of_cov_to_prec,
    from_precisions=lambda p: jnp.linalg.cholesky(p),
    precisions=_mat_precisions,
    covariances_from_precision_cholesky=_mat_cov_from_pc,
    quad_coef=lambda pc, k: _pack_quad_coef(_mat_precisions(pc)),
    precision_apply=lambda pc, m: jnp.einsum("kij,kj->ki", _mat_precisions(pc), m),
    log_det=lambda pc, k, d: jnp.log(jnp.diagonal(pc, axis1=-2, axis2=-1)).sum(-1),
    n_parameters=lambda k, d: k * d * (d + 1) / 2.0,
    per_component_finite=lambda pc, k: jnp.isfinite(pc).all(axis=(-2, -1)),
    scale_noise=lambda cov, lab, z: jnp.einsum("nij,nj->ni", jnp.linalg.cholesky(cov)[lab], z),
    first_components=lambda p, k: _take_components(p, k, shared=False),
    dense=lambda cov, k, d: cov,
    pack_moment=_pack_sym,
    map_estimate=_full_map,
    log_prior=_full_log_prior,
    matrices=True,
)

TIED = CovarianceType(
    n_quad=lambda d: d * (d + 1) // 2,
    quad_features=_full_quad_features,
    estimate=_tied_estimate,
    precision_cholesky=_chol_of_cov_to_prec,
    from_precisions=lambda p: jnp.linalg.cholesky(p),
    precisions=_mat_precisions,
    covariances_from_precision_cholesky=_mat_cov_from_pc,
    quad_coef=lambda pc, k: jnp.broadcast_to(
        _pack_quad_coef(_mat_precisions(pc)), (k, pc.shape[-1] * (pc.shape[-1] + 1) // 2)
    ),
    precision_apply=lambda pc, m: m @ _mat_precisions(pc),
    log_det=lambda pc, k, d: jnp.broadcast_to(jnp.log(jnp.diagonal(pc)).sum(), (k,)),
    n_parameters=lambda k, d: d * (d + 1) / 2.0,
    per_component_finite=lambda pc, k: jnp.broadcast_to(jnp.isfinite(pc).all(), (k,)),
    scale_noise=lambda cov, lab, z: z @ jnp.linalg.cholesky(cov).T,
    first_components=lambda p, k: _take_components(p, k, shared=True),
    dense=lambda cov, k, d: jnp.broadcast_to(cov, (k, d, d)),
    pack_moment=_pack_sym,
    map_estimate=_tied_map,
    log_prior=_tied_log_prior,
    matrices=True,
)

DIAG = CovarianceType(
    n_quad=lambda d: d,
    quad_features=lambda x: x * x,
    estimate=_diag_estimate,
    precision_cholesky=lambda cov: 1.0 / jnp.sqrt(cov),
    from_precisions=jnp.sqrt,
    precisions=lambda pc: pc**2,
    covariances_from_precision_cholesky=lambda pc: 1.0 / pc**2,
    quad_coef=lambda pc, k: -0.5 * pc**2,
    precision_apply=lambda pc, m: pc**2 * m,
    log_det=lambda pc, k, d: jnp.log(pc).sum(-1),
    n_parameters=lambda k, d: k * d,
    per_component_finite=lambda pc, k: jnp.isfinite(pc).all(-1),
    scale_noise=lambda cov, lab, z: z * jnp.sqrt(cov[lab]),
    first_components=lambda p, k: _take_components(p, k, shared=False),
    dense=lambda cov, k, d: cov[:, :, None] * _eye_like(d, cov.dtype),
    pack_moment=_diag_of,
    map_estimate=_diag_map,
    log_prior=_diag_log_prior,
)

SPHERICAL = CovarianceType(
    n_quad=lambda d: 1,
    quad_features=lambda x: (x * x).sum(-1, keepdims=True),
    estimate=_spherical_estimate,
    precision_cholesky=lambda cov: 1.0 / jnp.sqrt(cov),
    from_precisions=jnp.sqrt,
    precisions=lambda pc: pc**2,
    covariances_from_precision_cholesky=lambda pc: 1.0 / pc**2,
    quad_coef=lambda pc, k: (-0.5 * pc**2)[:, None],
    precision_apply=lambda pc, m: (pc**2)[:, None] * m,
    # The factor is the scalar 1/sigma on each of the D axes.
    log_det=lambda pc, k, d: d * jnp.log(pc),
    n_parameters=lambda k, d: k,
    per_component_finite=lambda pc, k: jnp.isfinite(pc),
    scale_noise=lambda cov, lab, z: z * jnp.sqrt(cov[lab])[:, None],
    first_components=lambda p, k: _take_components(p, k, shared=False),
    dense=lambda cov, k, d: cov[:, None, None] * _eye_like(d, cov.dtype),
    pack_moment=lambda m: jnp.trace(m, axis1=-2, axis2=-1)[..., None],
    map_estimate=_spherical_map,
    log_prior=_spherical_log_prior,
)



# -- Mixtures of factor analysers: Sigma_k = L_k L_k' + diag(psi_k) -------------------
# Every inverse goes through the q x q matrix M = I + L' Psi^-1 L (Woodbury): Sigma^-1 =
# Psi^-1 - Psi^-1 L M^-1 L' Psi^-1, log|Sigma| = sum log psi + log|M|. Besides being the
# cheap way (q << D), it keeps D x D LAPACK calls out of the EM loop: jaxlib 0.10's CPU
# LAPACK kernels split a large batch over the intra-op thread pool and wait for it, and
# two such calls running side by side (SQUAREM evaluates independent candidates) deadlock
# a 2-thread pool (seen: the digits, 10 components x 4 restarts of 64 x 64).
# The "precision factor" of this type is therefore not a Cholesky factor but the packed
# (K, D, D + 1) [P | c] with P the precision and c a column summing to log|P| / 2: the
# functions below read it; the estimator reports a true Cholesky factor, computed on the
# host.
def _factor_dense(packed):
    """(..., D, q + 1) [L | psi] -> (..., D, D) L L' + diag(psi)."""
    loadings, psi = packed[..., :-1], packed[..., -1]
    return (loadings @ jnp.swapaxes(loadings, -1, -2)
            + psi[..., :, None] * jnp.eye(packed.shape[-2], dtype=packed.dtype))


def _pack_factor(loadings, psi):
    return jnp.concatenate([loadings, psi[..., None]], axis=-1)


def _factor_inner(packed):
    """(Psi^-1 L (..., D, q), the Cholesky factor of M = I + L' Psi^-1 L (..., q, q))."""
    loadings, psi = packed[..., :-1], packed[..., -1]
    scaled = loadings / psi[..., :, None]
    q = loadings.shape[-1]
    m = jnp.eye(q, dtype=packed.dtype) + jnp.swapaxes(loadings, -1, -2) @ scaled
    return scaled, jnp.linalg.cholesky(m)


def _factor_precision(packed):
    """[P | c]: the precision by Woodbury and a column summing to log|P| / 2."""
    psi = packed[..., -1]
    scaled, chol = _factor_inner(packed)
    # W = scaled chol^-T: P = Psi^-1 - W W'
    w = jnp.swapaxes(solve_triangular(chol, jnp.swapaxes(scaled, -1, -2), lower=True), -1, -2)
    d = packed.shape[-2]
    p = (jnp.eye(d, dtype=packed.dtype) / psi[..., :, None]
         - w @ jnp.swapaxes(w, -1, -2))
    half_log_det = -0.5 * jnp.log(psi).sum(-1) - jnp.log(_diag_of(chol)).sum(-1)
    column = jnp.broadcast_to((half_log_det / d)[..., None], psi.shape)
    return jnp.concatenate([p, column[..., None]], axis=-1)


def _factor_start(q, nk, means, s2, reg):
    """A start without a previous model: each component's scatter S_k's top q principal
    axes, L = U (l - sigma^2 + reg)^1/2 (probabilistic PCA's, sigma^2 the mean of the
    other eigenvalues; + reg keeps L off zero, a fixed point of the factor model's EM),
    and psi the rest of S's diagonal (at least reg)."""
    s = _full_estimate(nk, means, s2, 0.0)
    values, vectors = jnp.linalg.eigh(s)  # ascending (once, at the start: not in the loop)
    d = s.shape[-1]
    top, rest = values[..., d - q:], values[..., : d - q]
    sigma2 = rest.mean(-1, keepdims=True) if d > q else jnp.zeros_like(top[..., :1])
    loadings = vectors[..., d - q:] * jnp.sqrt(jnp.maximum(top - sigma2, 0.0) + reg)[..., None, :]
    psi = jnp.maximum(_diag_of(s) - (loadings**2).sum(-1), 0.0) + reg
    return _pack_factor(loadings, psi)


def _factor_update(previous, nk, means, s2, reg):
    """One EM step of the factor model on each component's scatter S about its new mean:
    beta = L' Sigma^-1 = M^-1 L' Psi^-1, E[zz'] = I - beta L + beta S beta',
    L' = S beta' E[zz']^-1, psi' = diag(S - L' beta S) (+ reg, as the other types add
    reg_covar)."""
    s = _full_estimate(nk, means, s2, 0.0)
    loadings = previous[..., :-1]
    q = loadings.shape[-1]
    scaled, chol = _factor_inner(previous)
    beta = cho_solve((chol, True), jnp.swapaxes(scaled, -1, -2))
    beta_s = beta @ s
    ezz = (jnp.eye(q, dtype=s.dtype) - beta @ loadings
           + beta_s @ jnp.swapaxes(beta, -1, -2))
    ezz = 0.5 * (ezz + jnp.swapaxes(ezz, -1, -2))
    new = jnp.swapaxes(cho_solve((jnp.linalg.cholesky(ezz), True), beta_s),
                       -1, -2)  # S beta' E[zz']^-1
    psi = jnp.maximum(_diag_of(s) - jnp.einsum("...jm,...mj->...j", new, beta_s), 0.0) + reg
    return _pack_factor(new, psi)


def _factor_unit(packed, active):
    unit = _pack_factor(jnp.zeros_like(packed[..., :-1]), jnp.ones_like(packed[..., -1]))
    return jnp.where(active[:, None, None], packed, unit)


def _refuse(*_):
    raise ValueError("covariance_type='factor' does not take a prior or precisions_init.")


@functools.lru_cache(maxsize=None)
def factor_type(q: int) -> CovarianceType:
    """The covariance type of a mixture of factor analysers with ``q`` factors."""
    precision = lambda pf: pf[..., :-1]  # noqa: E731
    return FULL._replace(
        estimate=functools.partial(_factor_start, q),
        update=_factor_update,
        unit_where_inactive=_factor_unit,
        precision_cholesky=_factor_precision,
        from_precisions=_refuse,
        precisions=precision,
        covariances_from_precision_cholesky=_refuse,
        quad_coef=lambda pf, k: _pack_quad_coef(precision(pf)),
        precision_apply=lambda pf, m: jnp.einsum("kij,kj->ki", precision(pf), m),
        log_det=lambda pf, k, d: pf[..., -1].sum(-1),
        n_parameters=lambda k, d: k * (d * q + d - q * (q - 1) / 2.0),
        per_component_finite=lambda pf, k: jnp.isfinite(pf).all(axis=(-2, -1)),
        scale_noise=lambda cov, lab, z: jnp.einsum(
            "nij,nj->ni", jnp.linalg.cholesky(_factor_dense(cov))[lab], z),
        dense=lambda cov, *_: _factor_dense(cov),
        map_estimate=_refuse,
        log_prior=_refuse,
        matrices=False,
        kind="factor",
    )


class _Registry(dict):
    """The covariance types by name. Iterating gives the four of scikit-learn (the
    explorer's menu, model selection's grid); ``"factor/q"`` is looked up as well."""

    def __missing__(self, name):
        match = re.fullmatch(r"factor/(\d+)", str(name))
        if match is None or int(match.group(1)) < 1:
            raise KeyError(name)
        return factor_type(int(match.group(1)))


COVARIANCE_TYPES: dict[str, CovarianceType] = _Registry(
    full=FULL,
    tied=TIED,
    diag=DIAG,
    spherical=SPHERICAL,
)


def covariance_shape(cov_type: str, n_components: int, n_features: int) -> tuple:
    """The array shape of the covariances of a given type."""
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[cov_type]
