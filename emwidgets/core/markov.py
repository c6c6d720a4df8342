"""Hidden Markov models over any component: ``markov_family(component)``.

An HMM is a mixture whose component labels form a Markov chain: the E-step
is forward-backward (:func:`baum_welch.forward_backward`) instead of independent
responsibilities, and the M-step of the emissions is the component's own,
fed with state-weighted sums instead of responsibility-weighted ones. So the
Gaussian HMM (:func:`gmm.gaussian_component`), an HMM over Poisson counts or over
categorical symbols (:mod:`discrete`) are one program each of this one function:
nothing of the component is rewritten.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .accel import VectorForm, by_field
from .baum_welch import HMMStats, MarkovParams, Sequences, forward_backward, viterbi
from .em import Family, Health
from .family import Component
from .gmm import MixtureStats, loglik_converged


def log_emissions(emissions: Component, params: MarkovParams, hyper, seqs: Sequences):
    """(n_seq, T, S) emission log-densities of every step."""
    n_seq, t_max, p = seqs.x.shape
    flat = seqs.x.reshape(-1, p)
    return emissions.log_joint(params.emission, hyper, flat).reshape(n_seq, t_max, -1)


def _normalise_rows(a):
    return a / jnp.maximum(a.sum(-1, keepdims=True), jnp.finfo(a.dtype).tiny)


@functools.lru_cache(maxsize=None)
def markov_family(emissions: Component) -> Family:
    """Baum-Welch over ``emissions``; rows are whole sequences (:func:`hmm.sequence_data`)."""

    def e_step(ctx, seqs: Sequences, w):
        params, hyper = ctx
        n_seq, t_max, p = seqs.x.shape
        log_b = log_emissions(emissions, params, hyper, seqs)
        ll, gamma, xi = jax.vmap(forward_backward, in_axes=(None, None, 0, 0))(
            params.startprob, params.transmat, log_b, seqs.mask)
        gamma = gamma * w[:, None, None]
        flat = seqs.x.reshape(-1, p)
        feats = (jnp.concatenate([flat, jnp.ones_like(flat[:, :1])], axis=1)
                 if emissions.features is None else emissions.features(flat))
        return HMMStats(gamma.reshape(n_seq * t_max, -1).T @ feats, gamma[:, 0].sum(0),
                        (xi * w[:, None, None]).sum(0), (ll * w).sum(),
                        (seqs.mask * w[:, None]).sum())

    def m_step(ctx, stats: HMMStats, hyper):
        params = ctx[0]
        emission, health = emissions.m_step(
            (params.emission, hyper), MixtureStats(stats.moments, stats.log_lik, stats.count),
            hyper)
        emission = emission._replace(weights=jnp.ones_like(emission.weights))
        new = MarkovParams(_normalise_rows(stats.start), _normalise_rows(stats.trans), emission)
        ok = health.ok & jnp.isfinite(new.transmat).all() & jnp.isfinite(new.startprob).all()
        return new, Health(ok, health.component)

    return Family(prepare=lambda params, hyper: (params, hyper), e_step=e_step, m_step=m_step,
                  objective=lambda ctx, stats, hyper: stats.log_lik / stats.count,
                  converged=loglik_converged, name=f"markov/{emissions.name}",
                  vector_form=_vector_form(emissions))


def _vector_form(emissions: Component):
    """Start and transition rows as simplices, the emissions' own form (core/accel.py)."""
    if emissions.kinds is None:
        return None
    # (The emission's weights are held at 1, unused: "free" keeps them there, where a
    # simplex would make them 1/S and take log S off every step's log-likelihood.)
    emission = by_field({**dict(emissions.kinds), "weights": "free"}, emissions.complete)

    def complete(params, hyper):  # (the hyper of an HMM over a family is the family's)
        if emission.complete is None:
            return params
        return params._replace(emission=emission.complete(params.emission, hyper))

    return VectorForm(lambda p: MarkovParams("simplex", "simplex", emission.kinds(p.emission)),
                      complete)


@functools.partial(jax.jit, static_argnums=0)
def posteriors(emissions: Component, params: MarkovParams, hyper, seqs: Sequences):
    """Per-sequence log-likelihoods (n_seq,) and state posteriors (n_seq, T, S)."""
    log_b = log_emissions(emissions, params, hyper, seqs)
    ll, gamma, _ = jax.vmap(forward_backward, in_axes=(None, None, 0, 0))(
        params.startprob, params.transmat, log_b, seqs.mask)
    return ll, gamma


@functools.partial(jax.jit, static_argnums=0)
def decode(emissions: Component, params: MarkovParams, hyper, seqs: Sequences):
    """Viterbi: per-sequence best-path log-probabilities and state paths (n_seq, T)."""
    log_b = log_emissions(emissions, params, hyper, seqs)
    return jax.vmap(viterbi, in_axes=(None, None, 0, 0))(
        params.startprob, params.transmat, log_b, seqs.mask)
