"""EMExplorer: controls, live convergence, assignments and restart comparison in one widget."""

from __future__ import annotations

import html
import time

import ipywidgets as W
import numpy as np

from ..core.gmm import INIT_METHODS
from .session import FitSession
from .views import AssignmentPlot, ConvergencePlot, RestartGallery

_STYLE = {"description_width": "88px"}
_WIDE = W.Layout(width="292px")


def _controls(session: FitSession) -> dict:
    """One control per setting, each linked to the session trait of the same name."""
    c = {
        "n_components": W.IntSlider(min=1, max=10, description="components", style=_STYLE, layout=_WIDE),
        "covariance_type": W.Dropdown(options=["full", "tied", "diag", "spherical"],
                                      description="covariance", style=_STYLE, layout=_WIDE),
        "init_params": W.Dropdown(options=list(getattr(session, "init_options", INIT_METHODS)),
                                  description="initialisation",
                                  style=_STYLE, layout=_WIDE),
        "tol": W.FloatLogSlider(base=10, min=-8, max=-1, step=0.25, description="tolerance",
                                readout_format=".0e", style=_STYLE, layout=_WIDE),
        "max_iter": W.IntSlider(min=1, max=1000, description="max iter", style=_STYLE,
                                layout=_WIDE),
        "n_init": W.IntSlider(min=1, max=64, description="restarts", style=_STYLE, layout=_WIDE),
        "random_state": W.IntText(description="seed", style=_STYLE, layout=_WIDE),
        "reg_covar": W.FloatLogSlider(base=10, min=-10, max=0, step=0.5, description="reg_covar",
                                      readout_format=".0e", style=_STYLE, layout=_WIDE),
        "missing": W.Dropdown(options=[("EM (impute)", "em"), ("drop incomplete rows", "drop")],
                              description="missing", style=_STYLE, layout=W.Layout(
                                  width="292px",
                                  display=None if session.has_missing else "none")),
        "x_axis": W.Dropdown(options=session.axis_choices, description="x axis", style=_STYLE,
                             layout=_WIDE),
        "y_axis": W.Dropdown(options=session.axis_choices, description="y axis", style=_STYLE,
                             layout=_WIDE),
    }
    for name, widget in c.items():
        widget.value = getattr(session, name)
        W.link((widget, "value"), (session, name))
    return c


