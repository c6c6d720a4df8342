"""How the driver iterates: a *step* (plain EM, or a SQUAREM cycle) and a *stopping rule*
(the objective's change, or Aitken's gap to the limit as well), as objects the driver takes.

The in-memory driver (:func:`em.make_runner`) and the streamed one (:mod:`stream`) take one
step and one rule each and know nothing of what they are: a new way to iterate or to stop
is a new class here, not a flag threaded through the drivers. Steps and rules are frozen
dataclasses, so equal ones share a compiled program; their ``key`` names the program in
the on-disk store (:mod:`programs`).

A step's per-restart update takes and returns the restart's nine fields of
:class:`em.EMState`: ``params, objective, n_iter, status, bad_component, bad_iteration,
trace, accel, before`` (``accel``: the step's own counters, None for plain EM;
``before``: the rule's memory, None for the change rule). Frozen restarts keep their state.

Example:
    >>> make_runner(family, block_size, step=SQUAREM, rule=GAP)
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import accel
from .family import CONVERGED, DEGENERATE, NONFINITE, RUNNING


def gap_converged(change: Callable, before, prev_objective, objective, params, new_params,
                  tol):
    """The rule ``convergence="gap"``: scikit-learn's change rule (``change``) and,
    where the last three objectives ``before``, ``prev_objective``, ``objective`` shrink
    geometrically (rate c = d2 / d1 in (0, 1)), Aitken's estimate of the distance still to
    go, d2 c / (1 - c), below ``tol`` too. On EM's slow cases (c near 1) the change rule
    stops while the objective has c / (1 - c) times its last step still to climb: two
    Gaussians 1.5 sd apart stop 0.0027 below the optimum at tol=1e-3. Where the increments
    do not shrink geometrically (rounding noise at the end, accelerated steps) the change
    rule decides; where ``before`` is unknown (NaN: the first iterations), it goes on.
    :class:`GapRule` passes ``tol`` floored at the objective's rounding
    (:meth:`GapRule.tolerance`)."""
    d1, d2 = prev_objective - before, objective - prev_objective
    c = d2 / d1
    geometric = (d1 > 0) & (c > 0) & (c < 1)
    gap = d2 * c / jnp.where(geometric, 1.0 - c, 1.0)
    by_change = change(prev_objective, objective, params, new_params, tol)
    return jnp.where(d2 == 0, True,
                     jnp.where(geometric, by_change & (gap < tol),
                               by_change & jnp.isfinite(before)))


#: How many units of rounding of the objective a change must exceed to count: the mean
#: log-likelihood is a sum of n terms, each rounded (float32 on Old Faithful: changes of
#: about 1e-6 nats per sample go either way at the maximum).
ROUNDING_UNITS = 16


def rounding_floor(objective):
    """The smallest change of ``objective`` that the gap rule reads as a change:
    ROUNDING_UNITS units of rounding at its magnitude (about 1.4e-14 nats per sample in
    float64 at -4, 7.6e-6 in float32)."""
    eps = jnp.finfo(jnp.result_type(objective)).eps
    return ROUNDING_UNITS * eps * jnp.maximum(1.0, jnp.abs(objective))


#: The gap rule's second test: no parameter moves by more than this, relative to its size
#: (plus one), in one EM map. Where EM crawls in float32 the objective's gains fall below its
#: rounding while the parameters still move (two Gaussians 1.5 sd apart: 2e-7 nats per step,
#: the weight 1e-4 per step, 0.5 from its limit); at a maximum they move by rounding alone.
PARAMETER_TOL = 1e-6


def parameter_tol(dtype) -> float:
    """PARAMETER_TOL, or 64 units of rounding where that is coarser (float32: 7.6e-6; the
    float32 EM map's own fixed point wanders by a few 1e-6 on the deaths table)."""
    return max(PARAMETER_TOL, 64 * float(jnp.finfo(dtype).eps))


def parameter_change(params, new_params):
    """The largest change of any parameter in one map, relative to its size plus one
    (non-finite entries, such as a masked component's, ignored)."""
    out = jnp.zeros(())
    for old, new in zip(jax.tree.leaves(params), jax.tree.leaves(new_params)):
        if not jnp.issubdtype(old.dtype, jnp.floating) or old.size == 0:
            continue
        d = jnp.abs(new - old) / (1.0 + jnp.abs(old))
        out = jnp.maximum(out, jnp.max(jnp.where(jnp.isfinite(d), d, 0.0)))
    return out


# ---------------------------------------------------------------------------------------
# Stopping rules


@dataclasses.dataclass(frozen=True)
class ChangeRule:
    """Converged when the family's change test says so (scikit-learn's: the objective
    changed by less than ``tol``). Keeps no memory (``before`` stays None)."""

    key = ""
    name = "change"

    def initial(self, n_restarts: int, dtype):
        """The rule's memory of a fresh state (host), or None."""
        return None

    def plain(self, change, before, objective, new_objective, params, new_params, tol,
              active, finite):
        """After one plain EM step: (converged, the rule's new memory)."""
        return change(objective, new_objective, params, new_params, tol), before

    def settled(self, params, new_params):
        """Whether one EM map from ``params`` to ``new_params`` leaves the parameters where
        the rule accepts convergence: always, for the change rule."""
        return True

    def cycle(self, change, plain_converged, accepted, objective, new_objective, params,
              new_params, tol):
        """After a SQUAREM cycle whose first EM step alone gives ``plain_converged``
        (tested at :meth:`tolerance`)."""
        return plain_converged

    def tolerance(self, tol, objective):
        """The tolerance the rule applies at ``objective``: ``tol`` itself."""
        return tol


@dataclasses.dataclass(frozen=True)
class GapRule(ChangeRule):
    """The change rule and Aitken's estimate of the distance to the limit below ``tol``
    (:func:`gap_converged`); remembers the objective before the last (``before``)."""

    key = "gap"
    name = "gap"

    def initial(self, n_restarts: int, dtype):
        return np.full((n_restarts,), np.nan, dtype)

    def plain(self, change, before, objective, new_objective, params, new_params, tol,
              active, finite):
        conv = gap_converged(change, before, objective, new_objective, params, new_params,
                             self.tolerance(tol, objective))
        conv = conv & self.settled(params, new_params)
        return conv, jnp.where(active & finite, objective, before)

    def settled(self, params, new_params):
        """No parameter moved by more than :func:`parameter_tol` (relative) in the map."""
        change = parameter_change(params, new_params)
        return change <= parameter_tol(change.dtype)

    def cycle(self, change, plain_converged, accepted, objective, new_objective, params,
              new_params, tol):
        # The whole cycle, an accepted extrapolation included, must gain less than tol too:
        # the extrapolation estimates the limit, as Aitken's rule does for plain EM (a
        # rejected extrapolation estimated nothing: go on, unless the whole cycle moved the
        # objective by no more than its rounding). ``tol`` is :meth:`tolerance`'s.
        within = jnp.abs(new_objective - objective) <= rounding_floor(objective)
        return plain_converged & (accepted | within) & change(objective, new_objective, params,
                                                              new_params, tol)

    def tolerance(self, tol, objective):
        """``tol`` floored at the objective's rounding (:func:`rounding_floor`): a change
        within it is no information, and in float32 a tol below it would never be met."""
        return jnp.maximum(tol, rounding_floor(objective))


CHANGE, GAP = ChangeRule(), GapRule()
RULES = {r.name: r for r in (CHANGE, GAP)}


# ---------------------------------------------------------------------------------------
# Steps


@dataclasses.dataclass(frozen=True)
class PlainStep:
    """One EM map per iteration."""

    key = ""
    name = "plain"

    def check(self, family):
        """One sentence if ``family`` cannot be iterated this way."""

    def initial(self, params, n_restarts: int, dtype):
        """The step's counters of a fresh state (host), or None."""
        return None

    def prime(self, em_step: Callable, state):
        """Whatever the step needs before the driver's loop (traced), given the state."""
        return state

    def update(self, em_step: Callable, family, it, base, tol, hyper, rule):
        """The per-restart update of iteration ``it`` (trace column ``it - base``);
        ``em_step(params) -> (new_params, objective of params, Health)``."""

        def update(params, objective, n_iter, status, bad_component, bad_iteration, trace,
                   acc, before):
            active = status == RUNNING
            new_params, obj, health = em_step(params)
            finite = jnp.isfinite(obj)
            ok = health.ok & finite
            conv, before = rule.plain(family.converged, before, objective, obj, params,
                                      new_params, tol, active, finite)
            take = active & ok
            params = jax.tree.map(lambda new, old: jnp.where(take, new, old), new_params,
                                  params)
            j = it - base
            trace = trace.at[j].set(jnp.where(active, obj, trace[j]))
            new_status = jnp.where(
                ~finite,
                NONFINITE,
                jnp.where(~health.ok, DEGENERATE, jnp.where(conv, CONVERGED, RUNNING)),
            )
            status = jnp.where(active, new_status, status)
            failed_now = active & ~ok
            bad_component = jnp.where(failed_now, health.component, bad_component)
            bad_iteration = jnp.where(failed_now, it, bad_iteration)
            n_iter = jnp.where(take, it + 1, n_iter)
            objective = jnp.where(active & finite, obj, objective)
            return (params, objective, n_iter, status, bad_component, bad_iteration, trace,
                    acc, before)

        return update


@dataclasses.dataclass(frozen=True)
class SquaremStep(PlainStep):
    """A SQUAREM cycle per iteration (:mod:`accel`: three EM maps, an extrapolation
    between them); its counters ride in the state's ``accel``."""

    key = "squarem"
    name = "squarem"

    def check(self, family):
        if family.vector_form is None:
            raise ValueError(f"the {family.name or 'given'} family has no unconstrained vector "
                             "form, so it cannot be accelerated; use accelerate=None")

    def initial(self, params, n_restarts: int, dtype):
        return accel.host_accel(params, n_restarts, dtype)

    def prime(self, em_step: Callable, state):
        return accel.prime(em_step, state)

    def update(self, em_step: Callable, family, it, base, tol, hyper, rule):
        return accel.squarem_update(em_step, family.converged, family.vector_form, it, base,
                                    tol, hyper, rule)


PLAIN, SQUAREM = PlainStep(), SquaremStep()
STEPS = {None: PLAIN, "squarem": SQUAREM}
