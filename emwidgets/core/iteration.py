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
    rule decides; where ``before`` is unknown (NaN: the first iterations), it goes on."""
    d1, d2 = prev_objective - before, objective - prev_objective
    c = d2 / d1
    geometric = (d1 > 0) & (c > 0) & (c < 1)
    gap = d2 * c / jnp.where(geometric, 1.0 - c, 1.0)
    by_change = change(prev_objective, objective, params, new_params, tol)
    return jnp.where(d2 == 0, True,
                     jnp.where(geometric, by_change & (gap < tol),
                               by_change & jnp.isfinite(before)))


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

    def cycle(self, change, plain_converged, accepted, objective, new_objective, params,
              new_params, tol):
        """After a SQUAREM cycle whose first EM step alone gives ``plain_converged``."""
        return plain_converged


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
        conv = gap_converged(change, before, objective, new_objective, params, new_params, tol)
        return conv, jnp.where(active & finite, objective, before)

    def cycle(self, change, plain_converged, accepted, objective, new_objective, params,
              new_params, tol):
        # The whole cycle, an accepted extrapolation included, must gain less than tol too:
        # the extrapolation estimates the limit, as Aitken's rule does for plain EM (a
        # rejected extrapolation estimated nothing: go on).
        return plain_converged & accepted & change(objective, new_objective, params,
                                                   new_params, tol)


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
