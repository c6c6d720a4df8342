"""The model behind the explorer: settings and the latest result, as traitlets.

Controls are linked to the settings traits; views observe ``snapshot``. A run
happens in a worker thread that advances every restart a few jitted iterations
at a time (the same compiled program as a batch fit) and publishes a
:class:`Snapshot` between chunks, so the notebook stays responsive and Stop
takes effect within one chunk (chunks are sized to take about 0.1 s).
Errors become a sentence in ``status``; the previous result stays.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from typing import Optional

import jax.numpy as jnp
import numpy as np
import pandas as pd
import traitlets as T

from .._validation import as_2d_float
from ..compare import Solutions, group_restarts
from ..core import gmm as G
from ..core import missing as MS
from ..estimators import GaussianMixture, Restarts
from ..plotting import principal_axes

MAX_DISPLAY_POINTS = 5000
CHUNK_SECONDS = 0.1


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
    their observed values and shown at their imputed positions.
    """
    Xa, _ = as_2d_float(X, allow_nan=gm.missing == "em")
    missing = np.isnan(Xa)
    r = gm.restarts_
    labels, unc, filled = [], [], []
    for i in range(r.n_restarts):
        one = GaussianMixture(gm.n_components, covariance_type=gm.covariance_type,
                              missing=gm.missing)
        one.__dict__.update(n_features_in_=gm.n_features_in_, _scaling=gm._scaling,
                            weights_=r.params["weights"][i], means_=r.params["means"][i],
                            covariances_=r.params["covariances"][i],
                            precisions_cholesky_=r.params["precisions_cholesky"][i])
        p = one.predict_proba(Xa)
        labels.append(p.argmax(1))
        unc.append(1 - p.max(1))
        if missing.any():
            filled.append(one.impute(Xa))
    labels, unc = np.array(labels), np.array(unc)
    sol = group_restarts(labels, r.objective, r.params["means"], ~r.failed)
    it = int(np.nanmax(r.n_iter)) if iteration is None else iteration
    extra = dict(filled=np.array(filled), missing=missing) if missing.any() else {}
    return Snapshot(r, gm.covariance_type, Xa, labels, unc, sol, it, done, elapsed, **extra)


