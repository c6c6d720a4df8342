"""The prior of MAP estimation, in data units, with data-dependent defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..core import conjugate as core_priors
from ..core.covariance import COVARIANCE_TYPES
from ..core.layout import Scaling


@dataclass
class MixturePrior:
    """A conjugate prior for :class:`GaussianMixture` (MAP estimation by EM).

    weights ~ Dirichlet(weight_concentration); each mean given its covariance
    ~ N(mean, Sigma / shrinkage); each covariance ~ inverse-Wishart(dof, scale)
    (``full``; one shared for ``tied``), or each variance ~ inverse-gamma(dof / 2,
    scale / 2) (``diag``: one per feature; ``spherical``: one per component).
    These are the priors of Fraley & Raftery (2007), R's mclust. Any field left
    None takes mclust's data-dependent default (``priorControl``):

    ========================  ===============================================
    ``shrinkage``             0.01
    ``mean``                  the column means of X
    ``dof``                   n_features + 2
    ``scale``                 full/tied: cov(X) / K^(2/D); diag/spherical:
                              mean column variance / K^(2/D) (a scalar)
    ``weight_concentration``  1 (a flat prior on the weights; > 1 keeps
                              every weight away from 0)
    ========================  ===============================================

    ``scale`` may also be given: a (D, D) positive-definite matrix for
    full/tied, a positive (D,) vector or scalar for diag, a positive scalar for
    spherical, in data units (squared).
    """

    shrinkage: Optional[float] = None
    mean: Optional[Any] = None
    dof: Optional[float] = None
    scale: Optional[Any] = None
    weight_concentration: float = 1.0


def _default_scale(x: np.ndarray, cov_type: str, k: int) -> np.ndarray:
    d = x.shape[1]
    factor = float(k) ** (2.0 / d)
    mean_var = float(np.nanmean(np.nanvar(x, axis=0)))
    if cov_type in ("diag", "spherical"):
        value = mean_var / factor
        return np.full(d, value) if cov_type == "diag" else np.asarray(value)
    complete = x[np.isfinite(x).all(axis=1)]
    if len(complete) > d:
        c = np.atleast_2d(np.cov(complete, rowvar=False))
        if np.linalg.eigvalsh(c).min() > 1e-10 * np.trace(c) / d:
            return c / factor
    # Collinear or too few complete rows: an isotropic scale stays positive definite.
    return np.eye(d) * mean_var / factor


def resolve(prior, x: np.ndarray, cov_type: str, k: int) -> MixturePrior:
    """Fill the defaults from the data and check every field; data units."""
    if isinstance(prior, str) and prior == "default":
        prior = MixturePrior()
    if not isinstance(prior, MixturePrior):
        raise ValueError(
            f"Invalid value for 'prior': {prior!r}; pass None (maximum likelihood), 'default' or "
            "an emwidgets.MixturePrior."
        )
    d = x.shape[1]
    shrinkage = 0.01 if prior.shrinkage is None else float(prior.shrinkage)
    mean = np.nanmean(x, axis=0) if prior.mean is None else np.asarray(prior.mean, np.float64)
    dof = d + 2.0 if prior.dof is None else float(prior.dof)
    scale = (_default_scale(x, cov_type, k) if prior.scale is None
             else np.asarray(prior.scale, np.float64))
    alpha = float(prior.weight_concentration)
    if not (np.isfinite(shrinkage) and shrinkage >= 0):
        raise ValueError(
            f"MixturePrior.shrinkage must be a finite number >= 0, got {shrinkage}."
        )
    if mean.shape != (d,) or not np.isfinite(mean).all():
        raise ValueError(
            f"MixturePrior.mean must be {d} finite numbers (one per feature), "
            f"got shape {mean.shape}."
        )
    low = d - 1.0 if COVARIANCE_TYPES[cov_type].matrices else 0.0
    if not (np.isfinite(dof) and dof > low):
        raise ValueError(
            f"MixturePrior.dof must be > {low:g} for covariance_type={cov_type!r} "
            f"(a proper prior), got {dof}."
        )
    if not (np.isfinite(alpha) and alpha >= 1):
        raise ValueError(
            f"MixturePrior.weight_concentration must be >= 1 (so the posterior mode has positive "
            f"weights), got {alpha}."
        )
    if COVARIANCE_TYPES[cov_type].matrices:
        ok = (scale.shape == (d, d) and np.isfinite(scale).all() and np.allclose(scale, scale.T)
              and np.linalg.eigvalsh(scale).min() > 0)
        want = f"a symmetric positive-definite ({d}, {d}) matrix"
    elif cov_type == "diag":
        scale = np.broadcast_to(scale, (d,)).copy() if scale.ndim == 0 else scale
        ok = scale.shape == (d,) and np.isfinite(scale).all() and (scale > 0).all()
        want = f"{d} positive numbers"
    else:
        ok = scale.shape == () and np.isfinite(scale) and scale > 0
        want = "one positive number"
    if not ok:
        raise ValueError(f"MixturePrior.scale must be {want} for covariance_type={cov_type!r}.")
    return MixturePrior(shrinkage, mean, dof, scale, alpha)


def to_standardised(prior: MixturePrior, s: Scaling, dtype) -> core_priors.Prior:
    """The same prior for standardised data (x - shift) / scale, as traced arrays."""
    import jax.numpy as jnp

    def a(v):
        return jnp.asarray(v, dtype)

    return core_priors.Prior(
        weight_concentration=a(prior.weight_concentration),
        shrinkage=a(prior.shrinkage),
        mean=a((prior.mean - s.shift) / s.scale),
        dof=a(prior.dof),
        scale=a(prior.scale / s.scale**2),
    )
