"""Views: matplotlib figures on ipympl canvases, updated in place from snapshots.

Each view takes a :class:`~emwidgets.widgets.session.Snapshot` (from a live
session or from a fitted :class:`~emwidgets.GaussianMixture`) and draws with
the pure functions of :mod:`emwidgets.plotting`. Usable alone::

    gm = GaussianMixture(3, n_init=16).fit(X)
    ConvergencePlot.from_estimator(gm, X)
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable, Optional

import numpy as np
from matplotlib.figure import Figure

from .. import plotting
from .snapshot import Snapshot, snapshot_from_estimator

MAX_SOLUTIONS = 6  # thumbnails in the gallery (3 columns fit 6.4 in); more are counted
#: A view whose latest update has not been rendered asks the browser again this often,
#: at most RENDER_RETRIES times (a canvas no browser shows is never rendered: it stops).
RENDER_RETRY_SECONDS = 0.5
RENDER_RETRIES = 6
_NO_LOCK = contextlib.nullcontext()
#: The colour of the restart under the pointer, in every view that shows restarts.
HIGHLIGHT_COLOUR = "#ff7f0e"


def make_canvas(figsize):
    """A Figure on an ipympl canvas widget (Agg-backed, works without a browser).

    Importing ipympl calls ``matplotlib.use`` on ipympl's backend whenever
    matplotlib is loaded; pyplot's backend is put back, so a notebook's own
    figures stay what the user chose (inline PNGs, by default) after an explorer.
    """
    import matplotlib

    previous = matplotlib.rcParams._get_backend_or_none()
    from ipympl.backend_nbagg import Canvas, FigureManager

    if previous is not None and matplotlib.rcParams._get_backend_or_none() != previous:
        matplotlib.use(previous)

    fig = Figure(figsize=figsize, dpi=100, layout="constrained")
    canvas = Canvas(fig)
    canvas.header_visible = False
    canvas.footer_visible = False
    canvas.toolbar_visible = "fade-in-fade-out"
    canvas.toolbar_position = "right"  # on the left it covered the tick labels' minus signs
    canvas.resizable = False
    FigureManager(canvas, 0)
    return fig, canvas


def request_renders(views) -> None:
    """Ask the browser for a frame of each view whose render was deferred
    (``render_wanted``: a view updated with ``defer_render``)."""
    for view in views:
        if view.render_wanted:
            view.request_render()


class _View:
    # Sizes (100 dpi) that fit a 1366x768 laptop with JupyterLab's file browser open: 270 px
    # of controls, two 320 px views side by side, the gallery and the atlas 640 px below.
    figsize = (3.2, 3.0)
    # Views that rebuild their figure (clear + redraw) hold a lock while the browser's
    # render runs; views that move artists in place need none.
    locked_render = False
    #: A view that places its axes itself (no layout engine: the gallery, rebuilt at the
    #: end of every run, would lay out on every rebuild).
    fixed_layout = False

    def __init__(self, snapshot: Snapshot | None = None, projection=None, axis_labels=("", "")):
        self.figure, self.canvas = make_canvas(self.figsize)
        self.projection = projection
        self.axis_labels = axis_labels
        self.selected = -1
        # Views are updated from the fit's worker thread while ipympl renders on
        # the kernel's thread when the browser asks: one lock for both, or the
        # browser can receive a half-rebuilt figure (seen: an empty gallery).
        self._lock = threading.RLock()
        # ipympl's browser side drops a draw request that arrives while it waits for the
        # previous frame (figure.send_draw_message: `if (!this.waiting)`), so the last update
        # of a run could stay unrendered: a view showing an older frame than the status
        # (seen: the convergence legend naming a restart the other views no longer showed).
        # Updates are counted, renders record the count they drew, and a watcher asks again
        # until the latest update has been rendered (RENDER_RETRY_SECONDS apart, a few times).
        self._version = self._rendered = self._tries_left = 0
        self._watching = False
        #: Seconds the last render took (0 until the browser asked for one: a view no
        #: browser shows costs nothing to update). Live runs pace their frames by it.
        self.render_seconds = 0.0
        self.rendered_at = 0.0  # time.perf_counter() at the end of the last render
        #: While set, an update does not ask the browser for a frame: the explorer asks
        #: once the frame's status is out (:meth:`request_render`).
        self.defer_render = False
        self.render_wanted = False
        render = self.canvas.draw

        def tracked_draw(*args, **kwargs):
            with self._lock if self.locked_render else _NO_LOCK:
                t = time.perf_counter()
                self._rendered = self._version
                out = render(*args, **kwargs)
                self._freeze_layout()
                self.rendered_at = time.perf_counter()
                self.render_seconds = self.rendered_at - t
                return out

        self.canvas.draw = tracked_draw
        # Constrained layout costs more than the drawing (HMM views: 60-100 ms of a 110-230 ms
        # render): it runs on the first render after a rebuild, then the layout is frozen;
        # updates in place move artists only. A render whose tick labels changed length
        # lays out once more (see _freeze_layout).
        self._frozen_labels = None
        clear = self.figure.clear

        def clear_and_lay_out(*args, **kwargs):
            clear(*args, **kwargs)
            self.figure.set_layout_engine("none" if self.fixed_layout else "constrained")
            self._frozen_labels = None

        self.figure.clear = clear_and_lay_out
        if self.fixed_layout:
            self.figure.set_layout_engine("none")
        self.n_draws = 0
        self.snapshot = None
        if snapshot is not None:
            self.update(snapshot)

    def _tick_labels(self) -> tuple:
        return tuple((max((len(t.get_text()) for t in ax.get_xticklabels()), default=0),
                      max((len(t.get_text()) for t in ax.get_yticklabels()), default=0))
                     for ax in self.figure.axes)

    def _freeze_layout(self):
        """After a render: freeze a layout just computed; lay out again (one more render)
        when the tick labels no longer fit the frozen one."""
        fig = self.figure
        labels = self._tick_labels()
        if type(fig.get_layout_engine()).__name__ == "ConstrainedLayoutEngine":
            fig.set_layout_engine("none")
            self._frozen_labels = labels
        elif self._frozen_labels is not None and labels != self._frozen_labels:
            fig.set_layout_engine("constrained")
            self._frozen_labels = None
            self.canvas.draw_idle()

    @classmethod
    def from_estimator(cls, gm, X, **kwargs):
        """The view of a fitted GaussianMixture on data X (a static comparison)."""
        view = cls(**kwargs)
        view.update(snapshot_from_estimator(gm, X))
        return view

    def _ipython_display_(self):
        from IPython.display import display

        display(self.canvas)

    # -- the restart under the pointer, drawn out in every view -----------------------
    #: The restart drawn out (hovered in this view or another), or None.
    highlighted: Optional[int] = None
    #: Whether hovering this view can name a restart (:meth:`_restart_at`).
    hovers_restarts = False

    def enable_restart_hover(self, on_hover: Callable):
        """Hovering a restart here (a trace, a bar, a point of the atlas) calls
        ``on_hover(restart)``, and leaving it ``on_hover(None)``: the explorer then
        draws that restart out in every view (:meth:`highlight`)."""
        self._on_hover_restart = on_hover

        def moved(event):
            with self._lock:
                r = (self._restart_at(event) if self.snapshot is not None
                     and event.inaxes is not None else None)
            if r != self.highlighted:
                on_hover(r)

        self.canvas.mpl_connect("motion_notify_event", moved)
        self.canvas.mpl_connect("figure_leave_event", lambda event: (
            on_hover(None) if self.highlighted is not None else None))

    def _restart_at(self, event) -> Optional[int]:
        """The restart under the pointer (a view that shows restarts says which)."""
        return None

    def highlight(self, restart: Optional[int]):
        """Draw restart ``restart`` out (None: none), here and after every update."""
        with self._lock:
            if restart == self.highlighted:
                return
            self.highlighted = restart
            if self.snapshot is None or not self._draw_highlight(self.snapshot):
                return
        self.canvas.draw_idle()

    def _draw_highlight(self, snap: Snapshot) -> bool:
        """Draw ``self.highlighted`` out on the current figure; True if anything changed."""
        return False

    def _highlighted_in(self, snap: Snapshot) -> Optional[int]:
        r = self.highlighted
        return r if r is not None and 0 <= r < snap.restarts.n_restarts else None

    def update(self, snapshot: Snapshot):
        with self._lock:
            self.snapshot = snapshot
            self._update(snapshot)
            if self.highlighted is not None:
                self._draw_highlight(snapshot)
            self.n_draws += 1
            self._version += 1
            if self.defer_render:
                self.render_wanted = True
                return
        self.request_render()

    def request_render(self):
        """Ask the browser for a frame of the latest update (and again until it has one)."""
        self.render_wanted = False
        # Not canvas.draw(): from the worker thread it hung a kernel whose main
        # thread was waiting in run(block=True). The browser asks for the frame.
        self.canvas.draw_idle()
        self._watch_render()

    def _watch_render(self):
        """Ask the browser again for a frame until the latest update has been rendered
        (each update grants RENDER_RETRIES more tries; one watcher per view)."""
        with self._lock:
            self._tries_left = RENDER_RETRIES
            if self._watching:
                return
            self._watching = True
        self._schedule_check()

    def _schedule_check(self):
        timer = threading.Timer(RENDER_RETRY_SECONDS, self._check_rendered)
        timer.daemon = True
        timer.start()

    def _check_rendered(self):
        with self._lock:
            behind = self._rendered < self._version
            self._tries_left -= 1
            self._watching = behind and self._tries_left > 0
            again = self._watching
        if behind:
            self.canvas.draw_idle()
        if again:
            self._schedule_check()

    def message(self, text: str):
        """Replace the figure by a short text (before there is anything to draw)."""
        with self._lock:
            self.figure.clear()
            self.figure.text(0.5, 0.5, text, ha="center", va="center", color="0.45",
                             fontsize="medium", wrap=True)
            if hasattr(self, "artists"):
                del self.artists
            self.snapshot = None
        self.canvas.draw_idle()

    def shown_restart(self, snapshot: Snapshot) -> int:
        return snapshot.best if self.selected < 0 else self.selected

    def _projection(self, snapshot):
        d = snapshot.X.shape[1]
        if self.projection is not None:
            return self.projection
        return plotting.projection_matrix(d, (0, 1 if d > 1 else 0))

    def _projected(self, snapshot: Snapshot, r: int):
        """Samples, means and covariances of restart r in the plotted plane."""
        w = self._projection(snapshot)
        params = snapshot.restarts.params
        k, d = params["means"].shape[1:]
        covs = plotting.full_covariances(snapshot.covariance_type, params["covariances"][r], k, d)
        return (snapshot.points(r) @ w, params["means"][r] @ w,
                np.einsum("di,kde,ej->kij", w, covs, w))


class ConvergencePlot(_View):
    """Mean log-likelihood against iteration for every restart; the shown one in red,
    named in the legend ("best restart (r)" or "restart r")."""

    hovers_restarts = True

    def _restart_at(self, event) -> Optional[int]:
        art = getattr(self, "artists", None)
        if art is None or event.inaxes is not art.ax:
            return None
        under = [r for r, line in enumerate(art.lines) if line.contains(event)[0]]
        self._under = under
        return under[0] if under else None

    def _draw_highlight(self, snap: Snapshot) -> bool:
        art = getattr(self, "artists", None)
        if art is None:
            return False
        r = self._highlighted_in(snap)
        line, note = getattr(self, "_hl_line", None), getattr(self, "_hl_note", None)
        if line is None or line.axes is not art.ax:
            line = self._hl_line = art.ax.plot([], [], color=HIGHLIGHT_COLOUR, lw=2.4,
                                               zorder=5)[0]
            note = self._hl_note = art.ax.text(
                0.02, 0.97, "", transform=art.ax.transAxes, ha="left", va="top",
                fontsize="x-small", zorder=7, color="k",
                bbox=dict(boxstyle="round,pad=0.3", fc="#fff3e0", ec=HIGHLIGHT_COLOUR))
        line.set_visible(r is not None)
        note.set_visible(r is not None)
        if r is not None:
            line.set_data(*plotting._finite_xy(snap.restarts.trace[r], art.maps_per_step))
            under = getattr(self, "_under", [])  # (hovered here: every trace there)
            note.set_text(self.describe_restart(snap, r, under if r in under else [r]))
        return True

    @staticmethod
    def describe_restart(snap: Snapshot, r: int, under=()) -> str:
        """One line on restart ``r``: its log-likelihood, its solution, its state."""
        res = snap.restarts
        obj = float(res.objective[r])
        words = [f"restart {r}" + (" (best)" if r == snap.best else "")]
        words.append(f"{obj:.4f}" if np.isfinite(obj) else "failed")
        sol = getattr(snap, "solutions", None)
        g = int(sol.group_of[r]) if sol is not None and r < len(sol.group_of) else -1
        if g >= 0:
            words.append(f"solution #{g + 1}")
        if getattr(res, "spurious", None) is not None and res.spurious[r]:
            words.append("spurious")
        elif not res.converged[r]:
            words.append("not converged")
        others = [o for o in under if o != r]
        text = ", ".join(words)
        if others:
            text += f"\nhere too: {', '.join(map(str, others[:5]))}" + (
                f" and {len(others) - 5} more" if len(others) > 5 else "")
        return text

    def _update(self, snap: Snapshot):
        r = snap.restarts
        shown = self.shown_restart(snap)
        maps = 1 if getattr(r, "accepted", None) is None else 3  # SQUAREM: 3 EM maps a cycle
        if (not hasattr(self, "artists") or len(self.artists.lines) != r.n_restarts
                or self.artists.maps_per_step != maps):
            self.figure.clear()
            ax = self.figure.add_subplot()
            self.artists = plotting.draw_convergence(ax, r.trace, r.converged, shown,
                                                     maps_per_step=maps)
        else:
            plotting.update_convergence(self.artists, r.trace, r.converged, shown)
        label = (f"best restart ({shown})" if shown == snap.best and shown >= 0
                 else f"restart {shown}")
        if self.artists.best_line.get_label() != label:
            self.artists.best_line.set_label(label)
            self.artists.ax.legend(loc="lower right", fontsize="small")
        # A scrubbed frame: a cursor at its iteration (the run's traces stay whole).
        cursor = getattr(self, "cursor", None)
        if cursor is None or cursor.axes is not self.artists.ax:
            self.cursor = cursor = self.artists.ax.axvline(
                1, color="#1f4e79", lw=1.2, ls="--", zorder=4, visible=False)
        if snap.scrub is not None:
            cursor.set_xdata([max(snap.scrub, 1) * maps] * 2)
        cursor.set_visible(snap.scrub is not None)


class AssignmentPlot(_View):
    """The data coloured by component for one restart, 2-sigma ellipses, uncertainty.

    Large data (``density_for`` set, by an explorer whose session is in density mode):
    every row drawn as a density image, responsibilities blended by colour.

    ``show_intervals(standard_errors)`` adds 95% confidence ellipses of the
    means of the fitted (best) model.
    """

    interval_patches: list = []
    #: ``density_for(snapshot, restart) -> (G, G, K) or None``: the explorer's session.
    density_for = None
    density_image = None

    #: (shown row, restart) -> one line on that row (its values and responsibilities),
    #: given by the explorer; None: no hover.
    describe_row: Optional[Callable] = None
    #: Hover events handled at most this often (ipympl sends one a mouse move).
    HOVER_SECONDS = 0.1

    def enable_hover(self, describe_row: Callable):
        """Hovering a point shows ``describe_row(i, restart)`` beside it (the i-th shown
        row), at most one event per HOVER_SECONDS; leaving the points hides it."""
        self.describe_row = describe_row
        self._hovered_at = 0.0
        self.hovered = None  # the shown row under the pointer, or None
        self.canvas.mpl_connect("motion_notify_event", self._on_hover)

    def _on_hover(self, event):
        now = time.perf_counter()
        if now - self._hovered_at < self.HOVER_SECONDS or self.describe_row is None:
            return
        self._hovered_at = now
        art, snap = getattr(self, "artists", None), self.snapshot
        if art is None or snap is None or event.inaxes is not art.ax or event.x is None:
            return self._hover(None)
        pts = art.ax.transData.transform(np.asarray(art.points.get_offsets(), float))
        d = np.hypot(pts[:, 0] - event.x, pts[:, 1] - event.y)
        i = int(np.nanargmin(d)) if len(d) else -1
        self._hover(i if i >= 0 and d[i] <= 6.0 else None, snap)

    def _hover(self, i, snap=None):
        """Show the line on shown row ``i`` (None: hide it)."""
        art = getattr(self, "artists", None)
        if i == self.hovered or art is None:
            return
        self.hovered = i
        note = getattr(self, "_hover_note", None)
        if note is not None and note.axes is art.ax:
            note.set_visible(i is not None)
        if i is not None:
            text = self.describe_row(i, self.shown_restart(snap))
            xy = tuple(np.asarray(art.points.get_offsets(), float)[i])
            # beside the point, towards the middle of the axes (it ran off the figure)
            fx, fy = art.ax.transAxes.inverted().transform(art.ax.transData.transform(xy))
            ha = "left" if fx < 0.33 else "right" if fx > 0.67 else "center"
            side = dict(xytext=({"left": 8, "right": -8, "center": 0}[ha],
                                -10 if fy > 0.5 else 10),
                        ha=ha, va="top" if fy > 0.5 else "bottom")
            if note is None or note.axes is not art.ax:
                note = self._hover_note = art.ax.annotate(
                    text, xy, textcoords="offset points", fontsize="x-small", zorder=7,
                    bbox=dict(boxstyle="round,pad=0.3", fc="#fffbe6", ec="0.5", alpha=0.95),
                    **side)
            else:
                note.set_text(text)
                note.xy = xy
                note.set_position(side["xytext"])
                note.set_horizontalalignment(side["ha"])
                note.set_verticalalignment(side["va"])
                note.set_visible(True)
        self.canvas.draw_idle()

    def preview(self, xy, title: str = ""):
        """The data before any fit: grey points on the plotted axes."""
        with self._lock:
            self.figure.clear()
            if hasattr(self, "artists"):
                del self.artists
            self.interval_patches = []
            self.snapshot = None
            ax = self.figure.add_subplot()
            self.preview_points = plotting.draw_points(ax, xy, *self.axis_labels)
            ax.set_title(title, fontsize="medium")
        self.canvas.draw_idle()

    def show_intervals(self, se, level: float = 0.95):
        """Draw confidence ellipses of the means (None removes them)."""
        with self._lock:
            for patch in self.interval_patches:
                patch.remove()
            self.interval_patches = []
            snap = self.snapshot
            if se is not None and snap is not None and hasattr(self, "artists"):
                w = self._projection(snap)
                best = snap.best
                perm = snap.solutions.permutations[best]
                means2 = se.estimates["means"] @ w
                covs2 = np.einsum("di,kde,ej->kij", w, se.mean_covariances(), w)
                self.interval_patches = plotting.draw_mean_intervals(
                    self.artists.ax, means2[perm], covs2[perm], level)
        self.canvas.draw_idle()

    def _update(self, snap: Snapshot):
        r = self.shown_restart(snap)
        if r < 0:
            return
        xy, m2, c2 = self._projected(snap, r)
        perm = snap.solutions.permutations[r]
        inverse = np.argsort(perm)  # component j of restart r -> aligned colour
        labels = inverse[snap.labels[r]]
        m2, c2 = m2[perm], c2[perm]
        k = m2.shape[0]
        imputed = (None if snap.missing is None
                   else plotting.imputed_in_plane(snap.missing, self._projection(snap)))
        if not hasattr(self, "artists") or len(self.artists.ellipses) != k or len(xy) != len(
                self.artists.points.get_offsets()):
            self.figure.clear()
            ax = self.figure.add_subplot()
            self.artists = plotting.draw_assignments(ax, xy, labels, snap.uncertainty[r], m2, c2,
                                                     *self.axis_labels, imputed=imputed)
            self.density_image = None
        else:
            plotting.update_assignments(self.artists, xy, labels, snap.uncertainty[r], m2, c2,
                                        imputed=imputed)
        counts = None if self.density_for is None else self.density_for(snap, r)
        if counts is not None:  # large data: every row, as a density image
            rgba = plotting.density_rgba(counts, plotting.component_colours(k)[inverse])
            if self.density_image is None:
                self.density_image = self.artists.ax.imshow(
                    rgba, extent=snap.density_extent, origin="lower", aspect="auto",
                    interpolation="nearest", zorder=0)
            else:
                self.density_image.set_data(rgba)
                self.density_image.set_extent(snap.density_extent)
            x0, x1, y0, y1 = snap.density_extent
            self.artists.ax.set_xlim(x0, x1)
            self.artists.ax.set_ylim(y0, y1)
        elif self.density_image is not None:
            self.density_image.remove()
            self.density_image = None
        self.artists.points.set_visible(counts is None)
        if snap.scrub is not None:
            title = (f"Restart {r}, iteration {snap.scrub}" if snap.labels_at == snap.scrub
                     else f"Restart {r}, iteration {snap.scrub} (M-step)")
        else:
            title = (f"Restart {r} (size = uncertainty)" if counts is None else
                     f"Restart {r}: all rows, by responsibility")
        self.artists.ax.set_title(title, fontsize="medium")


class SelectionPlot(_View):
    """BIC (or AIC, ICL) against the number of components, one line per covariance type,
    drawn as the gap to the lowest value (see :func:`emwidgets.plotting.draw_selection`).
    Before the first table it shows the empty axes, not a blank area."""

    figsize = (6.2, 3.4)
    locked_render = True

    def __init__(self, criterion: str = "bic"):
        self.criterion = criterion
        super().__init__()
        self.update_table(None)

    def update_table(self, table):
        """Draw this table of :func:`~emwidgets.select_model` (None: an empty grid)."""
        if table is None:
            import pandas as pd

            table = pd.DataFrame(columns=["n_components", "covariance_type", self.criterion])
        with self._lock:
            if not hasattr(self, "artists"):
                self.figure.clear()
                self.artists = plotting.draw_selection(self.figure.add_subplot(), table,
                                                       self.criterion)
                self.hint = self.artists.ax.text(
                    0.5, 0.55, "Each model's criterion appears here\nas the grid is fitted",
                    transform=self.artists.ax.transAxes, ha="center", va="center", color="0.45")
            else:
                plotting.update_selection(self.artists, table, self.criterion)
            self.hint.set_visible(len(table) == 0)
            self.n_draws += 1
        self.canvas.draw_idle()


class RankingHover:
    """Hovering a view's ranking (``self.ranking``, :func:`plotting.draw_ranking`): the
    restart of the bar whose column is under the pointer (a bar of a gap near 0 is a
    sliver: its whole column counts), and that column shaded while it is highlighted."""

    hovers_restarts = True

    def _restart_at(self, event) -> Optional[int]:
        rank = getattr(self, "ranking", None)
        if rank is None or event.inaxes is not rank.ax or event.xdata is None:
            return None
        i = int(round(event.xdata))
        if 0 <= i < len(rank.order) and abs(event.xdata - i) <= 0.45:
            return int(rank.order[i])
        return None

    def _shade_ranking(self, snap) -> Optional[int]:
        """Shade the highlighted restart's column of the ranking (none: unshade); returns
        the restart."""
        rank = self.ranking
        band = getattr(self, "_hl_band", None)
        if band is not None and band.axes is rank.ax:
            band.remove()
        self._hl_band = None
        r = self._highlighted_in(snap)
        if r is not None:
            i = int(np.flatnonzero(np.asarray(rank.order) == r)[0])
            self._hl_band = rank.ax.axvspan(i - 0.48, i + 0.48, color=HIGHLIGHT_COLOUR,
                                            alpha=0.35, zorder=0, lw=0)
        return r


class RestartGallery(RankingHover, _View):
    """Every restart ranked by its log-likelihood gap to the best, coloured by the distinct
    solution it found (spurious maxima hatched), and a small multiple of every distinct
    solution (up to ``MAX_SOLUTIONS``, then a line saying how many are not shown), titled
    with how many restarts found it and how far it is from the best."""

    figsize = (6.4, 3.3)
    locked_render = True
    fixed_layout = True  # rebuilt at the end of every run: constrained layout cost 190 ms

    def __init__(self, *args, on_select=None, **kwargs):
        self.on_select = on_select
        super().__init__(*args, **kwargs)
        self.canvas.mpl_connect("pick_event", self._on_pick)

    @staticmethod
    def solution_title(g: int, sol, restarts) -> str:
        """'#2: 5 of 16' and the gap to the best (and the means' distance from it)."""
        head = f"#{g + 1}: {len(sol.groups[g])} of {restarts.n_restarts}"
        spurious = sol.spurious is not None and bool(sol.spurious[g])
        if spurious:
            head += " spurious"
        gap = None if sol.gap is None else float(sol.gap[g])
        if g == 0 or gap is None:
            lead = sol.groups[g][0]
            return f"{head}\nbest, ll {restarts.objective[lead]:.4g}"
        side = "below" if gap <= 0 else "above"
        line = f"{abs(gap):.2g} {side} best"
        if sol.distance is not None:
            line += (f"\nmeans {sol.distance[g]:.2g} sd away" if "means" in restarts.params
                     else f"\nparameters {sol.distance[g]:.2g} apart")
        return f"{head}\n{line}"

    def _update(self, snap: Snapshot):
        r = snap.restarts
        sol = snap.solutions
        self.figure.clear()
        n_groups = len(sol.groups)
        n_sol = min(n_groups, MAX_SOLUTIONS)
        cols = n_sol if n_sol <= 3 else -(-n_sol // 2)
        rows = 1 if n_sol <= 3 else 2
        # Margins in inches (the figure's size is fixed): room for the ranking's y label and
        # symlog tick labels on the left, its x label below, the thumbnails' 3-line titles.
        w, h = self.figure.get_size_inches()
        outer = self.figure.add_gridspec(
            1, 2, width_ratios=[2.2, 0.2 + max(cols, 1)], left=0.95 / w, right=1 - 0.05 / w,
            bottom=0.5 / h, top=1 - 0.45 / h, wspace=0.12)
        ax = self.figure.add_subplot(outer[0, 0])
        self.ranking = plotting.draw_ranking(
            ax, r.objective, sol.group_of, self.shown_restart(snap), order=r.ranking(),
            spurious=getattr(r, "spurious", None), best=r.best,
            tol_objective=getattr(sol, "tol_objective", None))
        for bar in self.ranking.bars:
            bar.set_picker(True)
        self.solution_axes = []
        self.hidden_solutions = n_groups - n_sol
        if n_sol == 0:
            return
        inner = outer[0, 1].subgridspec(rows, cols, hspace=0.62 if rows > 1 else 0.2,
                                         wspace=0.08)
        imputed = (None if snap.missing is None
                   else plotting.imputed_in_plane(snap.missing, self._projection(snap)))
        for g in range(n_sol):
            lead = sol.groups[g][0]
            sub = self.figure.add_subplot(inner[g // cols, g % cols])
            perm = sol.permutations[lead]
            title = self.solution_title(g, sol, r)
            spurious = sol.spurious is not None and bool(sol.spurious[g])
            if snap.profile is not None:  # a family drawn by its parameters
                pr = snap.profile
                plotting.draw_profile_solution(sub, pr.values[lead][perm],
                                               r.params["weights"][lead][perm], title, pr.ylim,
                                               pr.log,
                                               spurious, pr.groups)
            else:
                xy, m2, c2 = self._projected(snap, lead)
                labels = np.argsort(perm)[snap.labels[lead]]
                plotting.draw_solution(sub, xy, labels, m2[perm], c2[perm], title, imputed,
                                       spurious)
            sub.set_title(title, fontsize="x-small" if cols < 3 else "xx-small",
                          linespacing=1.0)
            for spine in sub.spines.values():
                spine.set_edgecolor(plotting.PALETTE[g % len(plotting.PALETTE)])
                spine.set_linewidth(3)
                if spurious:
                    spine.set_linestyle((0, (2, 1)))
            self.solution_axes.append(sub)
        if self.hidden_solutions:
            self.hidden_text = self.figure.text(
                0.99, 0.005, f"+{self.hidden_solutions} more solution"
                f"{'s' if self.hidden_solutions > 1 else ''} not shown (their bars are in the "
                "ranking)", ha="right", va="bottom", fontsize="x-small")

    def _draw_highlight(self, snap: Snapshot) -> bool:
        if getattr(self, "ranking", None) is None:
            return False
        r = self._shade_ranking(snap)
        # the thumbnail of its solution: its title in the highlight's colour
        sol = snap.solutions
        g = int(sol.group_of[r]) if r is not None and r < len(sol.group_of) else -1
        for j, sub in enumerate(getattr(self, "solution_axes", [])):
            sub.title.set_color(HIGHLIGHT_COLOUR if j == g else "k")
            sub.title.set_fontweight("bold" if j == g else "normal")
        return True

    def _on_pick(self, event):
        if not hasattr(self, "ranking") or event.artist not in list(self.ranking.bars):
            return
        position = list(self.ranking.bars).index(event.artist)
        restart = int(self.ranking.order[position])
        if self.on_select is not None:
            self.on_select(restart)


class PairsPlot(_View):
    """A pairs view of the shown restart (seaborn's ``pairplot``): every pair of the first
    ``MAX_COLUMNS`` columns, the points coloured by their component and each component's
    2-sd ellipse in that plane; on the diagonal, each component's histogram of the column.
    Drawn for finished runs and scrubbed frames (not every live frame)."""

    figsize = (6.4, 6.0)
    locked_render = True
    fixed_layout = True
    MAX_COLUMNS = 5
    #: () -> the column names (the session's, as they are now), for the outer axes.
    names: Optional[Callable] = None

    def _update(self, snap: Snapshot):
        r = self.shown_restart(snap)
        if r < 0:
            return
        params = snap.restarts.params
        k, d = params["means"].shape[1:]
        m = min(d, self.MAX_COLUMNS)
        perm = snap.solutions.permutations[r]
        labels = np.argsort(perm)[snap.labels[r]]
        X = snap.points(r)
        means = params["means"][r][perm]
        covs = plotting.full_covariances(snap.covariance_type, params["covariances"][r], k,
                                         d)[perm]
        colours = plotting.component_colours(k)
        self.figure.clear()
        w, h = self.figure.get_size_inches()
        axes = self.figure.subplots(m, m, squeeze=False, gridspec_kw=dict(
            left=0.6 / w, right=1 - 0.1 / w, bottom=0.5 / h, top=1 - 0.35 / h,
            wspace=0.08, hspace=0.08))
        names = list(self.names()) if self.names is not None else [f"x{j}" for j in range(d)]
        for i in range(m):
            for j in range(m):
                ax = axes[i, j]
                if i == j:
                    bins = np.histogram_bin_edges(X[:, i][np.isfinite(X[:, i])], bins=20)
                    for c in range(k):
                        ax.hist(X[labels == c, i], bins=bins, color=colours[c], alpha=0.55)
                    ax.set_yticks([])
                else:
                    w2 = plotting.projection_matrix(d, (j, i))
                    plotting.draw_solution(ax, X @ w2, labels, means @ w2,
                                           np.einsum("di,kde,ej->kij", w2, covs, w2))
                if i == m - 1:
                    ax.set_xlabel(names[j], fontsize="x-small")
                if j == 0:
                    ax.set_ylabel(names[i], fontsize="x-small")
                ax.set_xticks([])
                ax.set_yticks([])
        more = f" (the first {m} of {d} columns)" if d > m else ""
        self.figure.suptitle(f"Restart {r}: every pair of columns{more}", fontsize="small")
        self.axes = axes


class AtlasPlot(_View):
    """The atlas of restarts (:mod:`emwidgets.atlas`): every restart a point placed by
    classical MDS of 1 - ARI between partitions, sized by how many restarts reached its
    solution, coloured by its objective, the shown one ringed; beside it the co-assignment
    (consensus) matrix of the displayed rows, ordered by the best restart's components.
    Clicking a point shows that restart (``on_select``); the line below describes the
    shown restart's solution against the best (merged and split components)."""

    figsize = (6.4, 3.2)
    locked_render = True
    #: Rows of the consensus matrix at most (an even subsample of the displayed rows).
    CONSENSUS_ROWS = 300

    def __init__(self, *args, on_select=None, **kwargs):
        self.on_select = on_select
        self.atlas = None
        super().__init__(*args, **kwargs)
        self.canvas.mpl_connect("pick_event", self._on_pick)

    def _update(self, snap: Snapshot):
        from matplotlib import colormaps

        from ..atlas import consensus, restart_atlas

        r = snap.restarts
        # labels aligned to the best's components (colours and the consensus order agree)
        aligned = np.array([np.argsort(snap.solutions.permutations[i])[snap.labels[i]]
                            for i in range(r.n_restarts)])
        self.atlas = atlas = restart_atlas(aligned, r, snap.solutions)
        shown = self.shown_restart(snap)
        self.figure.clear()
        ax, hx = self.figure.subplots(1, 2, width_ratios=[1.4, 1])
        ok = atlas.group_of >= 0
        obj = np.where(np.isfinite(atlas.objective), atlas.objective, np.nan)
        finite = obj[np.isfinite(obj)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        colours = colormaps["viridis"]((obj - lo) / max(hi - lo, 1e-12))
        colours[~np.isfinite(obj)] = (0.6, 0.6, 0.6, 1.0)
        # nearby points jittered a little so that restarts at one optimum stay countable
        xy = atlas.coords + 0.004 * np.random.default_rng(0).normal(size=atlas.coords.shape)
        self.points = ax.scatter(xy[:, 0], xy[:, 1], s=30 + 25 * atlas.counts, c=colours,
                                 edgecolors=np.where(ok, "k", "#b00020"), linewidths=0.6,
                                 picker=True, zorder=3)
        if 0 <= shown < len(xy):
            ax.scatter(*xy[shown], s=90 + 25 * atlas.counts[shown], facecolors="none",
                       edgecolors="#d62728", linewidths=2.0, zorder=4)
        ax.set_title("Restarts by partition (MDS of 1 - ARI)\nsize: restarts at that "
                     "solution; colour: log-likelihood", fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
        span = max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 0.05)
        cx, cy = xy.mean(0)
        ax.set_xlim(cx - 0.7 * span, cx + 0.7 * span)
        ax.set_ylim(cy - 0.7 * span, cy + 0.7 * span)
        best = max(atlas.best, 0)
        n = aligned.shape[1]
        rows = np.linspace(0, n - 1, min(n, self.CONSENSUS_ROWS)).astype(int)
        # Rows by the best's component, then by how the other restarts (in rank order)
        # label them: rows every restart treats alike sit together and the matrix shows
        # blocks (ordered by the best alone, a row's neighbours were arbitrary: a barcode).
        ranked = [int(i) for i in r.ranking() if ok[i] and i != best]
        keys = [aligned[i][rows] for i in reversed(ranked)] + [aligned[best][rows]]
        order = self.consensus_order = rows[np.lexsort(keys)]
        hx.imshow(consensus(aligned[ok] if ok.any() else aligned, order), cmap="Greys",
                  vmin=0, vmax=1, interpolation="nearest")
        hx.set_title("Share of restarts putting two rows\ntogether (by the best's components)",
                     fontsize="small")
        hx.set_xticks([])
        hx.set_yticks([])
        g = atlas.group_of[shown] if 0 <= shown < len(atlas.group_of) else -1
        words = (atlas.descriptions[g] if g >= 0 else "A failed restart")
        self.description = f"Restart {shown}: {words[0].lower() + words[1:]}."
        self.figure.supxlabel(self.description, fontsize="small")

    hovers_restarts = True

    def _restart_at(self, event) -> Optional[int]:
        points = getattr(self, "points", None)
        if points is None or event.inaxes is not points.axes:
            return None
        hit, info = points.contains(event)
        return int(info["ind"][0]) if hit and len(info["ind"]) else None

    def _draw_highlight(self, snap: Snapshot) -> bool:
        points = getattr(self, "points", None)
        if points is None:
            return False
        r = self._highlighted_in(snap)
        ring = getattr(self, "_hl_ring", None)
        if ring is not None and ring.axes is points.axes:
            ring.remove()
        self._hl_ring = None
        if r is not None:
            xy = np.asarray(points.get_offsets(), float)[r]
            self._hl_ring = points.axes.scatter(
                *xy, s=140 + 25 * self.atlas.counts[r], facecolors="none",
                edgecolors=HIGHLIGHT_COLOUR, linewidths=2.5, zorder=5)
        return True

    def _on_pick(self, event):
        if event.artist is not getattr(self, "points", None) or not len(event.ind):
            return
        if self.on_select is not None:
            self.on_select(int(event.ind[0]))


class BasinPlot(_View):
    """A basin map (:func:`emwidgets.atlas.basin_map`) of 2-D data: where EM goes from
    every start of one mean, the others fixed at the shown restart's optimum."""

    figsize = (6.4, 3.6)  # the legend beside the map
    locked_render = True

    def show(self, bm, X, labels=("", "")):
        with self._lock:
            self.figure.clear()
            ax = self.figure.add_subplot()
            plotting.draw_basin_map(ax, bm, X, *labels)
            self.basins = bm
            self._version += 1
        self.request_render()

    def _update(self, snap: Snapshot):
        pass  # drawn by show(), when the explorer has computed a map
