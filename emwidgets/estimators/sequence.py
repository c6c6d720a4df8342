"""Hidden Markov models: one sequence estimator over any component.

:class:`SequenceEstimator` is what every HMM shares: the chain's start and
transition probabilities around a component's emissions, fitted by the one
Baum-Welch program :func:`core.markov.markov_family` of that component, and
hmmlearn's surface (``fit(X, lengths)``, ``score``, ``score_samples``,
``predict_proba``, ``decode``, ``predict``, ``bic``, ``aic``; ``n_iter``,
``startprob_``, ``transmat_``), scored in float64 by the same forward-backward.
:class:`~emwidgets.GaussianHMM` is it over the Gaussian component;
:class:`FamilyHMM` over a mixture family's component: its rows are encoded,
validated and started by the mixture's own hooks, and the chain's start and
transition probabilities are drawn as hmmlearn does (Dirichlet(1/S)).
``tol`` is on the log-likelihood per step (hmmlearn's, on the total, is
``tol * n_samples``).
"""

from __future__ import annotations

import copy

import jax
import numpy as np

from ..core import baum_welch, em, layout, markov
from . import validation
from .base import (
    LiveFit,
    Restarts,
    _Estimator,
    _keys,
    _padded_key_data,
    _restarts_from_state,
    _warn_spurious,
    _warn_stopped_short,
)
from .mixture import _pad_components


