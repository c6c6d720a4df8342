"""emwidgets: the EM algorithm, fast in JAX and explorable in JupyterLab."""

# First of all: size the thread pools to the container's CPU quota (Binder), before anything
# below imports NumPy or JAX. See emwidgets/_threads.py.
from ._threads import cap_threads as _cap_threads

_cap_threads()

# JAX's on-disk compilation cache, on unless EMWIDGETS_COMPILATION_CACHE=0 or JAX's own cache is
# configured (emwidgets/_cache.py): a new kernel loads the programs an earlier one compiled.
from ._cache import configure as _configure_cache

_configure_cache()

from . import datasets
from .core.stream import Chunks
from .estimators.base import LiveFit, Restarts, SpuriousSolutionWarning
from .estimators.counts import MultinomialMixture, PoissonHMM, PoissonMixture
from .estimators.custom import MixtureModel
from .estimators.factor_analysis import FactorAnalysis
from .estimators.gaussian_hmm import GaussianHMM
from .estimators.gaussian_mixture import GaussianMixture, StandardErrors
from .estimators.general import EM
from .estimators.kmeans import KMeans
from .estimators.latent_class import CategoricalHMM, LatentClassModel
from .estimators.priors import MixturePrior
from .estimators.t_mixture import StudentMixture
from .estimators.validation import ConvergenceWarning, NotFittedError
from .selection import SelectionResult, select_model

__all__ = [
    "AssignmentPlot",
    "CategoricalHMM",
    "Chunks",
    "ConvergencePlot",
    "ConvergenceWarning",
    "EM",
    "EMExplorer",
    "FactorAnalysis",
    "FamilyExplorer",
    "FitSession",
    "GaussianHMM",
    "GaussianMixture",
    "HMMExplorer",
    "KMeans",
    "LatentClassModel",
    "LiveFit",
    "MixtureModel",
    "MixturePrior",
    "ModelExplorer",
    "ModelSelectionExplorer",
    "SelectionResult",
    "NotFittedError",
    "PoissonHMM",
    "MultinomialMixture",
    "PoissonMixture",
    "RestartGallery",
    "Restarts",
    "SpuriousSolutionWarning",
    "StandardErrors",
    "StudentMixture",
    "datasets",
    "enable_compilation_cache",
    "select_model",
]
__version__ = "0.1.0"

_WIDGETS = {"AssignmentPlot", "ConvergencePlot", "EMExplorer", "FitSession", "RestartGallery",
            "ModelExplorer", "ModelSelectionExplorer", "HMMExplorer", "FamilyExplorer",
            "ProfilePlot"}


def __getattr__(name):
    # The widgets import ipywidgets and matplotlib: load them on first use only.
    if name in _WIDGETS:
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'emwidgets' has no attribute {name!r}")


def enable_compilation_cache(directory: str | None = None) -> str:
    """Keep JAX's compiled programs in ``directory`` (a restarted kernel skips compilation).

    The cache is already on by default (``<user cache>/emwidgets/jax``; off with
    ``EMWIDGETS_COMPILATION_CACHE=0``; JAX's own configuration respected): call
    this to choose another directory, or to turn it on after all. Returns the
    directory used.
    """
    from ._cache import configure

    return configure(directory, force=True)
