"""EMExplorer: controls, live convergence, assignments and restart comparison in one widget."""

from __future__ import annotations

import html
import time
from typing import Optional

import ipywidgets as widgets
import numpy as np

from ..estimators.gaussian_mixture import GaussianMixture
from . import status_line
from .features import BasinMap, ColumnPicker, Comparison, Intervals, Scrub, StartChooser
from .session import FitSession
from .views import (
    AssignmentPlot,
    AtlasPlot,
    ConvergencePlot,
    PairsPlot,
    RestartGallery,
    request_renders,
)

LABEL_WIDTH = "88px"
CONTROL_WIDTH = "262px"


def _style() -> dict:
    # A dict, not a shared Style: each widget builds its own from it.
    return {"description_width": LABEL_WIDTH}


def _wrapping() -> widgets.Layout:
    """A row that wraps where it is too narrow for its children (a new Layout each time)."""
    return widgets.Layout(flex_flow="row wrap")


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
                                       indent=False, layout=_layout(padding="0 0 0 8px")),
        "standardize": widgets.Checkbox(
            description="standardise columns", style=_style(), indent=False,
            tooltip="Fit to each column divided by its standard deviation (so the widest "
                    "column does not rule the start); the fit is reported in data units.",
            layout=_layout(padding="0 0 0 8px",
                           display=None if session.supports_standardize else "none")),
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
    #: The *95% intervals* box and its ellipses (standard errors of Gaussian mixtures).
    offers_intervals = True
    #: The *Pairs of columns* view (Gaussian mixtures' ellipses in every pair of columns).
    offers_pairs = True
    main_view_name = "assignments"  # (the view of the shown restart's data)

    @property
    def main_view(self):
        """The view of the shown restart's data (the features draw on it)."""
        return self.views[self.main_view_name]

    def __new__(cls, data=None, *args, **kwargs):
        # EMExplorer(EM(...), data, view=...): a model of your own, in its own explorer
        from ..estimators.general import EM

        if isinstance(data, EM):
            from .model_explorer import ModelExplorer

            return ModelExplorer(data, *args, **kwargs)
        return super().__new__(cls, data, *args, **kwargs)

    def __init__(self, data, columns=None, **settings):
        self.session = session = self._new_session(data, columns, settings)
        self.controls = _controls(session)
        axis_menus = {n: self.controls[n] for n in ("x_axis", "y_axis")}
        self.column_choice = ColumnPicker(session, axis_menus, _layout())
        self.column_picker = self.column_choice.widget
        self.run_button = widgets.Button(description="Run", button_style="success", icon="play",
                                         layout=widgets.Layout(width="128px"))
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop",
                                          disabled=True, layout=widgets.Layout(width="128px"))
        self.save_button = widgets.Button(description="Save", icon="save",
                                          layout=widgets.Layout(width="128px"),
                                          tooltip="The model (model.pkl) and every view (PNG) "
                                                  "into a new folder here")
        self.save_note = widgets.HTML(layout=widgets.Layout(width="262px"))
        self.restart_picker = widgets.Dropdown(options=[("best", -1)], value=-1,
                                               description="show restart", style=_style(),
                                               layout=_layout())
        self.atlas_toggle = widgets.ToggleButton(
            value=False, description="Atlas of restarts", icon="map", layout=_layout(),
            tooltip="Every restart placed by how its partition differs from the others'")
        self.atlas = None  # the AtlasPlot, made when first shown
        self.pairs_toggle = widgets.ToggleButton(
            value=False, description="Pairs of columns", icon="th", layout=_layout(),
            tooltip="The shown restart in every pair of the first columns")
        self.pairs = None  # the PairsPlot, made when first shown
        self.step_note = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.step_note.add_class("emwidgets-step-note")
        self.status = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.status.add_class("emwidgets-status")
        self.data_note = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.data_note.add_class("emwidgets-data-note")
        self._picker_run = None

        self.views = self._make_views(session.projection(), (session.x_axis, session.y_axis))
        for name, view in self.views.items():
            view.canvas.add_class(f"emwidgets-{name}")
        # The features, each given what it works with (features.py).
        main = self.main_view
        self.start = StartChooser(session, main, _layout(), self.run, self._on_status)
        self.scrub = Scrub(session, self.views, main, self.step_note, self.step_words,
                           _layout(), self._draw, self._request_renders, self.start.redraw)
        self.confidence = (Intervals(session, main, _layout(), self._on_status)
                           if self.offers_intervals else None)
        # (the features' controls, by the names the explorer has always had)
        self.scrubber = self.scrub.slider
        self.e_step_button, self.m_step_button = self.scrub.e_step_button, self.scrub.m_step_button
        self.back_button, self.end_button = self.scrub.back_button, self.scrub.end_button
        self.start_toggle = self.start.toggle
        self.bad_start_button = self.start.bad_start_button
        self.forget_start_button = self.start.forget_button
        self.basin = BasinMap(session, main, self.step_note, self._add_view)
        if isinstance(main, AssignmentPlot):
            main.enable_hover(self._describe_row)
        for view in self.views.values():
            if view.hovers_restarts:
                view.enable_restart_hover(self.highlight_restart)
        self.compare_note = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.compare_note.add_class("emwidgets-compare")
        self.comparison = Comparison(session, _layout(), _style(), self._on_compare)
        self.basin_button = self.basin.button

        self.run_button.on_click(lambda _: self.run())
        self.save_button.on_click(lambda _: self._save_clicked())
        self.stop_button.on_click(lambda _: session.stop_async())
        self.restart_picker.observe(lambda ch: self._select(ch["new"]), "value")
        self.atlas_toggle.observe(lambda ch: self.show_atlas(ch["new"]), "value")
        self.pairs_toggle.observe(lambda ch: self.show_pairs(ch["new"]), "value")
        self.basin_button.on_click(lambda _: self.basin_map())
        session.render_cost = lambda: sum(v.render_seconds for v in self.views.values())
        if "assignments" in self.views and hasattr(session, "density_for"):
            self.views["assignments"].density_for = session.density_for
        session.observe(self._on_snapshot, "snapshot")
        session.observe(self._request_renders, "published")
        session.observe(self._on_status, ["status", "running", "error", "stale", "warming"])
        session.observe(self._on_axes, ["x_axis", "y_axis"])
        session.observe(self._on_data, ["data_note"])
        session.observe(self._on_data_version, ["data_version"])
        session.observe(lambda ch: self.comparison.update(), ["running", "stale"])
        self._on_status()
        self._on_data()
        self._preview()

        c = self.controls
        left = widgets.VBox([widgets.HTML("<b>EM settings</b>"), c["n_components"],
                             c["covariance_type"],
                             c["init_params"], c["tol"], c["max_iter"], c["n_init"],
                             c["random_state"],
                             c["reg_covar"], c["accelerate"], c["standardize"],
                             c["missing"],
                             widgets.HTML("<b>Data and plotted axes</b>"),
                             self.column_picker, c["x_axis"], c["y_axis"],
                             self.comparison.menu,
                             widgets.HBox([self.run_button, self.stop_button]), self.restart_picker,
                             self.save_button, self.save_note,
                             *([self.confidence.box] if self.confidence else []),
                             widgets.HTML("<b>Take the run apart</b>"),
                             *self.scrub.controls(), self.atlas_toggle,
                             *([self.pairs_toggle] if self.offers_pairs else []),
                             *self._start_controls(), *self._extra_controls()],
                            layout=widgets.Layout(width="270px", min_width="270px"))
        self.view_box = self._view_box()
        # The answer where the eye is: the status and the step's note above the controls and
        # the views (on a 1366x768 laptop, below them they were under the fold).
        # Too narrow for the views beside the controls: they wrap below, never cut at the right.
        super().__init__([self.status, self.step_note, self.compare_note,
                          widgets.HBox([left, self.view_box], layout=_wrapping()), self.data_note])
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
        return widgets.VBox([widgets.HBox([self.convergence.canvas, self.main_view.canvas],
                                          layout=_wrapping()), self.gallery.canvas])

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
        if self.scrub.frame is not None:
            self.show_iteration(*self.scrub.frame)
        elif self.session.snapshot is not None:
            self._draw(self.session.snapshot)

    def highlight_restart(self, restart):
        """Draw restart ``restart`` out in every view (its trace, its bar, its point of
        the atlas; None: none), as hovering any of them does."""
        restart = None if restart is None else int(restart)
        self.highlighted = restart
        for view in self.views.values():
            view.highlight(restart)

        # -- taking a finished run apart ----------------------------------------------
    @property
    def estimator_(self):
        """The fitted model of the shown run (its best restart), or None."""
        return self.session.estimator

    def save(self, folder=None) -> list:
        """Save the shown run's fitted model (``model.pkl``, a pickle: ``pickle.load`` or
        ``joblib.load`` gives the estimator back, predict and score included) and every
        view as it is drawn (``<view>.png``) into ``folder`` (default: a new
        ``emwidgets-<date>-<time>`` folder in the working directory); returns the paths.
        The *Save* button does the same and says where."""
        import pickle
        from pathlib import Path

        if self.session.estimator is None:
            raise ValueError("There is no fitted model to save yet: press Run first.")
        folder = Path(folder if folder is not None else
                      time.strftime("emwidgets-%Y%m%d-%H%M%S"))
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / "model.pkl"]
        with open(paths[0], "wb") as f:
            pickle.dump(self.session.estimator, f)
        for name, view in self.views.items():
            path = folder / f"{name}.png"
            with view._lock:  # (not half-way through a redraw)
                view.figure.savefig(path, dpi=150)
            paths.append(path)
        return paths

    def _save_clicked(self):
        try:
            paths = self.save()
        except Exception as exc:  # noqa: BLE001 (one sentence, the explorer carries on)
            self.save_note.value = html.escape(f"Not saved: {exc}")
        else:
            self.save_note.value = html.escape(
                f"Saved the model and {len(paths) - 1} figures in {paths[0].parent}/ "
                "(model.pkl: pickle.load gives the estimator back).")

    def _describe_row(self, i: int, restart: int) -> str:
        """The hovered point: its row (the user's index label), its values and the shown
        restart's responsibilities, by the plots' component numbers."""
        s = self.session
        label, x = s.shown_row(i)
        shown = ", ".join(f"{c} {v:.4g}" for c, v in zip(s.columns[:4], x[:4]))
        more = ", …" if len(s.columns) > 4 else ""
        snap, est = s.snapshot, s.estimator
        if (est is not None and snap is not None and snap.done and not s.running
                and s.shown_data_is_current and 0 <= restart < snap.restarts.n_restarts):
            perm = snap.solutions.permutations[restart]
            p = np.asarray(est.restart(restart).predict_proba(x[None]))[0][perm]
            probs = ", ".join(f"{j}: {q:.2f}" for j, q in enumerate(p) if q >= 0.005)
            return f"row {label}\n{shown}{more}\nP(component): {probs}"
        return f"row {label}\n{shown}{more}"

    def restart(self, restart: int):
        """The fitted model of restart ``restart`` of the shown run."""
        if self.session.estimator is None:
            raise ValueError("There is no fitted model yet: press Run first.")
        return self.session.estimator.restart(restart)

    @property
    def frame(self) -> Optional[tuple]:
        """The scrubbed (p, q) shown (:class:`features.Scrub`), or None: the run's own."""
        return self.scrub.frame

    def show_iteration(self, iteration: int, labels_at=None):
        """Every restart after ``iteration`` iterations, the points coloured by the
        responsibilities after ``labels_at`` (:class:`features.Scrub`)."""
        self.scrub.show(iteration, labels_at)

    def e_step(self):
        """Recolour the points by the responsibilities of the ellipses shown."""
        self.scrub.e_step()

    def m_step(self):
        """Move the ellipses to the parameters the shown responsibilities give (the
        next iteration's), the points keeping their colours until the next E-step."""
        self.scrub.m_step()

    def step_back(self):
        """Undo the last half step."""
        self.scrub.step_back()

    def to_convergence(self):
        """Back to the run's end: its own frame."""
        self.scrub.to_convergence()

    # -- observers --------------------------------------------------------------
    def _draw(self, snap):
        """Every view draws ``snap``: the gallery when due, the atlas for a finished run."""
        if self.confidence is not None:
            self.main_view.interval_patches = []  # the update may clear the axes
        for name, view in self.views.items():
            if name == "gallery":
                if self._gallery_due(snap):
                    view.update(snap)
            elif name not in ("atlas", "pairs") or snap.done:
                view.update(snap)
        self.start.redraw()
        if snap.done and self.confidence is not None:
            self.confidence.draw()

    # -- choosing the start ----------------------------------------------------------
    def _start_controls(self) -> list:
        if not getattr(self.session, "supports_start", False):
            return []
        return [widgets.HTML("<b>Choose the start</b>"), self.start_toggle,
                widgets.HBox([self.bad_start_button, self.forget_start_button]), self.basin_button]

    def _extra_controls(self) -> list:
        """Controls a kind of explorer adds below the others (none here)."""
        return []

    @property
    def start_means(self):
        """The chosen start, (K, D) in data units, or None."""
        return self.start.means

    def set_start(self, means):
        """Start the next Run (one restart) from these (K, D) means in data units."""
        self.start.set(means)

    def forget_start(self):
        """Back to the random restarts of the settings."""
        self.start.forget()

    def bad_start(self, run: bool = True):
        """Every mean in one corner of the plotted data (a bad start, on purpose), then Run."""
        self.start.bad_start(run)

    #: The basin map's grid (BASIN_GRID² starts, one vmapped batch).
    BASIN_GRID = 24

    def basin_map(self, component=None, block: bool = False):
        """Where EM goes from every start of mean ``component`` on a BASIN_GRID² grid, the
        others at the shown restart's optimum (:class:`features.BasinMap`)."""
        self.basin.draw(component, self.BASIN_GRID, block)

    @property
    def basins(self):
        """The basin map's view (a BasinPlot), or None before the first map."""
        return self.basin.view

    def _add_view(self, view):
        self.view_box.children = tuple(self.view_box.children) + (view.canvas,)

    def show_atlas(self, show: bool = True):
        """Show (or hide) the atlas of restarts below the views: drawn for every finished
        run; clicking a restart's point shows that restart.

        The canvas sits in a box of its own (``atlas_box``), and the box is what comes and
        goes: ipympl's canvas view (0.10) overrides ``remove`` without removing its element,
        so a canvas taken out of a box's children stayed on the page."""
        if show and self.atlas is None:
            self.atlas = AtlasPlot(on_select=self._select)
            self.atlas.enable_restart_hover(self.highlight_restart)
            self.atlas_box = widgets.Box([self.atlas.canvas])
            self.atlas_box.add_class("emwidgets-atlas")
            self.atlas.selected = self.main_view.selected
        if self.atlas_toggle.value != show:
            self.atlas_toggle.value = show
            return
        self._place_view("atlas", self.atlas, getattr(self, "atlas_box", None), show)

    def _place_view(self, name: str, view, box, show: bool):
        """Put ``box`` (``view``'s canvas in a box of its own: see :meth:`show_atlas`) below
        the views, drawn for the finished run on the current data, or take it away."""
        children = [c for c in self.view_box.children if c is not box]
        if show:
            children.append(box)
            self.views[name] = view
            view.highlighted = getattr(self, "highlighted", None)  # (drawn by its update)
            snap = self.session.snapshot
            if snap is not None and snap.done and self.session.shown_data_is_current:
                view.update(snap)
        else:
            self.views.pop(name, None)
        self.view_box.children = tuple(children)

    def show_pairs(self, show: bool = True):
        """Show (or hide) the pairs view below the others (:class:`views.PairsPlot`): the
        shown restart in every pair of the first columns, drawn for finished runs."""
        if show and self.pairs is None:
            self.pairs = PairsPlot(projection=None)
            self.pairs.names = lambda: self.session.columns
            self.pairs.selected = self.main_view.selected
            self.pairs_box = widgets.Box([self.pairs.canvas])  # (see show_atlas)
            self.pairs_box.add_class("emwidgets-pairs")
        if self.pairs_toggle.value != show:
            self.pairs_toggle.value = show
            return
        self._place_view("pairs", self.pairs, getattr(self, "pairs_box", None), show)

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

    def _on_snapshot(self, change):
        snap = change["new"]
        if snap is None:
            return
        run = getattr(snap, "run", None)
        if self.scrub.frame is not None and run == self._picker_run:
            # The user scrubbed this run while it goes on: the shown frame stays (the
            # scrubber grows with the run, the status goes on); at the run's end the same
            # frame is drawn from the finished run. To convergence follows the run again.
            self.scrub.sync()
            if snap.done:
                self._update_picker(snap)
                self.gallery.update(snap)
                if "atlas" in self.views:
                    self.atlas.update(snap)
                self.show_iteration(*self.scrub.frame)
                self._request_renders()
            return
        self.scrub.frame = None  # a new frame of a run: the run's own
        self.scrub.sync()
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
        request_renders(self.views.values())

    def _update_picker(self, snap):
        """The picker lists the shown run's restarts (ranked once the run has ended)."""
        options = status_line.picker_options(snap)
        keep = (self.restart_picker.value
                if self.restart_picker.value < snap.restarts.n_restarts else -1)
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
        # The background compilation in small grey type, and not while a run is taken
        # apart step by step (its lines cluttered a teacher's lesson).
        if s.warming and not s.running and getattr(self, "frame", None) is None:
            text += ('<br><span class="emwidgets-warming" style="color:#777; '
                     f'font-size:85%">{html.escape(s.warming)}</span>')
        start = getattr(self, "start", None)  # (a feature's note: once it is made)
        if start is not None and start.note:
            text += ('<br><span class="emwidgets-start-note" style="color:#1f4e79">'
                     f"{html.escape(start.note)}</span>")
        confidence = getattr(self, "confidence", None)
        if confidence is not None and confidence.note:
            text += ('<br><span class="emwidgets-intervals-note" style="color:#555">'
                     f"{html.escape(confidence.note)}</span>")
        self.status.value = text

    def _on_data(self, change=None):
        self.data_note.value = (f'<span class="emwidgets-data-note-text" style="color:#555">'
                                f"{html.escape(self.session.data_note)}</span>")

    def _on_data_version(self, change):
        self.column_choice.sync()
        self.comparison.sync()
        self._on_axes(None)

    def _on_compare(self):
        self.compare_note.value = self.comparison.note

    def _on_axes(self, change):
        s = self.session
        projection = s.projection()
        self.main_view.projection = projection
        self.main_view.axis_labels = (s.x_axis, s.y_axis)
        self.gallery.projection = projection
        if hasattr(self.main_view, "artists"):
            del self.main_view.artists  # new axes labels and limits: redraw from scratch
        if hasattr(s, "refresh_density"):
            s.refresh_density(s.snapshot)
        if s.snapshot is not None and s.shown_data_is_current:
            self.scrub.redraw()  # (scrubbing: the frame the controls say, in the new axes)
            if self.scrub.frame is not None:
                self.gallery.update(s.snapshot)
        else:  # no fit of these data yet: show the data
            self._preview(force=True)
