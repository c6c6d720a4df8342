"""HMMExplorer: the mixture explorer's controls and restart views for Gaussian HMMs,
plus the series coloured by state, the posterior state probabilities over time and the
transition matrix."""

from __future__ import annotations

import numpy as np
import traitlets

from .. import plotting
from ..compare import solutions_of
from ..estimators.gaussian_hmm import GaussianHMM
from .explorer import EMExplorer
from .session import FitSession, Snapshot
from .views import ConvergencePlot, RestartGallery, _View


class HMMSession(FitSession):
    """A FitSession whose model is a GaussianHMM on one sequence (the rows in order).

    ``max_iter`` and ``reg_covar`` map to the HMM's ``n_iter`` and ``min_covar``.

    The defaults explore: 32 restarts from random means (``init_params="random"``).
    k-means (GaussianHMM's and hmmlearn's default) finds the same clusters from
    nearly every seed, so its restarts differ only in their transition matrices:
    on the geyser all of 256 k-means restarts stop at -4.580 or below, while 14%
    of random ones reach the better optimum -4.488 (a test checks it against
    hmmlearn's best).
    """

    supports_start = False  # (a chosen start: Gaussian mixtures' means only)

    covariance_type = traitlets.Enum(list(GaussianHMM.covariance_types), default_value="full")
    init_params = traitlets.Enum(["kmeans", "random"], default_value="random")
    n_init = traitlets.Int(32, min=1)
    tol = traitlets.Float(1e-5)
    reg_covar = traitlets.Float(1e-3)
    init_options = ("kmeans", "random")
    supports_missing = False  # incomplete rows are dropped
    supports_standardize = False  # (GaussianMixture's option, not yet GaussianHMM's)

    #: The sequences' lengths in the table's rows (None: one sequence), as GaussianHMM's
    #: ``lengths``; rows left out (incomplete, infinite) shorten their sequence.
    lengths = None

    def __init__(self, data, columns=None, lengths=None, **settings):
        if lengths is not None:
            lengths = [int(n) for n in np.atleast_1d(lengths)]
            n = len(data)
            if min(lengths) < 1 or sum(lengths) != n:
                raise ValueError(f"lengths must be positive and sum to the data's {n:,} rows; "
                                 f"they sum to {sum(lengths):,}.")
        self.lengths = lengths
        super().__init__(data, columns=columns, **settings)

    def fit_lengths(self):
        """The lengths of the sequences fitted (of the rows in use), or None for one."""
        if self.lengths is None:
            return None
        ids = np.repeat(np.arange(len(self.lengths)), self.lengths)
        ids = self._in_use(ids)
        counts = np.bincount(ids, minlength=len(self.lengths))
        return [int(c) for c in counts if c > 0]

    def _start_fit(self, est):
        return est.start(self.fit_frame(), self.fit_lengths())

    def _make_estimator(self):
        est = GaussianHMM(n_components=self.n_components, covariance_type=self.covariance_type,
                          init_params=self.init_params, tol=self.tol, n_iter=self.max_iter,
                          n_init=self.n_init, random_state=self.random_state,
                          min_covar=self.reg_covar,
                          accelerate="squarem" if self.accelerate else None,
                          convergence=self.convergence, dtype=self.dtype)
        # Exact-size programs: a masked one (GaussianHMM supports it, tests/test_compiles.py)
        # made every warm run on the geyser 2-4x slower (1.5-4 s instead of 0.5-0.8 s with 10
        # states for 2, 1-1.6 s with 3), more than the compilation the slider would save.
        return est

    def program_components(self) -> int:
        return self.n_components  # exact-size programs (_make_estimator)

    def _why_compiling(self) -> str:
        return (". Each number of states and covariance type is a program of its own, "
                "compiled once a session: the next Run with these settings starts at once.")

    def _snapshot(self, live, est, elapsed, done) -> Snapshot:
        restarts = live.snapshot()
        post, X = est.live_view(live, "posteriors")
        labels = post.argmax(-1)
        unc = 1.0 - post.max(-1)
        sol = solutions_of(restarts, labels)
        return Snapshot(restarts, est.covariance_type, X, labels, unc, sol, live.iteration, done,
                        elapsed, posteriors=post)


def _aligned(snap: Snapshot, r: int):
    """Restart r's labels, posteriors and transition matrix in the aligned colour order."""
    perm = snap.solutions.permutations[r]
    inverse = np.argsort(perm)
    labels = inverse[snap.labels[r]]
    post = snap.posteriors[r][:, perm]
    trans = snap.restarts.params["transmat"][r][np.ix_(perm, perm)]
    return labels, post, trans


