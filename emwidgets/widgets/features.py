"""What an explorer can do besides fitting: each feature is given the parts it works
with (the session, a view, a callback) when it is made, and never reaches back into
the explorer that holds it.

* :class:`Scrub`: taking a run apart (any iteration, E-step / M-step half steps);
* :class:`StartChooser`: choosing the start by clicking and dragging means, a
  deliberately bad start;
* :class:`Intervals`: confidence ellipses of the best model's means.
"""

from __future__ import annotations

import html
from typing import Callable, Optional

import ipywidgets as widgets
import numpy as np

from . import runner


def _small() -> widgets.Layout:
    # (one Layout a widget: a shared one changes all)
    return widgets.Layout(width="128px", padding="0 4px")


class Scrub:
    """Taking a run apart: the *iteration* slider and the E-step, M-step, Step back and
    To convergence buttons. ``frame`` is the shown (p, q): the parameters after p
    iterations, the data coloured by the responsibilities after q (q = p or p - 1), or
    None for the run's own frame. Every frame is exact, replayed without compiling
    (:meth:`FitSession.frame_at`).

    Args:
        session: the explorer's session.
        views: the explorer's views by name (the dict itself: views added later count).
        main: the main view (its interval patches go with a new frame).
        step_note: the HTML line that says which half step is shown.
        step_words: what the note calls the drawn parameters and the coloured data, and
            optionally (third and fourth) how the E-step shows on that data and what the
            data keep after an M-step (default "coloured by their responsibilities",
            "responsibilities").
        draw: ``draw(snapshot)`` of the explorer (the run's own frame).
        request_renders: asks the browser for the views' renders.
        after_frame: called after a frame is drawn (the chosen start redraws on it).
    """

    def __init__(self, session, views: dict, main, step_note, step_words, layout,
                 draw: Callable, request_renders: Callable, after_frame: Callable):
        self.session, self.views, self.main = session, views, main
        self.step_note, self.step_words = step_note, step_words
        self._draw, self._request_renders, self._after_frame = draw, request_renders, after_frame
        self.frame: Optional[tuple] = None
        self._syncing = False
        self.slider = widgets.IntSlider(value=0, min=0, max=0, description="iteration",
                                        disabled=True, continuous_update=True,
                                        style={"description_width": "88px"}, layout=layout)
        self.slider.add_class("emwidgets-scrubber")
        self.e_step_button = widgets.Button(description="E-step", disabled=True, layout=_small(),
                                            tooltip="Recolour the points by the responsibilities "
                                                    "of the ellipses shown")
        self.m_step_button = widgets.Button(description="M-step", disabled=True, layout=_small(),
                                            tooltip="Move the ellipses to the parameters those "
                                                    "responsibilities give")
        self.back_button = widgets.Button(description="Step back", icon="step-backward",
                                          disabled=True, layout=_small())
        self.end_button = widgets.Button(description="To convergence", icon="fast-forward",
                                         disabled=True, layout=_small())
        self.slider.observe(self._on_slider, "value")
        self.e_step_button.on_click(lambda _: self.e_step())
        self.m_step_button.on_click(lambda _: self.m_step())
        self.back_button.on_click(lambda _: self.step_back())
        self.end_button.on_click(lambda _: self.to_convergence())

    def controls(self) -> list:
        return [self.slider, widgets.HBox([self.e_step_button, self.m_step_button]),
                widgets.HBox([self.back_button, self.end_button])]

    def show(self, iteration: int, labels_at=None):
        """Draw every restart after ``iteration`` iterations, the points coloured by the
        responsibilities after ``labels_at`` (default the same)."""
        last = self.session.iterations_run
        p = int(np.clip(iteration, 0, last))
        q = p if labels_at is None else int(np.clip(labels_at, max(p - 1, 0), p))
        try:
            snap = self.session.frame_at(p, q)
        except ValueError as exc:
            self.step_note.value = html.escape(str(exc))
            return
        self.frame = (p, q)
        self.main.interval_patches = []
        for name, view in self.views.items():  # (the gallery keeps the run's solutions)
            if name not in ("gallery", "atlas"):
                view.update(snap)
                if view.render_wanted:
                    view.request_render()
        self._after_frame()
        self._syncing = True
        try:
            self.slider.value = p
        finally:
            self._syncing = False
        self._sync_steps()

    def redraw(self):
        """Draw again what is shown (after the plotted axes changed): the scrubbed frame,
        or the run's own."""
        if self.frame is not None:
            self.show(*self.frame)
        elif self.session.snapshot is not None:
            self._draw(self.session.snapshot)

    def _shown(self) -> tuple:
        return self.frame or (self.session.iterations_run,) * 2

    def e_step(self):
        """Recolour the points by the responsibilities of the parameters shown."""
        p, _ = self._shown()
        self.show(p, p)

    def m_step(self):
        """Move the parameters to those the shown responsibilities give (the next
        iteration's), the points keeping their colours until the next E-step."""
        p, q = self._shown()
        if q == p and p < self.session.iterations_run:
            self.show(p + 1, p)

    def step_back(self):
        """Undo the last half step."""
        p, q = self._shown()
        if q == p and p > 0:
            self.show(p, p - 1)
        elif q < p:
            self.show(p - 1, p - 1)

    def to_convergence(self):
        """Back to the run's end: its own frame."""
        self.frame = None
        snap = self.session.snapshot
        if snap is not None:
            self._draw(snap)
            self._request_renders()
        self.sync()

    def _on_slider(self, change):
        if not self._syncing:
            self.show(change["new"])

    def sync(self):
        """After a frame of a run: the slider spans its iterations (at the end, or at the
        shown frame)."""
        last = self.session.iterations_run
        self._syncing = True
        try:
            self.slider.max = max(last, 1)
            self.slider.value = last if self.frame is None else self.frame[0]
            self.slider.disabled = last == 0
        finally:
            self._syncing = False
        self._sync_steps()

    def _sync_steps(self):
        last = self.session.iterations_run
        p, q = self.frame or (last, last)
        self.e_step_button.disabled = last == 0 or q == p
        self.m_step_button.disabled = last == 0 or q != p or p >= last
        self.back_button.disabled = last == 0 or (p == 0 and q == p)
        self.end_button.disabled = last == 0 or self.frame is None
        if self.frame is None or last == 0:
            self.step_note.value = ""
            return
        params, data, shown, kept = (tuple(self.step_words) + (
            "coloured by their responsibilities", "responsibilities"))[:4]
        if q == p:
            what = (f"iteration {p}: the {params} after {p} EM iteration{'s' if p != 1 else ''},"
                    f" the {data} {shown} (E-step done; M-step next)")
        else:
            what = (f"iteration {p}: the M-step moved the {params}; the {data} keep the "
                    f"{kept} of iteration {q} (E-step next)")
        self.step_note.value = ('<span class="emwidgets-step-note-text" style="color:#1f4e79">'
                                f"Scrubbing {html.escape(what)}.</span>")


