"""A companion widget: the BIC grid of select_model, filling in live."""

from __future__ import annotations

import html
import threading

import ipywidgets as W

from ..selection import SelectionResult, select_model
from .session import FitSession
from .views import SelectionPlot


class ModelSelectionExplorer(W.VBox):
    """Fit every (number of components, covariance type) pair and watch the BIC fill in.

    Args:
        data: a DataFrame (numeric columns, complete rows) or an array.
        n_components: (min, max) of the grid; ``n_init``: restarts per fit.
    Attributes:
        result: the latest :class:`~emwidgets.selection.SelectionResult`.
    """

    def __init__(self, data, n_components=(1, 6), n_init=8, random_state=0):
        self.X = FitSession(data, missing="drop").X
        self.result: SelectionResult | None = None
        self.range = W.IntRangeSlider(value=n_components, min=1, max=12, description="components")
        self.types = {t: W.Checkbox(value=True, description=t, indent=False,
                                    layout=W.Layout(width="90px"))
                      for t in ("full", "tied", "diag", "spherical")}
        self.n_init = W.IntSlider(value=n_init, min=1, max=32, description="restarts")
        self.random_state = random_state
        self.run_button = W.Button(description="Run grid", button_style="success", icon="play")
        self.status = W.HTML()
        self.plot = SelectionPlot()
        self.plot.canvas.add_class("emwidgets-selection")
        self.run_button.on_click(lambda _: self.run())
        self._thread = None
        super().__init__([
            W.HBox([self.range, self.n_init]), W.HBox(list(self.types.values()) + [self.run_button]),
            self.plot.canvas, self.status])

    def run(self, block: bool = False):
        if self._thread is not None and self._thread.is_alive():
            return
        self.run_button.disabled = True
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()
        if block:
            self._thread.join()

    def _set_status(self, text, error=False):
        colour = "#b00020" if error else "#333"
        self.status.value = f'<span style="color:{colour}">{html.escape(text)}</span>'

    def _work(self):
        lo, hi = self.range.value
        types = [t for t, box in self.types.items() if box.value]
        total = (hi - lo + 1) * len(types)
        try:
            if not types:
                raise ValueError("Tick at least one covariance type.")
            self._set_status(f"Fitting {total} models…")

            def progress(result):
                self.result = result
                self.plot.update_table(result.table)
                self._set_status(f"Fitted {len(result.table)} of {total} models.")

            self.result = select_model(self.X, range(lo, hi + 1), types, n_init=self.n_init.value,
                                       random_state=self.random_state, callback=progress)
            k, cov = self.result.best_key
            self._set_status(f"Done: the lowest BIC is {k} components, {cov} covariance "
                             f"(BIC {self.result.best.bic(self.X):.1f}).")
        except Exception as exc:  # shown, the kernel survives
            self._set_status(f"Error: {exc}", error=True)
        finally:
            self.run_button.disabled = False
