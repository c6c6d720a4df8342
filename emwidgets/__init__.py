"""emwidgets: the EM algorithm, fast in JAX and explorable in JupyterLab."""

from ._validation import ConvergenceWarning, NotFittedError
from .estimators import GaussianMixture, KMeans, LiveFit, Restarts

__all__ = [
    "ConvergenceWarning",
    "GaussianMixture",
    "KMeans",
    "LiveFit",
    "NotFittedError",
    "Restarts",
]
__version__ = "0.1.0"
