"""emwidgets: the EM algorithm, fast in JAX and explorable in JupyterLab."""

# First of all: size the thread pools to the container's CPU quota (Binder), before anything
# below imports NumPy or JAX. See emwidgets/_threads.py.
from ._threads import cap_threads as _cap_threads

_cap_threads()

from . import datasets
from ._validation import ConvergenceWarning, NotFittedError
from .estimators import (
    GaussianMixture,
    KMeans,
    LiveFit,
    Restarts,
    SpuriousSolutionWarning,
    StandardErrors,
)
from .hmm import GaussianHMM
from .priors import MixturePrior
from .selection import SelectionResult, select_model

__all__ = [
    "AssignmentPlot",
    "ConvergencePlot",
    "ConvergenceWarning",
    "EMExplorer",
    "FitSession",
    "GaussianHMM",
    "GaussianMixture",
    "HMMExplorer",
    "KMeans",
    "LiveFit",
    "MixturePrior",
    "ModelSelectionExplorer",
    "SelectionResult",
    "NotFittedError",
    "RestartGallery",
    "Restarts",
    "SpuriousSolutionWarning",
    "StandardErrors",
    "datasets",
    "enable_compilation_cache",
    "select_model",
]
__version__ = "0.1.0"

_WIDGETS = {"AssignmentPlot", "ConvergencePlot", "EMExplorer", "FitSession", "RestartGallery",
            "MixturePrior",
    "ModelSelectionExplorer", "HMMExplorer"}


def __getattr__(name):
    # The widgets import ipywidgets and matplotlib: load them on first use only.
    if name in _WIDGETS:
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'emwidgets' has no attribute {name!r}")


def enable_compilation_cache(directory: str | None = None) -> str:
    """Keep JAX's compiled programs on disk, so a restarted kernel skips compilation.

    A first fit of a given shape compiles for a few seconds on a CPU; with the
    cache on, the same fit in a later session loads the program instead.
    Returns the directory used (default ``~/.cache/emwidgets/jax``).
    """
    import os

    import jax

    directory = directory or os.path.join(os.path.expanduser("~"), ".cache", "emwidgets", "jax")
    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory
