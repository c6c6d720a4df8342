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

import copy
import threading
import time
import traceback
import warnings
from typing import Optional

import traitlets

from ..estimators.base import computing
from ..estimators.gaussian_mixture import GaussianMixture
from . import runner, status_line
from .data import MAX_DISPLAY_POINTS, DataIntake  # noqa: F401  (imported from here too)
from .snapshot import (  # noqa: F401  (Snapshot and its makers: imported from here too)
    Snapshot,
    family_solutions,
    snapshot_from_estimator,
    snapshot_from_live,
)
from .warm_up import WarmUp


class FitSession(DataIntake, WarmUp):
    """Settings, data and the latest result of an interactive mixture fit."""

    #: The components slider's maximum (the explorer's control uses it).
    MAX_COMPONENTS = 10
    #: The restarts slider's maximum.
    MAX_RESTARTS = 64

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
    #: Fit to standardised columns, reported in data units (the estimator's
    #: ``standardize=True``); where the session's model has no such option, the control is
    #: hidden (``supports_standardize``).
    standardize = traitlets.Bool(False)
    supports_standardize = True
    #: The stopping rule: the explorers watch plain EM climb at a teaching tolerance
    #: (1e-3) by scikit-learn's rule, and their status says where that stopped short of the
    #: limit (:func:`~emwidgets.estimators.base.stopped_short`); the estimators' default
    #: is "gap" at 1e-10, which a model opened from :func:`~emwidgets.select_model` keeps.
    convergence = traitlets.Unicode("change")
    #: The fits' precision (the estimators' ``dtype``): None is float64 on a CPU, float32
    #: on a GPU or TPU.
    dtype = traitlets.Unicode(None, allow_none=True)
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
    #: Counts published frames: set after a frame's snapshot *and* its status (a view
    #: observer may wait for it to ask the browser for the frame's renders).
    published = traitlets.Int(0)

    #: The settings a result depends on (a change makes the shown result stale).
    result_traits = ("n_components", "covariance_type", "init_params", "tol", "max_iter",
                     "n_init", "random_state", "reg_covar", "missing", "accelerate",
                     "standardize",
                     "dtype", "data_version", "start_means")

    def __init__(self, data, columns=None, **settings):
        super().__init__(**settings)
        #: The runs' generations, Stop and worker thread (:class:`runner.Runner`).
        self.runner = runner.Runner()
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

    @traitlets.observe("data_version")
    def _data_changed(self, change):
        """New data, columns or missing-value policy while a run goes on: the run is
        abandoned (its rows are no longer the data's, and a frame of it would mix the
        two), the previous result is kept, and the status says so."""
        with self.runner.lock:
            if not self.running:
                return
            self.runner.abandon()  # whatever the abandoned worker would publish is dropped
            self.phase = "idle"
            self.running = False
            self.status = ("The data changed while a run was going: the run was abandoned. "
                           "Press Run to fit the data now chosen.")

    # -- running ---------------------------------------------------------------
    def settings(self) -> dict:
        return {**dict(n_components=self.n_components, covariance_type=self.covariance_type,
                       init_params=self.init_params, tol=self.tol, max_iter=self.max_iter,
                       n_init=self.n_init, random_state=self.random_state,
                       reg_covar=self.reg_covar, missing="em" if self.fits_missing else "raise",
                       accelerate="squarem" if self.accelerate else None,
                       convergence=self.convergence, dtype=self.dtype,
                       **({"standardize": True} if self.standardize else {})),
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
        with self.runner.lock:
            self.run_started_at = time.perf_counter()
            key = self._result_key()
            self.phase = "compiling"
            self.running = True
            self.error = ""
            # "Compiling" only once it takes a while (_compile_ticker): a program compiled
            # before answers within a fraction of a second, and then the status never says so.
            self.status = f"Starting ({self._describe_run()})…"
            self.runner.launch(self._work, key)
        if block:
            self.wait()

    def stop(self):
        """Stop a running fit (see :meth:`stop_async`) and wait for its thread to end."""
        self.stop_async()
        self.runner.join()

    def stop_async(self):
        """What the Stop button does, without waiting.

        While the run is still compiling (nothing of it shown yet) the run is
        abandoned at once: the views, the restart picker and ``estimator`` keep
        describing the previous result. A run past its first frame stops after
        its current chunk (about 0.1 s) and shows where it stopped.
        """
        with self.runner.lock:
            self.runner.request_stop()
            if self.phase != "compiling":
                return
            self.runner.abandon()  # whatever the abandoned worker would publish is dropped
            self.phase = "idle"
            self.running = False
            kept = (f"The previous result is kept ({status_line.result_line(self.snapshot)})."
                    if self.snapshot is not None else "Nothing has been fitted yet: press Run.")
            self.status = f"Stopped before the first iteration (compilation abandoned). {kept}"
            self._update_stale()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for the current run's thread to end; True if it has."""
        return self.runner.wait(timeout)

    def _fail(self, generation: int, exc: Exception):
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        with self.runner.lock:
            if not self.runner.current(generation):
                return
            self.error = message
            if self.snapshot is None:
                tail = "Nothing was fitted."
            elif self._shown_generation == generation:
                tail = "The views show the run as it ended; no model was kept."
                self.estimator = None
            else:
                tail = f"The previous result is kept ({status_line.result_line(self.snapshot)})."
            self.status = f"Error: {message} {tail}"

    def _show(self, generation: int, key, snap: Snapshot, estimator, status: str) -> bool:
        """Publish a frame of run ``generation``: estimator, snapshot, status together."""
        with self.runner.lock:
            if not self.runner.current(generation):
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

    def _why_compiling(self) -> str:
        """Why a control's change compiles, on data too large for one program to serve
        every setting (the README promises none on small data)."""
        if self._small_data():
            return ""
        return (f". On {len(self.X):,} rows each number of components, covariance type and "
                "missing-value choice is a program of its own, compiled once a session: "
                "the next Run with these settings starts at once.")

    def _compile_ticker(self, generation: int, started: threading.Event, t0: float):
        """While the first chunk compiles, say so with the seconds elapsed."""
        while not started.wait(0.5):
            with self.runner.lock:
                if not self.runner.current(generation) or self.phase != "compiling":
                    return
                self.status = (f"Compiling and initialising ({self._describe_run()})… "
                               f"{time.perf_counter() - t0:.1f} s" + self._why_compiling())

    def _work(self, generation: int, stop: threading.Event, key):
        t0 = time.perf_counter()
        started = threading.Event()
        runner.in_background(self._compile_ticker, generation, started, t0,
                             name="emwidgets-compile-clock", compiling=False)
        try:
            if len(self.X) == 0:
                raise ValueError("There is no complete row to fit: choose columns with observed "
                                 "values" + (", or set missing to EM." if self.has_missing
                                             else "."))
            est = self._make_estimator()
            live = self._start_fit(est)
            # (frame_at scrubs it while it runs; the end hands it to _replay)
            with self.runner.lock:
                self._live_run = (generation, live, est)

            def frame() -> bool:
                snap = self._snapshot(live, est, time.perf_counter() - t0, done=False)
                status = (f"Running: iteration {snap.iteration}, {snap.elapsed:.1f} s. "
                          + self._summary(snap))
                return self._show(generation, key, snap, None, status)

            if not self.runner.advance(live, generation, stop, started, self.render_cost,
                                       frame):
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
                # (a warm run on small data takes milliseconds: "0.0 s" read as nothing done)
                took = (f"{snap.elapsed:.1f} s" if snap.elapsed >= 0.95
                        else f"{max(snap.elapsed, 0.001) * 1000:.0f} ms")
                status = f"Done in {took}: " + self._summary(snap)
            if self._show(generation, key, snap, fitted, status) and not stopped:
                self._warm_up(generation)
        except Exception as exc:  # shown to the user; the kernel and old result survive
            self._last_traceback = traceback.format_exc()
            self._fail(generation, exc)
        finally:
            started.set()
            with self.runner.lock:
                # (None already where this run failed or was abandoned before it started)
                if self._live_run is not None and self._live_run[0] == generation:
                    self._live_run = None  # finished (now _replay), failed or abandoned
                if self.runner.current(generation):
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

    def _start_fit(self, est):
        """The live fit of a Run (a family's session passes its sample weights)."""
        return est.start(self.fit_frame())

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
        with computing:  # (it computes: one thread at a time, estimators.base.computing)
            snap = snapshot_from_live(live, est, self._display, elapsed, done)
            if self.density_mode:
                bins, extent = self._density_bins(live)
                snap.density_source = (live, est, bins)
                snap.density_extent = extent
                snap.density = {}
                self.density_for(snap, max(snap.restarts.best, 0))
        return snap

    #: How the restart grouping's parameter tolerance reads in the status.
    parameter_distance_words = "sd in the means"

    @classmethod
    def _summary(cls, snap: Optional[Snapshot]) -> str:
        return status_line.summary(snap, cls.parameter_distance_words)
