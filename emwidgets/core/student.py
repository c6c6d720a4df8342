"""Mixtures of multivariate t distributions (robust clustering), by ECM.

A t component is a Gaussian scale mixture: x | u ~ N(mu, Sigma / u),
u ~ Gamma(nu/2, nu/2). EM treats u as a second latent variable (Peel &
McLachlan 2000): the E-step gives, besides the responsibilities r_ik, the
expected scale u_ik = (nu_k + D) / (nu_k + delta_ik^2), where delta^2 is the
Mahalanobis distance; the M-step is a Gaussian M-step on the r u-weighted
moments (an outlier, far from every mean, gets a small u and barely moves
them), and each nu_k solves a one-dimensional equation (the CM-step), here by
bisection on log nu.

The Mahalanobis distances of a block are one product phi(x) @ W, as for
Gaussians (:mod:`gmm`), for the four covariance types of :mod:`covariance`.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax.numpy as jnp
from jax import lax
from jax.scipy.special import digamma, gammaln

from .accel import by_field
from .covariance import COVARIANCE_TYPES
from .em import Family, Health
from .gmm import (
    GMMParams,
    features,
    loglik_converged,
    natural_weights,
    responsibilities,
)

#: Degrees of freedom are kept in [DOF_MIN, DOF_MAX]; at DOF_MAX a t is a Gaussian
#: to plotting accuracy.
DOF_MIN, DOF_MAX = 0.5, 200.0
_BISECTIONS = 48


class StudentParams(NamedTuple):
    """Attributes: weights (K,), means (K, D), covariances (scale matrices, the
    type's shape), precisions_cholesky, dof (K,) degrees of freedom."""

    weights: Any
    means: Any
    covariances: Any
    precisions_cholesky: Any
    dof: Any


class StudentHyper(NamedTuple):
    reg_covar: Any


class StudentStats(NamedTuple):
    """Per-block sums: (K, P) r u-weighted features, (K,) r, (K,) r (log u - u),
    log-likelihood and weight."""

    moments: Any
    resp: Any
    log_u_minus_u: Any
    log_lik: Any
    count: Any


def mahalanobis_and_log_t(cov_type: str, params: StudentParams, x):
    """(B, D) -> ((B, K) delta^2, (B, K) log t_nu(x | mu_k, Sigma_k))."""
    cov = COVARIANCE_TYPES[cov_type]
    k, d = params.means.shape
    g = GMMParams(jnp.ones((k,), x.dtype), params.means, params.covariances,
                  params.precisions_cholesky)
    half_log_det = cov.log_det(params.precisions_cholesky, k, d)  # log|P|/2
    log_normal = features(cov, x) @ natural_weights(cov, g)
    const = -0.5 * d * math.log(2.0 * math.pi) + half_log_det
    delta2 = jnp.maximum(-2.0 * (log_normal - const), 0.0)
    nu = params.dof
    log_t = (gammaln((nu + d) / 2) - gammaln(nu / 2) - 0.5 * d * jnp.log(nu * math.pi)
             + half_log_det - 0.5 * (nu + d) * jnp.log1p(delta2 / nu))
    return delta2, log_t


def log_joint(cov_type: str, params: StudentParams, x):
    """(B, D) -> (B, K) log w_k + log t(x | component k)."""
    return mahalanobis_and_log_t(cov_type, params, x)[1] + jnp.log(params.weights)


def _solve_dof(mean_log_u_minus_u, nu_old, d):
    """The CM-step for nu (Peel & McLachlan 2000, eq. 30): the root of
    -psi(nu/2) + log(nu/2) + 1 + mean(log u - u) + psi((nu_old+D)/2) - log((nu_old+D)/2),
    a decreasing function of nu; at a bound when the root lies outside."""
    c = 1.0 + mean_log_u_minus_u + digamma((nu_old + d) / 2) - jnp.log((nu_old + d) / 2)

    def f(log_nu):
        nu = jnp.exp(log_nu)
        return -digamma(nu / 2) + jnp.log(nu / 2) + c

    lo = jnp.full_like(nu_old, math.log(DOF_MIN))
    hi = jnp.full_like(nu_old, math.log(DOF_MAX))

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        pos = f(mid) > 0  # the root is above mid
        return jnp.where(pos, mid, lo), jnp.where(pos, hi, mid)

    lo, hi = lax.fori_loop(0, _BISECTIONS, body, (lo, hi))
    return jnp.exp(0.5 * (lo + hi))


def _add_reg(cov_type: str, c, reg):
    if COVARIANCE_TYPES[cov_type].matrices:
        return c + reg * jnp.eye(c.shape[-1], dtype=c.dtype)
    return c + reg


@functools.lru_cache(maxsize=None)
def student_family(cov_type: str, estimate_dof: bool = True) -> Family:
    """A mixture of t distributions; degrees of freedom estimated per component
    (``estimate_dof``) or kept at their start."""
    cov = COVARIANCE_TYPES[cov_type]

    def e_step(ctx, x, w):
        params, _ = ctx
        delta2, log_t = mahalanobis_and_log_t(cov_type, params, x)
        resp, lse = responsibilities(log_t + jnp.log(params.weights), w)
        d = x.shape[1]
        u = (params.dof + d) / (params.dof + delta2)
        return StudentStats((resp * u).T @ features(cov, x), resp.sum(0),
                            (resp * (jnp.log(u) - u)).sum(0), (lse * w).sum(), w.sum())

    def m_step(ctx, stats: StudentStats, hyper: StudentHyper):
        params = ctx[0]
        k, d = params.means.shape
        q = cov.n_quad(d)
        tiny = 10 * jnp.finfo(stats.resp.dtype).eps
        nk = stats.resp + tiny
        nku = stats.moments[:, -1] + tiny
        means = stats.moments[:, q:q + d] / nku[:, None]
        scale_u = cov.estimate(nku, means, stats.moments[:, :q], 0.0)  # sum r u (x-mu)^2 / sum r u
        if cov_type == "tied":
            covariances = scale_u * (nku.sum() / nk.sum())
        else:
            ratio = nku / nk
            covariances = scale_u * ratio.reshape((-1,) + (1,) * (scale_u.ndim - 1))
        covariances = _add_reg(cov_type, covariances, hyper.reg_covar)
        pc = cov.precision_cholesky(covariances)
        dof = params.dof
        if estimate_dof:
            solved = _solve_dof(stats.log_u_minus_u / nk, params.dof, d)
            dof = jnp.where(stats.resp > tiny, solved, params.dof)
        good = cov.per_component_finite(pc, k) & jnp.isfinite(means).all(-1) & jnp.isfinite(dof)
        ok = good.all()
        component = jnp.where(ok, -1, jnp.argmin(good)).astype(jnp.int32)
        return StudentParams(nk / nk.sum(), means, covariances, pc, dof), Health(ok, component)

    return Family(prepare=lambda params, hyper: (params, hyper), e_step=e_step, m_step=m_step,
                  objective=lambda ctx, stats, hyper: stats.log_lik / stats.count,
                  converged=loglik_converged,
                  name=f"student/{cov_type}/{'dof' if estimate_dof else 'fixed'}",
                  vector_form=by_field(
                      {"weights": "simplex", "means": "free",
                       "covariances": COVARIANCE_TYPES[cov_type].vector_kind,
                       "precisions_cholesky": "derived", "dof": "log"},
                      lambda p, hyper=None: p._replace(
                          precisions_cholesky=cov.precision_cholesky(p.covariances))))


@functools.lru_cache(maxsize=None)
def bound_log_joint(cov_type: str):
    """log_joint with the covariance type bound: (params, hyper, x) -> (B, K), for scoring."""
    return lambda params, hyper, x: log_joint(cov_type, params, x)
