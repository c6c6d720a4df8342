"""The model behind the explorer: settings and the latest result, as traitlets.

Controls are linked to the settings traits; views observe ``snapshot``. A run
happens in a worker thread that advances every restart a few jitted iterations
at a time (the same compiled program as a batch fit) and publishes a
:class:`Snapshot` between chunks, so the notebook stays responsive. Stop takes
effect at once while the run compiles (the run is abandoned and the previous
result stays on screen) and within one chunk after (chunks take about 0.1 s).
``snapshot``, ``estimator`` and the explorer's restart picker always describe
the same run; ``stale`` says when the controls have moved on since. Errors
become a sentence in ``status``; the previous result stays.
"""

from __future__ import annotations

import atexit
import copy
import os
import threading
import time
import traceback
import warnings
import weakref
from typing import Optional

import numpy as np
import traitlets

from .._table import Table as _Table
from ..estimators.gaussian_mixture import GaussianMixture
from ..plotting import principal_axes
from .snapshot import (  # noqa: F401  (Snapshot and its makers: imported from here too)
    Snapshot,
    family_solutions,
    snapshot_from_estimator,
    snapshot_from_live,
)

MAX_DISPLAY_POINTS = 5000
CHUNK_SECONDS = 0.1
#: The frame budget of a live run: at most one frame per FRAME_SECONDS (the first
#: at once, the last when the run ends). A frame updates up to four figures, which
#: ipympl renders with Agg on the kernel's thread when the browser asks for them
#: (20-80 ms each here): at one frame per 0.1 s chunk the renders queued behind
#: each other, and a warm HMM run that takes 0.5 s headless took 8 s in the browser.
FRAME_SECONDS = 0.3
#: The first live frame waits until the run has computed this long: a warm run that
#: ends sooner draws its figures once, at the end, instead of twice (in the browser each
#: frame renders every figure: 0.1-0.2 s), and a longer one shows its first frame
#: within 0.3 s of the Run all the same.
FIRST_FRAME_SECONDS = 0.15
#: The frame budget, in the browser: rendering the live frames takes at most this share
#: of a run's time. Renders run on the kernel's thread and hold the GIL that the run's
#: worker needs, so a frame whose renders take c seconds is followed by at least
#: c (1 - RENDER_SHARE) / RENDER_SHARE seconds of computing (2c), the first frame too.
#: The final frame's renders are asked for once its status is out (the answer is read
#: at once; the figures follow). Headless (no browser asks) the cost is 0: FRAME_SECONDS.
RENDER_SHARE = 1 / 3


def frame_interval(render_cost: float, first: bool = False) -> float:
    """Seconds of computing before the next live frame (see :data:`RENDER_SHARE`)."""
    paced = render_cost * (1.0 - RENDER_SHARE) / RENDER_SHARE
    return max(FIRST_FRAME_SECONDS if first else FRAME_SECONDS, paced)

# Threads that may be compiling when the interpreter exits (a script that ends while a
# Run or the background warm-up compiles): XLA aborts the process ("FATAL: exception
# not rethrown") if the interpreter shuts down under a compiling thread. At exit they
# are told to stop and given time to finish the program in flight.
_exiting = threading.Event()
_compiling: "weakref.WeakKeyDictionary[threading.Thread, threading.Event]" = (
    weakref.WeakKeyDictionary())


def _start_compiling_thread(thread: threading.Thread, stop: threading.Event | None = None):
    _compiling[thread] = stop or _exiting
    thread.start()


@atexit.register
def _let_compilations_finish(timeout: float = 120.0):
    _exiting.set()
    deadline = time.monotonic() + timeout
    for thread, stop in list(_compiling.items()):
        stop.set()
        thread.join(max(0.0, deadline - time.monotonic()))



