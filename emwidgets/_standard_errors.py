"""Standard errors of a fitted Gaussian mixture, from the observed information.

The information is the Hessian of the observed-data log-likelihood at the
estimate (JAX autodiff, float64, :mod:`emwidgets.core.stderr`) in an
unconstrained parametrisation; the delta method maps it back to the weights,
means and covariances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class StandardErrors:
    """Standard errors of a fitted mixture, shaped like its attributes.

    Attributes:
        weights, means, covariances: standard errors, shaped like ``weights_``,
            ``means_`` and ``covariances_``.
        estimates: the (weights, means, covariances) they belong to.
        covariance: the full covariance matrix of all those parameters
            (flattened in that order), from the delta method.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    estimates: tuple
    covariance: np.ndarray
    n_samples: int

    def mean_covariances(self) -> np.ndarray:
        """(K, D, D) covariance matrix of each component's mean estimate."""
        k, d = self.means.shape
        start = k  # the weights come first, then the means row by row
        return np.stack([self.covariance[start + j * d: start + (j + 1) * d,
                                         start + j * d: start + (j + 1) * d] for j in range(k)])

    def intervals(self, level: float = 0.95) -> dict:
        """Wald intervals ``{name: (lower, upper)}`` at the given level.

        Normal approximations: for weights near 0 or 1 or small samples they
        can leave the parameter space; read them as rough.
        """
        from scipy.stats import norm

        z = norm.ppf(0.5 + level / 2)
        out = {}
        for name, est, se in zip(("weights", "means", "covariances"), self.estimates,
                                 (self.weights, self.means, self.covariances)):
            out[name] = (est - z * se, est + z * se)
        return out


def standard_errors_of(cov_type: str, weights, means, covariances, X) -> StandardErrors:
    """:class:`StandardErrors` of these parameters on data X (NaN: missing values).

    Raises ``ValueError`` (one sentence) when the information matrix is singular.
    """
    from .core import stderr as SE

    k, d = means.shape
    theta, info = SE.observed_information(cov_type, weights, means, covariances, X)
    eig = np.linalg.eigvalsh(0.5 * (info + info.T))
    if not np.isfinite(eig).all() or eig.min() <= 1e-10 * max(abs(eig).max(), 1e-300):
        raise ValueError(
            "The observed information matrix is singular (smallest eigenvalue "
            f"{eig.min():.3g}): a component may have collapsed or two components coincide, so "
            "standard errors do not exist here; reduce n_components or fit more data."
        )
    cov = SE.delta_covariance(cov_type, theta, np.linalg.inv(info), k, d)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    shapes = [np.shape(weights), np.shape(means), np.shape(covariances)]
    sizes = np.cumsum([int(np.prod(sh)) for sh in shapes])
    parts = np.split(se, sizes[:-1])
    return StandardErrors(
        weights=parts[0].reshape(shapes[0]), means=parts[1].reshape(shapes[1]),
        covariances=parts[2].reshape(shapes[2]), estimates=(weights, means, covariances),
        covariance=cov, n_samples=len(X))