class FitSession(T.HasTraits):
    """Settings, data and the latest result of an interactive mixture fit."""

    n_components = T.Int(2, min=1)
    covariance_type = T.Enum(["full", "tied", "diag", "spherical"], default_value="full")
    init_params = T.Enum(list(G.INIT_METHODS), default_value="kmeans")
    tol = T.Float(1e-3)
    max_iter = T.Int(100, min=1)
    n_init = T.Int(16, min=1)
    random_state = T.Int(0)
    reg_covar = T.Float(1e-6)
    x_axis = T.Unicode()
    y_axis = T.Unicode()
    #: Rows with missing values: fit them by EM over their observed values ("em")
    #: or use complete rows only ("drop").
    missing = T.Enum(["em", "drop"], default_value="em")
    supports_missing = True

    snapshot = T.Instance(Snapshot, allow_none=True)
    estimator = T.Any(None, allow_none=True)  # the fitted model of the last complete run
    selected = T.Int(-1)  # restart shown in the main view; -1 = the best
    running = T.Bool(False)
    status = T.Unicode("Ready: press Run.")
    error = T.Unicode("")

    def __init__(self, data, **settings):
        super().__init__(**settings)
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.set_data(data)

    # -- data -------------------------------------------------------------------
    def set_data(self, data):
        """Use a DataFrame (numeric columns) or an (N, D) array.

        NaN marks a missing value. Rows with infinite values or with nothing
        observed are dropped (``n_dropped``); other incomplete rows are fitted by
        EM over their observed values or dropped, as ``missing`` says.
        """
        if isinstance(data, pd.DataFrame):
            numeric = data.select_dtypes("number")
            if numeric.shape[1] == 0:
                raise ValueError("The data frame has no numeric column to fit; pass numeric data.")
            self.columns = [str(c) for c in numeric.columns]
            X = numeric.to_numpy(dtype=float)
        else:
            X = np.asarray(data, dtype=float)
            if X.ndim != 2:
                raise ValueError(f"Pass the data as a table (n_samples, n_features), not an array of "
                                 f"{X.ndim} dimensions.")
            self.columns = [f"x{i}" for i in range(X.shape[1])]
        usable = ~np.isinf(X).any(axis=1) & ~np.isnan(X).all(axis=1)
        self._all_rows = X[usable]
        self._n_unusable = int((~usable).sum())
        self.has_missing = bool(self.supports_missing and np.isnan(self._all_rows).any())
        self._choose_rows()
        choices = self.axis_choices
        self.x_axis = choices[0]
        self.y_axis = choices[1] if len(choices) > 1 else choices[0]

    @T.observe("missing")
    def _missing_changed(self, change):
        if hasattr(self, "_all_rows"):
            self._choose_rows()

    def _choose_rows(self):
        X = self._all_rows
        if not (self.has_missing and self.missing == "em"):
            X = X[~np.isnan(X).any(axis=1)]
        self.n_dropped = self._n_unusable + len(self._all_rows) - len(X)
        self.X = X
        rng = np.random.default_rng(0)
        self._display = (np.sort(rng.choice(len(X), MAX_DISPLAY_POINTS, replace=False))
                         if len(X) > MAX_DISPLAY_POINTS else np.arange(len(X)))

    @property
    def fits_missing(self) -> bool:
        """Incomplete rows are in the fit (EM over observed values)."""
        return self.has_missing and self.missing == "em"

    @property
    def axis_choices(self) -> list:
        extra = ["PC1", "PC2"] if self.X.shape[1] > 2 else []
        return self.columns + extra

    def projection(self) -> np.ndarray:
        """(D, 2) matrix mapping samples to the plotted axes."""
        d = self.X.shape[1]
        complete = self.X[~np.isnan(self.X).any(axis=1)]
        pcs = principal_axes(complete if len(complete) > d else self._mean_filled()) if d > 2 else None
        cols = []
        for name in (self.x_axis, self.y_axis):
            if name in ("PC1", "PC2") and pcs is not None:
                cols.append(pcs[:, int(name[-1]) - 1])
            else:
                v = np.zeros(d)
                v[self.columns.index(name) if name in self.columns else 0] = 1.0
                cols.append(v)
        return np.column_stack(cols)

    def _mean_filled(self) -> np.ndarray:
        return np.where(np.isnan(self.X), np.nanmean(self.X, axis=0), self.X)

    # -- running ---------------------------------------------------------------
    def settings(self) -> dict:
        return dict(n_components=self.n_components, covariance_type=self.covariance_type,
                    init_params=self.init_params, tol=self.tol, max_iter=self.max_iter,
                    n_init=self.n_init, random_state=self.random_state, reg_covar=self.reg_covar,
                    missing="em" if self.fits_missing else "raise")

    def run(self, block: bool = False):
        """Start a fit with the current settings (replacing a running one)."""
        self.stop()
        self._stop = threading.Event()
        self.running = True
        self.error = ""
        self.status = "Compiling and initialising…"
        self._thread = threading.Thread(target=self._work, args=(self._stop,), daemon=True)
        self._thread.start()
        if block:
            self.wait()

    def stop(self):
        """Ask a running fit to stop after its current chunk and wait for it."""
        self._stop.set()
        t = self._thread
        if t is not None and t.is_alive() and t is not threading.current_thread():
            t.join()

    def stop_async(self):
        """Ask a running fit to stop after its current chunk, without waiting."""
        self._stop.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True

    def _fail(self, exc: Exception):
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        self.error = message
        self.status = f"Error: {message} The previous result is kept."

    def _work(self, stop: threading.Event):
        t0 = time.perf_counter()
        try:
            if len(self.X) == 0:
                raise ValueError("There is no complete row to fit: select data with at least a few "
                                 "rows (or set missing to EM).")
            est = self._make_estimator()
            live = est.start(self.X)
            chunk = 1
            while not live.done and not stop.is_set():
                t = time.perf_counter()
                live.advance(chunk)
                self._publish(live, est, time.perf_counter() - t0, done=False)
                dt = time.perf_counter() - t
                chunk = int(np.clip(chunk * CHUNK_SECONDS / max(dt, 1e-4), 1, 64))
            if stop.is_set():
                self._publish(live, est, time.perf_counter() - t0, done=False)
                self.status = f"Stopped at iteration {live.iteration}. " + self._summary(self.snapshot)
                return
            live.finish()
            self.estimator = est
            snap = self._snapshot(live, est, time.perf_counter() - t0, done=True)
            self.snapshot = snap
            self.status = f"Done in {snap.elapsed:.1f} s: " + self._summary(snap)
        except Exception as exc:  # shown to the user; the kernel and old result survive
            self._fail(exc)
            self._last_traceback = traceback.format_exc()
        finally:
            self.running = False

    def _make_estimator(self):
        return GaussianMixture(**self.settings())

    def _snapshot(self, live, est, elapsed, done) -> Snapshot:
        return snapshot_from_live(live, est, self._display, elapsed, done)

    def _publish(self, live, est, elapsed, done):
        snap = self._snapshot(live, est, elapsed, done)
        self.snapshot = snap
        self.status = f"Running: iteration {snap.iteration}, {elapsed:.1f} s. " + self._summary(snap)

    @staticmethod
    def _summary(snap: Optional[Snapshot]) -> str:
        if snap is None:
            return ""
        r = snap.restarts
        n = r.n_restarts
        parts = [f"{int(r.converged.sum())} of {n} restarts converged"]
        if snap.missing is not None:
            incomplete = int(snap.missing.any(axis=1).sum())
            parts.insert(0, f"{incomplete} incomplete rows fitted by EM over their observed values "
                            "(hollow points: imputed)")
        if snap.done or r.best >= 0:
            parts.append(f"best log-likelihood {r.objective[r.best]:.4f} (restart {r.best})")
        n_sol = len(snap.solutions.groups)
        parts.append(f"{n_sol} distinct solution{'s' if n_sol != 1 else ''}")
        hit = sum(s == "max_iter reached" for s in r.status)
        if hit:
            parts.append(f"{hit} hit max_iter")
        warn = [m for m in r.messages if "dropped" in m]
        if warn:
            parts.append(f"warning: {warn[0]}" + (f" (+{len(warn) - 1} more)" if len(warn) > 1 else ""))
        return "; ".join(parts) + "."