class EMExplorer(W.VBox):
    """Fit Gaussian mixtures interactively and watch every restart converge.

    Args:
        data: a pandas DataFrame (its numeric columns are used) or an
            (n_samples, n_features) array. NaN marks a missing value: such rows
            are fitted by EM over their observed values and drawn hollow at their
            imputed positions, or dropped (the *missing* control, shown
            when the data have gaps).
        **settings: initial values of the controls (``n_components``,
            ``covariance_type``, ``init_params``, ``tol``, ``max_iter``,
            ``n_init``, ``random_state``, ``reg_covar``).

    Attributes:
        session: the :class:`FitSession` holding settings and the latest result.
        controls: dict of the control widgets, by setting name.
        run_button, stop_button, restart_picker, status: the other widgets.
        convergence, assignments, gallery: the three views.
    """

    session_class = FitSession

    def __init__(self, data, **settings):
        self.session = session = self.session_class(data, **settings)
        self.controls = _controls(session)
        self.run_button = W.Button(description="Run", button_style="success", icon="play",
                                   layout=W.Layout(width="140px"))
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop",
                                    disabled=True, layout=W.Layout(width="140px"))
        self.restart_picker = W.Dropdown(options=[("best", -1)], value=-1, description="show restart",
                                         style=_STYLE, layout=_WIDE)
        self.intervals = W.Checkbox(value=False, description="95% intervals of the means",
                                    indent=False, layout=_WIDE)
        self.status = W.HTML(layout=W.Layout(width="100%"))
        self.status.add_class("emwidgets-status")

        self.views = self._make_views(session.projection(), (session.x_axis, session.y_axis))
        for name, view in self.views.items():
            view.canvas.add_class(f"emwidgets-{name}")

        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: session.stop_async())
        self.restart_picker.observe(lambda ch: self._select(ch["new"]), "value")
        self.intervals.observe(lambda ch: self._draw_intervals(), "value")
        session.observe(self._on_snapshot, "snapshot")
        session.observe(self._on_status, ["status", "running", "error"])
        session.observe(self._on_axes, ["x_axis", "y_axis"])
        self._on_status()

        c = self.controls
        left = W.VBox([W.HTML("<b>EM settings</b>"), c["n_components"], c["covariance_type"],
                       c["init_params"], c["tol"], c["max_iter"], c["n_init"], c["random_state"],
                       c["reg_covar"], c["missing"], W.HTML("<b>Plotted axes</b>"), c["x_axis"], c["y_axis"],
                       W.HBox([self.run_button, self.stop_button]), self.restart_picker,
                       self.intervals],
                      layout=W.Layout(width="300px", min_width="300px"))
        super().__init__([W.HBox([left, self._view_box()]), self.status])
        self.add_class("emwidgets-explorer")

    # -- the views (a subclass may show others) ----------------------------------
    def _make_views(self, projection, labels) -> dict:
        self.convergence = ConvergencePlot()
        self.assignments = AssignmentPlot(projection=projection, axis_labels=labels)
        self.gallery = RestartGallery(projection=projection, on_select=self._select)
        return {"convergence": self.convergence, "assignments": self.assignments,
                "gallery": self.gallery}

    def _view_box(self):
        return W.VBox([W.HBox([self.convergence.canvas, self.assignments.canvas]),
                       self.gallery.canvas])

    # -- actions ------------------------------------------------------------------
    def run(self, block: bool = False):
        """What the Run button does; ``block=True`` waits for the end (for scripts and tests)."""
        self.session.run(block=block)

    def _select(self, restart: int):
        restart = int(restart)
        for view in self.views.values():
            view.selected = restart
        if self.restart_picker.value != restart and restart in [v for _, v in self.restart_picker.options]:
            self.restart_picker.value = restart
        if self.session.snapshot is not None:
            self._draw(self.session.snapshot)

    # -- observers --------------------------------------------------------------
    def _draw(self, snap):
        self.convergence.update(snap)
        self.assignments.interval_patches = []  # the update may clear the axes
        self.assignments.update(snap)
        if self._gallery_due(snap):
            self.gallery.update(snap)
        if snap.done:
            self._draw_intervals()

    def _gallery_due(self, snap) -> bool:
        """The gallery rebuilds its figure: at the end, and at most once a second while running."""
        now = time.monotonic()
        if snap.done or self.gallery.snapshot is None or now - getattr(self, "_gallery_at", 0) > 1.0:
            self._gallery_at = now
            return True
        return False

    def _draw_intervals(self):
        """Confidence ellipses of the best model's means (standard errors by autodiff)."""
        s = self.session
        snap = s.snapshot
        shown_best = snap is not None and self.assignments.shown_restart(snap) == snap.best
        if not (self.intervals.value and s.estimator is not None and snap is not None
                and snap.done and shown_best):
            self.assignments.show_intervals(None)
            return
        try:
            se = s.estimator.standard_errors(s.X)
        except ValueError as exc:
            self.assignments.show_intervals(None)
            s.status = f"No intervals: {exc}"
            return
        self.assignments.show_intervals(se)

    def _on_snapshot(self, change):
        snap = change["new"]
        if snap is None:
            return
        if snap.done or not self.session.running:
            r = snap.restarts
            order = np.argsort(-np.where(r.failed, -np.inf, r.objective), kind="stable")
            options = [("best", -1)] + [
                (f"{i} (rank {rank + 1}, ll {r.objective[i]:.3f})", int(i)) for rank, i in enumerate(order)
            ]
            keep = self.restart_picker.value if self.restart_picker.value < r.n_restarts else -1
            with self.restart_picker.hold_trait_notifications():
                self.restart_picker.options = options
                self.restart_picker.value = keep
        self._draw(snap)

    def _on_status(self, change=None):
        s = self.session
        self.run_button.disabled = s.running
        self.stop_button.disabled = not s.running
        colour = "#b00020" if s.error else "#333"
        self.status.value = (f'<span class="emwidgets-status-text" style="color:{colour}">'
                             f"{html.escape(s.status)}</span>")

    def _on_axes(self, change):
        s = self.session
        projection = s.projection()
        self.assignments.projection = projection
        self.assignments.axis_labels = (s.x_axis, s.y_axis)
        self.gallery.projection = projection
        if hasattr(self.assignments, "artists"):
            del self.assignments.artists  # new axes labels and limits: redraw from scratch
        if s.snapshot is not None:
            self._draw(s.snapshot)