class SeriesPlot(_View):
    """The series coloured by decoded state (top) and the posterior probabilities (bottom).

    Built once per series and number of states; a new frame recolours the points and
    redraws only the posterior bands (no figure rebuild, no new layout).
    """

    figsize = (6.4, 3.2)
    feature = 0
    #: The time steps shown (start, stop): one sequence of several; None: all.
    window = None
    #: The rows' own index (dates, times; ``DataIntake.row_index``), or None: time steps.
    times = None

    def _time_axis(self, n: int, rows=None):
        """(x values, x label) of ``n`` rows: the data's index where it has one of its own."""
        if self.times is None or len(self.times) < n:
            return np.arange(n) if rows is None else np.asarray(rows), "time step"
        t = self.times if rows is None else self.times[rows]
        if self.window is not None and rows is None:
            t = t[slice(*self.window)]
        return np.asarray(t[:n]), str(self.times.name or "time")

    locked_render = True  # a rebuild (new series) must not be rendered half-way

    def preview(self, series, title: str = "", rows=None):
        """The series alone (grey), before a fit decodes its states (``rows``: which rows
        of the data ``series`` holds; default all)."""
        with self._lock:
            self.figure.clear()
            self.__dict__.pop("artists", None)
            self.snapshot = None
            ax = self.figure.add_subplot()
            t, label = self._time_axis(len(series), rows)
            ax.plot(t, series, color="0.5", lw=0.8, marker=".", ms=3)
            ax.set_ylabel(self.axis_labels[0] or f"feature {self.feature}")
            ax.set_xlabel(label)
            ax.set_title(title, fontsize="medium")
        self.canvas.draw_idle()

    def _update(self, snap: Snapshot):
        r = self.shown_restart(snap)
        if r < 0:
            return
        labels, post, _ = _aligned(snap, r)
        y = snap.X[:, self.feature]
        if self.window is not None:
            shown = slice(*self.window)
            labels, post, y = labels[shown], post[shown], y[shown]
        t, label = self._time_axis(len(y))
        colours = plotting.component_colours(post.shape[1])
        a = getattr(self, "artists", None)
        if (a is None or a["states"] != post.shape[1] or a["feature"] != self.feature
                or not np.array_equal(a["y"], y) or not np.array_equal(a["t"], t)):
            self.figure.clear()
            top, bottom = self.figure.subplots(2, 1, sharex=True, height_ratios=[2, 1])
            top.plot(t, y, color="0.7", lw=0.8, zorder=1)
            points = top.scatter(t, y, c=colours[labels], s=12, zorder=2)
            top.set_ylabel(self.axis_labels[0] or f"feature {self.feature}")
            bottom.set_ylim(0, 1)
            bottom.set_ylabel("P(state)")
            bottom.set_xlabel(label)
            a = self.artists = {"states": post.shape[1], "feature": self.feature, "y": y.copy(),
                                "t": t,
                                "top": top, "bottom": bottom, "points": points, "stack": []}
        else:
            a["points"].set_facecolor(colours[labels])
        for band in a["stack"]:
            band.remove()
        a["stack"] = a["bottom"].stackplot(t, post.T, colors=colours, alpha=0.85)
        a["top"].set_title(f"Restart {r}: series coloured by the most probable state",
                           fontsize="medium")
        self.points, self.stack = a["points"], a["stack"]


class TransitionPlot(_View):
    """The transition matrix of the shown restart as a heatmap (updated in place)."""

    figsize = (3.2, 3.0)
    locked_render = True

    def _update(self, snap: Snapshot):
        r = self.shown_restart(snap)
        if r < 0:
            return
        _, _, trans = _aligned(snap, r)
        s = len(trans)
        a = getattr(self, "artists", None)
        if a is None or a["states"] != s:
            self.figure.clear()
            ax = self.figure.add_subplot()
            image = ax.imshow(trans, vmin=0, vmax=1, cmap="Blues")
            texts = [[ax.text(j, i, "", ha="center", va="center", fontsize="small")
                      for j in range(s)] for i in range(s)]
            ticks = np.arange(s)
            ax.set_xticks(ticks, [str(i) for i in ticks])
            ax.set_yticks(ticks, [str(i) for i in ticks])
            for tick, colour in zip(ax.get_yticklabels(), plotting.component_colours(s)):
                tick.set_color(colour)
            ax.set_xlabel("to state")
            ax.set_ylabel("from state")
            ax.set_title("Transition matrix", fontsize="medium")
            a = self.artists = {"states": s, "image": image, "texts": texts}
        a["image"].set_data(trans)
        for i in range(s):
            for j in range(s):
                a["texts"][i][j].set_text(f"{trans[i, j]:.2f}")
                a["texts"][i][j].set_color("white" if trans[i, j] > 0.6 else "black")
        self.image = a["image"]