class FitSession(traitlets.HasTraits):
    """Settings, data and the latest result of an interactive mixture fit."""

    #: The components slider's maximum (the explorer's control uses it).
    MAX_COMPONENTS = 10
    #: The restarts slider's maximum.
    MAX_RESTARTS = 64
    #: Numbers per iteration below which one masked program serves every number of
    #: components (see :meth:`program_components`).
    MASK_COMPONENTS_WORK = 2**23
    #: After a Run, compile the other covariance types and initialisations in the
    #: background (:meth:`_warm_up`); EMWIDGETS_BACKGROUND_COMPILE=0 turns it off.
    background_compile = os.environ.get("EMWIDGETS_BACKGROUND_COMPILE", "1") != "0"

    n_components = traitlets.Int(2, min=1)
    covariance_type = traitlets.Enum(list(GaussianMixture.covariance_types), default_value="full")
    init_params = traitlets.Enum(list(GaussianMixture.init_methods), default_value="kmeans")
    tol = traitlets.Float(1e-3)
    max_iter = traitlets.Int(100, min=1)
    n_init = traitlets.Int(16, min=1)
    random_state = traitlets.Int(0)
    reg_covar = traitlets.Float(1e-6)
    #: EM accelerated by SQUAREM (the estimators' ``accelerate="squarem"``).
    accelerate = traitlets.Bool(False)
    x_axis = traitlets.Unicode()
    y_axis = traitlets.Unicode()
    #: Rows with missing values: fit them by EM over their observed values ("em")
    #: or use complete rows only ("drop").
    missing = traitlets.Enum(["em", "drop"], default_value="em")
    supports_missing = True
    #: A start chosen by the user (the explorer's *Choose the start*): K means in data
    #: units, as a tuple of tuples; a Run then fits one restart from them (``means_init``).
    start_means = traitlets.Any(None, allow_none=True)
    supports_start = True

    snapshot = traitlets.Instance(Snapshot, allow_none=True)
    #: The fitted model of the shown snapshot (at its last iteration if the run
    #: was stopped); None while a run is in progress or if the shown run failed.
    estimator = traitlets.Any(None, allow_none=True)
    selected = traitlets.Int(-1)  # restart shown in the main view; -1 = the best
    running = traitlets.Bool(False)
    #: "compiling" (nothing of the run shown yet), "running" or "idle".
    phase = traitlets.Unicode("idle")
    status = traitlets.Unicode("Ready: press Run.")
    error = traitlets.Unicode("")
    #: The shown result was fitted with other settings or data than the controls say now.
    stale = traitlets.Bool(False)
    #: What compiles in the background (after a Run, the programs of the other
    #: covariance types and initialisations), or "".
    warming = traitlets.Unicode("")
    #: Counts published frames: set after a frame's snapshot *and* its status (a view
    #: observer may wait for it to ask the browser for the frame's renders).
    published = traitlets.Int(0)
    #: One line on the data: rows and columns fitted, what was left out or dropped and why.
    data_note = traitlets.Unicode("")
    data_version = traitlets.Int(0)

    #: The settings a result depends on (a change makes the shown result stale).
    result_traits = ("n_components", "covariance_type", "init_params", "tol", "max_iter",
                     "n_init", "random_state", "reg_covar", "missing", "accelerate",
                     "data_version", "start_means")

    def __init__(self, data, columns=None, **settings):
        super().__init__(**settings)
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._generation = 0
        self._shown_generation = -1
        self._shown_key = None
        self.publishing = False
        #: (generation, live fit, estimator) of the run in progress, while it runs; and of
        #: the finished run that the scrubber replays.
        self._live_run = None
        self._replay = None
        #: Seconds the browser takes to render a whole frame of the views (the explorer
        #: sets it; 0 headless): live frames are paced by it (:data:`RENDER_SHARE`).
        self.render_cost = lambda: 0.0
        self.set_data(data, columns)
        self.observe(self._update_stale, list(self.result_traits))

    # -- data -------------------------------------------------------------------
    def set_data(self, data, columns=None):
        """Use a DataFrame or an (N, D) array; ``columns`` picks the features.

        By default every numeric column is a feature except integer columns with
        at most :data:`MAX_CODE_VALUES` distinct values (codes such as a year or
        a month) and columns with no observed value; what is left out, and why,
        is in ``data_note``. NaN marks a missing value. Rows with infinite values
        or with nothing observed are dropped (``n_dropped``); other incomplete
        rows are fitted by EM over their observed values or dropped, as
        ``missing`` says. Raises ``ValueError`` (one sentence) for data with no
        usable column or row.
        """
        self._use_columns(_Table.of(data), columns)

    def set_columns(self, columns):
        """Fit these columns of the current data (names from ``available_columns``)."""
        self._use_columns(self._table, columns)

    @property
    def shown_data_is_current(self) -> bool:
        """The shown result was fitted on the data and columns in use now."""
        return self._shown_key is not None and self._shown_key[1] == self.data_version

    def _use_columns(self, table, columns):
        self.available_columns = table.numeric
        chosen = table.default if columns is None else list(columns)
        unknown = [c for c in chosen if c not in table.numeric]
        if unknown:
            raise ValueError(
                f"Column {unknown[0]!r} is not a numeric column of the data; choose among "
                f"{', '.join(map(repr, table.numeric)) or 'none (there is no numeric column)'}.")
        if not chosen:
            raise ValueError("No numeric column to fit: " + (
                table.describe_left_out(chosen) or "the data have no column") +
                ". Pass a table with at least one numeric column.")
        self._table = table
        self.columns = [str(c) for c in chosen]
        X = table.values(chosen)
        usable = ~np.isinf(X).any(axis=1) & ~np.isnan(X).all(axis=1)
        self._all_rows = X[usable]
        self._usable_rows = usable  # (which rows of the table: an HMM's sequences follow them)
        self._n_infinite = int(np.isinf(X).any(axis=1).sum())
        self._n_unusable = int((~usable).sum())
        self.has_missing = bool(self.supports_missing and np.isnan(self._all_rows).any())
        self._choose_rows()
        self.data_version += 1  # first: controls showing the axis choices follow them
        choices = self.axis_choices
        self.x_axis = choices[0]
        self.y_axis = choices[1] if len(choices) > 1 else choices[0]

    @traitlets.observe("data_version")
    def _data_changed(self, change):
        """New data, columns or missing-value policy while a run goes on: the run is
        abandoned (its rows are no longer the data's, and a frame of it would mix the
        two), the previous result is kept, and the status says so."""
        with self._lock:
            if not self.running:
                return
            self._stop.set()
            self._generation += 1  # whatever the abandoned worker would publish is dropped
            self.phase = "idle"
            self.running = False
            self.status = ("The data changed while a run was going: the run was abandoned. "
                           "Press Run to fit the data now chosen.")

    @traitlets.observe("missing")
    def _missing_changed(self, change):
        if hasattr(self, "_all_rows"):
            self._choose_rows()
            self.data_version += 1

    def _choose_rows(self):
        X = self._all_rows
        self._kept_rows = np.ones(len(X), bool)
        if not (self.has_missing and self.missing == "em"):
            self._kept_rows = ~np.isnan(X).any(axis=1)
            X = X[self._kept_rows]
        self.n_dropped = self._n_unusable + len(self._all_rows) - len(X)
        self._n_incomplete_dropped = len(self._all_rows) - len(X)
        self.X = X
        rng = np.random.default_rng(0)
        self._display = (np.sort(rng.choice(len(X), MAX_DISPLAY_POINTS, replace=False))
                         if len(X) > MAX_DISPLAY_POINTS else np.arange(len(X)))
        self.data_note = self._describe_data()

    def _describe_data(self) -> str:
        """One line: what is fitted, what was left out or dropped and why, what is shown."""
        n, d = self.X.shape
        parts = [f"Data: {n:,} rows × {d} column{'s' if d != 1 else ''} "
                 f"({', '.join(self.columns)})"]
        left = self._table.describe_left_out(self.columns)
        if left:
            parts.append("left out " + left)
        if self._n_infinite:
            parts.append(f"{self._n_infinite} row{'s' if self._n_infinite != 1 else ''} with an "
                         "infinite value dropped")
        nothing = self._n_unusable - self._n_infinite
        if nothing:
            parts.append(f"{nothing} row{'s' if nothing != 1 else ''} with no observed value "
                         "dropped")
        if self._n_incomplete_dropped:
            parts.append(f"{self._n_incomplete_dropped} incomplete rows dropped (missing: drop)")
        if len(self._display) < n and self.density_mode:
            parts.append("the assignments show every row as a density, the gallery a random "
                         f"{len(self._display):,}")
        elif len(self._display) < n:
            parts.append(f"the plots show a random {len(self._display):,} of the {n:,} points "
                         "(the fit uses all)")
        if d == 1:
            parts.append("one feature: the scatter plots it against itself")
        return "; ".join(parts) + "."

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
        pcs = None
        if d > 2 and ("PC1" in (self.x_axis, self.y_axis) or "PC2" in (self.x_axis, self.y_axis)):
            complete = self.X[~np.isnan(self.X).any(axis=1)]
            pcs = principal_axes(complete if len(complete) > d else self._mean_filled())
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
        if len(self.X) == 0:
            return self.X
        return np.where(np.isnan(self.X), np.nanmean(self.X, axis=0), self.X)

    def display_points(self) -> np.ndarray:
        """(n, D) the rows the plots show before a fit (gaps at the column means)."""
        return self._mean_filled()[self._display]

    # -- running ---------------------------------------------------------------
    def settings(self) -> dict:
        return {**dict(n_components=self.n_components, covariance_type=self.covariance_type,
                       init_params=self.init_params, tol=self.tol, max_iter=self.max_iter,
                       n_init=self.n_init, random_state=self.random_state,
                       reg_covar=self.reg_covar, missing="em" if self.fits_missing else "raise",
                       accelerate="squarem" if self.accelerate else None),
                **self._start_settings()}

    def _start_settings(self) -> dict:
        """A chosen start (as many means as components): one restart from it."""
        m = self.start_means
        if m is None or len(m) != self.n_components or len(m[0]) != len(self.columns):
            return {}
        return dict(means_init=m, n_init=1)

    def _result_key(self):
        """What a result depends on: the settings and the data (not the plotted axes)."""
        return (tuple(sorted(self.settings().items())), self.data_version)

    def _update_stale(self, change=None):
        self.stale = (self.snapshot is not None and not self.running
                      and self._shown_key is not None and self._shown_key != self._result_key())

    def _describe_run(self) -> str:
        restarts = ("1 restart from your start" if self._start_settings()
                    else f"{self.n_init} restarts")
        return (f"{self.n_components} component{'s' if self.n_components != 1 else ''}, "
                f"{self.covariance_type} covariance, {restarts}")

    def run(self, block: bool = False):
        """Start a fit with the current settings, replacing a running one.

        Never waits for the run it replaces: that run is told to stop and
        whatever it would still publish is dropped.
        """
        with self._lock:
            self.run_started_at = time.perf_counter()
            self._stop.set()
            self._generation += 1
            generation = self._generation
            self._stop = stop = threading.Event()
            key = self._result_key()
            self.phase = "compiling"
            self.running = True
            self.error = ""
            # "Compiling" only once it takes a while (_compile_ticker): a program compiled
            # before answers within a fraction of a second, and then the status never says so.
            self.status = f"Starting ({self._describe_run()})…"
            self._thread = threading.Thread(target=self._work, args=(generation, stop, key),
                                            daemon=True)
            _start_compiling_thread(self._thread, stop)
        if block:
            self.wait()

    def stop(self):
        """Stop a running fit (see :meth:`stop_async`) and wait for its thread to end."""
        self.stop_async()
        t = self._thread
        if t is not None and t.is_alive() and t is not threading.current_thread():
            t.join()

    def stop_async(self):
        """What the Stop button does, without waiting.

        While the run is still compiling (nothing of it shown yet) the run is
        abandoned at once: the views, the restart picker and ``estimator`` keep
        describing the previous result. A run past its first frame stops after
        its current chunk (about 0.1 s) and shows where it stopped.
        """
        with self._lock:
            self._stop.set()
            if self.phase != "compiling":
                return
            self._generation += 1  # whatever the abandoned worker would publish is dropped
            self.phase = "idle"
            self.running = False
            kept = (f"The previous result is kept ({self._result_line(self.snapshot)})."
                    if self.snapshot is not None else "Nothing has been fitted yet: press Run.")
            self.status = f"Stopped before the first iteration (compilation abandoned). {kept}"
            self._update_stale()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for the current run's thread to end; True if it has."""
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True

    def _current(self, generation: int) -> bool:
        return generation == self._generation

    @staticmethod
    def _result_line(snap: Optional[Snapshot]) -> str:
        if snap is None:
            return ""
        r = snap.restarts
        if r.best < 0:
            return "no usable restart"
        return f"best log-likelihood {r.objective[r.best]:.4f} after {snap.iteration} iterations"

    def _fail(self, generation: int, exc: Exception):
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        with self._lock:
            if not self._current(generation):
                return
            self.error = message
            if self.snapshot is None:
                tail = "Nothing was fitted."
            elif self._shown_generation == generation:
                tail = "The views show the run as it ended; no model was kept."
                self.estimator = None
            else:
                tail = f"The previous result is kept ({self._result_line(self.snapshot)})."
            self.status = f"Error: {message} {tail}"

    def _show(self, generation: int, key, snap: Snapshot, estimator, status: str) -> bool:
        """Publish a frame of run ``generation``: estimator, snapshot, status together."""
        with self._lock:
            if not self._current(generation):
                return False
            self.phase = "running"
            self._shown_key = key
            self._shown_generation = generation
            snap.run = generation
            self.publishing = True
            try:
                self.estimator = estimator
                self.snapshot = snap
                self.status = status
            finally:
                self.publishing = False
            self.published += 1
            return True

    def _compile_ticker(self, generation: int, started: threading.Event, t0: float):
        """While the first chunk compiles, say so with the seconds elapsed."""
        while not started.wait(0.5):
            with self._lock:
                if not self._current(generation) or self.phase != "compiling":
                    return
                self.status = (f"Compiling and initialising ({self._describe_run()})… "
                               f"{time.perf_counter() - t0:.1f} s")

    def _work(self, generation: int, stop: threading.Event, key):
        t0 = time.perf_counter()
        started = threading.Event()
        threading.Thread(target=self._compile_ticker, args=(generation, started, t0),
                         daemon=True).start()
        try:
            if len(self.X) == 0:
                raise ValueError("There is no complete row to fit: choose columns with observed "
                                 "values" + (", or set missing to EM." if self.has_missing
                                             else "."))
            est = self._make_estimator()
            live = self._start_fit(est)
            with self._lock:  # frame_at scrubs it while it runs (the end hands it to _replay)
                self._live_run = (generation, live, est)
            chunk = 1
            first = True
            last_frame = -np.inf
            while not live.done and not stop.is_set():
                t = time.perf_counter()
                live.advance(chunk)
                dt = time.perf_counter() - t
                if first:
                    started.set()
                    computing_since = time.perf_counter()  # compiled: the run computes
                    if stop.is_set():  # stopped while compiling: already abandoned
                        return
                if not self._current(generation):  # replaced by a new Run
                    return
                now = time.perf_counter()
                cost = self.render_cost()
                if (now - last_frame >= frame_interval(cost) if last_frame > -np.inf
                        else now - computing_since >= frame_interval(cost, first=True)):
                    snap = self._snapshot(live, est, time.perf_counter() - t0, done=False)
                    status = (f"Running: iteration {snap.iteration}, {snap.elapsed:.1f} s. "
                              + self._summary(snap))
                    if not self._show(generation, key, snap, None, status):
                        return
                    last_frame = time.perf_counter()
                first = False
                chunk = int(np.clip(chunk * CHUNK_SECONDS / max(dt, 1e-4), 1, 64))
            started.set()
            if not self._current(generation):
                return
            stopped = stop.is_set() and not live.done
            if not stopped:
                live.finish()
                fitted = est
            else:  # the model where the run stopped: views, picker and estimator agree
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        fitted = live.conclude(live)
                    except ValueError:
                        fitted = None
            snap = self._snapshot(live, est, time.perf_counter() - t0, done=True)
            snap.stopped = stopped
            self._replay = (generation, live, est, snap)  # what frame_at rewinds
            if stopped:
                status = (f"Stopped at iteration {live.iteration} (not converged). "
                          + self._summary(snap))
            else:
                status = f"Done in {snap.elapsed:.1f} s: " + self._summary(snap)
            if self._show(generation, key, snap, fitted, status) and not stopped:
                self._warm_up(generation)
        except Exception as exc:  # shown to the user; the kernel and old result survive
            self._last_traceback = traceback.format_exc()
            self._fail(generation, exc)
        finally:
            started.set()
            with self._lock:
                # (None already where this run failed or was abandoned before it started)
                if self._live_run is not None and self._live_run[0] == generation:
                    self._live_run = None  # finished (now _replay), failed or abandoned
                if self._current(generation):
                    self.phase = "idle"
                    self.running = False
                    self._update_stale()

    @property
    def iterations_run(self) -> int:
        """Iterations of the shown run that :meth:`frame_at` can show (0: none yet)."""
        replay = self._scrubbed_run()
        return 0 if replay is None else replay[1].iteration

    def _scrubbed_run(self):
        """(generation, live fit, estimator, its latest snapshot) of the shown run: the
        finished one, or the one in progress (scrubbed while it goes on), or None."""
        replay = self._replay
        if replay is not None and replay[0] == self._shown_generation:
            return replay
        running = self._live_run
        snap = self.snapshot
        if (running is not None and running[0] == self._shown_generation and snap is not None
                and getattr(snap, "run", None) == running[0]):
            return running + (snap,)
        return None

    def plane_to_data(self, xy) -> np.ndarray:
        """Points ``xy`` (m, 2) of the plotted plane as data rows (m, D): the data's mean
        moved within the plane (exact on the plotted columns)."""
        w = self.projection()  # (D, 2)
        m = np.nanmean(self.X, axis=0)
        xy = np.atleast_2d(np.asarray(xy, np.float64))
        return m + (xy - m @ w) @ np.linalg.pinv(w)

    def frame_at(self, iteration: int, labels_at: Optional[int] = None) -> Snapshot:
        """The shown run's frame after ``iteration`` iterations, exactly (the iteration
        scrubber and the step buttons): every restart's parameters then, and its points
        coloured by the responsibilities of the parameters after ``labels_at`` iterations
        (default the same: after an M-step, one less). Replayed from a stored checkpoint
        by the run's own compiled programs (:meth:`LiveFit.at`); nothing compiles. The
        traces, ranking, solutions and colour alignment stay the finished run's, so a
        component keeps its colour while scrubbing."""
        replay = self._scrubbed_run()
        if replay is None or not replay[1].iteration:
            raise ValueError("There is no run to scrub yet: press Run first (a run in "
                             "progress can be scrubbed from its first frame).")
        _, live, est, final = replay
        labels_at = iteration if labels_at is None else labels_at
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            snap = self._snapshot(live.at(iteration), est, final.elapsed, done=True)
            if labels_at != iteration:
                other = self._snapshot(live.at(labels_at), est, final.elapsed, done=True)
                for name in ("labels", "uncertainty", "filled", "posteriors"):
                    setattr(snap, name, getattr(other, name))
        restarts = copy.copy(final.restarts)
        restarts.params = snap.restarts.params
        snap.restarts, snap.solutions = restarts, final.solutions
        snap.iteration, snap.stopped, snap.run = final.iteration, final.stopped, final.run
        snap.scrub, snap.labels_at = int(iteration), int(labels_at)
        return snap

    def _alternatives(self) -> list:
        """(label, settings) of the programs a user is likely to want next: the
        neighbouring numbers of components where the program is exact-size, then the
        other covariance types and initialisations."""
        more, fewer = self._neighbouring_restarts()
        out = self._neighbouring_components() + more
        out += [(f"{c} covariance", {"covariance_type": c})
                for c in GaussianMixture.covariance_types if c != self.covariance_type]
        out += [(f"{m} initialisation", {"init_params": m})
                for m in getattr(self, "init_options", GaussianMixture.init_methods)
                if m != self.init_params]
        out += [("plain EM" if self.accelerate else "SQUAREM",
                 {"accelerate": None if self.accelerate else "squarem"})]
        return out + fewer

    def _neighbouring_restarts(self) -> tuple:
        """([the next larger bucket of restarts], [the next smaller]): on small data the
        restarts are padded to a power of two (``em.restart_bucket``), so these two
        programs serve every value of the slider from half to four times the bucket."""
        bucket = 1 << max(self.n_init - 1, 0).bit_length()
        up, down = 2 * bucket, bucket // 2
        return ([(f"{up} restarts", {"n_init": up})] if up <= self.MAX_RESTARTS else [],
                [(f"{down} restarts", {"n_init": down})] if down >= 1 else [])

    def _neighbouring_components(self) -> list:
        """One more and one fewer component, where each number is its own program
        (a masked program already serves every number up to the slider's maximum)."""
        k = self.n_components
        if self.program_components() != k:
            return []
        return [(f"{j} component{'s' if j != 1 else ''}", {"n_components": j})
                for j in (k + 1, k - 1) if 1 <= j <= self.MAX_COMPONENTS]

    def prepare(self):
        """Compile the program of the current settings on a background thread, before
        the user asks (an explorer calls it when it is displayed): the first Run then
        finds it compiled, or waits only for what is left of it."""
        if self.snapshot is None and not self.running and not self.warming:
            self._warm_up(self._generation, [(self._describe_run(), {})])

    def _small_data(self) -> bool:
        """Whether a program of the slider's maximum costs little work per iteration
        (``MASK_COMPONENTS_WORK``): then one iteration of it is cheap, and warming a
        program up in the background costs compilation, not fitting."""
        k_max = max(self.MAX_COMPONENTS, self.n_components)
        n, d = self.X.shape
        return (GaussianMixture.program_work(n, d, k_max, self.n_init)
                <= self.MASK_COMPONENTS_WORK)

    def _warm_up(self, generation: int, choices: Optional[list] = None):
        """Compile, on a background thread, what other choices of the controls need
        (``choices``: (label, settings changes); by default :meth:`_alternatives`).

        Only on small data (:meth:`_small_data`), where the work is compilation,
        not fitting: each program is compiled by starting its fit and running one
        iteration. ``warming`` says what compiles, with the seconds elapsed. A Run
        started meanwhile takes precedence: the warm-up stops before its next
        program (a Run that needs the program being compiled waits for it rather
        than compiling it twice: emwidgets/core/programs.py).
        """
        if not self.background_compile or len(self.X) == 0 or not self._small_data():
            return
        choices = self._alternatives() if choices is None else choices
        if not choices:
            return
        label_now = [choices[0][0], time.perf_counter()]
        done = threading.Event()
        said = threading.Lock()  # the clock never writes after the work's last word

        def tick():
            while not done.wait(0.5):
                label, t0 = label_now
                with said:
                    if not done.is_set() and self._current(generation) and not self.running:
                        self.warming = (f"Compiling for {label} in the background… "
                                        f"{time.perf_counter() - t0:.1f} s")

        def work():
            try:
                for label, change in choices:
                    if not self._current(generation) or _exiting.is_set():  # a Run goes first
                        return
                    label_now[:] = [label, time.perf_counter()]
                    self.warming = f"Compiling for {label} in the background…"
                    est = self._make_estimator()
                    est.set_params(**change)
                    # (No warnings.catch_warnings here: it swaps the process-wide filters,
                    # and from this thread it silenced warnings of the user's own cells.)
                    try:
                        live = self._start_fit(est).advance(1)
                        self._snapshot(live, est, 0.0, done=False)  # the views' program
                    except Exception:  # noqa: BLE001 (a choice that cannot fit: no program)
                        pass
            finally:
                with said:
                    done.set()
                    self.warming = ""

        self.warming = f"Compiling for {choices[0][0]} in the background…"  # before the thread
        threading.Thread(target=tick, daemon=True, name="emwidgets-warm-up-clock").start()
        _start_compiling_thread(threading.Thread(target=work, daemon=True,
                                                 name="emwidgets-warm-up"))

    def _start_fit(self, est):
        """The live fit of a Run (a family's session passes its sample weights)."""
        return est.start(self.X)

    def _make_estimator(self):
        est = GaussianMixture(**self.settings())
        k_program = self.program_components()
        if k_program > self.n_components and est.means_init is None:
            est.compile_for(k_program)  # the extra components are masked
        return est

    def program_components(self) -> int:
        """Components the compiled program holds: the slider's maximum on small data.

        Every number of components up to ``MAX_COMPONENTS`` then runs in one
        program (the extra ones masked, with the same result as an exact-size
        program), so moving the components slider compiles nothing. On larger
        data (above ``MASK_COMPONENTS_WORK`` numbers per iteration) the
        program holds exactly ``n_components``: a masked one would cost up to
        ``MAX_COMPONENTS / n_components`` times the work of every iteration.
        """
        k_max = max(self.MAX_COMPONENTS, self.n_components)
        return k_max if self._small_data() else self.n_components

    def _snapshot(self, live, est, elapsed, done) -> Snapshot:
        snap = snapshot_from_live(live, est, self._display, elapsed, done)
        if self.density_mode:
            bins, extent = self._density_bins(live)
            snap.density_source = (live, est, bins)
            snap.density_extent = extent
            snap.density = {}
            self.density_for(snap, max(snap.restarts.best, 0))
        return snap

    #: Above this many rows the assignments view draws every row as a density image
    #: (responsibilities summed per cell of a DENSITY_BINS x DENSITY_BINS grid, blended by
    #: component colour) instead of a marker per displayed point.
    DENSITY_ROWS = 20_000
    DENSITY_BINS = 160

    @property
    def density_mode(self) -> bool:
        """Large complete data: the density image (incomplete rows keep markers)."""
        return len(self.X) > self.DENSITY_ROWS and not self.fits_missing

    def _density_bins(self, live):
        """Every row's cell of the plotted plane's grid (on the device, padding rows in
        cell 0 with weight 0), and the grid's extent; kept while data, axes and padding
        stay the same."""
        w = self.projection()
        n_padded = int(live.run.data.w.shape[0])
        key = (self.data_version, w.tobytes(), n_padded)
        cached = getattr(self, "_bins_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        g = self.DENSITY_BINS
        xy = np.asarray(self.X, np.float64) @ w
        lo, hi = np.percentile(xy, 0.2, axis=0), np.percentile(xy, 99.8, axis=0)
        pad = 0.05 * (hi - lo + 1e-12)
        lo, hi = lo - pad, hi + pad
        cell = np.clip(((xy - lo) / (hi - lo) * g).astype(np.int64), 0, g - 1)
        bins = np.zeros(n_padded, np.int32)
        bins[:len(xy)] = cell[:, 1] * g + cell[:, 0]
        extent = (lo[0], hi[0], lo[1], hi[1])
        import jax

        device_bins = jax.device_put(bins)
        self._bins_cache = (key, device_bins, extent)
        return device_bins, extent

    def refresh_density(self, snap: Snapshot):
        """The plotted axes changed: the density image's grid follows them."""
        if snap is None or snap.density is None or snap.density_source is None:
            return
        live, est, _ = snap.density_source
        bins, extent = self._density_bins(live)
        snap.density_source = (live, est, bins)
        snap.density, snap.density_extent = {}, extent

    def density_for(self, snap: Snapshot, restart: int):
        """The density image's counts of ``restart`` in ``snap`` (G, G, K), computed once
        per restart and snapshot (None when ``snap`` has no density)."""
        if snap is None or snap.density is None:
            return None
        if restart not in snap.density:
            if snap.density_source is None:
                return None
            live, est, bins = snap.density_source
            g = self.DENSITY_BINS
            snap.density[restart] = est.live_view(live, "density", restart, bins, g * g).reshape(
                g, g, -1)
        return snap.density[restart]

    #: How the restart grouping's parameter tolerance reads in the status.
    parameter_distance_words = "sd in the means"

    #: The status warns when the best restart's estimated distance to its limit exceeds
    #: this many times the tolerance (the change rule stopped it short of its limit: on
    #: two Gaussians 1.5 sd apart, tol=1e-3 stops 0.0027 below the optimum, estimated
    #: 0.0013).
    SHORT_OF_LIMIT = 1.0

    @classmethod
    def _stopped_short(cls, r, b: int) -> str:
        """A sentence when restart b stopped far short of the limit it was converging to
        (Aitken's estimate from its last objectives, ``restarts_.gap``), else ""."""
        gap = getattr(r, "gap", None)
        if gap is None or not np.isfinite(gap[b]) or gap[b] <= cls.SHORT_OF_LIMIT * r.tol:
            return ""
        return (f"the best restart stopped about {gap[b]:.2g} nats per sample short of its "
                "limit (Aitken's estimate from its last iterations): lower tol or accelerate")

    @classmethod
    def _summary(cls, snap: Optional[Snapshot]) -> str:
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
            short = cls._stopped_short(r, b) if snap.done else ""
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
                         f"{cls.parameter_distance_words})")
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