class StartChooser:
    """Choosing the start: with *Choose the start* on, a click on the main view places a
    mean (a click beyond K replaces the nearest), a drag moves one; once K are placed
    they are the session's ``start_means`` and a Run fits one restart from them.
    *Bad start* puts every mean in one corner; *Forget start* returns to the settings'
    restarts. ``points`` are the means in the plotted plane; ``note`` says where the
    choice stands.

    Args:
        session: the explorer's session; main: the main view (clicked, drawn on);
        run: starts a Run; on_note: called when ``note`` changes.
    """

    def __init__(self, session, main, layout, run: Callable, on_note: Callable):
        self.session, self.main = session, main
        self._run, self._on_note = run, on_note
        self.points: list = []
        self.note = ""
        self._dragging = None
        self._artist = None
        self.toggle = widgets.ToggleButton(
            value=False, description="Choose the start", icon="hand-pointer-o",
            layout=layout, tooltip="Click the data to place a mean, drag one to move it; "
                                   "Run then fits one restart from them")
        self.bad_start_button = widgets.Button(
            description="Bad start", icon="bomb", layout=_small(),
            tooltip="Every mean in one corner of the data, then Run")
        self.forget_button = widgets.Button(description="Forget start", icon="undo",
                                            layout=_small(), disabled=True)
        self.toggle.observe(lambda ch: self._on_toggle(ch["new"]), "value")
        self.bad_start_button.on_click(lambda _: self.bad_start())
        self.forget_button.on_click(lambda _: self.forget())
        canvas = main.canvas
        canvas.mpl_connect("button_press_event", self._on_press)
        canvas.mpl_connect("motion_notify_event", self._on_motion)
        canvas.mpl_connect("button_release_event", self._on_release)

    @property
    def means(self):
        """The chosen start, (K, D) in data units, or None."""
        m = self.session.start_means
        return None if m is None else np.asarray(m, np.float64)

    def set(self, means):
        """Start the next Run from these means ((K, D) in data units; as many as
        components)."""
        means = np.atleast_2d(np.asarray(means, np.float64))
        if means.shape != (self.session.n_components, len(self.session.columns)):
            raise ValueError(f"A start needs {self.session.n_components} means of "
                             f"{len(self.session.columns)} values; got shape {means.shape}.")
        self.session.start_means = tuple(map(tuple, means.tolist()))
        self.points = list(means @ self.session.projection())
        self.forget_button.disabled = False
        self.draw()
        self._say()

    def forget(self):
        """Back to the random restarts of the settings."""
        self.session.start_means = None
        self.points = []
        self.forget_button.disabled = True
        self.toggle.value = False
        self.draw()
        self._say()

    def bad_start(self, run: bool = True):
        """Every mean in one corner of the plotted data (a deliberately bad start, as a
        teacher shows one), then Run."""
        xy = self.session.display_points() @ self.session.projection()
        lo, hi = np.nanmin(xy, 0), np.nanmax(xy, 0)
        k = self.session.n_components
        corner = lo + (hi - lo) * (0.02 + 0.03 * np.arange(k)[:, None] / max(k - 1, 1))
        self.set(self.session.plane_to_data(corner))
        self.toggle.value = True
        if run:
            self._run()

    def _on_toggle(self, on: bool):
        if on and not self.points:
            if self.session.start_means is not None:
                self.points = list(self.means @ self.session.projection())
            elif self.session.iterations_run:  # the shown restart's own start, to drag
                snap = self.session.frame_at(0)
                r = self.main.shown_restart(snap)
                w = self.session.projection()
                self.points = list(np.asarray(snap.restarts.params["means"][r]) @ w)
            self._commit()  # (that restart's start, to run alone or to drag)
        self.draw()
        self._say()

    def axes(self):
        artists = getattr(self.main, "artists", None)
        return getattr(artists, "ax", None) or (self.main.figure.axes or [None])[0]

    def _near(self, event) -> Optional[int]:
        """The placed mean under the pointer (within 4% of the axes' span), or None."""
        ax = self.axes()
        if not self.points or ax is None:
            return None
        pts = ax.transData.transform(np.asarray(self.points))
        d = np.hypot(pts[:, 0] - event.x, pts[:, 1] - event.y)
        bbox = ax.get_window_extent()
        i = int(np.argmin(d))
        return i if d[i] <= 0.04 * max(bbox.width, bbox.height) else None

    def _on_press(self, event):
        if not self.toggle.value or event.inaxes is None or event.xdata is None:
            return
        i = self._near(event)
        if i is None:
            point = np.array([event.xdata, event.ydata])
            if len(self.points) >= self.session.n_components:  # replace the nearest
                d = [np.hypot(*(p - point)) for p in self.points]
                self.points[int(np.argmin(d))] = point
            else:
                self.points.append(point)
        self._dragging = i
        self.draw()
        self._commit()

    def _on_motion(self, event):
        if self._dragging is None or event.xdata is None:
            return
        self.points[self._dragging] = np.array([event.xdata, event.ydata])
        self.draw()

    def _on_release(self, event):
        if self._dragging is None:
            return
        if event.xdata is not None:
            self.points[self._dragging] = np.array([event.xdata, event.ydata])
        self._dragging = None
        self.draw()
        self._commit()

    def _commit(self):
        """A complete start (one mean a component) becomes the session's."""
        if len(self.points) == self.session.n_components:
            means = self.session.plane_to_data(np.asarray(self.points))
            self.session.start_means = tuple(map(tuple, means.tolist()))
            self.forget_button.disabled = False
        self._say()

    def _shown(self) -> bool:
        """The crosses are on the main view while choosing, and whenever a start is set
        (toggled off after *Bad start*, the start hid and later clicks did nothing)."""
        return bool(self.toggle.value or self.session.start_means is not None)

    def draw(self):
        """The chosen means as big black crosses on the main view (see :meth:`_shown`)."""
        ax = self.axes()
        if self._artist is not None and (self._artist.axes is not ax or not self._shown()):
            try:
                self._artist.remove()
            except (ValueError, NotImplementedError):
                pass
            self._artist = None
        if ax is None or not self._shown():
            self.main.canvas.draw_idle()
            return
        xy = np.asarray(self.points).reshape(-1, 2)
        if self._artist is None:
            (self._artist,) = ax.plot(xy[:, 0], xy[:, 1], "P", ms=13, color="black",
                                      markeredgecolor="white", mew=1.5, zorder=6,
                                      label="your start")
        else:
            self._artist.set_data(xy[:, 0], xy[:, 1])
        self.main.canvas.draw_idle()

    def redraw(self):
        """After the main view redrew: the crosses again (see :meth:`_shown`)."""
        if self._shown():
            self.draw()

    def _say(self):
        k = self.session.n_components
        placed = len(self.points)
        if not self.toggle.value and self.session.start_means is None:
            text = ""
        elif not self.toggle.value:
            text = ("Your start (the crosses): Run fits one restart from these means. Turn "
                    "Choose the start on to move them; Forget start returns to random "
                    "restarts.")
        elif placed < k:
            text = (f"Choosing the start: {placed} of {k} means placed. Click the data to "
                    "place one, drag one to move it.")
        else:
            text = ("Your start: Run fits one restart from these means (drag them to "
                    "change it; Forget start returns to random restarts).")
        self.note = text
        self._on_note()