class HMMGallery(RestartGallery):
    """The restart gallery of an HMM. With one feature, a solution's thumbnail is the lag
    plot (the value at t - 1 across, at t up), where a state is a blob around (mean, mean):
    plotted against itself, one feature was a diagonal line."""

    def _projected(self, snapshot: Snapshot, r: int):
        xy, means2, covs2 = super()._projected(snapshot, r)
        if snapshot.X.shape[1] != 1:
            return xy, means2, covs2
        y = xy[:, 1]
        return np.c_[np.r_[y[:1], y[:-1]], y], means2, covs2 * np.eye(2)


class HMMExplorer(EMExplorer):
    """Fit Gaussian HMMs interactively: every restart's convergence, the decoded series,
    posterior state probabilities, the transition matrix and the restart comparison.

    Args:
        data: a DataFrame or array whose rows are consecutive time steps.
        **settings: initial control values (``n_components``, ``covariance_type``,
            ``init_params`` in {kmeans, random}, ``tol`` (per step), ``max_iter``
            (hmmlearn's n_iter), ``n_init``, ``random_state``, ``reg_covar``
            (hmmlearn's min_covar)).
    """

    step_words = ("parameters", "observations")
    offers_intervals = False  # (standard errors are for mixtures)
    offers_pairs = False  # (its series and lag plots show the states)
    main_view_name = "series"

    session_class = HMMSession

    def _make_views(self, projection, labels):
        self.convergence = ConvergencePlot()
        self.transitions = TransitionPlot()
        self.series = SeriesPlot(axis_labels=labels)
        self.gallery = HMMGallery(projection=projection, on_select=self._select)
        return {"convergence": self.convergence, "transitions": self.transitions,
                "series": self.series, "gallery": self.gallery}

    def _view_box(self):
        import ipywidgets as widgets

        from .explorer import _wrapping

        return widgets.VBox([widgets.HBox([self.convergence.canvas, self.transitions.canvas],
                                          layout=_wrapping()),
                             self.series.canvas, self.gallery.canvas])

    def __init__(self, data, lengths=None, **settings):
        """``lengths``: the rows are several sequences of these lengths (GaussianHMM's
        ``lengths``); a *sequence* menu chooses the one the series view shows."""
        import ipywidgets as widgets

        self._lengths_given = lengths
        self.sequence_picker = widgets.Dropdown(description="sequence", style={"description_width":
                                                                                "88px"},
                                                layout=widgets.Layout(width="292px"))
        self.sequence_picker.add_class("emwidgets-sequence")
        super().__init__(data, **settings)
        self.sequence_picker.observe(lambda ch: self._show_sequence(ch["new"]), "value")
        self._sync_sequences()

    def _extra_controls(self) -> list:
        return [self.sequence_picker]

    def _new_session(self, data, columns, settings):
        return self.session_class(data, columns=columns, lengths=self._lengths_given,
                                  **settings)

    def _sync_sequences(self):
        self.series.times = self.session.row_index()
        lengths = self.session.fit_lengths() or [len(self.session.X)]
        starts = np.r_[0, np.cumsum(lengths)[:-1]]
        self._windows = [(int(a), int(a + n)) for a, n in zip(starts, lengths)]
        self.sequence_picker.options = [(f"{i + 1} of {len(lengths)} ({n:,} steps)", i)
                                        for i, n in enumerate(lengths)]
        self.sequence_picker.layout.display = None if len(lengths) > 1 else "none"
        self._show_sequence(self.sequence_picker.value or 0)

    def _show_sequence(self, i):
        i = 0 if i is None or i >= len(self._windows) else int(i)
        self.series.window = None if len(self._windows) == 1 else self._windows[i]
        snap = self.session.snapshot
        if snap is not None and self.session.shown_data_is_current:
            self.series.update(snap)

    def _on_data_version(self, change):
        super()._on_data_version(change)
        if hasattr(self, "_windows"):  # (after __init__: the picker follows the new data)
            self._sync_sequences()

    def _preview(self, force: bool = False):
        s = self.session
        if s.snapshot is not None and not force:
            return
        self.series.times = s.row_index()
        self.series.preview(s.display_points()[:, self.series.feature],
                            f"{len(s.X):,} time steps: press Run to fit", rows=s._display)
        self.convergence.message("Press Run: the log-likelihood of\nevery restart appears here")
        self.transitions.message("The transition matrix\nappears here")
        self.gallery.message("The restarts, grouped into the distinct solutions they reach,\n"
                             "appear here after a run")

    def _on_axes(self, change):
        s = self.session
        self.series.feature = s.columns.index(s.x_axis) if s.x_axis in s.columns else 0
        self.series.axis_labels = (s.x_axis, s.y_axis)
        self.gallery.projection = s.projection()
        if s.snapshot is not None and s.shown_data_is_current:
            self.scrub.redraw()  # (scrubbing: the frame the controls say)
        else:
            self._preview(force=True)

