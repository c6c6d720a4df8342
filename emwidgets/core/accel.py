"""SQUAREM: EM accelerated by squared extrapolation, per restart, inside the driver.

Varadhan & Roland (2008), scheme S3, with the safeguards of the R package
``SQUAREM`` (``squarem2``). One *cycle* from the parameters theta0 is::

    theta1 = F(theta0), theta2 = F(theta1)          # two EM maps (F)
    r = u(theta1) - u(theta0), v = u(theta2) - 2 u(theta1) + u(theta0)
    alpha = clip(sqrt(|r|^2 / |v|^2), 1, step_max)  # per restart
    theta' = u^-1(u(theta0) + 2 alpha r + alpha^2 v)
    theta3 = F(theta')                              # the stabilising EM map

where ``u`` is the parameters' own coordinates where theta' is a valid model there
(weights and probabilities non-negative, rates and variances positive, covariances
positive definite: R's SQUAREM works in these), else the family's unconstrained
vector form (:class:`VectorForm`: weights and probabilities as logs, scales as logs,
covariance matrices as Cholesky factors with a log diagonal), valid by construction:
every extrapolated point is a valid model (:func:`extrapolate`).

The extrapolation is accepted if theta' is a healthy model whose objective is
at least that of theta0 (R's rule, without its allowance for a
small decrease); the cycle then ends at theta3, else at theta2 (two plain EM
steps from theta0). The third map is of that end point: it gives the end
point's objective and is the next cycle's first map, so a cycle costs three EM
maps (plus one for the first cycle) and the objective at the start of every
cycle never decreases (where the end point's map fails, or its objective is
below theta0's, see :func:`squarem_update`). ``alpha = 1`` gives theta' =
theta2: three plain EM steps. As in the R package, ``step_max`` starts at 1,
grows after a step that used it and shrinks (not below 1) after a rejected
one, by ``STEP_FACTOR``.

A cycle is one *iteration* of the driver: one trace entry (the objective of
theta0), one step of ``n_iter``; it costs three EM maps (``Accel.evals``).
Entries in the unconstrained form that are not finite (log 0: a masked
component, a probability at 0) take theta2's value and stay out of alpha.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from .covariance import one_at_a_time
from .family import CONVERGED, DEGENERATE, NONFINITE, RUNNING

#: Step length growth / shrink factor and the first cap (R SQUAREM's mstep, step.max0).
#: R's mstep is 4, but R accepts a step that lowers the log-likelihood by up to
#: objfn.inc = 1; with the objective never allowed to drop, measured here with the
#: steps in the unconstrained form only (20 random starts, tol 1e-10, float64, median
#: EM maps): a 1-D mixture of means 1.5 sd apart 397 with 2, 572 with 4 (plain EM
#: 4,546); the deaths table 137 with 2, 109 with 4 (plain EM 1,187); a first cap of
#: 4 or 16 changed little; an allowance of a few EM steps' gain changed nothing.
STEP_FACTOR, STEP_MAX0 = 2.0, 1.0
#: EM maps per cycle.
EVALS_PER_CYCLE = 3


class VectorForm(NamedTuple):
    """How a family's parameters map to an unconstrained form.

    Attributes:
        kinds: a function ``params -> pytree`` of the same structure whose leaves
            are the kind of each leaf: ``"free"``; ``"log"`` (positive);
            ``"simplex"`` (non-negative, summing to 1 along the last axis; as logs,
            back by softmax); ``"cholesky"`` (symmetric positive definite matrices
            on the last two axes; as the lower Cholesky factor with a log
            diagonal); ``"factor"`` (factor loadings and, in the last column, their
            noise variances: the loadings free, the variances as logs); ``"derived"``
            (recomputed by ``complete``).
        complete: ``(params, hyper) -> params`` recomputing the derived leaves (a
            precision Cholesky factor from the covariance) and normalising what the
            kinds cannot (latent classes' probabilities, a simplex per item), or None.
    """

    kinds: Callable
    complete: Optional[Callable] = None


def by_field(kinds: dict, complete: Optional[Callable] = None) -> VectorForm:
    """A :class:`VectorForm` for NamedTuple parameters: the kind of each field by name
    (a field holding a pytree gets its kind on every leaf)."""

    def of(params):
        return type(params)(**{f: jax.tree.map(lambda _, k=kinds[f]: k, getattr(params, f))
                               for f in params._fields})

    return VectorForm(of, complete)


def _to(kind, a):
    if kind == "free" or kind == "derived":
        return a
    if kind in ("log", "simplex"):
        return jnp.log(a)
    if kind == "factor":
        return jnp.concatenate([a[..., :-1], jnp.log(a[..., -1:])], axis=-1)
    if kind == "cholesky":
        c = one_at_a_time(jnp.linalg.cholesky, a, cost=a.shape[-1] ** 3 / 3)
        d = jnp.diagonal(c, axis1=-2, axis2=-1)
        return c - jnp.vectorize(jnp.diag, signature="(n)->(n,n)")(d - jnp.log(d))
    raise ValueError(f"unknown parameter kind {kind!r}")


def _from(kind, u):
    if kind == "free" or kind == "derived":
        return u
    if kind == "log":
        return jnp.exp(u)
    if kind == "simplex":  # (a row of zeros, a masked state's, stays zeros)
        top = u.max(axis=-1, keepdims=True)
        e = jnp.exp(u - jnp.where(jnp.isfinite(top), top, 0.0))
        total = e.sum(axis=-1, keepdims=True)
        return jnp.where(total > 0, e / jnp.where(total > 0, total, 1.0), 0.0)
    if kind == "factor":
        return jnp.concatenate([u[..., :-1], jnp.exp(u[..., -1:])], axis=-1)
    if kind == "cholesky":
        d = jnp.diagonal(u, axis1=-2, axis2=-1)
        c = jnp.tril(u) + jnp.vectorize(jnp.diag, signature="(n)->(n,n)")(jnp.exp(d) - d)
        return c @ jnp.swapaxes(c, -1, -2)
    raise ValueError(f"unknown parameter kind {kind!r}")


def to_vec(form: VectorForm, params):
    """The unconstrained form of ``params`` (a pytree like ``params``)."""
    return jax.tree.map(_to, form.kinds(params), params)


def from_vec(form: VectorForm, vec, like, hyper=None):
    """Parameters from an unconstrained form; ``like`` gives the kinds."""
    params = jax.tree.map(_from, form.kinds(like), vec)
    return params if form.complete is None else form.complete(params, hyper)


class Accel(NamedTuple):
    """Per restart (leading axis R): the step cap, the extrapolations accepted
    and rejected, the EM maps evaluated, and F(theta0) of the current
    parameters theta0 (``following``, valid once ``primed``); ``fell`` the largest
    fall of a plain EM map's objective below its start beyond the rule's rounding
    floor, and ``fell_at`` the cycle (-1: none). A cycle that would fall keeps
    theta0, so the trace never shows it: EM never falls, and in float32 rounding does
    (a covariance near reg_covar: see :func:`estimators.base.fell_sentence`)."""

    step_max: Any
    accepted: Any
    rejected: Any
    evals: Any
    following: Any
    primed: Any
    fell: Any = None
    fell_at: Any = None


def host_accel(params, n_restarts: int, dtype) -> Accel:
    """A fresh :class:`Accel` (no compiled program): ``following`` is a placeholder."""
    zeros = np.zeros((n_restarts,), np.int32)
    return Accel(np.full((n_restarts,), STEP_MAX0, dtype), zeros, zeros.copy(), zeros.copy(),
                 params, np.zeros((n_restarts,), bool), np.zeros((n_restarts,), dtype),
                 np.full((n_restarts,), -1, np.int32))


def _squared_step(leaves0, leaves1, leaves2, use, step_max):
    """SQUAREM's step over the leaves in ``use`` (others take theta2's value): the
    extrapolated leaves and alpha = clip(|r| / |v|, 1, step_max)."""
    ok = [u & jnp.isfinite(a) & jnp.isfinite(b) & jnp.isfinite(c)
          for u, a, b, c in zip(use, leaves0, leaves1, leaves2)]
    r = [jnp.where(m, b - a, 0.0) for m, a, b in zip(ok, leaves0, leaves1)]
    v = [jnp.where(m, c - 2.0 * b + a, 0.0) for m, a, b, c in zip(ok, leaves0, leaves1, leaves2)]
    sr2 = sum((x * x).sum() for x in r)
    sv2 = sum((x * x).sum() for x in v)
    alpha = jnp.sqrt(sr2 / jnp.maximum(sv2, jnp.finfo(sv2.dtype).tiny))
    alpha = jnp.where(jnp.isfinite(alpha) & (sv2 > 0), jnp.clip(alpha, 1.0, step_max), 1.0)
    new = [jnp.where(m, a + 2.0 * alpha * dr + alpha**2 * dv, c)
           for m, a, c, dr, dv in zip(ok, leaves0, leaves2, r, v)]
    return new, alpha


def _valid(kind, x, fallback):
    """Whether a leaf extrapolated in the parameters' own coordinates is a valid value of
    its kind (entries equal to theta2's, such as a masked component's zeros, always are)."""
    same = x == fallback
    if kind == "simplex":
        return jnp.all((x >= 0) | same)
    if kind == "log":
        return jnp.all((x > 0) | same)
    if kind == "cholesky":
        return jnp.all(jnp.isfinite(one_at_a_time(jnp.linalg.cholesky, x,
                                                  cost=x.shape[-1] ** 3 / 3)))
    if kind == "factor":
        return jnp.all(jnp.isfinite(x)) & jnp.all((x[..., -1] > 0) | same[..., -1])
    return jnp.all(jnp.isfinite(x))


def extrapolate(form: VectorForm, theta0, theta1, theta2, step_max, hyper=None):
    """theta' and alpha of one SQUAREM cycle (module docstring).

    The step is taken in the parameters' own coordinates where it lands on a valid model
    (weights and probabilities non-negative, rates and variances positive, covariance
    matrices positive definite), as R's SQUAREM does; else in the unconstrained form,
    which is valid by construction. Measured from the same 16 starts (tol 1e-10): the
    unconstrained form alone rejected about a third of its steps and needed 172 EM maps
    for the slowest restart on the deaths table and 436 on two Gaussians 1.5 sd apart,
    the parameters' own coordinates 91 and 343 (R's SQUAREM works in those). Derived
    leaves (a precision factor) are recomputed, never extrapolated."""
    kinds = jax.tree.leaves(form.kinds(theta0))
    use = [k != "derived" for k in kinds]
    leaves = [jax.tree.leaves(t) for t in (theta0, theta1, theta2)]
    tree = jax.tree.structure(theta0)
    # In the parameters' own coordinates.
    raw, alpha_raw = _squared_step(*leaves, use, step_max)
    valid = functools.reduce(jnp.logical_and, [
        _valid(k, x, c) for k, x, c, u in zip(kinds, raw, leaves[2], use) if u])
    theta_raw = jax.tree.unflatten(tree, raw)
    if form.complete is not None:
        theta_raw = form.complete(theta_raw, hyper)
    # In the unconstrained form.
    u0, u1, u2 = (jax.tree.leaves(to_vec(form, t)) for t in (theta0, theta1, theta2))
    unc, alpha_unc = _squared_step(u0, u1, u2, use, step_max)
    theta_unc = from_vec(form, jax.tree.unflatten(tree, unc), theta0, hyper)
    theta = jax.tree.map(lambda a, b: jnp.where(valid, a, b), theta_raw, theta_unc)
    alpha = jnp.where(valid, alpha_raw, alpha_unc)
    # (alpha = 1 is theta2 exactly, not up to the round trip through the vector form.)
    theta = jax.tree.map(lambda a, b: jnp.where(alpha == 1.0, b, a), theta, theta2)
    return theta, alpha


def prime(em_step: Callable, state):
    """The first EM map of every running restart not yet primed (the driver calls it
    before its loop): ``following`` = F(theta0), the objective of theta0."""
    def one(params, objective, status, acc):
        nxt, obj, health = em_step(params)
        todo = (status == RUNNING) & ~acc.primed
        finite = jnp.isfinite(obj)
        status = jnp.where(todo & ~finite, NONFINITE,
                           jnp.where(todo & ~health.ok, DEGENERATE, status))
        following = jax.tree.map(lambda a, b: jnp.where(todo, a, b), nxt, acc.following)
        return (jnp.where(todo & finite, obj, objective), status,
                acc._replace(following=following, primed=acc.primed | todo,
                             evals=acc.evals + todo.astype(jnp.int32)))

    def run(s):
        objective, status, acc = jax.vmap(one)(s.params, s.objective, s.status, s.accel)
        return s._replace(objective=objective, status=status, accel=acc)

    needed = jnp.any((state.status == RUNNING) & ~state.accel.primed)
    return jax.lax.cond(needed, run, lambda s: s, state)


def squarem_update(em_step: Callable, converged: Callable, form: VectorForm, it, base, tol,
                   hyper, rule):
    """One SQUAREM cycle for one restart; frozen restarts keep their state.

    ``em_step(params) -> (new_params, objective of params, Health)``. The
    arguments and results follow the plain step's (:class:`iteration.PlainStep`), with
    the restart's :class:`Accel` as ``acc``. The restart is at theta0 (``params``, objective
    L0 known) with theta1 = F(theta0) known (``acc.following``). The cycle maps
    theta1 (theta2, L1), extrapolates (theta'), maps theta' (theta3, L(theta')),
    and accepts the extrapolation if L(theta') >= L0; the cycle then ends at
    theta3 (one EM map past theta'), else at theta2 (two plain EM maps past
    theta0). The third map is of that end point: its objective, and the next
    cycle's theta1. Three EM maps a cycle, whichever way it goes. ``rule`` (an
    :mod:`iteration` rule) decides convergence; ``before`` is passed through unchanged.
    """
    def where(c, a, b):
        return jax.tree.map(lambda x, y: jnp.where(c, x, y), a, b)

    def update(params, objective, n_iter, status, bad_component, bad_iteration, trace, acc,
               before):
        active = status == RUNNING
        theta1 = acc.following
        theta2, obj1, h2 = em_step(theta1)
        ok2 = h2.ok & jnp.isfinite(obj1)
        theta_x, alpha = extrapolate(form, params, theta1, theta2, acc.step_max, hyper)
        theta3, obj_x, h3 = em_step(theta_x)
        accept = ok2 & h3.ok & jnp.isfinite(obj_x) & (obj_x >= objective)
        end = where(accept, theta3, theta2)
        following, obj_end, h4 = em_step(end)
        good = ok2 & h4.ok & jnp.isfinite(obj_end)
        # The end point failed (a degenerate map of it): plain EM's point theta1, whose map
        # theta2 is known. Plain EM's point below theta0: an EM map with a floor (reg_covar,
        # min_covar) ascends only away from its fixed point; near it the floor's pull can
        # cost a few 1e-9 of log-likelihood, and the extrapolation gets there sooner than
        # plain EM. The restart has then converged and stays at theta0, the better point.
        new_params = where(good, end, theta1)
        new_following = where(good, following, theta2)
        new_obj = jnp.where(good, obj_end, obj1)
        # (a rule with a rounding floor reads a drop within it as no drop: in float32 the
        # crawl's gains are that small, and every cycle looked stalled)
        floor = rule.tolerance(0.0, objective)
        stalled = ok2 & (new_obj < objective - floor)
        drop = jnp.where(active & ok2 & (obj1 < objective - floor), objective - obj1, 0.0)
        # Stalled while the parameters still move (a rule that asks them to settle, in
        # float32 where the objective's rounding hides the crawl): one plain EM step, theta1,
        # instead of converging where the objective's noise stopped it, if that step did not
        # fall (a floor's pull, as above, converges at theta0).
        settled = rule.settled(params, theta1)
        moving = stalled & ~settled & (obj1 >= objective)
        stalled = stalled & ~moving
        new_params = where(stalled, params, where(moving, theta1, new_params))
        new_following = where(stalled, acc.following, where(moving, theta2, new_following))
        new_obj = jnp.where(stalled, objective, jnp.where(moving, obj1, new_obj))
        j = it - base
        # Converged where one plain EM step from theta0 gains less than tol (the change
        # rule's meaning: where plain EM would stop; a cycle's own gain swings between a
        # long extrapolation and two plain steps, and stopped runs 2.7e-4 short of the
        # limit on two Gaussians 1.5 sd apart at tol=1e-6). A rule may ask more of the
        # whole cycle (the gap rule: :meth:`iteration.GapRule.cycle`).
        tol_here = rule.tolerance(tol, objective)
        conv = converged(objective, obj1, params, theta1, tol_here) & ok2 & settled
        conv = rule.cycle(converged, conv, accept, objective, new_obj, params, new_params,
                          tol_here)
        conv = conv | stalled
        # A failing map of theta1 ends the restart there, as plain EM's would.
        take = active & (ok2 | jnp.isfinite(obj1))
        params = where(take, new_params, params)
        following = where(take, new_following, acc.following)
        trace = trace.at[j].set(jnp.where(active, objective, trace[j]))
        new_status = jnp.where(~jnp.isfinite(obj1), NONFINITE,
                               jnp.where(~h2.ok, DEGENERATE, jnp.where(conv, CONVERGED, RUNNING)))
        status = jnp.where(active, new_status, status)
        failed_now = active & ~ok2
        bad_component = jnp.where(failed_now, h2.component, bad_component)
        bad_iteration = jnp.where(failed_now, it, bad_iteration)
        n_iter = jnp.where(take, it + 1, n_iter)
        objective = jnp.where(take & jnp.isfinite(new_obj), new_obj, objective)
        # The step cap (R SQUAREM): shrink after a rejection at the cap, grow after using it.
        extrapolated = ok2 & (alpha > 1.0)
        rejected = extrapolated & ~accept
        at_cap = alpha >= acc.step_max
        step_max = jnp.where(rejected & at_cap,
                             jnp.maximum(STEP_MAX0, acc.step_max / STEP_FACTOR), acc.step_max)
        step_max = jnp.where(~rejected & at_cap & ok2, step_max * STEP_FACTOR, step_max)
        acc = acc._replace(
            step_max=jnp.where(active, step_max, acc.step_max),
            accepted=acc.accepted + (active & extrapolated & accept).astype(jnp.int32),
            rejected=acc.rejected + (active & rejected).astype(jnp.int32),
            evals=acc.evals + jnp.where(active, EVALS_PER_CYCLE, 0).astype(jnp.int32),
            following=following,
            fell=jnp.maximum(acc.fell, drop),
            fell_at=jnp.where(drop > acc.fell, it, acc.fell_at),
        )
        return (params, objective, n_iter, status, bad_component, bad_iteration, trace, acc,
                before)

    return update
