"""Hidden Markov models' inference: forward-backward, Viterbi, padded sequences, starts.

The E-step is the forward-backward algorithm in scaled form (each forward
vector normalised, the log of the normalisers summing to the log-likelihood),
run with ``lax.scan`` over time for every sequence at once: sequences of
different lengths are right-padded to one length with a mask. The EM program of
an HMM over any component is :func:`markov.markov_family`; this module holds what
it runs and the Gaussian HMM's start (hmmlearn's).

The objective is the log-likelihood per sample (time step), so ``tol`` means
what it means for mixtures; hmmlearn's ``tol`` is on the total
log-likelihood: ``tol_emwidgets = tol_hmmlearn / n_samples``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .covariance import COVARIANCE_TYPES
from .em import TRACING_QUICK, Data, sized_jit
from .gmm import GMMParams, features
from .starts import STREAM_DIRICHLET, generator


class MarkovParams(NamedTuple):
    """Attributes: startprob (S,), transmat (S, S), emission: the component's
    parameters of S states (their mixture weights are 1 and unused)."""

    startprob: Any
    transmat: Any
    emission: Any


class Sequences(NamedTuple):
    """Sequences right-padded to a common length.

    Attributes:
        x: (n_sequences, T, D) standardised samples (padding is zeros).
        mask: (n_sequences, T) 1 for a real step, 0 for padding.
    """

    x: jax.Array
    mask: jax.Array


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
    emission = GMMParams(jnp.ones((n_states,), dtype), means, covariances,
                         cov.precision_cholesky(covariances))
    return MarkovParams(startprob.astype(dtype), transmat.astype(dtype), emission)


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
