"""Mixtures of counts and of categories: Poisson, multinomial and latent class families.

Both are exponential families whose log-density is linear in a feature vector
of the row, as for Gaussians (:mod:`gmm`)::

    log w_k + log p(x | k) = t(x) @ W[:, k] + h(x)

* Poisson, one rate per component and column: t(x) = [x, 1],
  W = [log lambda_k ; log w_k - sum_d lambda_kd], h(x) = -sum_d log x_d!.
* Multinomial (count vectors: bag-of-words documents), word probabilities p_k:
  t(x) = x, W = log p_k, plus log w_k, h(x) = log n! - sum_d log x_d! with n the
  row's total (the number of trials is the row's own, not a parameter).
* Categorical (latent class analysis), item j with L_j levels: t(x) is the
  one-hot coding of the answers (all zeros for an item not answered), W the
  log response probabilities, h = 0. A missing answer adds nothing to any
  class's log-density, so EM runs over the observed answers exactly (the
  answer's probabilities marginalise to 1), with no imputation.

The E-step of all rows of a block is one product ``t(x) @ W``; its statistics
are the responsibility-weighted features ``r.T @ [t(x), 1]``, summed by the
driver. Probabilities and rates are floored at ``FLOOR`` before their log, so
that a zero rate or a class that never gives an answer is a very negative
number, not ``0 * -inf = NaN``; the floor (1e-19 in float32) changes no
estimate visibly.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from .accel import by_field
from .em import Family, Health
from .family import Component
from .gmm import MixtureStats, loglik_converged, responsibilities


def _floor(dtype):
    return jnp.sqrt(jnp.finfo(dtype).tiny)


class PoissonParams(NamedTuple):
    """Attributes: weights (K,), rates (K, D)."""

    weights: jax.Array
    rates: jax.Array


class MultinomialParams(NamedTuple):
    """Attributes: weights (K,), probabilities (K, D): each component's probabilities of
    the D categories (words), summing to 1."""

    weights: jax.Array
    probabilities: jax.Array


class CategoricalParams(NamedTuple):
    """Attributes: weights (K,), probabilities (K, L): the response probabilities of
    every level of every item, items one after the other (see ``DiscreteHyper.items``)."""

    weights: jax.Array
    probabilities: jax.Array


class DiscreteHyper(NamedTuple):
    """Traced constants.

    Attributes:
        active: (K,) bool, the components in use (a program compiled for K serves
            fewer, as for Gaussians), or None for all.
        items: (L, J) one-hot map of each level to its item (categorical only).
    """

    active: jax.Array | None = None
    items: jax.Array | None = None


def _log_weights(weights, active):
    lw = jnp.log(jnp.maximum(weights, _floor(weights.dtype)))
    return lw if active is None else jnp.where(active, lw, -jnp.inf)


def _normalised_weights(nk, active):
    w = nk if active is None else jnp.where(active, nk, 0.0)
    return w / w.sum()


# ----------------------------------------------------------------------------
# Poisson
# ----------------------------------------------------------------------------

def poisson_log_joint(params: PoissonParams, hyper: DiscreteHyper, x):
    """(B, D) counts -> (B, K) log w_k + log Poisson(x | lambda_k)."""
    lam = jnp.maximum(params.rates, _floor(params.rates.dtype))
    const = _log_weights(params.weights, hyper.active) - lam.sum(1)
    return x @ jnp.log(lam).T + const[None, :] - gammaln(x + 1.0).sum(1, keepdims=True)


def mixture_family(component: Component) -> Family:
    """A mixture of ``component``: the E-step is the responsibilities of its
    ``log_joint``, the statistics their sums times its features ([x, 1] by default).
    (The Gaussian mixture keeps its own fused family, :func:`gmm.gmm_family`, with
    priors and missing values.)"""
    log_joint = component.log_joint

    def e_step(ctx, x, w):
        params, hyper = ctx
        resp, lse = responsibilities(log_joint(params, hyper, x), w)
        feats = (jnp.concatenate([x, jnp.ones_like(x[:, :1])], 1)
                 if component.features is None else component.features(x))
        return MixtureStats(resp.T @ feats, (lse * w).sum(), w.sum())

    kinds = component.kinds
    return Family(prepare=lambda params, hyper: (params, hyper), e_step=e_step,
                  m_step=component.m_step,
                  objective=lambda ctx, stats, hyper: stats.log_lik / stats.count,
                  converged=loglik_converged, name=component.name,
                  vector_form=None if kinds is None else by_field(dict(kinds),
                                                                  component.complete))


def _poisson_m_step(ctx, stats: MixtureStats, hyper: DiscreteHyper):
    params = ctx[0]
    nk = stats.moments[:, -1]
    rates = stats.moments[:, :-1] / jnp.maximum(nk, _floor(nk.dtype))[:, None]
    rates = jnp.where(nk[:, None] > 0, rates, params.rates)  # an empty component stays put
    new = PoissonParams(_normalised_weights(nk, hyper.active), rates)
    ok = jnp.isfinite(rates).all() & jnp.isfinite(new.weights).all()
    return new, Health(ok, jnp.int32(-1))


@functools.lru_cache(maxsize=None)
def poisson_family() -> Family:
    """A mixture of independent Poisson counts, one rate per component and column."""
    return mixture_family(POISSON)


# ----------------------------------------------------------------------------
# Multinomial (count vectors)
# ----------------------------------------------------------------------------

def multinomial_log_joint(params: MultinomialParams, hyper: DiscreteHyper, x):
    """(B, D) count vectors -> (B, K) log w_k + log Multinomial(x | row total, p_k)."""
    logp = jnp.log(jnp.maximum(params.probabilities, _floor(params.probabilities.dtype)))
    coef = gammaln(x.sum(1, keepdims=True) + 1.0) - gammaln(x + 1.0).sum(1, keepdims=True)
    return x @ logp.T + _log_weights(params.weights, hyper.active)[None, :] + coef


def _multinomial_m_step(ctx, stats: MixtureStats, hyper: DiscreteHyper):
    params = ctx[0]
    nk = stats.moments[:, -1]
    counts = stats.moments[:, :-1]
    totals = counts.sum(1, keepdims=True)
    probs = jnp.where(totals > 0, counts / jnp.where(totals > 0, totals, 1.0),
                      params.probabilities)  # a component with no count stays put
    new = MultinomialParams(_normalised_weights(nk, hyper.active), probs)
    ok = jnp.isfinite(probs).all() & jnp.isfinite(new.weights).all()
    return new, Health(ok, jnp.int32(-1))


@functools.lru_cache(maxsize=None)
def multinomial_family() -> Family:
    """A mixture of multinomials: count vectors (documents' word counts) by component."""
    return mixture_family(MULTINOMIAL)


# ----------------------------------------------------------------------------
# Categorical (latent class analysis)
# ----------------------------------------------------------------------------

def categorical_log_joint(params: CategoricalParams, hyper: DiscreteHyper, x):
    """(B, L) one-hot answers -> (B, K) log w_k + sum of the answers' log probabilities."""
    logp = jnp.log(jnp.maximum(params.probabilities, _floor(params.probabilities.dtype)))
    return x @ logp.T + _log_weights(params.weights, hyper.active)[None, :]


def normalise_per_item(counts, items):
    """(K, L) non-negative counts -> probabilities summing to 1 within each item; an
    item with no observed answer in a class gets uniform probabilities."""
    per_item = counts @ items  # (K, J)
    levels = items.sum(0)  # (J,)
    denom = per_item @ items.T  # (K, L): the total of each level's item
    uniform = (1.0 / levels) @ items.T
    return jnp.where(denom > 0, counts / jnp.where(denom > 0, denom, 1.0), uniform[None, :])


def _categorical_m_step(ctx, stats: MixtureStats, hyper: DiscreteHyper):
    nk = stats.moments[:, -1]
    probs = normalise_per_item(stats.moments[:, :-1], hyper.items)
    new = CategoricalParams(_normalised_weights(nk, hyper.active), probs)
    ok = jnp.isfinite(probs).all() & jnp.isfinite(new.weights).all()
    return new, Health(ok, jnp.int32(-1))


@functools.lru_cache(maxsize=None)
def categorical_family() -> Family:
    """Latent class analysis: each class a product of categorical distributions."""
    return mixture_family(CATEGORICAL)


POISSON = Component(poisson_log_joint, _poisson_m_step, "poisson",
                    (("weights", "simplex"), ("rates", "log")))
# Latent classes' probabilities are a simplex per item, not per row: extrapolated as
# logs, then normalised within each item (the family's ``complete``, with the hyper's items).
CATEGORICAL = Component(categorical_log_joint, _categorical_m_step, "categorical",
                        (("weights", "simplex"), ("probabilities", "log")),
                        lambda p, hyper: p._replace(
                            probabilities=normalise_per_item(p.probabilities, hyper.items)))
MULTINOMIAL = Component(multinomial_log_joint, _multinomial_m_step, "multinomial",
                        (("weights", "simplex"), ("probabilities", "simplex")))