class Intervals:
    """Confidence ellipses of the best model's means (standard errors by autodiff), while
    the *95% intervals* box is ticked and the main view shows the best restart of a
    finished run. Computed on a thread (the first time compiles, a few seconds) and kept
    per model: the views never wait for them. ``note`` says what is going on.

    Args:
        session, main: the explorer's session and main view; on_note: called when
        ``note`` changes.
    """

    def __init__(self, session, main, layout, on_note: Callable):
        self.session, self.main, self._on_note = session, main, on_note
        self.box = widgets.Checkbox(value=False, description="95% intervals of the means",
                                    indent=False, layout=layout)
        self.box.observe(lambda ch: self.draw(), "value")
        self.note = ""
        self._cache: dict = {}

    def draw(self):
        s = self.session
        snap, est = s.snapshot, s.estimator
        shown_best = snap is not None and self.main.shown_restart(snap) == snap.best
        if not (self.box.value and est is not None and snap is not None and snap.done
                and shown_best):
            self.main.show_intervals(None)
            self._say("")
            return
        cached = self._cache.get(id(est))
        if cached is not None and cached[0] is est:
            self._show(cached[1])
            return
        self.main.show_intervals(None)
        self._say("Computing the 95% intervals of the means (standard errors by "
                  "autodiff; the first time compiles, a few seconds)…")

        def work():
            try:
                result = est.standard_errors(s.X)
            except ValueError as exc:
                result = exc
            self._cache = {id(est): (est, result)}
            if s.estimator is est:
                self.draw()

        runner.in_background(work, name="emwidgets-intervals")

    def _show(self, result):
        if isinstance(result, Exception):
            self.main.show_intervals(None)
            self._say(f"No intervals: {result}")
        else:
            self.main.show_intervals(result)
            self._say("")

    def _say(self, text: str):
        self.note = text
        self._on_note()


