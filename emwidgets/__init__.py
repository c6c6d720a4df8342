"""emwidgets: the EM algorithm, fast in JAX and explorable in JupyterLab."""

from . import datasets
from ._validation import ConvergenceWarning, NotFittedError
from .estimators import GaussianMixture, KMeans, LiveFit, Restarts

__all__ = [
    "AssignmentPlot",
    "ConvergencePlot",
    "ConvergenceWarning",
    "EMExplorer",
    "FitSession",
    "GaussianMixture",
    "KMeans",
    "LiveFit",
    "NotFittedError",
    "RestartGallery",
    "Restarts",
    "datasets",
]
__version__ = "0.1.0"

_WIDGETS = {"AssignmentPlot", "ConvergencePlot", "EMExplorer", "FitSession", "RestartGallery"}


def __getattr__(name):
    # The widgets import ipywidgets and matplotlib: load them on first use only.
    if name in _WIDGETS:
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'emwidgets' has no attribute {name!r}")