def _split_lengths(n_samples: int, lengths):
    if lengths is None:
        lengths = [n_samples]
    try:
        given = np.asarray(lengths, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        given = np.array([np.nan])
    if given.size == 0 or not np.isfinite(given).all() or (given != np.round(given)).any():
        raise ValueError(f"Invalid value for 'lengths': {lengths!r}; pass whole numbers, one "
                         "length per sequence, adding up to len(X).")
    lengths = given.astype(int)
    if lengths.sum() != n_samples:
        raise ValueError(f"lengths sum to {lengths.sum()} but X has {n_samples} samples; "
                         "pass one length per sequence, in order, adding up to len(X).")
    if (lengths < 2).any():
        raise ValueError(f"Every sequence needs at least 2 steps, but lengths contains "
                         f"{int(lengths.min())}; drop or merge the short sequences.")
    return lengths


def pad_sequences(rows: np.ndarray, lengths):
    """(N, D) rows cut into sequences of ``lengths`` (checked), right-padded to a multiple
    of 16 steps: (:class:`core.hmm.Sequences` on the device, lengths)."""
    lengths = _split_lengths(len(rows), lengths)
    t_max = int(-(-lengths.max() // 16) * 16)
    dtype = layout.float_dtype()
    x = np.zeros((len(lengths), t_max, rows.shape[1]), dtype)
    mask = np.zeros((len(lengths), t_max), dtype)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for i, (s, n) in enumerate(zip(offsets, lengths)):
        x[i, :n] = rows[s: s + n]
        mask[i, :n] = 1
    return baum_welch.Sequences(layout.to_device(x), layout.to_device(mask)), lengths


def unpad(per_step, lengths) -> np.ndarray:
    """(n_seq, T, ...) per-step values of padded sequences -> (N, ...) in row order."""
    return np.concatenate([per_step[i, :n] for i, n in enumerate(lengths)])


def _renormalised(p):
    total = p.sum(axis=-1, keepdims=True)
    return np.where(total > 0, p / np.where(total > 0, total, 1.0), p)


def _probabilities(p, name: str) -> np.ndarray:
    """Rows of ``p`` as float64 probability vectors that sum to 1 to float64 precision."""
    p = np.asarray(p, dtype=np.float64)
    total = p.sum(axis=-1, keepdims=True)
    if not (np.isfinite(p).all() and (p >= 0).all() and (np.abs(total - 1) < 1e-4).all()):
        raise ValueError(f"{name} must hold probabilities (non-negative, each row summing to 1); "
                         "fit the model or set it to such values.")
    return p / total


class SequenceEstimator(_Estimator):
    """What every hidden Markov model shares (see the module's docstring). A subclass
    gives ``start`` and ``_scoring_model``."""

    @property
    def max_iter(self):
        return self.n_iter

    def fit(self, X, lengths=None):
        """Fit every restart; keep the one with the highest final log-likelihood."""
        self.start(X, lengths).finish()
        return self

    def fit_predict(self, X, lengths=None):
        return self.fit(X, lengths).predict(X, lengths)

    def replay(self, X, restart: int, lengths=None):
        """Fit restart ``restart`` of the last fit alone, from its own key (see
        :meth:`GaussianMixture.replay`)."""
        return super().replay(X, restart, lengths=lengths)

    def _check_fitted(self):
        super()._check_fitted()
        if not hasattr(self, "transmat_"):
            raise validation.NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet.")

    # -- using a fitted model ---------------------------------------------------
    def _scoring_model(self, X, lengths):
        """(component, :class:`baum_welch.MarkovParams`, hyper, sequences, lengths, the
        log-density offset of a step in data units) of the fitted model on X, in float64
        (called under ``jax.enable_x64``)."""
        raise NotImplementedError

    def score_samples(self, X, lengths=None):
        """(total log-likelihood, (N, S) state posteriors), as hmmlearn: one
        forward-backward, in float64."""
        with jax.enable_x64(True):
            component, params, hyper, seqs, lengths, offset = self._scoring_model(X, lengths)
            ll, gamma = (np.asarray(a, np.float64)
                         for a in markov.posteriors(component, params, hyper, seqs))
        return float(np.sum(ll)) + offset * lengths.sum(), unpad(gamma, lengths)

    def score(self, X, lengths=None) -> float:
        """Total log-likelihood of X (hmmlearn's meaning), by the forward algorithm."""
        return self.score_samples(X, lengths)[0]

    def predict_proba(self, X, lengths=None):
        """(N, S) posterior state probabilities (forward-backward)."""
        return self.score_samples(X, lengths)[1]

    def decode(self, X, lengths=None):
        """Viterbi: (log-probability of the best path, states (N,))."""
        with jax.enable_x64(True):
            component, params, hyper, seqs, lengths, offset = self._scoring_model(X, lengths)
            logp, paths = (np.asarray(a) for a in markov.decode(component, params, hyper, seqs))
        return float(np.sum(logp)) + offset * lengths.sum(), unpad(paths, lengths)

    def predict(self, X, lengths=None):
        """(N,) most probable state sequence (Viterbi)."""
        return self.decode(X, lengths)[1]

    def _chain_standard_errors(self, component, hyper, seqs, emission_parts: dict,
                               emission_from, emission_shown):
        """Standard errors of the chain's start and transition rows and the emissions
        (``emission_parts``: {name: part}; ``emission_from({name: array})`` -> the
        component's parameters; ``emission_shown(params)`` -> {name: array} as
        ``restarts_.params``) from the Hessian of the forward algorithm's log-likelihood of
        ``seqs``; called under ``jax.enable_x64``."""
        from .information import FamilyModel, Simplex, family_standard_errors

        chain = ("startprob", "transmat")
        parts = {"startprob": Simplex(self.startprob_), "transmat": Simplex(self.transmat_),
                 **emission_parts}

        def params_from(a):
            return baum_welch.MarkovParams(a["startprob"], a["transmat"], emission_from(
                {k: v for k, v in a.items() if k not in chain}))

        def shown(params):
            return {"startprob": params.startprob, "transmat": params.transmat,
                    **emission_shown(params.emission)}

        def log_likelihood(params):
            log_b = markov.log_emissions(component, params, hyper, seqs)
            ll, _, _ = jax.vmap(baum_welch.forward_backward, in_axes=(None, None, 0, 0))(
                params.startprob, params.transmat, log_b, seqs.mask)
            return ll.sum()

        return family_standard_errors(FamilyModel(parts, log_likelihood, params_from, shown))

    def bic(self, X, lengths=None) -> float:
        """-2 log L + p log n, n the rows (time steps) of X, as hmmlearn."""
        total, steps = self.score_samples(X, lengths)
        return -2 * total + self.n_parameters() * np.log(len(steps))

    def aic(self, X, lengths=None) -> float:
        return -2 * self.score(X, lengths) + 2 * self.n_parameters()


class FamilyHMM(SequenceEstimator):
    """An HMM over a mixture family's component: put first in the bases, before the
    mixture class whose hooks encode, start and describe the emissions."""

    masks_components = True  # (states beyond n_components masked: compile_for)

    def standard_errors(self, X, lengths=None):
        """Standard errors of ``startprob_``, ``transmat_`` and the emission parameters on
        the sequences of X (the data the model was fitted on), from the observed
        information: the Hessian of the forward algorithm's log-likelihood by autodiff
        (float64), mapped to the parameters of ``restarts_.params`` by the delta method; a
        :class:`~emwidgets.estimators.information.StandardErrors`. Probabilities at 0
        (a transition never taken) are held fixed on the boundary, with error 0.

        Raises:
            ValueError: when the information matrix is singular (two states alike, or one
                never visited): no standard errors exist.
        """
        import jax.numpy as jnp

        self._check_fitted()
        s = self.n_components
        with jax.enable_x64(True):
            component, _, hyper, seqs, _, _ = self._scoring_model(X, lengths)
            self.weights_ = np.full(s, 1.0 / s)  # (the family's parts read one; an HMM has none)
            try:
                emission = {k: v for k, v in self._free_parts().items() if k != "weights"}
            finally:
                del self.weights_
            return self._chain_standard_errors(
                component, hyper, seqs, emission,
                lambda a: self._params_from({**a, "weights": jnp.ones(s, jnp.float64)}),
                lambda e: {k: v for k, v in self._param_dict(e).items() if k != "weights"})

    _emissions = None  # core.discrete.Emissions, set by the subclass

    def start(self, X, lengths=None, *, keys=None) -> LiveFit:
        self._check_common()
        rows = self._encode(X, reset=True)
        s = self.n_components
        if len(rows) < s:
            raise ValueError(f"n_samples={len(rows)} should be >= n_components={s}.")
        seqs, lengths = pad_sequences(rows, lengths)
        keys = _keys(self.random_state, self.n_init) if keys is None else keys
        r = len(keys)
        # A program for more states than used serves every smaller number (compile_for:
        # a model-selection grid); the extra states start and stay with probability 0.
        s_program = max(s, getattr(self, "program_components", s))
        n_seq, t_max, p = seqs.x.shape
        work = n_seq * t_max * s_program * (s_program + p + 1)
        mesh = layout.restart_mesh(getattr(self, "devices", None))  # restarts over the devices
        r_program = layout.round_up(em.restart_bucket(r, work), mesh)
        key_data = _padded_key_data(keys, r_program)
        emission = self._initial_params(key_data, rows, np.ones(len(rows)), s)
        if s_program > s:
            emission = _pad_components(emission, s_program)
        emission = emission._replace(weights=np.ones_like(emission.weights))
        startprob, transmat = baum_welch.dirichlet_draws(key_data, s, s_program)
        if self.startprob_init is not None:
            given = _stochastic(self.startprob_init, (s,), "startprob_init")
            startprob = np.broadcast_to(np.pad(given, (0, s_program - s)), startprob.shape)
        if self.transmat_init is not None:
            given = _stochastic(self.transmat_init, (s, s), "transmat_init")
            transmat = np.broadcast_to(np.pad(given, (0, s_program - s)), transmat.shape)
        hyper = self._hyper(s_program)
        if s_program > s:
            hyper = hyper._replace(active=layout.to_device(np.arange(s_program) < s))
        dtype = layout.float_dtype()
        params = baum_welch.MarkovParams(startprob, transmat, emission)
        state = em.host_init_state(jax.tree.map(lambda a: np.asarray(a, dtype), params),
                                   n_real=r)
        run = em.EMRun(markov.markov_family(self._emissions), n_seq, state,
                       baum_welch.sequence_data(seqs),
                       hyper, layout.to_device(self.tol, dtype), max_iter=self.n_iter,
                       quick=em.quick_compile(work * r_program), step=self._step(),
                       rule=self._rule(), mesh=mesh)
        return self._live_fit(run, None, keys, len(rows))

    def _restarts(self, state, scaling, keys, n_samples=None) -> Restarts:
        r, s = len(keys), self.n_components  # (a masked program's first s states)
        p = jax.tree.map(lambda a: np.asarray(a, np.float64)[:r], state.params)
        params = {"startprob": p.startprob[:, :s], "transmat": p.transmat[:, :s, :s],
                  **{k: v[:, :s] for k, v in self._param_dict(p.emission).items()
                     if k != "weights"}}
        return _restarts_from_state(state, params, keys, 0.0, tol=self.tol)

    def _finish(self, live: LiveFit):
        r = self._restarts(live.run.state, None, live.keys)
        if r.best < 0:
            raise ValueError(f"Every one of the {r.n_restarts} restarts failed "
                             f"({next(m for m in r.messages if m)}); reduce n_components.")
        b = r.best
        self.startprob_ = _renormalised(r.params["startprob"][b])
        self.transmat_ = _renormalised(r.params["transmat"][b])
        self.__dict__.update(self._fitted(
            {**r.params, "weights": np.ones((r.n_restarts, self.n_components))}, b))
        del self.weights_
        self.converged_ = bool(r.converged[b])
        self.n_iter_ = int(r.n_iter[b])
        self.lower_bound_ = float(r.objective[b])
        self.restarts_ = r
        _warn_spurious(r, "Refit with more restarts or fewer states.")
        _warn_stopped_short(r)
        return self

    def restart(self, restart: int):
        """The fitted model of restart ``restart`` of the last fit (a copy: the best one's
        attributes are ``self``'s)."""
        r = int(restart)
        self._check_fitted()
        other = copy.copy(self)
        p = self.restarts_.params
        other.__dict__.update(self._fitted(
            {**p, "weights": np.ones((len(p["startprob"]), self.n_components))}, r))
        other.startprob_ = _renormalised(p["startprob"][r])
        other.transmat_ = _renormalised(p["transmat"][r])
        other.__dict__.pop("weights_", None)
        return other

    def _scoring_model(self, X, lengths):
        self._check_fitted()
        rows = self._encode(X, reset=False)
        seqs, lengths = pad_sequences(rows, lengths)
        _, emission, hyper = self._scoring(np.ones(self.n_components))
        dtype = layout.float_dtype()
        params = baum_welch.MarkovParams(layout.to_device(self.startprob_, dtype),
                                         layout.to_device(self.transmat_, dtype), emission)
        return self._emissions, params, hyper, seqs, lengths, 0.0

    def sample(self, n_samples=1, random_state=None):
        """Draw one sequence: (rows, states (n_samples,))."""
        self._check_fitted()
        validation.check_int("n_samples", n_samples, 1)
        rng = np.random.default_rng(validation.seed_from(random_state))
        start = _probabilities(self.startprob_, "startprob_")
        trans = _probabilities(self.transmat_, "transmat_")
        states = np.empty(n_samples, dtype=int)
        states[0] = rng.choice(len(start), p=start / start.sum())
        for t in range(1, n_samples):
            row = trans[states[t - 1]]
            states[t] = rng.choice(len(row), p=row / row.sum())
        return self._sample_rows(states, rng), states

    def n_parameters(self) -> int:
        s = len(self.startprob_)
        # the mixture's count less its s - 1 free weights: the emissions alone
        return (s - 1) + s * (s - 1) + super().n_parameters() - (s - 1)


def _stochastic(p, shape, name: str) -> np.ndarray:
    p = np.asarray(p, np.float64)
    if p.shape != shape or not np.isfinite(p).all() or (p < 0).any() or (
            np.abs(p.sum(-1) - 1) > 1e-6).any():
        raise ValueError(f"{name} must be an array of shape {shape} of probabilities, each row "
                         "summing to 1.")
    return p
