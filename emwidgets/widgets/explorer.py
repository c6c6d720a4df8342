"""EMExplorer: controls, live convergence, assignments and restart comparison in one widget."""

from __future__ import annotations

import html
import threading
import time
from typing import Optional

import ipywidgets as widgets
import numpy as np

from ..estimators.gaussian_mixture import GaussianMixture
from .session import FitSession
from .views import AssignmentPlot, AtlasPlot, BasinPlot, ConvergencePlot, RestartGallery

LABEL_WIDTH = "88px"
CONTROL_WIDTH = "292px"


def _style() -> dict:
    # A dict, not a shared Style: each widget builds its own from it.
    return {"description_width": LABEL_WIDTH}


def _layout(**kwargs) -> widgets.Layout:
    """A new Layout for every widget: a shared one would be changed for all (a control
    hidden in one explorer hid the controls of every explorer in the kernel)."""
    return widgets.Layout(**{"width": CONTROL_WIDTH, **kwargs})


def _controls(session: FitSession) -> dict:
    """One control per setting, each linked to the session trait of the same name."""
    c = {
        "n_components": widgets.IntSlider(min=1, max=session.MAX_COMPONENTS,
                                          description="components",
                                          style=_style(),
                                          layout=_layout()),
        "covariance_type": widgets.Dropdown(options=list(GaussianMixture.covariance_types),
                                            description="covariance", style=_style(),
                                            layout=_layout()),
        "init_params": widgets.Dropdown(options=list(getattr(session, "init_options",
                                                         GaussianMixture.init_methods)),
                                        description="initialisation", style=_style(),
                                        layout=_layout()),
        "tol": widgets.FloatLogSlider(base=10, min=-8, max=-1, step=0.25, description="tolerance",
                                      readout_format=".0e", style=_style(), layout=_layout()),
        "max_iter": widgets.IntSlider(min=1, max=1000, description="max iter", style=_style(),
                                      layout=_layout()),
        "n_init": widgets.IntSlider(min=1, max=session.MAX_RESTARTS, description="restarts",
                                    style=_style(), layout=_layout()),
        "random_state": widgets.IntText(description="seed", style=_style(), layout=_layout()),
        "reg_covar": widgets.FloatLogSlider(base=10, min=-10, max=0, step=0.5,
                                            description="reg_covar",
                                            readout_format=".0e", style=_style(), layout=_layout()),
        "accelerate": widgets.Checkbox(description="accelerate (SQUAREM)", style=_style(),
                                       layout=_layout()),
        "missing": widgets.Dropdown(
            options=[("EM (impute)", "em"), ("drop incomplete rows", "drop")],
            description="missing", style=_style(),
            layout=_layout(display=None if session.has_missing else "none")),
        "x_axis": widgets.Dropdown(options=session.axis_choices, description="x axis",
                                   style=_style(),
                                   layout=_layout()),
        "y_axis": widgets.Dropdown(options=session.axis_choices, description="y axis",
                                   style=_style(),
                                   layout=_layout()),
    }
    for name, widget in c.items():
        _widen(widget, getattr(session, name))
        widget.value = getattr(session, name)
        widgets.link((widget, "value"), (session, name))
    return c


def _widen(widget, value):
    """Stretch a slider's range to hold a setting given in code (max_iter=5000, tol=1e-10):
    a slider clips its value, and the link would then change the user's setting."""
    if isinstance(widget, widgets.FloatLogSlider):
        if value > 0:
            exponent = float(np.log10(value))
            widget.min = min(widget.min, np.floor(exponent))
            widget.max = max(widget.max, np.ceil(exponent))
        else:  # tol=0 (run to max_iter): the slider's floor, 1e-12, is below float32's step
            widget.min = min(widget.min, -12.0)
    elif isinstance(widget, widgets.IntSlider):
        widget.max = max(widget.max, int(value))
        widget.min = min(widget.min, int(value))


