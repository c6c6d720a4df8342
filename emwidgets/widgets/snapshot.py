"""What the views draw: a :class:`Snapshot` of every restart of a fit, live or finished.

A snapshot comes from a fit in progress (:func:`snapshot_from_live`, between the
chunks of a Run) or from a fitted estimator (:func:`snapshot_from_estimator`, for
the views used alone); both go through the estimators' own assignment hooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import jax
import numpy as np

from ..compare import Solutions, group_restarts, solutions_of
from ..estimators.base import Restarts
from ..estimators.gaussian_mixture import GaussianMixture
from ..estimators.validation import as_2d_float


@dataclass
class Snapshot:
    """What the views draw: every restart's state for the displayed samples.

    Attributes:
        restarts: traces, objective, status and parameters of every restart.
        covariance_type: of the fit.
        X: (n, D) displayed samples (a subsample when the data are large).
        labels, uncertainty: (R, n) per restart.
        solutions: restarts grouped into distinct solutions.
        iteration: iterations run so far; done: the run has ended.
        elapsed: seconds since Run.
    """

    restarts: Restarts
    covariance_type: str
    X: np.ndarray
    labels: np.ndarray
    uncertainty: np.ndarray
    solutions: Solutions
    iteration: int
    done: bool
    elapsed: float = 0.0
    posteriors: Optional[np.ndarray] = None  # (R, n, S) state posteriors, for HMMs
    filled: Optional[np.ndarray] = None  # (R, n, D) X with missing entries imputed per restart
    missing: Optional[np.ndarray] = None  # (n, D) bool, the entries of X that are missing
    stopped: bool = False  # the run was stopped by the user before it converged
    run: int = -1  # which run of its session (a new number for every Run)
    #: For families drawn by their parameters (latent classes, counts): every restart's
    #: component profile (an emwidgets Profile); None for those drawn in the data's plane.
    profile: Optional[object] = None
    #: Large data: the density image's counts, {restart: (G, G, K)} responsibilities summed
    #: per bin of the plotted plane over every row, and its extent (x0, x1, y0, y1).
    density: Optional[dict] = None
    density_extent: Optional[tuple] = None
    #: Where the density's counts come from, (live fit, estimator, rows' grid cells): each
    #: snapshot its own, so a scrubbed frame and the run's end both keep their image.
    density_source: Optional[tuple] = field(default=None, repr=False)
    #: A scrubbed frame (:meth:`FitSession.frame_at`): the iteration whose parameters are
    #: drawn, and the one whose responsibilities colour the points (the same, or one less
    #: after an M-step); None for a run's own frames.
    scrub: Optional[int] = None
    labels_at: Optional[int] = None

    @property
    def best(self) -> int:
        return self.restarts.best

    def points(self, restart: int) -> np.ndarray:
        """(n, D) samples as restart ``restart`` sees them (imputed where missing)."""
        return self.X if self.filled is None else self.filled[restart]


def snapshot_from_estimator(gm: GaussianMixture, X, done: bool = True, iteration=None,
                            elapsed: float = 0.0) -> Snapshot:
    """A :class:`Snapshot` of a fitted :class:`GaussianMixture` on data ``X``.

    Rows with NaN (a model fitted with ``missing='em'``) are assigned from
    their observed values and shown at their imputed positions. Any other
    family's estimator (LatentClassModel, PoissonMixture, StudentMixture,
    MixtureModel, the HMMs) gives the snapshot of its restarts and assignments:
    what the convergence view draws.
    """
    if not isinstance(gm, GaussianMixture):
        return _family_snapshot(gm, X, done, iteration, elapsed)
    Xa, _ = as_2d_float(X, allow_nan=gm.missing == "em")
    missing = np.isnan(Xa)
    r = gm.restarts_
    labels, unc, filled = [], [], []
    for i in range(r.n_restarts):
        one = gm.restart(i)
        p = one.predict_proba(Xa)
        labels.append(p.argmax(1))
        unc.append(1 - p.max(1))
        if missing.any():
            filled.append(one.impute(Xa))
    labels, unc = np.array(labels), np.array(unc)
    sol = solutions_of(r, labels)
    it = int(np.nanmax(r.n_iter)) if iteration is None else iteration
    extra = dict(filled=np.array(filled), missing=missing) if missing.any() else {}
    return Snapshot(r, gm.covariance_type, Xa, labels, unc, sol, it, done, elapsed, **extra)


def _family_snapshot(est, X, done, iteration, elapsed) -> Snapshot:
    r = est.restarts_
    probs = np.array([est.restart(i).predict_proba(X) for i in range(r.n_restarts)])
    labels, unc = probs.argmax(-1), 1 - probs.max(-1)
    rows = np.asarray(est._encode(X, reset=False), np.float64)
    it = int(np.nanmax(r.n_iter)) if iteration is None else iteration
    names = getattr(est, "feature_names_in_", None)
    names = [f"x{i}" for i in range(est.n_features_in_)] if names is None else list(names)
    profile = est.profile_of(r.params, names) if hasattr(est, "profile_of") else None
    return Snapshot(r, getattr(est, "covariance_type", ""), rows, labels, unc,
                    family_solutions(r, labels), it, done, elapsed, profile=profile)


def family_solutions(r: Restarts, labels) -> Solutions:
    """Restarts of any family grouped into solutions by their label-aligned component
    parameters (rates, response probabilities, locations...): every (R, K, ...)
    parameter, flattened per component; by their means alone where they have means
    (t mixtures, as Gaussians: a poorly identified degrees of freedom does not make
    two restarts with the same clusters different solutions)."""
    k = len(np.asarray(r.params.get("startprob", r.params.get("weights")))[0])
    grouped = {"means": r.params["means"]} if "means" in r.params else r.params
    per_component = [np.asarray(a, np.float64).reshape(r.n_restarts, k, -1)
                     for name, value in grouped.items() if name not in _CHAIN
                     for a in jax.tree.leaves(value)]
    return group_restarts(labels, r.objective, np.concatenate(per_component, -1),
                          ~r.failed, order=r.ranking(), spurious=r.spurious, tol=r.tol)


_CHAIN = ("weights", "startprob", "transmat")


def snapshot_from_live(live, est: GaussianMixture, display_idx, elapsed, done) -> Snapshot:
    """Snapshot of a fit in progress: labels of every restart on the displayed rows."""
    restarts = live.snapshot()
    a = est.live_view(live, "assignments", display_idx)
    extra = {name: a[name] for name in ("filled", "missing") if name in a}
    return Snapshot(restarts, est.covariance_type, a["X"], a["labels"], a["uncertainty"],
                    solutions_of(restarts, a["labels"]), live.iteration, done, elapsed, **extra)
