"""Gaussian mixtures: parameters, the fused E/M step, initialisation, sampling.

The E-step of a mixture is linear in the features phi(x) = [quad(x), x, 1]
(see :mod:`covariance`): with W the (P, K) matrix of each component's natural
parameters, the log joint densities are ``phi(X) @ W``; responsibilities come
from a log-sum-exp over components, and the M-step's sufficient statistics
(counts, first and second moments) are ``resp.T @ phi(X)``. Under ``vmap`` the
restart axis folds into these two matrix products, so a batch of R restarts
costs two (N x P) @ (P x R K) products per iteration, accumulated over blocks of
samples: no (R, N, K, D) array is ever formed.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax import lax

from . import conjugate, hard_em
from .accel import by_field
from .covariance import COVARIANCE_TYPES, CovarianceType
from .em import Data, Family, Health, block_sum, init_state, make_runner, sized_jit
from .family import Component
from .starts import InitDraws

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")


class GMMParams(NamedTuple):
    """A Gaussian mixture (shapes per covariance type in :mod:`covariance`).

    Attributes:
        weights: (K,) mixing proportions.
        means: (K, D).
        covariances: covariance matrices (or variances).
        precisions_cholesky: Cholesky factors of the precisions (P = L L').
    """

    weights: jax.Array
    means: jax.Array
    covariances: jax.Array
    precisions_cholesky: jax.Array


class GMMHyper(NamedTuple):
    """Traced hyperparameters: changing them never recompiles.

    Attributes:
        reg_covar: added to the covariances' diagonal.
        active: (K,) bool, the components in use. A program compiled for K
            components fits any smaller number: the others keep weight 0, own
            no sample and are ignored by the health check (model selection
            fits every K with one program per covariance type).
        prior: a :class:`priors.Prior` for MAP estimation, or None for
            maximum likelihood (the two are different programs).
        patterns: (M, D) observed-value masks of missing-data EM
            (:mod:`missing`), or None for complete data.
    """

    reg_covar: jax.Array
    active: jax.Array
    prior: Optional[conjugate.Prior] = None
    patterns: Optional[jax.Array] = None


def features(cov: CovarianceType, x):
    """phi(x) = [quad(x), x, 1]: (B, D) -> (B, Q + D + 1)."""
    return jnp.concatenate([cov.quad_features(x), x, jnp.ones_like(x[:, :1])], axis=1)


def natural_weights(cov: CovarianceType, params: GMMParams):
    """(P, K) matrix W with log(w_k N(x | mu_k, Sigma_k)) = phi(x) @ W[:, k]."""
    pc, means, weights = params.precisions_cholesky, params.means, params.weights
    k, d = means.shape
    pmu = cov.precision_apply(pc, means)
    const = (
        jnp.log(weights)
        - 0.5 * d * math.log(2.0 * math.pi)
        + cov.log_det(pc, k, d)
        - 0.5 * (means * pmu).sum(-1)
    )
    return jnp.concatenate([cov.quad_coef(pc, k), pmu, const[:, None]], axis=1).T


def weighted_log_prob(cov_type: str, params: GMMParams, x):
    """(N, D) -> (N, K) log(w_k) + log N(x | mu_k, Sigma_k)."""
    cov = COVARIANCE_TYPES[cov_type]
    return features(cov, x) @ natural_weights(cov, params)


def unit_where_inactive(cov: CovarianceType, covariances, active):
    """Masked components get unit covariances (their weight is 0, so they take no part).

    Left to the M-step they would hold ``reg_covar * I``, which underflows to a
    singular matrix when ``reg_covar`` is tiny next to the data's scale (values
    near 1e30): its infinite precision times a zero weight would be NaN.
    """
    shared = cov.n_parameters(1, 3) == cov.n_parameters(2, 3)  # tied: one matrix for all
    if active is None or shared:
        return covariances
    if cov.unit_where_inactive is not None:
        return cov.unit_where_inactive(covariances, active)
    unit = (jnp.broadcast_to(jnp.eye(covariances.shape[-1], dtype=covariances.dtype),
                             covariances.shape) if covariances.ndim == 3
            else jnp.ones_like(covariances))
    keep = active.reshape((-1,) + (1,) * (covariances.ndim - 1))
    return jnp.where(keep, covariances, unit)


def m_step(cov: CovarianceType, stats, reg_covar, n_features: int, active=None,
           prior: Optional[conjugate.Prior] = None, previous=None):
    """Sufficient statistics (K, P) -> (GMMParams, Health).

    ``stats[:, :Q]`` are summed quadratic features, ``stats[:, Q:Q+D]`` summed
    samples and ``stats[:, -1]`` the counts, all weighted by responsibilities.
    With a ``prior`` the result is the posterior mode (``reg_covar`` is not
    added: the prior's scale regularises). ``previous``: the current covariances, for
    a type whose M-step starts from them (``cov.update``: factor).
    """
    k, d = stats.shape[0], n_features
    q = cov.n_quad(d)
    eps = 10 * jnp.finfo(stats.dtype).eps
    nk = stats[:, -1] + eps
    active = jnp.ones((k,), bool) if active is None else active
    if prior is None:
        means = stats[:, q : q + d] / nk[:, None]
        covariances = (cov.estimate(nk, means, stats[:, :q], reg_covar)
                       if cov.update is None or previous is None
                       else cov.update(previous, nk, means, stats[:, :q], reg_covar))
        weights = jnp.where(active, nk, 0.0)
        weights = weights / weights.sum()
    else:
        weights, means, covariances = conjugate.posterior_mode(cov, nk, stats[:, q : q + d],
                                                               stats[:, :q], prior, active)
    covariances = unit_where_inactive(cov, covariances, active)
    pc = cov.precision_cholesky(covariances)
    good = (cov.per_component_finite(pc, k) & jnp.isfinite(means).all(-1)) | ~active
    ok = good.all()
    component = jnp.where(ok, -1, jnp.argmin(good)).astype(jnp.int32)
    return GMMParams(weights, means, covariances, pc), Health(ok, component)


def objective_of(cov: CovarianceType, params: GMMParams, log_lik_sum, n, hyper: GMMHyper):
    """Mean log-likelihood per sample, plus log prior / n under MAP estimation."""
    if hyper.prior is None:
        return log_lik_sum / n
    return (log_lik_sum + conjugate.log_prior(cov, params, hyper.prior, hyper.active)) / n


class MixtureStats(NamedTuple):
    """Per-block sums of a mixture's E-step.

    Attributes:
        moments: (K, P) responsibility-weighted features phi(x) (quadratic
            terms, x, 1: the last column is the expected counts).
        log_lik: summed log-likelihood of the rows.
        count: summed row weights.
    """

    moments: jax.Array
    log_lik: jax.Array
    count: jax.Array


def responsibilities(logits, w):
    """(B, K) log(w_k p_k(x)) -> (responsibilities times the row weights w, log p(x))."""
    top = lax.stop_gradient(logits.max(axis=1, keepdims=True))
    e = jnp.exp(logits - top)
    total = e.sum(axis=1, keepdims=True)
    return e * (w[:, None] / total), (top + jnp.log(total))[:, 0]


class GaussianContext(NamedTuple):
    params: GMMParams
    natural: jax.Array  # (P, K), see natural_weights




@functools.lru_cache(maxsize=None)
def gaussian_component(cov_type: str) -> Component:
    """The Gaussian as a :class:`~family.Component` (what :func:`markov.markov_family`
    makes the Gaussian HMM of): log-densities phi(x) @ W, the M-step of the
    state-weighted phi(x) sums, ``reg_covar`` and ``active`` from a :class:`GMMHyper`."""
    cov = COVARIANCE_TYPES[cov_type]

    def log_joint(params: GMMParams, hyper: GMMHyper, x):
        log_p = features(cov, x) @ natural_weights(cov, params)
        return log_p if hyper.active is None else jnp.where(hyper.active, log_p, -jnp.inf)

    def m_step_(ctx, stats: MixtureStats, hyper: GMMHyper):
        return m_step(cov, stats.moments, hyper.reg_covar, ctx[0].means.shape[1], hyper.active,
                      previous=ctx[0].covariances)

    def complete(params, hyper=None):
        return params._replace(precisions_cholesky=cov.precision_cholesky(params.covariances))

    return Component(log_joint, m_step_, f"gaussian/{cov_type}",
                     kinds=(("weights", "simplex"), ("means", "free"),
                            ("covariances", cov.vector_kind),
                            ("precisions_cholesky", "derived")),
                     complete=complete, features=functools.partial(features, cov))


def gaussian_vector_form(cov_type: str):
    """The unconstrained form of Gaussian components (:class:`accel.VectorForm`):
    weights as logs, means free, covariances as log-Cholesky factors or log
    variances, the precision factor recomputed (the component's ``kinds``)."""
    component = gaussian_component(cov_type)
    return by_field(dict(component.kinds), component.complete)


@functools.lru_cache(maxsize=None)
def gmm_family(cov_type: str) -> Family:
    """A Gaussian mixture with the given covariance type: the E-step is one
    product phi(x) @ W per block (see the module's docstring)."""
    cov = COVARIANCE_TYPES[cov_type]

    def prepare(params: GMMParams, hyper: GMMHyper):
        return GaussianContext(params, natural_weights(cov, params))

    def e_step(ctx: GaussianContext, x, w):
        phi = features(cov, x)
        resp, lse = responsibilities(phi @ ctx.natural, w)
        return MixtureStats(resp.T @ phi, (lse * w).sum(), w.sum())

    def m_step_(ctx: GaussianContext, stats: MixtureStats, hyper: GMMHyper):
        return m_step(cov, stats.moments, hyper.reg_covar, ctx.params.means.shape[1],
                      hyper.active, hyper.prior, previous=ctx.params.covariances)

    def objective(ctx: GaussianContext, stats: MixtureStats, hyper: GMMHyper):
        return objective_of(cov, ctx.params, stats.log_lik, stats.count, hyper)

    return Family(prepare=prepare, e_step=e_step, m_step=m_step_, objective=objective,
                  converged=loglik_converged, name=f"gmm/{cov_type}",
                  vector_form=gaussian_vector_form(cov_type))


def loglik_converged(prev_objective, objective, params, new_params, tol):
    """scikit-learn's test: absolute change of the mean log-likelihood below tol."""
    return jnp.abs(objective - prev_objective) < tol




# ----------------------------------------------------------------------------
# Initialisation: responsibilities from a method, then one M-step (scikit-learn)
# ----------------------------------------------------------------------------

def _resp_from_labels(labels, k, dtype):
    return (labels[:, None] == jnp.arange(k)[None, :]).astype(dtype)


def initial_resp_fn(method: str, draw: InitDraws, data: Data, n_components: int,
                    kmeans_centers=None, active=None):
    """A function ``(x_block, w_block, block_index) -> (B, K)`` responsibilities.

    ``kmeans``: one-hot labels of the nearest of ``kmeans_centers`` (the
    result of a k-means fit, run for all restarts at once by :func:`init_batch`);
    ``random``: the uniform rows ``draw.resp`` (N, K), normalised.
    """
    k = n_components
    dtype = data.x.dtype
    if method == "random":
        def resp(x, w, b):
            r = lax.dynamic_slice_in_dim(draw.resp, b * x.shape[0], x.shape[0]).astype(dtype)
            r = r if active is None else r * active
            return r / jnp.maximum(r.sum(1, keepdims=True), jnp.finfo(dtype).tiny)
        return resp
    if method == "kmeans":
        def resp(x, w, b):
            return _resp_from_labels(hard_em.nearest_labels(x, kmeans_centers, active), k, dtype)
        return resp
    raise ValueError(f"unknown init method {method!r}")


def params_at_points(cov: CovarianceType, x, n_samples, reg_covar, active=None) -> GMMParams:
    """scikit-learn's M-step from one-hot responsibilities at K single samples.

    Each component holds one sample: its mean is that sample and its
    covariance exactly ``reg_covar * I`` (computed directly: the moment form
    would subtract two nearly equal numbers).
    """
    k, d = x.shape
    eps = 10 * jnp.finfo(x.dtype).eps
    nk = jnp.ones((k,), x.dtype) + eps
    covariances = cov.estimate(nk, jnp.zeros_like(x), jnp.zeros((k, cov.n_quad(d)), x.dtype),
                               reg_covar)
    weights = nk / n_samples if active is None else jnp.where(active, nk / n_samples, 0.0)
    covariances = unit_where_inactive(cov, covariances, active)
    return GMMParams(weights, x, covariances, cov.precision_cholesky(covariances))


def kmeans_tol_scaled(data: Data, tol):
    """scikit-learn's k-means tolerance: tol times the mean feature variance."""
    n = data.w.sum()
    mean = (data.x * data.w[:, None]).sum(0) / n
    var = (((data.x - mean) ** 2) * data.w[:, None]).sum(0) / n
    return tol * var.mean()


def run_kmeans(uniforms, data: Data, n_components: int, block_size: int, tol_scaled,
               max_iter: int = 300, group_size: int | None = None, active=None):
    """k-means++ seeds and Lloyd iterations for every restart at once: (R, K, D).

    ``uniforms`` (R, K, L): :func:`draws.seeding_uniforms`. Seeds are drawn in
    order, so with a mask the active (first) centres are seeded exactly as for
    a program of that size.
    """
    n_active = None if active is None else active.sum()
    seeds = jax.vmap(lambda u: hard_em.kmeans_plusplus(u, data.x, data.w, n_components,
                                                       n_active)[0])(uniforms)
    state = init_state(hard_em.KMeansParams(seeds), max_iter)
    state = make_runner(hard_em.kmeans_family(), block_size, group_size)(
        state, data, active, tol_scaled, jnp.int32(max_iter)
    )
    return state.params.centers


def init_params(cov_type: str, method: str, n_components: int, block_size: int,
                draw: InitDraws, data: Data, reg_covar, kmeans_centers=None, active=None,
                prior: Optional[conjugate.Prior] = None):
    """One restart's initial parameters: responsibilities, then an M-step.

    With a ``prior``, that M-step is the posterior mode (for the point methods,
    given one sample per component), so no initial covariance is singular.
    """
    cov = COVARIANCE_TYPES[cov_type]
    if method in ("k-means++", "random_from_data"):
        if method == "k-means++":
            points, _ = hard_em.kmeans_plusplus(draw.uniforms, data.x, data.w, n_components,
                                                None if active is None else active.sum())
        else:  # distinct samples drawn on the host (draws.distinct_indices)
            points = data.x[draw.indices]
        if prior is None:
            return params_at_points(cov, points, data.w.sum(), reg_covar, active)
        params, _ = m_step(cov, features(cov, points), reg_covar, data.x.shape[1], active, prior)
        return params
    resp_fn = initial_resp_fn(method, draw, data, n_components, kmeans_centers, active)

    def per_block(x, w, b):
        return (resp_fn(x, w, b) * w[:, None]).T @ features(cov, x)

    stats = block_sum(per_block, data, block_size)
    params, _ = m_step(cov, stats, reg_covar, data.x.shape[1], active, prior)
    if prior is not None:
        return params
    # scikit-learn's initial weights are nk / n (not renormalised).
    nk = stats[:, -1] + 10 * jnp.finfo(stats.dtype).eps
    nk = nk if active is None else jnp.where(active, nk, 0.0)
    return params._replace(weights=nk / data.w.sum())


class UserInit(NamedTuple):
    """User-given initial parameters (standardised coordinates); None = from data."""

    weights: Optional[jax.Array] = None
    means: Optional[jax.Array] = None
    precisions_cholesky: Optional[jax.Array] = None


def apply_user_init(cov_type: str, params: GMMParams, user: UserInit) -> GMMParams:
    """Override initial parameters the way scikit-learn's ``*_init`` do."""
    cov = COVARIANCE_TYPES[cov_type]
    if user.weights is not None:
        params = params._replace(weights=user.weights)
    if user.means is not None:
        params = params._replace(means=user.means)
    if user.precisions_cholesky is not None:
        pc = user.precisions_cholesky
        params = params._replace(
            precisions_cholesky=pc, covariances=cov.covariances_from_precision_cholesky(pc)
        )
    return params


@sized_jit(static_argnames=("cov_type", "method", "n_components", "block_size", "state",
                            "kmeans_group_size", "kmeans_block_size"))
def init_batch(draws: InitDraws, data: Data, reg_covar, user: UserInit, active=None, prior=None,
               n_real=None, *,
               cov_type: str, method: str,
               n_components: int, block_size: int, state: bool = False,
               kmeans_group_size: int | None = None, kmeans_block_size: int | None = None):
    """Initial parameters of every restart, one per restart of ``draws`` (vmapped).

    ``draws``: the method's random draws (:func:`draws.for_method`), made on the host.

    With ``state``, returns the driver's initial :class:`EMState` (one
    compiled program for the whole initialisation, whatever ``max_iter``),
    whose restarts from ``n_real`` (traced) on are padding.
    """
    centers = draws.centers
    if method == "kmeans" and centers is None:
        kmeans_tol = kmeans_tol_scaled(data, jnp.asarray(1e-4, data.x.dtype))
        centers = run_kmeans(draws.uniforms, data, n_components, kmeans_block_size or block_size,
                             kmeans_tol, group_size=kmeans_group_size, active=active)

    def one(draw, c, means):
        p = init_params(cov_type, method, n_components, block_size, draw, data, reg_covar, c,
                        active, prior)
        return apply_user_init(cov_type, p, user._replace(means=means))

    # user means (K, D) for every restart, or (R, K, D): one start per restart
    per_restart = user.means is not None and user.means.ndim == 3
    params = jax.vmap(one, in_axes=(0, 0, 0 if per_restart else None))(draws, centers,
                                                                        user.means)
    return init_state(params, n_real=n_real) if state else params


def sample(key, params: GMMParams, cov_type: str, n_samples: int):
    """Draw samples: returns (X (n, D), labels (n,))."""
    k, d = params.means.shape
    k1, k2 = jax.random.split(key)
    labels = jax.random.categorical(k1, jnp.log(params.weights), shape=(n_samples,))
    z = jax.random.normal(k2, (n_samples, d), params.means.dtype)
    x = COVARIANCE_TYPES[cov_type].scale_noise(params.covariances, labels, z)
    return x + params.means[labels], labels


def n_parameters(cov_type: str, n_components: int, n_features: int) -> int:
    """Free parameters, as scikit-learn counts them for BIC/AIC."""
    cov_params = COVARIANCE_TYPES[cov_type].n_parameters(n_components, n_features)
    return int(cov_params + n_features * n_components + n_components - 1)


@functools.partial(jax.jit, static_argnames=("cov_type", "n_bins"))
def binned_responsibilities(params: GMMParams, data: Data, bins, *, cov_type: str, n_bins: int):
    """(n_bins, K) one restart's responsibilities times the row weights, summed over the
    rows of each bin (``bins`` (n_padded,) int32: a grid cell of the plotted plane): the
    explorer's density image of large data, one matrix product and one segment sum."""
    cov = COVARIANCE_TYPES[cov_type]
    resp, _ = responsibilities(features(cov, data.x) @ natural_weights(cov, params), data.w)
    return jax.ops.segment_sum(resp, bins, num_segments=n_bins)


@functools.partial(jax.jit, static_argnames=("cov_type",))
def assign_batch(params: GMMParams, z, *, cov_type: str):
    """Hard labels and uncertainty (1 - max responsibility) of every restart.

    Args:
        params: parameters with a leading restart axis R (standardised units).
        z: (n, D) standardised samples.
    Returns:
        labels (R, n) and uncertainty (R, n).
    """
    def one(p):
        lp = weighted_log_prob(cov_type, p, z)
        resp = jax.nn.softmax(lp, axis=1)
        return jnp.argmax(lp, axis=1), 1.0 - resp.max(axis=1)

    return jax.vmap(one)(params)