class EMExplorer(widgets.VBox):
    """Fit Gaussian mixtures interactively and watch every restart converge.

    Args:
        data: a pandas DataFrame or an (n_samples, n_features) array. Numeric
            columns are the features, except integer columns with a handful of
            distinct values (a year, a month: codes, not measurements); the
            line under the controls says what was left out and why, and the
            *columns* control changes the choice. NaN marks a missing value:
            such rows are fitted by EM over their observed values and drawn
            hollow at their imputed positions, or dropped (the *missing*
            control, shown when the data have gaps).
        columns: the features to start with (default: as above).
        **settings: initial values of the controls (``n_components``,
            ``covariance_type``, ``init_params``, ``tol``, ``max_iter``,
            ``n_init``, ``random_state``, ``reg_covar``).

    Attributes:
        session: the :class:`FitSession` holding settings and the latest result.
        controls: dict of the control widgets, by setting name.
        run_button, stop_button, restart_picker, status, data_note: the other widgets.
        convergence, assignments, gallery: the three views.
    """

    session_class = FitSession
    #: What the step note calls the drawn parameters and the coloured data.
    step_words = ("ellipses", "points")

    def __init__(self, data, columns=None, **settings):
        self.session = session = self._new_session(data, columns, settings)
        self.controls = _controls(session)
        self.column_picker = widgets.SelectMultiple(
            options=session.available_columns, value=tuple(session.columns),
            rows=min(5, max(2, len(session.available_columns))), description="columns",
            style=_style(), layout=_layout(
                display=None if len(session.available_columns) > 1 else "none"))
        self.run_button = widgets.Button(description="Run", button_style="success", icon="play",
                                         layout=widgets.Layout(width="140px"))
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop",
                                          disabled=True, layout=widgets.Layout(width="140px"))
        self.restart_picker = widgets.Dropdown(options=[("best", -1)], value=-1,
                                               description="show restart", style=_style(),
                                               layout=_layout())
        self.intervals = widgets.Checkbox(value=False, description="95% intervals of the means",
                                          indent=False, layout=_layout())
        # Taking a finished run apart: any iteration, and E-step / M-step half steps.
        self.scrubber = widgets.IntSlider(value=0, min=0, max=0, description="iteration",
                                          disabled=True, continuous_update=True, style=_style(),
                                          layout=_layout())
        self.scrubber.add_class("emwidgets-scrubber")
        small = lambda: widgets.Layout(width="140px")  # noqa: E731  (one Layout a widget)
        self.e_step_button = widgets.Button(description="E-step", disabled=True, layout=small(),
                                            tooltip="Recolour the points by the responsibilities "
                                                    "of the ellipses shown")
        self.m_step_button = widgets.Button(description="M-step", disabled=True, layout=small(),
                                            tooltip="Move the ellipses to the parameters those "
                                                    "responsibilities give")
        self.back_button = widgets.Button(description="Step back", icon="step-backward",
                                          disabled=True, layout=small())
        self.end_button = widgets.Button(description="To convergence", icon="fast-forward",
                                         disabled=True, layout=small())
        self.atlas_toggle = widgets.ToggleButton(
            value=False, description="Atlas of restarts", icon="map", layout=_layout(),
            tooltip="Every restart placed by how its partition differs from the others'")
        self.atlas = None  # the AtlasPlot, made when first shown
        # Choosing the start: click to place means, drag them; a deliberately bad start.
        self.start_toggle = widgets.ToggleButton(
            value=False, description="Choose the start", icon="hand-pointer-o",
            layout=_layout(), tooltip="Click the data to place a mean, drag one to move it; "
                                      "Run then fits one restart from them")
        self.bad_start_button = widgets.Button(
            description="Bad start", icon="bomb", layout=widgets.Layout(width="140px"),
            tooltip="Every mean in one corner of the data, then Run")
        self.forget_start_button = widgets.Button(description="Forget start", icon="undo",
                                                  layout=widgets.Layout(width="140px"),
                                                  disabled=True)
        self.basin_button = widgets.Button(
            description="Basin map", icon="th", layout=widgets.Layout(width="140px"),
            tooltip="Where EM goes from every start of one mean, the others at the shown "
                    "restart's optimum (2-D data)")
        self.basins = None  # the BasinPlot, made when first asked for
        self._basin_component = 0
        self._start_xy: list = []  # the chosen means in the plotted plane
        self._dragging = None
        self._start_artist = None
        self.step_note = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.step_note.add_class("emwidgets-step-note")
        self._frame = None  # (p, q) shown: parameters after p iterations, labels after q
        self._scrub_syncing = False
        self.status = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.status.add_class("emwidgets-status")
        self.data_note = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.data_note.add_class("emwidgets-data-note")
        self._picker_run = None
        self._syncing = False
        self._intervals_cache: dict = {}
        self._intervals_note = ""

        self.views = self._make_views(session.projection(), (session.x_axis, session.y_axis))
        for name, view in self.views.items():
            view.canvas.add_class(f"emwidgets-{name}")

        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: session.stop_async())
        self.restart_picker.observe(lambda ch: self._select(ch["new"]), "value")
        self.intervals.observe(lambda ch: self._draw_intervals(), "value")
        self.scrubber.observe(self._on_scrub, "value")
        self.e_step_button.on_click(lambda _: self.e_step())
        self.m_step_button.on_click(lambda _: self.m_step())
        self.back_button.on_click(lambda _: self.step_back())
        self.end_button.on_click(lambda _: self.to_convergence())
        self.atlas_toggle.observe(lambda ch: self.show_atlas(ch["new"]), "value")
        self.start_toggle.observe(lambda ch: self._on_start_toggle(ch["new"]), "value")
        self.bad_start_button.on_click(lambda _: self.bad_start())
        self.forget_start_button.on_click(lambda _: self.forget_start())
        self.basin_button.on_click(lambda _: self.basin_map())
        canvas = self.assignments.canvas
        canvas.mpl_connect("button_press_event", self._on_press)
        canvas.mpl_connect("motion_notify_event", self._on_motion)
        canvas.mpl_connect("button_release_event", self._on_release)
        self.column_picker.observe(self._on_columns, "value")
        session.render_cost = lambda: sum(v.render_seconds for v in self.views.values())
        if "assignments" in self.views and hasattr(session, "density_for"):
            self.views["assignments"].density_for = session.density_for
        session.observe(self._on_snapshot, "snapshot")
        session.observe(self._request_renders, "published")
        session.observe(self._on_status, ["status", "running", "error", "stale", "warming"])
        session.observe(self._on_axes, ["x_axis", "y_axis"])
        session.observe(self._on_data, ["data_note"])
        session.observe(self._on_data_version, ["data_version"])
        self._on_status()
        self._on_data()
        self._preview()

        c = self.controls
        left = widgets.VBox([widgets.HTML("<b>EM settings</b>"), c["n_components"],
                             c["covariance_type"],
                             c["init_params"], c["tol"], c["max_iter"], c["n_init"],
                             c["random_state"],
                             c["reg_covar"], c["accelerate"], c["missing"],
                             widgets.HTML("<b>Data and plotted axes</b>"),
                             self.column_picker, c["x_axis"], c["y_axis"],
                             widgets.HBox([self.run_button, self.stop_button]), self.restart_picker,
                             self.intervals, widgets.HTML("<b>Take the run apart</b>"),
                             self.scrubber,
                             widgets.HBox([self.e_step_button, self.m_step_button]),
                             widgets.HBox([self.back_button, self.end_button]), self.atlas_toggle,
                             *self._start_controls()],
                            layout=widgets.Layout(width="300px", min_width="300px"))
        self.view_box = self._view_box()
        super().__init__([widgets.HBox([left, self.view_box]), self.status, self.step_note,
                          self.data_note])
        self.add_class("emwidgets-explorer")

    def _repr_mimebundle_(self, **kwargs):
        """Displayed: the program of the current settings starts compiling in the
        background (:meth:`FitSession.prepare`), so a first Run waits less or not at all."""
        self.session.prepare()
        return super()._repr_mimebundle_(**kwargs)

    def _new_session(self, data, columns, settings):
        return self.session_class(data, columns=columns, **settings)

    # -- the views (a subclass may show others) ----------------------------------
    def _make_views(self, projection, labels) -> dict:
        self.convergence = ConvergencePlot()
        self.assignments = AssignmentPlot(projection=projection, axis_labels=labels)
        self.gallery = RestartGallery(projection=projection, on_select=self._select)
        return {"convergence": self.convergence, "assignments": self.assignments,
                "gallery": self.gallery}

    def _view_box(self):
        return widgets.VBox([widgets.HBox([self.convergence.canvas, self.assignments.canvas]),
                             self.gallery.canvas])

    def _preview(self, force: bool = False):
        """Before the first fit: the data in the main view, a word in the others."""
        s = self.session
        if s.snapshot is not None and not force:
            return
        points = s.display_points() @ s.projection()
        self.assignments.preview(points, f"{len(s.X):,} rows: press Run to fit")
        self.convergence.message("Press Run: the log-likelihood of\nevery restart appears here")
        self.gallery.message("The restarts, grouped into the distinct solutions they reach,\n"
                             "appear here after a run")

    # -- actions ------------------------------------------------------------------
    def run(self, block: bool = False):
        """What the Run button does; ``block=True`` waits for the end (for scripts and tests)."""
        self.session.run(block=block)

    def _select(self, restart: int):
        restart = int(restart)
        for view in self.views.values():
            view.selected = restart
        if self.restart_picker.value != restart and restart in [
                v for _, v in self.restart_picker.options]:
            self.restart_picker.value = restart
        if self._frame is not None:
            self.show_iteration(*self._frame)
        elif self.session.snapshot is not None:
            self._draw(self.session.snapshot)

    # -- taking a finished run apart ----------------------------------------------
    @property
    def estimator_(self):
        """The fitted model of the shown run (its best restart), or None."""
        return self.session.estimator

    def restart(self, restart: int):
        """The fitted model of restart ``restart`` of the shown run."""
        if self.session.estimator is None:
            raise ValueError("There is no fitted model yet: press Run first.")
        return self.session.estimator.restart(restart)

    def show_iteration(self, iteration: int, labels_at=None):
        """Draw every restart after ``iteration`` iterations (the scrubber), the points
        coloured by the responsibilities after ``labels_at`` (default the same). Exact,
        replayed without compiling (:meth:`FitSession.frame_at`)."""
        last = self.session.iterations_run
        p = int(np.clip(iteration, 0, last))
        q = p if labels_at is None else int(np.clip(labels_at, max(p - 1, 0), p))
        try:
            snap = self.session.frame_at(p, q)
        except ValueError as exc:
            self.step_note.value = html.escape(str(exc))
            return
        self._frame = (p, q)
        self.assignments.interval_patches = []
        for name, view in self.views.items():  # (the gallery keeps the run's solutions)
            if name not in ("gallery", "atlas"):
                view.update(snap)
                if view.render_wanted:
                    view.request_render()
        if self.start_toggle.value:
            self._draw_start()
        self._scrub_syncing = True
        try:
            self.scrubber.value = p
        finally:
            self._scrub_syncing = False
        self._sync_steps()

    def e_step(self):
        """Recolour the points by the responsibilities of the ellipses shown."""
        p, q = self._frame or (self.session.iterations_run,) * 2
        self.show_iteration(p, p)

    def m_step(self):
        """Move the ellipses to the parameters the shown responsibilities give (the
        next iteration's), the points keeping their colours until the next E-step."""
        p, q = self._frame or (self.session.iterations_run,) * 2
        if q == p and p < self.session.iterations_run:
            self.show_iteration(p + 1, p)

    def step_back(self):
        """Undo the last half step."""
        p, q = self._frame or (self.session.iterations_run,) * 2
        if q == p and p > 0:
            self.show_iteration(p, p - 1)
        elif q < p:
            self.show_iteration(p - 1, p - 1)

    def to_convergence(self):
        """Back to the run's end: its own frame."""
        self._frame = None
        snap = self.session.snapshot
        if snap is not None:
            self._draw(snap)
            self._request_renders()
        self._sync_scrubber()

    def _on_scrub(self, change):
        if not self._scrub_syncing:
            self.show_iteration(change["new"])

    def _sync_scrubber(self):
        """After a run: the scrubber spans its iterations, at the end."""
        last = self.session.iterations_run
        self._scrub_syncing = True
        try:
            self.scrubber.max = max(last, 1)
            self.scrubber.value = last if self._frame is None else self._frame[0]
            self.scrubber.disabled = last == 0
        finally:
            self._scrub_syncing = False
        self._sync_steps()

    def _sync_steps(self):
        last = self.session.iterations_run
        p, q = self._frame or (last, last)
        self.e_step_button.disabled = last == 0 or q == p
        self.m_step_button.disabled = last == 0 or q != p or p >= last
        self.back_button.disabled = last == 0 or (p == 0 and q == p)
        self.end_button.disabled = last == 0 or self._frame is None
        if self._frame is None or last == 0:
            self.step_note.value = ""
            return
        params, data = self.step_words
        if q == p:
            what = (f"iteration {p}: the {params} after {p} EM iteration{'s' if p != 1 else ''},"
                    f" the {data} coloured by their responsibilities (E-step done; M-step next)")
        else:
            what = (f"iteration {p}: the M-step moved the {params}; the {data} keep the "
                    f"responsibilities of iteration {q} (E-step next)")
        self.step_note.value = ('<span class="emwidgets-step-note-text" style="color:#1f4e79">'
                                f"Scrubbing {html.escape(what)}.</span>")

    # -- observers --------------------------------------------------------------
    def _draw(self, snap):
        self.convergence.update(snap)
        self.assignments.interval_patches = []  # the update may clear the axes
        self.assignments.update(snap)
        if self._gallery_due(snap):
            self.gallery.update(snap)
        if "atlas" in self.views and snap.done:
            self.atlas.update(snap)
        if self.start_toggle.value:
            self._draw_start()
        if snap.done:
            self._draw_intervals()

    # -- choosing the start ----------------------------------------------------------
    def _start_controls(self) -> list:
        if not getattr(self.session, "supports_start", False):
            return []
        return [widgets.HTML("<b>Choose the start</b>"), self.start_toggle,
                widgets.HBox([self.bad_start_button, self.forget_start_button]), self.basin_button]

    @property
    def start_means(self):
        """The chosen start, (K, D) in data units, or None."""
        m = self.session.start_means
        return None if m is None else np.asarray(m, np.float64)

    def set_start(self, means):
        """Start the next Run from these means ((K, D) in data units; as many as
        components): one restart, ``means_init`` of the estimator it gives back."""
        means = np.atleast_2d(np.asarray(means, np.float64))
        if means.shape != (self.session.n_components, len(self.session.columns)):
            raise ValueError(f"A start needs {self.session.n_components} means of "
                             f"{len(self.session.columns)} values; got shape {means.shape}.")
        self.session.start_means = tuple(map(tuple, means.tolist()))
        self._start_xy = list(means @ self.session.projection())
        self.forget_start_button.disabled = False
        self._draw_start()
        self._say_start()

    def forget_start(self):
        """Back to the random restarts of the settings."""
        self.session.start_means = None
        self._start_xy = []
        self.forget_start_button.disabled = True
        self.start_toggle.value = False
        self._draw_start()
        self._say_start()

    def bad_start(self, run: bool = True):
        """Every mean in one corner of the plotted data (a deliberately bad start, as a
        teacher shows one), then Run."""
        xy = self.session.display_points() @ self.session.projection()
        lo, hi = np.nanmin(xy, 0), np.nanmax(xy, 0)
        k = self.session.n_components
        corner = lo + (hi - lo) * (0.02 + 0.03 * np.arange(k)[:, None] / max(k - 1, 1))
        self.set_start(self.session.plane_to_data(corner))
        self.start_toggle.value = True
        if run:
            self.run()

    def _on_start_toggle(self, on: bool):
        if on and not self._start_xy:
            if self.session.start_means is not None:
                self._start_xy = list(self.start_means @ self.session.projection())
            elif self.session.iterations_run:  # the shown restart's own start, to drag
                snap = self.session.frame_at(0)
                r = self.assignments.shown_restart(snap)
                w = self.session.projection()
                self._start_xy = list(np.asarray(snap.restarts.params["means"][r]) @ w)
            self._commit_start()  # (that restart's start, to run alone or to drag)
        self._draw_start()
        self._say_start()

    def _axes(self):
        artists = getattr(self.assignments, "artists", None)
        return getattr(artists, "ax", None) or (self.assignments.figure.axes or [None])[0]

    def _near(self, event) -> Optional[int]:
        """The placed mean under the pointer (within 4% of the axes' span), or None."""
        ax = self._axes()
        if not self._start_xy or ax is None:
            return None
        pts = ax.transData.transform(np.asarray(self._start_xy))
        d = np.hypot(pts[:, 0] - event.x, pts[:, 1] - event.y)
        bbox = ax.get_window_extent()
        i = int(np.argmin(d))
        return i if d[i] <= 0.04 * max(bbox.width, bbox.height) else None

    def _on_press(self, event):
        if not self.start_toggle.value or event.inaxes is None or event.xdata is None:
            return
        i = self._near(event)
        if i is None:
            point = np.array([event.xdata, event.ydata])
            if len(self._start_xy) >= self.session.n_components:  # replace the nearest
                d = [np.hypot(*(p - point)) for p in self._start_xy]
                self._start_xy[int(np.argmin(d))] = point
            else:
                self._start_xy.append(point)
            i = None
        self._dragging = i
        self._draw_start()
        self._commit_start()

    def _on_motion(self, event):
        if self._dragging is None or event.xdata is None:
            return
        self._start_xy[self._dragging] = np.array([event.xdata, event.ydata])
        self._draw_start()

    def _on_release(self, event):
        if self._dragging is None:
            return
        if event.xdata is not None:
            self._start_xy[self._dragging] = np.array([event.xdata, event.ydata])
        self._dragging = None
        self._draw_start()
        self._commit_start()

    def _commit_start(self):
        """A complete start (one mean a component) becomes the session's."""
        if len(self._start_xy) == self.session.n_components:
            means = self.session.plane_to_data(np.asarray(self._start_xy))
            self.session.start_means = tuple(map(tuple, means.tolist()))
            self.forget_start_button.disabled = False
        self._say_start()

    def _draw_start(self):
        """The chosen means as big black crosses on the main view (while choosing)."""
        ax = self._axes()
        if self._start_artist is not None and (self._start_artist.axes is not ax
                                               or not self.start_toggle.value):
            try:
                self._start_artist.remove()
            except (ValueError, NotImplementedError):
                pass
            self._start_artist = None
        if ax is None or not self.start_toggle.value:
            self.assignments.canvas.draw_idle()
            return
        xy = np.asarray(self._start_xy).reshape(-1, 2)
        if self._start_artist is None:
            (self._start_artist,) = ax.plot(xy[:, 0], xy[:, 1], "P", ms=13, color="black",
                                            markeredgecolor="white", mew=1.5, zorder=6,
                                            label="your start")
        else:
            self._start_artist.set_data(xy[:, 0], xy[:, 1])
        self.assignments.canvas.draw_idle()

    def _say_start(self):
        k = self.session.n_components
        placed = len(self._start_xy)
        if not self.start_toggle.value and self.session.start_means is None:
            text = ""
        elif placed < k:
            text = (f"Choosing the start: {placed} of {k} means placed. Click the data to "
                    "place one, drag one to move it.")
        else:
            text = ("Your start: Run fits one restart from these means (drag them to "
                    "change it; Forget start returns to random restarts).")
        self.start_note = text
        self._on_status()

    #: The basin map's grid (BASIN_GRID² starts, one vmapped batch).
    BASIN_GRID = 24

    def basin_map(self, component=None, block: bool = False):
        """Draw where EM goes from every start of mean ``component`` (default: the next one
        each call) on a grid over the data, the other means at the shown restart's
        optimum (:func:`emwidgets.atlas.basin_map`; 2-D data). Computed on a thread (a
        batch of BASIN_GRID² restarts compiles once); ``block`` waits for it."""
        from ..atlas import basin_map

        s, snap = self.session, self.session.snapshot
        if len(s.columns) != 2 or snap is None or not snap.done:
            self.step_note.value = html.escape(
                "A basin map needs a finished run on two columns." if snap is None or
                not snap.done else "A basin map is for two columns: choose two.")
            return
        k = snap.restarts.params["means"].shape[1]
        c = self._basin_component % k if component is None else int(component)
        self._basin_component = c + 1
        r = max(self.assignments.shown_restart(snap), 0)
        means = np.asarray(snap.restarts.params["means"][r], np.float64)
        settings = {n: v for n, v in s.settings().items()
                    if n in ("covariance_type", "reg_covar", "tol", "max_iter")}
        if self.basins is None:
            self.basins = BasinPlot()
            self.basins.canvas.add_class("emwidgets-basins")
            self.view_box.children = tuple(self.view_box.children) + (self.basins.canvas,)
        self.step_note.value = html.escape(
            f"Computing the basin map of mean {c + 1} of restart {r} "
            f"({self.BASIN_GRID ** 2} starts as one batch; the first compiles)…")
        X, labels = s.X.copy(), tuple(s.columns)

        def work():
            try:
                bm = basin_map(X, means, component=c, grid=self.BASIN_GRID, **settings)
                self.basins.show(bm, X, labels)
                self.step_note.value = html.escape(
                    f"Basin map of mean {c + 1}: {len(bm.objective)} optima reached; "
                    f"{bm.counts[0]} of {bm.solution.size} starts reach the best of them. "
                    "Press again for the next mean.")
            except Exception as exc:  # said in one sentence; the explorer carries on
                self.step_note.value = html.escape(f"No basin map: {exc}")

        thread = threading.Thread(target=work, daemon=True, name="emwidgets-basins")
        thread.start()
        if block:
            thread.join()

    def show_atlas(self, show: bool = True):
        """Show (or hide) the atlas of restarts below the views: drawn for every finished
        run; clicking a restart's point shows that restart."""
        if show and self.atlas is None:
            self.atlas = AtlasPlot(on_select=self._select)
            self.atlas.canvas.add_class("emwidgets-atlas")
            self.atlas.selected = self.assignments.selected
        if self.atlas_toggle.value != show:
            self.atlas_toggle.value = show
            return
        children = [c for c in self.view_box.children
                    if self.atlas is None or c is not self.atlas.canvas]
        if show:
            children.append(self.atlas.canvas)
            self.views["atlas"] = self.atlas
            snap = self.session.snapshot
            if snap is not None and snap.done:
                self.atlas.update(snap)
        else:
            self.views.pop("atlas", None)
        self.view_box.children = tuple(children)

    def _gallery_due(self, snap) -> bool:
        """The gallery rebuilds its figure (about 0.1 s): at the end, and while running at most
        once a second, not before the run's first second (the first live frame of a run stays
        light: it is what a user waits for after moving a control)."""
        now = time.monotonic()
        last = getattr(self, "_gallery_at", 0)
        if (snap.done or self.gallery.snapshot is None
                or (now - last > 1.0 and snap.elapsed > 1.0)):
            self._gallery_at = now
            return True
        return False

    def _draw_intervals(self):
        """Confidence ellipses of the best model's means (standard errors by autodiff).

        The standard errors are computed on a thread (the first time compiles,
        a few seconds) and kept per model: the views never wait for them.
        """
        s = self.session
        snap, est = s.snapshot, s.estimator
        shown_best = snap is not None and self.assignments.shown_restart(snap) == snap.best
        if not (self.intervals.value and est is not None and snap is not None and snap.done
                and shown_best):
            self.assignments.show_intervals(None)
            self._set_intervals_note("")
            return
        cached = self._intervals_cache.get(id(est))
        if cached is not None and cached[0] is est:
            self._show_cached_intervals(cached[1])
            return
        self.assignments.show_intervals(None)
        self._set_intervals_note("Computing the 95% intervals of the means (standard errors by "
                                 "autodiff; the first time compiles, a few seconds)…")

        def work():
            try:
                result = est.standard_errors(s.X)
            except ValueError as exc:
                result = exc
            self._intervals_cache = {id(est): (est, result)}
            if s.estimator is est:
                self._draw_intervals()

        threading.Thread(target=work, daemon=True).start()

    def _show_cached_intervals(self, result):
        if isinstance(result, Exception):
            self.assignments.show_intervals(None)
            self._set_intervals_note(f"No intervals: {result}")
        else:
            self.assignments.show_intervals(result)
            self._set_intervals_note("")

    def _set_intervals_note(self, text: str):
        self._intervals_note = text
        self._on_status()

    def _on_snapshot(self, change):
        snap = change["new"]
        if snap is None:
            return
        run = getattr(snap, "run", None)
        if self._frame is not None and run == self._picker_run:
            # The user scrubbed this run while it goes on: the shown frame stays (the
            # scrubber grows with the run, the status goes on); at the run's end the same
            # frame is drawn from the finished run. To convergence follows the run again.
            self._sync_scrubber()
            if snap.done:
                self._update_picker(snap)
                self.gallery.update(snap)
                if "atlas" in self.views:
                    self.atlas.update(snap)
                self.show_iteration(*self._frame)
                self._request_renders()
            return
        self._frame = None  # a new frame of a run: the run's own
        self._sync_scrubber()
        if snap.done or run != self._picker_run:
            self._picker_run = run
            self._update_picker(snap)
        # A frame the session publishes: the views ask the browser for their renders once
        # its status is out too (_request_renders), so the status is never queued behind
        # the renders, which hold the kernel's thread.
        defer = self.session.publishing
        for view in self.views.values():
            view.defer_render = defer
        try:
            self._draw(snap)
        finally:
            for view in self.views.values():
                view.defer_render = False
        if not defer:
            self._request_renders()

    def _request_renders(self, change=None):
        for view in self.views.values():
            if view.render_wanted:
                view.request_render()

    def _update_picker(self, snap):
        """The picker lists the shown run's restarts (ranked once the run has ended)."""
        r = snap.restarts
        if snap.done:
            options = [("best", -1)] + [
                (f"{i} (rank {rank + 1}, ll {r.objective[i]:.3f}"
                 f"{', spurious' if r.spurious[i] else ''}"
                 f"{', failed' if r.failed[i] else ''})", int(i))
                for rank, i in enumerate(r.ranking())]
        else:
            options = [("best", -1)] + [(f"{i} (running)", i) for i in range(r.n_restarts)]
        keep = self.restart_picker.value if self.restart_picker.value < r.n_restarts else -1
        with self.restart_picker.hold_trait_notifications():
            self.restart_picker.options = options
            self.restart_picker.value = keep

    def _on_status(self, change=None):
        s = self.session
        self.run_button.disabled = s.running
        self.stop_button.disabled = not s.running
        colour = "#b00020" if s.error else "#333"
        text = (f'<span class="emwidgets-status-text" style="color:{colour}">'
                f"{html.escape(s.status)}</span>")
        if s.stale:
            text += ('<br><span class="emwidgets-stale" style="color:#8a5a00">Stale: the settings '
                     "or data changed since this result was fitted; press Run to refit.</span>")
        if s.warming and not s.running:
            text += ('<br><span class="emwidgets-warming" style="color:#555">'
                     f"{html.escape(s.warming)}</span>")
        if getattr(self, "start_note", ""):
            text += ('<br><span class="emwidgets-start-note" style="color:#1f4e79">'
                     f"{html.escape(self.start_note)}</span>")
        if self._intervals_note:
            text += ('<br><span class="emwidgets-intervals-note" style="color:#555">'
                     f"{html.escape(self._intervals_note)}</span>")
        self.status.value = text

    def _on_data(self, change=None):
        self.data_note.value = (f'<span class="emwidgets-data-note-text" style="color:#555">'
                                f"{html.escape(self.session.data_note)}</span>")

    def _on_columns(self, change):
        s = self.session
        chosen = list(change["new"])
        if self._syncing or chosen == s.columns:
            return
        if not chosen:
            s.status = "Choose at least one column: the previous choice is kept."
            self._syncing = True
            try:
                self.column_picker.value = tuple(s.columns)
            finally:
                self._syncing = False
            return
        s.set_columns(chosen)

    def _sync_data_controls(self):
        """Column picker and axis menus follow the session's data."""
        s = self.session
        self._syncing = True
        try:
            if tuple(self.column_picker.options) != tuple(s.available_columns):
                self.column_picker.options = s.available_columns  # new data
            if tuple(self.column_picker.value) != tuple(s.columns):
                self.column_picker.value = tuple(s.columns)
            for name in ("x_axis", "y_axis"):
                widget = self.controls[name]
                widget.options = s.axis_choices
                if getattr(s, name) in widget.options:
                    widget.value = getattr(s, name)
        finally:
            self._syncing = False

    def _on_data_version(self, change):
        self._sync_data_controls()
        self._on_axes(None)

    def _on_axes(self, change):
        s = self.session
        projection = s.projection()
        self.assignments.projection = projection
        self.assignments.axis_labels = (s.x_axis, s.y_axis)
        self.gallery.projection = projection
        if hasattr(self.assignments, "artists"):
            del self.assignments.artists  # new axes labels and limits: redraw from scratch
        if hasattr(s, "refresh_density"):
            s.refresh_density(s.snapshot)
        if s.snapshot is not None and s.shown_data_is_current:
            self._draw(s.snapshot)
        else:  # no fit of these data yet: show the data
            self._preview(force=True)
