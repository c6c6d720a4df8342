"""Conjugate priors for Gaussian mixtures: MAP estimation by EM.

The prior (Fraley & Raftery 2007, the priors of R's mclust) is

* weights ~ Dirichlet(alpha, ..., alpha);
* for each component, mean | Sigma ~ N(m0, Sigma / kappa), and the covariance
  from an inverse-Wishart IW(nu, Lambda) (``full``), one shared IW for all
  components (``tied``), an inverse-gamma IG(nu / 2, lambda_j / 2) per variance
  (``diag``) or IG(nu / 2, lambda / 2) per component (``spherical``).

EM then maximises the log posterior: the E-step is unchanged and the M-step
returns the posterior mode given the expected sufficient statistics, which is
the maximum-likelihood update on the data plus ``kappa`` pseudo-observations at
``m0`` and the prior scale added to the scatter (the per-type formulas are in
:mod:`covariance`). Because the scale is positive definite, no covariance can
collapse onto a point or a line. The traced objective is the log posterior per
sample, up to a constant that does not depend on the parameters.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from .covariance import CovarianceType


class Prior(NamedTuple):
    """Prior hyperparameters in standardised units; all traced (no recompiling).

    Attributes:
        weight_concentration: alpha (scalar, >= 1 so the mode is inside the simplex).
        shrinkage: kappa (scalar, >= 0): pseudo-observations at ``mean``.
        mean: m0, (D,).
        dof: nu (scalar).
        scale: Lambda (D, D) for full/tied, lambda (D,) for diag, a scalar
            for spherical.
    """

    weight_concentration: Any
    shrinkage: Any
    mean: Any
    dof: Any
    scale: Any


def posterior_mode(cov: CovarianceType, nk, s1, s2, prior: Prior, active):
    """(weights, means, covariances) maximising the expected complete log posterior.

    Args:
        nk: (K,) summed responsibilities; s1: (K, D) first moments; s2: (K, Q)
            summed quadratic features.
    """
    kappa = jnp.where(active, prior.shrinkage, 0.0)
    n_aug = nk + kappa
    means = (s1 + kappa[:, None] * prior.mean) / n_aug[:, None]
    s2_aug = s2 + kappa[:, None] * cov.quad_features(prior.mean)[None, :]
    covariances = cov.map_estimate(nk, n_aug, means, s2_aug, prior.scale, prior.dof, active)
    w = jnp.where(active, nk + prior.weight_concentration - 1.0, 0.0)
    return w / w.sum(), means, covariances


def log_prior(cov: CovarianceType, params, prior: Prior, active):
    """log p(weights, means, covariances) up to a constant (scalar)."""
    dev = params.means - prior.mean
    dirichlet = (prior.weight_concentration - 1.0) * jnp.where(
        active, jnp.log(jnp.where(active, params.weights, 1.0)), 0.0).sum()
    return dirichlet + cov.log_prior(params.precisions_cholesky, dev, prior.scale, prior.dof,
                                     prior.shrinkage, active)
