"""A family of your own: mixtures of any component density written in JAX.

The user gives ``log_prob(theta, x)``, the log-density of one row ``x`` (D,)
under one component's parameters ``theta`` (any pytree of unconstrained
arrays). The E-step is the usual one (responsibilities by log-sum-exp); the
M-step has no closed form, so it is a *generalised* M-step (GEM): for each
component, a few damped Newton steps on

    Q_k(theta) = sum_i r_ik log p(x_i | theta),   r under the current parameters,

by autodiff (gradient and Hessian of Q_k, summed over the blocks by the
driver's reduction), each step taken at the best of a grid of step lengths that
includes 0. Q_k never decreases, so, as for EM, the log-likelihood never
decreases either (Dempster, Laird & Rubin 1977, GEM). Weights are closed-form.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .accel import by_field
from .em import Family, Health
from .gmm import loglik_converged, responsibilities

#: Step lengths tried along each Newton direction (0 keeps the parameters).
STEP_LENGTHS = (1.0, 0.5, 0.25, 0.125, 1 / 16, 1 / 64, 1 / 256, 0.0)


class UserParams(NamedTuple):
    """Attributes: weights (K,), theta: the components' parameters, a pytree whose
    leaves have a leading axis K."""

    weights: Any
    theta: Any


class UserStats(NamedTuple):
    counts: Any  # (K,) summed responsibilities
    log_lik: Any
    count: Any


def log_joint(log_prob: Callable, params: UserParams, x):
    """(B, D) -> (B, K) log w_k + log p(x | theta_k)."""
    per = jax.vmap(lambda theta: jax.vmap(lambda row: log_prob(theta, row))(x))(params.theta)
    return per.T + jnp.log(params.weights)[None, :]


@functools.lru_cache(maxsize=None)
def user_family(log_prob: Callable, newton_steps: int = 3) -> Family:
    """The GEM family of ``log_prob`` (see the module docstring)."""

    def e_step(ctx, x, w):
        params = ctx[0]
        resp, lse = responsibilities(log_joint(log_prob, params, x), w)
        return UserStats(resp.sum(0), (lse * w).sum(), w.sum())

    def m_step(ctx, stats: UserStats, hyper, reduce):
        old = ctx[0]
        k = stats.counts.shape[0]
        one = jax.tree.map(lambda a: a[0], old.theta)
        _, unravel = ravel_pytree(one)
        vec = jax.vmap(lambda t: ravel_pytree(t)[0])(old.theta)  # (K, P)

        # (Arrays a block reads come to reduce as operands: see em.block_sum.)
        def q_block(v, x, w, c, old):
            """sum over the block of r_ic log p(x_i | v) for component c, r under ``old``."""
            r = responsibilities(log_joint(log_prob, old, x), w)[0][:, c]
            lp = jax.vmap(lambda row: log_prob(unravel(v), row))(x)
            return jnp.sum(jnp.where(r > 0, r * lp, 0.0))

        comps = jnp.arange(k)

        def derivatives(v):
            def block(x, w, v, old):
                q = lambda vc, c: q_block(vc, x, w, c, old)  # noqa: E731
                comps = jnp.arange(k)
                return (jax.vmap(q)(v, comps), jax.vmap(jax.grad(q))(v, comps),
                        jax.vmap(jax.hessian(q))(v, comps))
            return reduce(block, v, old)

        steps = jnp.asarray(STEP_LENGTHS, vec.dtype)
        for _ in range(newton_steps):
            q0, g, h = derivatives(vec)
            p = vec.shape[1]
            eye = jnp.eye(p, dtype=vec.dtype)
            damp = 1e-6 * jnp.abs(jnp.diagonal(h, axis1=1, axis2=2)).sum(1) + 1e-12
            newton = jnp.linalg.solve(-h + damp[:, None, None] * eye, g[..., None])[..., 0]
            ascent = (newton * g).sum(1) > 0  # a Newton step uphill; else the gradient
            scale = jnp.maximum(stats.counts, 1e-12)[:, None]
            direction = jnp.where(ascent[:, None] & jnp.isfinite(newton), newton, g / scale)
            cand = vec[None] + steps[:, None, None] * direction[None]  # (S, K, P)

            def values(x, w, cand, old):
                return jax.vmap(lambda vs: jax.vmap(lambda vc, c: q_block(vc, x, w, c, old))(
                    vs, jnp.arange(k)))(cand)

            qs = reduce(values, cand, old)  # (S, K)
            qs = jnp.where(jnp.isfinite(qs) & (qs >= q0[None]), qs, -jnp.inf)
            qs = qs.at[-1].set(q0)  # the zero step is always allowed
            best = jnp.argmax(qs, axis=0)
            vec = cand[best, comps]
        theta = jax.vmap(unravel)(vec)
        weights = stats.counts / stats.counts.sum()
        ok = jnp.isfinite(vec).all() & jnp.isfinite(weights).all()
        return UserParams(weights, theta), Health(ok, jnp.int32(-1))

    return Family(prepare=lambda params, hyper: (params, hyper), e_step=e_step, m_step=m_step,
                  objective=lambda ctx, stats, hyper: stats.log_lik / stats.count,
                  converged=loglik_converged, m_step_reads_data=True,
                  vector_form=by_field({"weights": "simplex", "theta": "free"}))
