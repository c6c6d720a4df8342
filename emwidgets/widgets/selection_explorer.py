"""A companion widget: the BIC grid of select_model, filling in live."""

from __future__ import annotations

import html

import ipywidgets as widgets

from .. import plotting
from ..estimators.gaussian_mixture import GaussianMixture
from ..selection import SelectionResult, select_model
from . import runner
from .session import FitSession
from .views import SelectionPlot

COVARIANCE_TYPES = GaussianMixture.covariance_types


class _Stopped(Exception):
    """Raised from select_model's callback to end the grid after the current model."""


class ModelSelectionExplorer(widgets.VBox):
    """Fit every (number of components, covariance type) pair and watch the BIC fill in.

    The plot shows each model's BIC minus the lowest BIC on a symlog axis, so that
    a covariance type far worse than the others does not squash the near-best
    models into a band. **Stop** ends the grid after the model being fitted;
    **Open in explorer** opens the model chosen in *model* (the lowest BIC by
    default) in an :class:`~emwidgets.EMExplorer` below, with the same settings.

    Args:
        data: a DataFrame (its numeric feature columns, as :class:`FitSession` chooses
            them; incomplete rows are dropped) or an array.
        n_components: (min, max) of the grid; ``n_init``: restarts per fit.
    Attributes:
        result: the latest :class:`~emwidgets.selection.SelectionResult` (partial
            while running or after Stop).
        explorer: the last :class:`~emwidgets.EMExplorer` opened (None before).
        range, types, n_init, run_button, stop_button, model_picker, open_button,
        status, data_note, plot, explorer_box: the widgets.
    """

    def __init__(self, data, n_components=(1, 6), n_init=8, random_state=0):
        self.data = data
        self._session = FitSession(data, missing="drop")
        self.X = self._session.X
        self.result: SelectionResult | None = None
        self.explorer = None
        self.random_state = random_state
        # Every widget gets its own Layout and style: a shared one, changed for one
        # widget, changes all of them (issue 11, defect 1).
        self.range = widgets.IntRangeSlider(
            value=n_components, min=1, max=12, description="components",
            style={"description_width": "88px"}, layout=widgets.Layout(width="390px"))
        self.n_init = widgets.IntSlider(value=n_init, min=1, max=32, description="restarts",
                                        style={"description_width": "70px"},
                                        layout=widgets.Layout(width="300px"))
        self.types = {t: widgets.Checkbox(value=True, description=t, indent=False,
                                          layout=widgets.Layout(width="90px"))
                      for t in COVARIANCE_TYPES}
        self.accelerate = widgets.Checkbox(value=False, description="accelerate (SQUAREM)",
                                           indent=False, layout=widgets.Layout(width="180px"))
        self.run_button = widgets.Button(description="Run grid", button_style="success",
                                         icon="play",
                                         layout=widgets.Layout(width="120px"))
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop",
                                          disabled=True,
                                          tooltip="Stop after the model being fitted",
                                          layout=widgets.Layout(width="100px"))
        self.model_picker = widgets.Dropdown(options=[("(run the grid first)", None)], value=None,
                                             description="model", disabled=True,
                                             style={"description_width": "50px"},
                                             layout=widgets.Layout(width="420px"))
        self.open_button = widgets.Button(description="Open in explorer", icon="external-link",
                                          disabled=True, tooltip="An EMExplorer with this model's "
                                          "settings, below", layout=widgets.Layout(width="160px"))
        self.status = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.status.add_class("emwidgets-status")
        self.plot = SelectionPlot()
        self.plot.canvas.add_class("emwidgets-selection")
        self.explorer_box = widgets.VBox()
        # The runs of the grid (thread, Stop, generation), as every explorer's; its lock
        # has the status's last word: Stopping vs Done/Stopped.
        self._runner = runner.Runner()
        self._running = False
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.open_button.on_click(lambda _: self.open_explorer(self.model_picker.value))
        self.data_note = widgets.HTML(html.escape(self._session.data_note),
                                      layout=widgets.Layout(width="100%"))
        self.data_note.add_class("emwidgets-data-note")
        self._set_status("Ready: press Run grid.")
        super().__init__([
            widgets.HBox([self.range, self.n_init, self.accelerate]),
            widgets.HBox(list(self.types.values()) + [self.run_button, self.stop_button]),
            self.plot.canvas, self.status, self.data_note,
            widgets.HBox([self.model_picker, self.open_button]),
            self.explorer_box])
        self.add_class("emwidgets-model-selection")

    # -- actions ------------------------------------------------------------------
    def run(self, block: bool = False):
        """What Run grid does; ``block=True`` waits for the end (for scripts and tests)."""
        with self._runner.lock:
            if self._running:
                return
            self._running = True
            self.run_button.disabled = True
            self.stop_button.disabled = False
            self.model_picker.disabled = self.open_button.disabled = True
            self._runner.launch(self._work)
        if block:
            self._runner.join()

    def stop(self):
        """End the grid after the model being fitted (its row is kept)."""
        with self._runner.lock:
            if self._running and not self._runner.stop_event.is_set():
                self._runner.request_stop()
                self.stop_button.disabled = True
                self._set_status("Stopping after the model being fitted…")

    def open_explorer(self, key=None, run: bool = True, block: bool = False):
        """An :class:`~emwidgets.EMExplorer` for the model ``(n_components, covariance_type)``
        (the lowest BIC if None), with the grid's restarts, seed, columns and rows, shown
        below the grid; returns it. ``run``: it runs at once, from the grid's seeds, so it
        shows the model the grid fitted, every restart live (an unfitted explorer was not
        what a user opening a model expected); ``block``: wait for that run."""
        from .explorer import EMExplorer

        if self.result is None or not self.result.models:
            raise ValueError("No fitted model yet: press Run grid first.")
        key = self.result.best_key if key is None else tuple(key)
        if key not in self.result.models:
            raise ValueError(f"No fitted model {key}: choose one of "
                             f"{', '.join(map(str, self.result.models))}.")
        k, cov = key
        model = self.result.models[key].get_params()  # its stopping rule, to fit it again
        self.explorer = EMExplorer(self.data, columns=self._session.columns, n_components=k,
                                   covariance_type=cov, n_init=self.n_init.value,
                                   random_state=self.random_state, missing="drop",
                                   accelerate=self.accelerate.value, tol=model["tol"],
                                   max_iter=model["max_iter"],
                                   convergence=model["convergence"])
        what = ("the grid's fit, run again here from its seeds: every restart, live"
                if run else "press Run to fit it here and watch every restart")
        self.explorer_box.children = [
            widgets.HTML(f"<b>{_components(k)}, {html.escape(cov)} covariance</b>: {what}."),
            self.explorer]
        if run:
            self.explorer.run(block=block)
        return self.explorer

    def open_best(self, run: bool = True, block: bool = False):
        """The lowest-BIC model in an explorer (see :meth:`open_explorer`)."""
        return self.open_explorer(None, run=run, block=block)

    # -- the worker -----------------------------------------------------------------
    def _set_status(self, text, error=False):
        colour = "#b00020" if error else "#333"
        self.status.value = f'<span style="color:{colour}">{html.escape(text)}</span>'

    def _offer_models(self):
        """The model picker lists every fitted model, lowest criterion first."""
        result = self.result
        if result is None or not result.models:
            self.model_picker.options = [("(no fitted model)", None)]
            return
        crit = result.criterion
        table = result.table.dropna(subset=[crit]).sort_values(crit)
        best = result.best_key
        options = []
        for _, row in table.iterrows():
            key = (int(row["n_components"]), str(row["covariance_type"]))
            if key in result.models:
                mark = " (lowest)" if key == best else ""
                mclust = plotting.MCLUST_NAMES.get(key[1], "")
                options.append((f"{_components(key[0])}, {key[1]} ({mclust}): {crit.upper()} "
                                f"{float(row[crit]):.1f}{mark}", key))
        self.model_picker.options = options
        self.model_picker.value = best
        self.model_picker.disabled = self.open_button.disabled = False

    def _work(self, generation: int, stop):
        lo, hi = self.range.value
        types = [t for t, box in self.types.items() if box.value]
        total = (hi - lo + 1) * len(types)
        self.result = None
        try:
            if not types:
                raise ValueError("Tick at least one covariance type.")
            self.plot.update_table(None)
            self._set_status(f"Fitting {total} models…")

            def progress(result):
                self.result = result
                self.plot.update_table(result.table)
                self._set_status(f"Fitted {len(result.table)} of {total} models…")
                if stop.is_set():
                    raise _Stopped

            try:
                self.result = select_model(
                    self.X, range(lo, hi + 1), types, n_init=self.n_init.value,
                    random_state=self.random_state, callback=progress,
                    accelerate="squarem" if self.accelerate.value else None)
                done = f"Done: {len(self.result.table)} models. "
            except _Stopped:
                done = f"Stopped after {len(self.result.table)} of {total} models. "
            key = self.result.best_key
            if key is None:
                final = (done + "No model could be fitted; the table says why.", True)
            else:
                final = (done + f"The lowest BIC is {_components(key[0])}, {key[1]} covariance "
                         f"(BIC {self.result.best.bic(self.X):.1f}).", False)
        except Exception as exc:  # shown, the kernel survives
            final = (f"Error: {exc}", True)
        finally:
            self._offer_models()
            with self._runner.lock:
                self._running = False
                self.run_button.disabled = False
                self.stop_button.disabled = True
                self._set_status(*final)


def _components(k: int) -> str:
    return f"{k} component{'s' if k != 1 else ''}"
