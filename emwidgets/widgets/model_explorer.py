"""ModelExplorer: a model of your own (:class:`emwidgets.EM`) in a notebook.

The same answers as the mixtures' explorer, for any model: every restart's convergence,
the restarts ranked and grouped into the distinct solutions they reach (by their
parameters), the parameters of every restart side by side, and a view you draw,
``view(ax, params, data)``, of the shown restart. Run fits live with Stop; after a run,
the iteration slider replays any iteration (the same compiled program: nothing
compiles), the E-step and M-step buttons take an iteration apart (a view written as
``view(ax, params, data, stats)`` gets the E-step's statistics of the shown restart:
each row's with ``rows=True``) and the restart menu shows any restart. Hovering a
restart's trace or bar draws it out everywhere.
"""

from __future__ import annotations

import copy
import inspect
import threading
import time
import types
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional

import ipywidgets as widgets
import jax
import numpy as np

from .. import plotting
from ..compare import Solutions, group_restarts
from ..estimators.base import Restarts
from ..estimators.general import EM
from . import runner
from .features import Scrub
from .status_line import picker_options, summary
from .views import ConvergencePlot, RankingHover, _View, request_renders

#: Restarts reach one solution when their parameters agree to this share of each
#: array's size (and their log-likelihoods within the fit's tolerance).
TOL_PARAMS = 1e-3
CONTROL_WIDTH = "262px"
#: How the grouping's parameter tolerance reads in the status.
WORDS = "of each parameter array's size"
#: The step note's words (:class:`Scrub`).
STEP_WORDS = ("parameters", "view's statistics", "from their E-step", "E-step statistics")


@dataclass
class ModelSnapshot:
    """What the views draw: the restarts of a run (live, finished or scrubbed)."""

    restarts: Restarts
    solutions: Solutions
    iteration: int
    done: bool
    elapsed: float = 0.0
    stopped: bool = False
    scrub: Optional[int] = None
    missing: Any = None  # (the status line's words: no missing values here)
    #: The finished run's best restart: "best" shows it in every replayed iteration too
    #: (the restart on top at iteration 1 may be another).
    run_best: Optional[int] = None
    #: A half step's frame: every restart's parameters whose E-step statistics the view
    #: is given (the iteration before the shown one's, after an M-step); None: the shown.
    stats_params: Any = None
    labels_at: Optional[int] = None

    @property
    def best(self) -> int:
        return self.restarts.best if self.run_best is None else self.run_best