def snapshot_from_live(live, est: GaussianMixture, display_idx, elapsed, done) -> Snapshot:
    """Snapshot of a fit in progress: labels of every restart on the displayed rows."""
    restarts = live.snapshot()
    state = live.run.state
    idx = jnp.asarray(display_idx)
    s = live.scaling
    extra = {}
    if isinstance(live.run.data.x, MS.Rows):  # missing values: assign from the observed part
        rows = live.run.data.x
        patterns = live.run.hyper.patterns
        z, pattern = rows.values[idx], rows.pattern[idx]
        labels, unc, filled = MS.assign_batch(state.params, z, pattern, patterns,
                                              cov_type=est.covariance_type)
        observed = np.asarray(patterns)[np.asarray(pattern)]
        X = np.where(observed, np.asarray(z, np.float64) * s.scale + s.shift, np.nan)
        filled = np.where(observed, X, np.asarray(filled, np.float64) * s.scale + s.shift)
        extra = dict(filled=filled, missing=~observed)
    else:
        z = live.run.data.x[idx]
        labels, unc = G.assign_batch(state.params, z, cov_type=est.covariance_type)
        X = np.asarray(z, np.float64) * s.scale + s.shift
    labels, unc = np.asarray(labels), np.asarray(unc, dtype=np.float64)
    sol = group_restarts(labels, restarts.objective, restarts.params["means"], ~restarts.failed)
    return Snapshot(restarts, est.covariance_type, X, labels, unc, sol, live.iteration, done,
                    elapsed, **extra)
