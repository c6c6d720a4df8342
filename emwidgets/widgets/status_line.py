"""The explorer's status line as pure functions of a :class:`~.snapshot.Snapshot`.

What a run found (restarts converged, the best log-likelihood, spurious maxima, how
many distinct solutions, restarts that stopped short) is read from the snapshot
alone, so the same words describe a live frame, a finished run and a scrubbed one,
and a test reads them without a widget.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..estimators.base import CONTROLS_ADVICE, stopped_short
from .snapshot import Snapshot


def result_line(snap: Optional[Snapshot]) -> str:
    """The shown result in a few words (what a Stop or an error says is kept)."""
    if snap is None:
        return ""
    r = snap.restarts
    if r.best < 0:
        return "no usable restart"
    return f"best log-likelihood {r.objective[r.best]:.4f} after {snap.iteration} iterations"


def summary(snap: Optional[Snapshot], distance_words: str = "sd in the means") -> str:
    """What the run in ``snap`` found, in one paragraph (``distance_words``: how the
    restart grouping's parameter tolerance reads)."""
    if snap is None:
        return ""
    r = snap.restarts
    n = r.n_restarts
    parts = [f"{int(r.converged.sum())} of {n} restarts converged"]
    if snap.missing is not None:
        incomplete = int(snap.missing.any(axis=1).sum())
        parts.insert(0, f"{incomplete} incomplete rows fitted by EM over their observed values "
                        "(hollow points: imputed)")
    spurious = np.asarray(getattr(r, "spurious", np.zeros(n, bool)), bool)
    b = r.best
    if b >= 0 and spurious[b]:
        parts.append(f"no regular solution: the best log-likelihood {r.objective[b]:.4f} "
                     f"(restart {b}) is a spurious maximum ({r.spurious_reasons[b]})")
    elif b >= 0:
        parts.append(f"best {'regular solution' if spurious.any() else 'log-likelihood'} "
                     f"{r.objective[b]:.4f} (restart {b})")
        short = stopped_short(r, b, CONTROLS_ADVICE) if snap.done else ""
        if short:
            parts.append(short)
    if spurious.any() and not spurious[b]:
        first = int(np.flatnonzero(spurious)[0])
        parts.append(f"{int(spurious.sum())} restart{'s' if spurious.sum() > 1 else ''} "
                     f"spurious, ranked last (restart {first}: {r.spurious_reasons[first]})")
    sol = snap.solutions
    n_sol = len(sol.groups)
    if n_sol == 1 and len(sol.groups[0]) == int((~r.failed).sum()) > 1:
        parts.append(f"every restart found the same solution (within {sol.tol_objective:.2g} "
                     f"in log-likelihood and {sol.tol_means:.2g} "
                     f"{distance_words})")
    elif n_sol > 1:
        gap = getattr(sol, "gap", None)
        second = (f"; #2 is {-gap[1]:.3g} below the best" if gap is not None and len(gap) > 1
                  and gap[1] <= 0 else "")
        parts.append(f"{n_sol} distinct solutions (the best found by {len(sol.groups[0])} of "
                     f"{n}{second})")
    else:
        parts.append(f"{n_sol} distinct solution{'s' if n_sol != 1 else ''}")
    hit = sum(s == "max_iter reached" for s in r.status)
    if hit:
        parts.append(f"{hit} hit max_iter")
    warn = [m for m in r.messages if "dropped" in m]
    if warn:
        more = f" (+{len(warn) - 1} more)" if len(warn) > 1 else ""
        parts.append(f"warning: {warn[0]}{more}")
    return "; ".join(parts) + "."


def picker_options(snap: Snapshot) -> list:
    """(label, restart) of the restart picker: "best", then every restart, ranked with
    its log-likelihood once the run has ended."""
    r = snap.restarts
    if not snap.done:
        return [("best", -1)] + [(f"{i} (running)", i) for i in range(r.n_restarts)]
    # Short enough for the 262 px menu: what a restart is (spurious, failed) comes first,
    # before the log-likelihood (a long label was cut at "... spuriou").
    return [("best", -1)] + [
        (f"{i}: {'spurious, ' if r.spurious[i] else ''}{'failed, ' if r.failed[i] else ''}"
         f"ll {r.objective[i]:.3f} (#{rank + 1})", int(i))
        for rank, i in enumerate(r.ranking())]
