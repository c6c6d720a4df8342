"""Gaussian hidden Markov models: Baum-Welch on the same EM driver.

The E-step is the forward-backward algorithm in scaled form (each forward
vector normalised, the log of the normalisers summing to the log-likelihood),
run with ``lax.scan`` over time for every sequence at once: sequences of
different lengths are right-padded to one length with a mask. Emission
log-densities of every state at every step are one matrix product
``phi(X) @ W``, as for mixtures (see :mod:`gmm`), with the covariance types of
:mod:`covariance`. The M-step turns the expected counts into start and
transition probabilities and the state-weighted moments into Gaussians.

The objective is the log-likelihood per sample (time step), so ``tol`` means
what it means for mixtures; hmmlearn's ``tol`` is on the total
log-likelihood: ``tol_emwidgets = tol_hmmlearn / n_samples``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .covariance import COVARIANCE_TYPES
from .em import TRACING_QUICK, Data, Family, Health, sized_jit
from .gmm import (
    GMMParams,
    features,
    gaussian_vector_form,
    loglik_converged,
    m_step,
    natural_weights,
)
from .starts import STREAM_DIRICHLET, generator


class HMMParams(NamedTuple):
    """Attributes: startprob (S,), transmat (S, S), and the Gaussian emissions."""

    startprob: jax.Array
    transmat: jax.Array
    means: jax.Array
    covariances: jax.Array
    precisions_cholesky: jax.Array


class Sequences(NamedTuple):
    """Sequences right-padded to a common length.

    Attributes:
        x: (n_sequences, T, D) standardised samples (padding is zeros).
        mask: (n_sequences, T) 1 for a real step, 0 for padding.
    """

    x: jax.Array
    mask: jax.Array


class HMMHyper(NamedTuple):
    """Traced hyperparameters.

    Attributes:
        reg_covar: added to the covariances' diagonal.
        active: (S,) bool, the states in use, or None for all. A program compiled
            for S states fits any smaller number (the explorer's slider): the others
            start and stay with probability 0 (start, transitions into them) and
            emission density 0, so they never hold a step.
    """

    reg_covar: jax.Array
    active: jax.Array | None = None


def masked_log_prob(log_b, active):
    """Emission log-densities with the unused states at -inf (they hold no step)."""
    return log_b if active is None else jnp.where(active, log_b, -jnp.inf)


def emission_log_prob(cov_type: str, params: HMMParams, x):
    """(..., D) -> (..., S) log N(x | mu_s, Sigma_s)."""
    cov = COVARIANCE_TYPES[cov_type]
    s = params.means.shape[0]
    g = GMMParams(jnp.ones((s,), x.dtype), params.means, params.covariances,
                  params.precisions_cholesky)
    flat = x.reshape(-1, x.shape[-1])
    return (features(cov, flat) @ natural_weights(cov, g)).reshape(x.shape[:-1] + (s,))


def forward_backward(startprob, transmat, log_b, mask):
    """Scaled forward-backward on one padded sequence.

    Args:
        startprob (S,), transmat (S, S), log_b (T, S) emission log-densities,
        mask (T,) 1 for real steps.
    Returns:
        (log-likelihood, gamma (T, S) posteriors (0 on padding),
         xi_sum (S, S) expected transition counts).
    """
    top = jnp.max(log_b, axis=1, keepdims=True)
    b = jnp.exp(log_b - top)
    dtype = log_b.dtype
    # Elementwise products, not (1, S) @ (S, S) matrix products: under vmap over restarts
    # and sequences XLA ran those as a loop of tiny dots, 2.2x slower on a CPU (16 restarts x
    # 10 sequences x 1000 steps: 16.7 -> 7.5 ms). Unoptimised (a quickly compiled program,
    # em.TRACING_QUICK) the broadcasts are not fused and the products are faster (1.2 against
    # 1.8 ms on the geyser): that program keeps them.
    if TRACING_QUICK.get():
        def forward(alpha):
            return alpha @ transmat

        def backward(v):
            return transmat @ v
    else:
        def forward(alpha):
            return (alpha[:, None] * transmat).sum(0)

        def backward(v):
            return (transmat * v[None, :]).sum(1)

    def fwd(carry, inputs):
        alpha_prev, first = carry
        b_t, m_t = inputs
        pred = jnp.where(first, startprob, forward(alpha_prev))
        a = pred * b_t
        c = a.sum()
        alpha = jnp.where(m_t > 0, a / c, alpha_prev)
        c = jnp.where(m_t > 0, c, 1.0)
        return (alpha, jnp.bool_(False)), (alpha, c)

    s = startprob.shape[0]
    (_, _), (alpha, c) = lax.scan(fwd, (jnp.zeros((s,), dtype), jnp.bool_(True)), (b, mask))
    log_lik = (jnp.log(c) + top[:, 0] * mask).sum()

    def bwd(beta_next, inputs):
        b_next, c_next, m_next = inputs
        beta = jnp.where(m_next > 0, backward(b_next * beta_next) / c_next, 1.0)
        return beta, beta

    # beta_t from t = T-2 down to 0, using step t+1; beta_{T-1} = 1.
    ones = jnp.ones((s,), dtype)
    _, beta_head = lax.scan(bwd, ones, (b[1:], c[1:], mask[1:]), reverse=True)
    beta = jnp.concatenate([beta_head, ones[None]], axis=0)
    gamma = alpha * beta
    gamma = gamma / gamma.sum(axis=1, keepdims=True) * mask[:, None]
    # xi_t(i, j) = alpha_t(i) A(i, j) b_{t+1}(j) beta_{t+1}(j) / c_{t+1}
    w = (b[1:] * beta[1:]) / c[1:, None] * mask[1:, None]
    xi_sum = transmat * (alpha[:-1].T @ w)
    return log_lik, gamma, xi_sum


class HMMStats(NamedTuple):
    """Per-block sums over sequences of the forward-backward E-step.

    Attributes:
        moments: (S, P) state-weighted features phi(x) of every step.
        start: (S,) expected first states; trans: (S, S) expected transitions.
        log_lik: summed log-likelihood; count: steps (the objective is per step).
    """

    moments: jax.Array
    start: jax.Array
    trans: jax.Array
    log_lik: jax.Array
    count: jax.Array


class HMMContext(NamedTuple):
    params: HMMParams
    natural: jax.Array  # (P, S) emission log-densities are phi(x) @ natural
    active: jax.Array | None


@functools.lru_cache(maxsize=None)
def hmm_family(cov_type: str) -> Family:
    """Baum-Welch for a Gaussian HMM. Rows are whole sequences (``Data.x`` is
    :class:`Sequences`, ``Data.w`` a weight per sequence)."""
    cov = COVARIANCE_TYPES[cov_type]

    def prepare(params: HMMParams, hyper: HMMHyper):
        s = params.means.shape[0]
        g = GMMParams(jnp.ones((s,), params.means.dtype), params.means, params.covariances,
                      params.precisions_cholesky)
        return HMMContext(params, natural_weights(cov, g), hyper.active)

    def e_step(ctx: HMMContext, seqs: Sequences, w):
        n_seq, t_max, d = seqs.x.shape
        phi = features(cov, seqs.x.reshape(n_seq * t_max, d))
        log_b = masked_log_prob((phi @ ctx.natural).reshape(n_seq, t_max, -1), ctx.active)
        p = ctx.params
        ll, gamma, xi = jax.vmap(forward_backward, in_axes=(None, None, 0, 0))(
            p.startprob, p.transmat, log_b, seqs.mask)
        gamma = gamma * w[:, None, None]
        return HMMStats(gamma.reshape(n_seq * t_max, -1).T @ phi, gamma[:, 0].sum(0),
                        (xi * w[:, None, None]).sum(0), (ll * w).sum(),
                        (seqs.mask * w[:, None]).sum())

    def m_step_(ctx: HMMContext, stats: HMMStats, hyper: HMMHyper):
        d = ctx.params.means.shape[1]
        emissions, health = m_step(cov, stats.moments, hyper.reg_covar, d, hyper.active)
        trans = stats.trans
        new = HMMParams(
            startprob=stats.start / stats.start.sum(),
            transmat=trans / jnp.maximum(trans.sum(1, keepdims=True), jnp.finfo(trans.dtype).tiny),
            means=emissions.means, covariances=emissions.covariances,
            precisions_cholesky=emissions.precisions_cholesky,
        )
        ok = health.ok & jnp.isfinite(new.transmat).all() & jnp.isfinite(new.startprob).all()
        return new, Health(ok, health.component)

    return Family(prepare=prepare, e_step=e_step, m_step=m_step_,
                  objective=lambda ctx, stats, hyper: stats.log_lik / stats.count,
                  converged=loglik_converged, name=f"hmm/{cov_type}",
                  vector_form=gaussian_vector_form(cov_type))


def sequence_data(seqs: Sequences) -> Data:
    """The driver's data for sequences: one row per sequence, weight 1, one block."""
    return Data(seqs, jax.device_put(np.ones(seqs.x.shape[0], seqs.x.dtype)))


def viterbi(startprob, transmat, log_b, mask):
    """Most probable state path of one padded sequence: (log-probability, states (T,))."""
    log_a = jnp.log(transmat)

    def fwd(carry, inputs):
        delta_prev, first = carry
        lb, m = inputs
        scores = delta_prev[:, None] + log_a
        best_prev = jnp.argmax(scores, axis=0)
        delta = jnp.where(first, jnp.log(startprob) + lb, scores.max(0) + lb)
        delta = jnp.where(m > 0, delta, delta_prev)
        back = jnp.where(m > 0, best_prev, jnp.arange(delta.shape[0]))
        return (delta, jnp.bool_(False)), back

    s = startprob.shape[0]
    (delta, _), back = lax.scan(fwd, (jnp.zeros((s,), log_b.dtype), jnp.bool_(True)),
                                (log_b, mask))
    last = jnp.argmax(delta)

    def bwd(state, back_t):  # state at step t -> state at step t-1
        return back_t[state], state

    first_state, path = lax.scan(bwd, last, back[1:], reverse=True)
    return delta.max(), jnp.concatenate([first_state[None], path])


def dirichlet_draws(key_data, n_states: int, n_program: int | None = None):
    """hmmlearn's random start and transition probabilities, Dirichlet(1/S), on the host.

    One NumPy generator per restart, seeded by that restart's key, so a
    replayed restart draws the same. (JAX's Dirichlet sampler is a rejection
    loop whose compilation took longer than the rest of the initialisation.)

    With ``n_program`` > S (a masked program), the draws are those of S states
    padded with zeros: the extra states are never entered.

    Returns (startprob (R, P), transmat (R, P, P)) as float64 arrays.
    """
    alpha = np.full(n_states, 1.0 / n_states)
    p = n_states if n_program is None else n_program
    start = np.zeros((len(key_data), p))
    trans = np.zeros((len(key_data), p, p))
    for r, words in enumerate(np.asarray(key_data).reshape(len(key_data), -1)):
        g = generator(words, STREAM_DIRICHLET)
        start[r, :n_states] = g.dirichlet(alpha)
        trans[r, :n_states, :n_states] = g.dirichlet(alpha, size=n_states)
    return start, trans


def initial_params(cov_type: str, draw, data: Sequences, n_states: int, reg_covar, method: str,
                   kmeans_centers=None, startprob=None, transmat=None):
    """hmmlearn's start (0.3): start and transition probabilities drawn from a
    Dirichlet(1/S) prior (``startprob``, ``transmat``: see :func:`dirichlet_draws`),
    means from k-means (or random samples), every state with the data's
    covariance. The random draws make restarts differ even when k-means finds
    the same clusters every time."""
    cov = COVARIANCE_TYPES[cov_type]
    n_seq, t_max, d = data.x.shape
    flat, w = data.x.reshape(-1, d), data.mask.reshape(-1)
    if method == "kmeans":
        means = kmeans_centers
    else:  # distinct samples, drawn on the host
        means = flat[draw.indices]
    n = w.sum()
    mean = (flat * w[:, None]).sum(0) / n
    s2 = (features(cov, flat)[:, : cov.n_quad(d)] * w[:, None]).sum(0)
    covariances = cov.estimate(jnp.full((n_states,), n), jnp.broadcast_to(mean, (n_states, d)),
                               jnp.broadcast_to(s2, (n_states, s2.shape[0])), reg_covar)
    dtype = flat.dtype
    return HMMParams(
        startprob=startprob.astype(dtype), transmat=transmat.astype(dtype), means=means,
        covariances=covariances,
        precisions_cholesky=cov.precision_cholesky(covariances),
    )


@sized_jit(static_argnames=("cov_type", "method", "n_states"))
def init_batch(draws, data: Sequences, reg_covar, startprob, transmat, n_real=None, active=None,
               *,
               cov_type: str,
               method: str, n_states: int):
    """The driver's initial state for every restart: the Dirichlet draws
    ``startprob`` (R, S) and ``transmat`` (R, S, S) from :func:`dirichlet_draws`;
    ``draws`` (:class:`draws.InitDraws`) holds the k-means++ uniforms
    (``kmeans``) or the indices of the samples in the flattened sequences that
    are the initial means (``random``), all drawn on the host."""
    from .em import Data, init_state
    from .gmm import kmeans_tol_scaled, run_kmeans

    n_seq, t_max, d = data.x.shape
    flat = Data(data.x.reshape(-1, d), data.mask.reshape(-1))
    centers = draws.centers
    if method == "kmeans" and centers is None:
        tol = kmeans_tol_scaled(flat, jnp.asarray(1e-4, flat.x.dtype))
        centers = run_kmeans(draws.uniforms, flat, n_states, flat.x.shape[0], tol, active=active)
    params = jax.vmap(lambda dr, c, s0, a: initial_params(
        cov_type, dr, data, n_states, reg_covar, method, c, s0, a))(draws, centers, startprob,
                                                                    transmat)
    return init_state(params, n_real=n_real)


@functools.partial(jax.jit, static_argnames=("cov_type",))
def posteriors(params: HMMParams, data: Sequences, active=None, *, cov_type: str):
    """Per-sequence log-likelihoods (n_seq,) and posteriors (n_seq, T, S); states not
    ``active`` (a masked program's) get posterior 0."""
    log_b = masked_log_prob(emission_log_prob(cov_type, params, data.x), active)
    ll, gamma, _ = jax.vmap(forward_backward, in_axes=(None, None, 0, 0))(
        params.startprob, params.transmat, log_b, data.mask)
    return ll, gamma


@functools.partial(jax.jit, static_argnames=("cov_type",))
def decode(params: HMMParams, data: Sequences, *, cov_type: str):
    """Viterbi: per-sequence best-path log-probabilities and state paths (n_seq, T)."""
    log_b = emission_log_prob(cov_type, params, data.x)
    return jax.vmap(viterbi, in_axes=(None, None, 0, 0))(
        params.startprob, params.transmat, log_b, data.mask)