class BasinMap:
    """The *Basin map* button: where EM goes from every start of one mean on a grid over
    the data, the other means at the shown restart's optimum (:func:`emwidgets.atlas.
    basin_map`; 2-D data), drawn in a view added below the others on first use.

    Args:
        session, main: the explorer's session and main view (its shown restart);
        step_note: the HTML line the map's progress and summary go to;
        add_view: ``add_view(view)`` puts a view's canvas below the explorer's views.
    """

    def __init__(self, session, main, step_note, add_view: Callable):
        self.session, self.main, self.step_note = session, main, step_note
        self._add_view = add_view
        self.view = None  # the BasinPlot, made when first asked for
        self._next = 0
        self.button = widgets.Button(
            description="Basin map", icon="th", layout=_small(),
            tooltip="Where EM goes from every start of one mean, the others at the shown "
                    "restart's optimum (2-D data)")

    def draw(self, component=None, grid: int = 24, block: bool = False):
        """Map mean ``component`` (default: the next one each call) on a grid x grid batch
        of starts, computed on a thread (the batch compiles once); ``block`` waits."""
        from ..atlas import basin_map
        from .views import BasinPlot

        s, snap = self.session, self.session.snapshot
        if len(s.columns) != 2 or snap is None or not snap.done:
            self.step_note.value = html.escape(
                "A basin map needs a finished run on two columns." if snap is None or
                not snap.done else "A basin map is for two columns: choose two.")
            return
        k = snap.restarts.params["means"].shape[1]
        c = self._next % k if component is None else int(component)
        self._next = c + 1
        r = max(self.main.shown_restart(snap), 0)
        means = np.asarray(snap.restarts.params["means"][r], np.float64)
        settings = {n: v for n, v in s.settings().items()
                    if n in ("covariance_type", "reg_covar", "tol", "max_iter")}
        if self.view is None:
            self.view = BasinPlot()
            self.view.canvas.add_class("emwidgets-basins")
            self._add_view(self.view)
        self.step_note.value = html.escape(
            f"Computing the basin map of mean {c} of restart {r} "
            f"({grid ** 2} starts as one batch; the first compiles)…")
        X, labels = s.X.copy(), tuple(s.columns)

        def work():
            try:
                bm = basin_map(X, means, component=c, grid=grid, **settings)
                self.view.show(bm, X, labels)
                self.step_note.value = html.escape(
                    f"Basin map of mean {c}: {len(bm.objective)} optima reached; "
                    f"{bm.counts[0]} of {bm.solution.size} starts reach the best of them. "
                    "Press again for the next mean.")
            except Exception as exc:  # said in one sentence; the explorer carries on
                self.step_note.value = html.escape(f"No basin map: {exc}")

        thread = runner.in_background(work, name="emwidgets-basins")  # (its fits compile)
        if block:
            thread.join()