def flat_parameters(params) -> tuple[np.ndarray, list, np.ndarray]:
    """(R, P) every restart's parameters, flattened, a name per column, and (P,) each
    column's leaf's largest size over the restarts (an array's entries share one scale)."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    values, names, sizes = [], [], []
    for path, leaf in leaves:
        leaf = np.asarray(leaf, np.float64)
        flat = leaf.reshape(leaf.shape[0], -1)
        name = jax.tree_util.keystr(path).strip("[]'\"").replace("']['", ".") or "params"
        names += [name] if flat.shape[1] == 1 else [f"{name}[{i}]" for i in range(flat.shape[1])]
        values.append(flat)
        finite = np.abs(flat[np.isfinite(flat)])
        size = finite.max() if finite.size and finite.max() > 0 else 1.0
        sizes.append(np.full(flat.shape[1], size))
    return np.concatenate(values, axis=1), names, np.concatenate(sizes)


def model_solutions(r: Restarts) -> Solutions:
    """Restarts grouped by their log-likelihood (the fit's tolerance) and parameters
    (every entry within :data:`TOL_PARAMS` of its array's largest size)."""
    flat, _, scale = flat_parameters(r.params["params"])
    return group_restarts(np.zeros((r.n_restarts, 1), int), r.objective, flat[:, None, :],
                          ~r.failed, order=r.ranking(), scale=scale, tol=r.tol,
                          tol_means=TOL_PARAMS)


class ParameterPlot(RankingHover, _View):
    """The restarts ranked by log-likelihood (bars coloured by solution) and every
    restart's parameters side by side, each coordinate scaled by its largest size
    (the shown restart in red)."""

    figsize = (6.4, 3.0)
    locked_render = True

    def __init__(self, *args, on_select=None, **kwargs):
        self.on_select = on_select
        super().__init__(*args, **kwargs)

    def _update(self, snap: ModelSnapshot):
        r, sol = snap.restarts, snap.solutions
        self.figure.clear()
        ax, px = self.figure.subplots(1, 2, width_ratios=[1, 1.3])
        shown = self.shown_restart(snap)
        self.ranking = plotting.draw_ranking(
            ax, r.objective, sol.group_of, shown, order=r.ranking(),
            spurious=r.spurious, best=r.best, tol_objective=sol.tol_objective,
            ylabel="log-lik gap to best")
        flat, names, size = flat_parameters(r.params["params"])
        x = np.arange(flat.shape[1])
        colours = plotting.solution_colours(sol.group_of)
        for i in range(r.n_restarts):
            if i != shown:
                px.plot(x, flat[i] / size, "o-", color=colours[i], lw=0.8, ms=3, alpha=0.6)
        if 0 <= shown < r.n_restarts:
            px.plot(x, flat[shown] / size, "o-", color=plotting.BEST_COLOUR, lw=2, ms=4,
                    zorder=4)
        px.set_xticks(x[:: max(1, len(x) // 8)])
        px.set_xticklabels(names[:: max(1, len(x) // 8)], rotation=30, ha="right",
                           fontsize="x-small")
        # On a fixed scale (0 to 1, or -1 to 1): restarts at one optimum draw one line, not
        # their differences at 1e-8 blown up to the axis.
        low = -1.05 if np.nanmin(flat / size) < 0 else 0.0
        px.set_ylim(low, 1.05)
        px.set_ylabel("value / its array's largest", fontsize="small")
        px.set_title(f"Every restart's parameters (restart {shown} in red)", fontsize="small")
        px.grid(alpha=0.3)

    def _draw_highlight(self, snap) -> bool:
        if getattr(self, "ranking", None) is None:
            return False
        self._shade_ranking(snap)
        return True


def wants_statistics(view: Callable) -> bool:
    """Whether ``view`` takes a fourth argument (the E-step's statistics)."""
    try:
        ps = list(inspect.signature(view).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 4 or any(p.kind == p.VAR_POSITIONAL for p in ps)


class UserView(_View):
    """``view(ax, params, data)`` of the shown restart (at the scrubbed iteration), or
    ``view(ax, params, data, stats)`` with the E-step's statistics of the restart as the
    frame has them (``statistics(params)`` computes them); a view that fails is one
    sentence on its axes (the explorer carries on)."""

    figsize = (3.2, 3.0)
    locked_render = True

    def __init__(self, view: Callable, data, statistics: Optional[Callable] = None,
                 **kwargs):
        self.view, self.data = view, data
        self.statistics = statistics if wants_statistics(view) else None
        self.error = ""
        super().__init__(**kwargs)

    def _update(self, snap: ModelSnapshot):
        self.figure.clear()
        ax = self.figure.add_subplot()
        r = self.shown_restart(snap)
        params = jax.tree.map(lambda a: np.asarray(a)[r], snap.restarts.params["params"])
        try:
            if self.statistics is None:
                self.view(ax, params, self.data)
            else:
                source = (params if snap.stats_params is None else
                          jax.tree.map(lambda a: np.asarray(a)[r], snap.stats_params))
                self.view(ax, params, self.data,
                          jax.tree.map(np.asarray, self.statistics(source)))
            self.error = ""
        except Exception as exc:  # noqa: BLE001 (the user's function: say it, carry on)
            sig = "view(ax, params, data" + (", stats)" if self.statistics else ")")
            self.error = f"{sig} failed: {type(exc).__name__}: {exc}"
            ax.clear()
            ax.text(0.5, 0.5, self.error[:200], ha="center", va="center", wrap=True,
                    fontsize="small", color="#b00020", transform=ax.transAxes)
        suffix = f", iteration {snap.scrub}" if snap.scrub is not None else ""
        if snap.labels_at is not None and snap.labels_at != snap.scrub:
            suffix += f" (E-step of {snap.labels_at})"
        if not ax.get_title():
            ax.set_title(f"Restart {r}{suffix}", fontsize="medium")


class ModelExplorer(widgets.VBox):
    """Fit a model of your own (:class:`emwidgets.EM`) and watch every restart converge.

    Args:
        model: an :class:`~emwidgets.EM` (its functions, ``rows`` and ``kinds``).
        data: the data its functions take.
        view: ``view(ax, params, data)`` drawing the shown restart's parameters on a
            matplotlib axes (optional).
        **settings: ``n_init``, ``max_iter``, ``tol``, ``random_state``, ``accelerate``.

    Attributes: ``estimator_`` (the fitted model of the last run, or None), ``snapshot``,
    ``controls``, ``status``, ``convergence``, ``parameters``, ``user_view``.
    """

    def __init__(self, model: EM, data, view: Optional[Callable] = None, **settings):
        if not isinstance(model, EM):
            raise ValueError(f"ModelExplorer explores an emwidgets.EM model, not "
                             f"{type(model).__name__}; use EMExplorer for data and a mixture.")
        self.template = type(model)(**{**model.get_params(), **settings})
        self.data = data
        self.runner = runner.Runner()
        self.snapshot: Optional[ModelSnapshot] = None
        self.estimator_ = None
        self._live = None
        self.highlighted = None
        p = self.template.get_params()
        style = {"description_width": "90px"}
        lay = lambda: widgets.Layout(width=CONTROL_WIDTH)  # noqa: E731
        self.controls = {
            "n_init": widgets.IntSlider(value=p["n_init"], min=1, max=max(64, p["n_init"]),
                                        description="restarts", style=style, layout=lay()),
            "max_iter": widgets.IntSlider(value=p["max_iter"], min=1,
                                          max=max(1000, p["max_iter"]),
                                          description="max iter", style=style, layout=lay()),
            "tol": widgets.FloatLogSlider(value=p["tol"] or 1e-12, base=10, min=-12, max=-1,
                                          step=0.5, readout_format=".0e",
                                          description="tolerance", style=style, layout=lay()),
            "random_state": widgets.IntText(value=p["random_state"] or 0, description="seed",
                                            style=style, layout=lay()),
            "accelerate": widgets.Checkbox(value=p["accelerate"] == "squarem", indent=False,
                                           description="accelerate (SQUAREM)", layout=lay()),
        }
        self.run_button = widgets.Button(description="Run", button_style="success",
                                         icon="play", layout=widgets.Layout(width="128px"))
        self.stop_button = widgets.Button(description="Stop", button_style="danger",
                                          icon="stop", disabled=True,
                                          layout=widgets.Layout(width="128px"))
        self.restart_picker = widgets.Dropdown(options=[("best", -1)], value=-1,
                                               description="show restart", style=style,
                                               layout=lay())
        self.status = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.status.add_class("emwidgets-status")
        self._say("Ready: press Run.")
        self.convergence = ConvergencePlot()
        self.parameters = ParameterPlot(on_select=self._select)
        self.user_view = (UserView(view, data, statistics=self._statistics)
                          if view is not None else None)
        self.views = {"convergence": self.convergence, "parameters": self.parameters,
                      **({"view": self.user_view} if self.user_view is not None else {})}
        for name, v in self.views.items():
            v.canvas.add_class(f"emwidgets-{name}")
            if v.hovers_restarts:
                v.enable_restart_hover(self.highlight_restart)
        self.convergence.message("Press Run: the log-likelihood of\nevery restart appears here")
        self.parameters.message("The restarts, ranked and grouped by their parameters,\n"
                                "appear here after a run")
        if self.user_view is not None:
            self.user_view.message("Your view of the shown restart")
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.restart_picker.observe(lambda ch: self._select(ch["new"]), "value")
        # Taking the run apart: the mixtures' scrubber and half-step buttons, over this
        # explorer's frames (:class:`_Frames`).
        self.step_note = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.step_note.add_class("emwidgets-step-note")
        self.scrub = Scrub(_Frames(self), self.views, types.SimpleNamespace(),
                           self.step_note, STEP_WORDS, lay(), self._draw,
                           lambda: request_renders(self.views.values()), lambda: None)
        self.scrubber = self.scrub.slider
        self.e_step_button, self.m_step_button = self.scrub.e_step_button, self.scrub.m_step_button
        self.back_button, self.end_button = self.scrub.back_button, self.scrub.end_button
        left = widgets.VBox([widgets.HTML("<b>EM settings</b>"), *self.controls.values(),
                             widgets.HBox([self.run_button, self.stop_button]),
                             self.restart_picker, widgets.HTML("<b>Take the run apart</b>"),
                             *self.scrub.controls()], layout=widgets.Layout(width="270px"))
        top = [self.convergence.canvas] + ([self.user_view.canvas] if self.user_view else [])
        right = widgets.VBox([widgets.HBox(top, layout=widgets.Layout(flex_flow="row wrap")),
                              self.parameters.canvas])
        super().__init__([self.status, self.step_note, widgets.HBox(
            [left, right], layout=widgets.Layout(flex_flow="row wrap"))])
        self.add_class("emwidgets-explorer")
        self.add_class("emwidgets-model-explorer")

    # -- running -------------------------------------------------------------------
    def settings(self) -> dict:
        c = self.controls
        return dict(n_init=int(c["n_init"].value), max_iter=int(c["max_iter"].value),
                    tol=float(c["tol"].value), random_state=int(c["random_state"].value),
                    accelerate="squarem" if c["accelerate"].value else None)

    def run(self, block: bool = False):
        """What the Run button does; ``block=True`` waits for the end."""
        est = type(self.template)(**{**self.template.get_params(), **self.settings()})
        self.run_button.disabled, self.stop_button.disabled = False, False
        self._live, self.scrub.frame = None, None  # (the run's frames go with it)
        self.scrub.sync()
        self._say("Compiling the model's program…")
        self.runner.launch(self._work, est, time.perf_counter())
        if block:
            self.runner.wait()

    def stop(self):
        """Stop the run after its current chunk; what it reached is kept."""
        self.runner.request_stop()

    def _work(self, generation: int, stop: threading.Event, est: EM, t0: float):
        try:
            live = est.start(self.data)
            chunk = 1
            while not live.done and not stop.is_set():
                t = time.perf_counter()
                live.advance(chunk)
                if not self.runner.current(generation):
                    return
                self._publish(live, t0, done=False)
                chunk = int(np.clip(chunk * 0.1 / max(time.perf_counter() - t, 1e-4), 1, 64))
            stopped = stop.is_set() and not live.done
            if stopped and live.iteration == 0:  # stopped while it compiled: nothing to keep
                kept = " The previous result is kept." if self.snapshot is not None else ""
                self._say(f"Stopped before the first iteration.{kept}")
                return
            if stopped:  # the model where it stopped (finish would run on to the end)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fitted = live.conclude(live)
            else:
                fitted = live.finish()
            if not self.runner.current(generation):
                return
            self.estimator_, self._live = fitted, live
            self._publish(live, t0, done=True, stopped=stopped)
        except Exception as exc:  # noqa: BLE001 (one sentence; the previous result stays)
            if self.runner.current(generation):
                kept = (" The previous result is kept." if self.snapshot is not None else "")
                self._say(f"<span style='color:#b00020'>Error: {exc}</span>{kept}")
        finally:
            if self.runner.current(generation):
                self.stop_button.disabled = True

    def _publish(self, live, t0: float, done: bool, stopped: bool = False):
        """Draw ``live``'s restarts and say what they found."""
        r = live.snapshot()
        snap = ModelSnapshot(r, model_solutions(r), live.iteration, done,
                             time.perf_counter() - t0, stopped)
        self.snapshot = snap
        self._draw(snap)
        if done:
            opts = picker_options(snap)
            self.restart_picker.options = opts
            self.scrub.sync()
            what = (f"Stopped at iteration {live.iteration} (not converged)" if stopped
                    else "Done")
            self._say(f"{what} in {snap.elapsed:.1f} s: " + summary(snap, WORDS))
        else:
            self._say(f"Running: iteration {live.iteration}… " + summary(snap, WORDS))

    def frame_at(self, iteration: int, labels_at: Optional[int] = None) -> ModelSnapshot:
        """Every restart of the last run after ``iteration`` iterations (replayed by the
        run's own program: nothing compiles), the view given the E-step statistics of
        the parameters after ``labels_at`` (default the same; one less after an
        M-step). "best" stays the run's best restart."""
        live = self._live
        if live is None or not live.iteration:
            raise ValueError("There is no run to take apart yet: press Run first.")
        labels_at = iteration if labels_at is None else labels_at
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = live.at(int(iteration)).snapshot()
            other = (None if labels_at == iteration
                     else live.at(int(labels_at)).snapshot().params["params"])
        # The finished run's traces, ranking and solutions, the parameters of the frame
        # (as the mixtures' explorer: the convergence plot marks the iteration shown).
        final = self.snapshot
        restarts = copy.copy(final.restarts)
        restarts.params = r.params
        snap = ModelSnapshot(restarts, final.solutions, live.iteration, True, final.elapsed,
                             final.stopped, int(iteration), run_best=final.best,
                             stats_params=other, labels_at=int(labels_at))
        self._say(f"Iteration {iteration} of {live.iteration}: every restart's parameters "
                  "as they were then (replayed, nothing compiled); the traces and the "
                  "ranking are the finished run's.")
        return snap

    def _statistics(self, params):
        """The E-step's statistics of one restart's ``params`` (the view's fourth
        argument)."""
        model = self.estimator_ if self.estimator_ is not None else self.template
        return model.expected_statistics(self.data, params)

    def _draw(self, snap: ModelSnapshot):
        for v in self.views.values():
            v.update(snap)

    def _say(self, text: str):
        self.status.value = f'<span class="emwidgets-status-text">{text}</span>'

    @property
    def status_text(self) -> str:
        """The status line's words (without its markup)."""
        import re

        return re.sub(r"<[^>]+>", "", self.status.value)

    # -- looking ---------------------------------------------------------------------
    def _select(self, restart: int):
        restart = int(restart)
        for v in self.views.values():
            v.selected = restart
        if restart in [v for _, v in self.restart_picker.options]:
            self.restart_picker.value = restart
        if self.snapshot is not None:
            self.scrub.redraw()

    def highlight_restart(self, restart):
        """Draw restart ``restart`` out in every view (None: none), as hovering does."""
        self.highlighted = None if restart is None else int(restart)
        for v in self.views.values():
            v.highlight(self.highlighted)


class _Frames:
    """What :class:`Scrub` asks of a session, from a :class:`ModelExplorer`."""

    def __init__(self, explorer: ModelExplorer):
        self.explorer = explorer

    @property
    def iterations_run(self) -> int:
        live = self.explorer._live
        return 0 if live is None else int(live.iteration)

    @property
    def snapshot(self):
        return self.explorer.snapshot

    def frame_at(self, iteration: int, labels_at=None):
        return self.explorer.frame_at(iteration, labels_at)