class ColumnPicker:
    """The *columns* control and the axis menus, kept in step with the session's data:
    a choice of columns refits nothing until Run, an empty choice is refused in one
    sentence (the previous choice is kept), new data bring new choices.

    Args:
        session: the explorer's session; axis_menus: the x and y axis dropdowns.
    """

    def __init__(self, session, axis_menus: dict, layout):
        self.session, self.axis_menus = session, axis_menus
        self._syncing = False
        columns = session.available_columns
        self.widget = widgets.SelectMultiple(
            options=columns, value=tuple(session.columns), rows=min(5, max(2, len(columns))),
            description="columns", style={"description_width": "88px"}, layout=layout)
        if len(columns) <= 1:
            self.widget.layout.display = "none"
        self.widget.observe(self._on_choice, "value")

    def _on_choice(self, change):
        s = self.session
        chosen = list(change["new"])
        if self._syncing or chosen == s.columns:
            return
        if not chosen:
            s.status = "Choose at least one column: the previous choice is kept."
            self._syncing = True
            try:
                self.widget.value = tuple(s.columns)
            finally:
                self._syncing = False
            return
        s.set_columns(chosen)

    def sync(self):
        """The picker and the axis menus follow the session's data."""
        s = self.session
        self._syncing = True
        try:
            if tuple(self.widget.options) != tuple(s.available_columns):
                self.widget.options = s.available_columns  # new data
            if tuple(self.widget.value) != tuple(s.columns):
                self.widget.value = tuple(s.columns)
            for name, menu in self.axis_menus.items():
                menu.options = s.axis_choices
                if getattr(s, name) in menu.options:
                    menu.value = getattr(s, name)
        finally:
            self._syncing = False


class Comparison:
    """*compare with*: a column the explorer left out (a species, a group, a code) against
    the fitted model's components, as mclust's ``classError`` and ``table`` do: the
    adjusted Rand index and the table of counts (rows: the column's values; columns: the
    components, numbered as on the plots). Shown for the model of the finished run whose
    data are current; ``note`` is HTML.

    Args:
        session: the explorer's session; layout: the menu's; on_note: called when ``note``
        changes.
    """

    def __init__(self, session, layout, style, on_note: Callable):
        self.session, self._on_note = session, on_note
        self.menu = widgets.Dropdown(options=[("nothing", "")], value="",
                                     description="compare with", style=style, layout=layout)
        self.menu.observe(lambda ch: self.update(), "value")
        self.note = ""
        self.ari: Optional[float] = None
        self.table = None  # the counts, a DataFrame
        self.sync()

    def sync(self):
        """The menu lists the current data's label columns (hidden when there is none)."""
        names = self.session.label_columns()
        keep = self.menu.value if self.menu.value in names else ""
        options = [("nothing", "")] + [(n, n) for n in names]
        if list(self.menu.options) != options:  # (new options reset the value)
            self.menu.options = options
        self.menu.value = keep
        self.menu.layout.display = None if names else "none"
        self.update()

    def update(self):
        """Compare the shown model with the chosen column (or say nothing)."""
        import pandas as pd

        from ..compare import adjusted_rand_index

        s, name = self.session, self.menu.value
        est = getattr(s, "estimator", None)
        self.ari, self.table, note = None, None, ""
        if name and est is not None and s.shown_data_is_current and not s.running:
            truth = s.label_values(name)
            try:
                predicted = np.asarray(est.predict(s.fit_frame()))
            except Exception as exc:  # noqa: BLE001 (said in one sentence)
                note = f"No comparison with {html.escape(name)}: {html.escape(str(exc))}"
            else:
                known = np.array([v is not None for v in truth])
                codes = pd.factorize(pd.Series(truth[known], dtype=object))[0]
                self.ari = float(adjusted_rand_index(codes, predicted[known]))
                self.table = pd.crosstab(pd.Series(truth[known], name=name),
                                         pd.Series(predicted[known], name="component"))
                note = (f"Against <b>{html.escape(name)}</b>: adjusted Rand index "
                        f"<b>{self.ari:.2f}</b> on {int(known.sum()):,} rows (1: the same "
                        "partition, 0: no better than chance)."
                        + self.table.to_html(classes="emwidgets-compare-table", border=0))
        if note != self.note:
            self.note = note
            self._on_note()
