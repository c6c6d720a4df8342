"""GaussianHMM: hidden Markov models with Gaussian emissions, fitted by Baum-Welch.

Parameter names follow hmmlearn where they exist (``n_components``,
``covariance_type``, ``n_iter``, ``startprob_``, ``transmat_``, ``means_``,
``covars_``), plus ``n_init`` and ``restarts_``: every restart runs at once on
the same EM driver as the mixtures. Two differences, on purpose:

* ``tol`` is on the log-likelihood **per sample** (time step), as for mixtures;
  hmmlearn's ``tol`` is on the total: ``tol = tol_hmmlearn / n_samples``.
* ``min_covar`` is added to the covariances' diagonal at every M-step (hmmlearn
  adds it at initialisation and uses a ``covars_prior`` in the M-step).

``init_params=""`` starts from the attributes already set (``startprob_``,
``transmat_``, ``means_``, ``covariances_``), as hmmlearn does.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import compare
from ..core import baum_welch, em, gmm, host_kmeans, layout, markov, starts
from ..core.covariance import COVARIANCE_TYPES
from . import validation
from .base import (
    SPURIOUS_POLICIES,
    LiveFit,
    Restarts,
    _implied_sd,
    _keys,
    _padded_key_data,
    _RestartModels,
    _restarts_from_state,
    _warn_spurious,
    _warn_stopped_short,
)
from .sequence import SequenceEstimator, _probabilities, _renormalised, pad_sequences


def _occupancy(startprob, transmat, n_steps: int, max_steps: int = 2000):
    """(R, S) expected fraction of the steps of an n-step chain spent in each state,
    mean_t startprob T^t (the chain's stationary distribution once it has mixed;
    steps beyond ``max_steps`` are taken at the last one)."""
    p = np.asarray(startprob, np.float64)
    t = np.asarray(transmat, np.float64)
    m = int(min(max(n_steps, 1), max_steps))
    total = np.zeros_like(p)
    for _ in range(m):
        total += p
        p = np.einsum("rs,rst->rt", p, t)
    total += (max(n_steps, 1) - m) * p
    return total / max(n_steps, 1)


# The live views' posteriors of every restart: one program per data shape, traced once.
_vmapped_posteriors = jax.jit(
    lambda params, seqs, hyper, cov_type: jax.vmap(
        lambda p: markov.posteriors(gmm.gaussian_component(cov_type), p, hyper, seqs)[1])(
            params),
    static_argnames="cov_type")


class GaussianHMM(_RestartModels, SequenceEstimator):
    """Gaussian hidden Markov model, every restart at once (Baum-Welch, jitted, vmapped).

    Fitted attributes: ``startprob_`` (S,), ``transmat_`` (S, S), ``means_``
    (S, D), ``covariances_`` (the type's shape), ``covars_`` (S, D, D, as
    hmmlearn), ``converged_``, ``n_iter_``, ``lower_bound_`` (log-likelihood
    per sample), ``restarts_``.

    ``spurious`` works as for :class:`~emwidgets.GaussianMixture`: a restart
    with a state whose covariance is at the ``min_covar`` floor, or whose
    expected occupancy is below its parameter count, is flagged and ranked
    after the regular ones (``'rank_last'``) or only flagged (``'allow'``).
    """

    covariance_types = tuple(COVARIANCE_TYPES)  # from the one registry
    masks_components = True  # (states beyond n_components masked: compile_for)

    def __init__(self, n_components=1, *, covariance_type="diag", min_covar=1e-3, n_iter=1000,
                 tol=1e-10, n_init=1, init_params="kmeans", random_state=None,
                 spurious="rank_last", accelerate="squarem", convergence="gap",
                 devices=None, dtype=None):
        self.dtype = dtype
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.n_iter = n_iter
        self.tol = tol
        self.accelerate = accelerate
        self.convergence = convergence
        self.devices = devices
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.spurious = spurious

    # -- data -----------------------------------------------------------------
    def _sequences(self, Xa, lengths, scaling):
        return pad_sequences((Xa - scaling.shift) / scaling.scale, lengths)

    def _check(self, Xa):
        validation.check_int("n_components", self.n_components, 1)
        validation.check_in("covariance_type", self.covariance_type, tuple(COVARIANCE_TYPES))
        validation.check_positive("tol", self.tol)
        validation.check_positive("min_covar", self.min_covar, allow_zero=True)
        validation.check_int("n_iter", self.n_iter, 1)
        validation.check_int("n_init", self.n_init, 1)
        validation.check_in("init_params", self.init_params, ("kmeans", "random", ""))
        validation.check_in("spurious", self.spurious, SPURIOUS_POLICIES)
        if len(Xa) < self.n_components:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = "
                             f"{self.n_components}, n_samples = {len(Xa)}.")

    # -- fitting ----------------------------------------------------------------
    def start(self, X, lengths=None, *, keys=None) -> LiveFit:
        Xa = self._validate_X(X, reset=not (self.init_params == "" and hasattr(self, "means_")))
        self._check(Xa)
        scaling = layout.fit_scaling(Xa)
        validation.check_scale(scaling.scale)
        scaling = layout.floor_scale(scaling, self.min_covar)
        seqs, _ = self._sequences(Xa, lengths, scaling)
        dtype = seqs.x.dtype
        reg = layout.to_device(self.min_covar / scaling.scale**2, dtype)
        keys = _keys(self.random_state, self.n_init) if keys is None else keys
        r, s = len(keys), self.n_components
        # A program for more states than used serves every smaller number (the explorer's
        # components slider); the extra ones are masked (GMMHyper.active).
        s_program = (s if self.init_params == ""  # starts from the fitted (exact-size) model
                     else max(s, getattr(self, "program_components", s)))
        active = None if s_program == s else layout.to_device(np.arange(s_program) < s)
        n_seq, t_max, d = seqs.x.shape
        # Small data: restarts padded to a power of two (em.restart_bucket), quick compilation.
        work = n_seq * t_max * s_program * (s_program + d * d + d + 1)
        r_program = r if self.init_params == "" else em.restart_bucket(r, work)
        # (restarts over the devices, every sequence on each)
        mesh = layout.restart_mesh(self.devices)
        if self.init_params != "":
            r_program = layout.round_up(r_program, mesh)
        elif r_program != layout.round_up(r_program, mesh):
            mesh = None  # (a given model: its restarts cannot be padded; one device)
        quick = em.quick_compile(work * r_program)
        if self.init_params == "":
            state = em.init_state(self._given_params(scaling, dtype, r))
        else:
            key_data = _padded_key_data(keys, r_program)
            startprob, transmat = baum_welch.dirichlet_draws(key_data, s, s_program)
            if self.init_params == "kmeans":
                draws = starts.InitDraws(uniforms=starts.seeding_uniforms(key_data, s_program,
                                                                          dtype))
                if quick:  # small data: k-means on the host
                    draws = starts.InitDraws(centers=host_kmeans.kmeans_centers(
                        draws.uniforms, np.asarray(seqs.x).reshape(-1, d),
                        np.asarray(seqs.mask).reshape(-1),
                        s_program, s))
            else:  # distinct samples, as indices into the flattened (padded) sequences
                valid = np.flatnonzero(np.asarray(seqs.mask).reshape(-1) > 0)
                draws = starts.InitDraws(
                    indices=valid[starts.distinct_indices(key_data, len(valid), s_program)])
            state = baum_welch.init_batch(draws, seqs, reg, layout.to_device(startprob, dtype),
                                          layout.to_device(transmat, dtype), np.int32(r), active,
                                          cov_type=self.covariance_type,
                                          method=self.init_params, n_states=s_program,
                                          quick=quick)
        run = em.EMRun(markov.markov_family(gmm.gaussian_component(self.covariance_type)),
                       n_seq, state, baum_welch.sequence_data(seqs), gmm.GMMHyper(reg, active),
                       layout.to_device(self.tol, dtype), max_iter=self.n_iter, quick=quick,
                       step=self._step(),
                       rule=self._rule(), mesh=mesh)
        return self._live_fit(run, scaling, keys, len(Xa))

    def _given_params(self, s: layout.Scaling, dtype, n_restarts):
        for name in ("startprob_", "transmat_", "means_", "covariances_"):
            if not hasattr(self, name):
                raise ValueError(f"init_params='' starts from the fitted attributes, but {name} is "
                                 "not set; set it or use init_params='kmeans'.")
        cov = COVARIANCE_TYPES[self.covariance_type]
        covs = jnp.asarray(np.asarray(self.covariances_) / s.scale**2, dtype)
        means = jnp.asarray((np.asarray(self.means_) - s.shift) / s.scale, dtype)
        p = baum_welch.MarkovParams(
            jnp.asarray(self.startprob_, dtype), jnp.asarray(self.transmat_, dtype),
            gmm.GMMParams(jnp.ones(len(means), dtype), means, covs, cov.precision_cholesky(covs)))
        return jax.tree.map(lambda a: jnp.broadcast_to(a, (n_restarts,) + a.shape), p)

    def _restarts(self, state, scaling, keys, n_samples=None) -> Restarts:
        d = state.params.emission.means.shape[-1]
        r = len(keys)  # the program may hold padding restarts after these
        p = jax.tree.map(lambda a: np.asarray(a, np.float64)[:r], state.params)
        s = self.n_components
        startprob, transmat, g = p.startprob, p.transmat, p.emission
        if g.means.shape[1] > s:  # a masked program's first s states (the others are unused)
            cov = COVARIANCE_TYPES[self.covariance_type]
            g = cov.first_components(g._replace(weights=startprob), s)
            startprob, transmat = g.weights, transmat[:, :s, :s]
        params = {
            "startprob": startprob, "transmat": transmat,
            "means": g.means * scaling.scale + scaling.shift,
            "covariances": g.covariances * scaling.scale**2,
        }
        report = sd = None
        if n_samples is not None:
            occupancy = _occupancy(startprob, transmat, n_samples)
            sd = _implied_sd(self.covariance_type, occupancy, params["means"],
                             params["covariances"])
            report = compare.spurious_report(
                self.covariance_type, occupancy * n_samples, params["covariances"], d,
                self.min_covar, scaling.scale**2 if sd is None else sd**2,
                float(np.finfo(np.asarray(state.params.emission.means).dtype).eps), "min_covar",
                feature_names=getattr(self, "_column_names", None))
        return _restarts_from_state(
            state, params, keys, -d * math.log(scaling.scale), report=report,
            shared=self._shared_params(),
            spurious_last=getattr(self, "spurious", "rank_last") == "rank_last",
            feature_scale=sd, tol=self.tol)

    def _live_posteriors(self, live: LiveFit):
        """Every restart's state posteriors now, for the live views: (R, N, S) over the
        real time steps of all sequences (in order), and those steps' rows (N, D) in data
        units."""
        seqs = live.run.data.x
        gamma = _vmapped_posteriors(live.run.state.params, seqs, live.run.hyper,
                                    cov_type=self.covariance_type)
        mask = np.asarray(seqs.mask) > 0
        # the real restarts (the program may hold padding after them), the real steps, and
        # the states in use (a masked program holds more)
        post = np.asarray(gamma, np.float64)[:len(live.keys)][:, mask][..., :self.n_components]
        X = np.asarray(seqs.x, np.float64)[mask] * live.scaling.scale + live.scaling.shift
        return post, X

    def _finish(self, live: LiveFit):
        r = self._restarts(live.run.state, live.scaling, live.keys, n_samples=live.n_samples)
        if r.best < 0:
            raise ValueError(f"Every one of the {r.n_restarts} restarts failed "
                             f"({next(m for m in r.messages if m)}); increase min_covar or reduce "
                             "n_components.")
        self.__dict__.update(self._restart_attributes(r, r.best))
        self.restarts_ = r
        if not self.converged_:
            validation.warn("The best restart did not converge: increase n_iter or tol.",
                          validation.ConvergenceWarning)
        _warn_spurious(r, "Reduce n_components, increase min_covar, or remove duplicate points "
                          "or constant columns.")
        _warn_stopped_short(r)
        return self

    def _restart_attributes(self, r, b: int) -> dict:
        # float64 copies of (maybe float32) probabilities: make each row sum to 1 in float64.
        return {"startprob_": _renormalised(r.params["startprob"][b]),
                "transmat_": _renormalised(r.params["transmat"][b]),
                "means_": r.params["means"][b], "covariances_": r.params["covariances"][b],
                "converged_": bool(r.converged[b]), "n_iter_": int(r.n_iter[b]),
                "lower_bound_": float(r.objective[b])}

    @property
    def covars_(self):
        """Covariance matrices (S, D, D) whatever the covariance type, as hmmlearn."""
        k, d = self.means_.shape
        with jax.enable_x64(True):
            dense = COVARIANCE_TYPES[self.covariance_type].dense(
                jnp.asarray(self.covariances_, jnp.float64), k, d)
        return np.array(dense, dtype=np.float64)

    # -- using a fitted model ---------------------------------------------------
    def _scoring_model(self, X, lengths):
        self._check_fitted()
        Xa = self._validate_X(X, reset=False)
        s = layout.fit_scaling(Xa)
        seqs, lengths = self._sequences(Xa, lengths, s)
        seqs = baum_welch.Sequences(jnp.asarray(seqs.x, jnp.float64),
                                    jnp.asarray(seqs.mask, jnp.float64))
        cov = COVARIANCE_TYPES[self.covariance_type]
        covs = jnp.asarray(np.asarray(self.covariances_) / s.scale**2, jnp.float64)
        means = jnp.asarray((self.means_ - s.shift) / s.scale, jnp.float64)
        params = baum_welch.MarkovParams(
            jnp.asarray(self.startprob_, jnp.float64), jnp.asarray(self.transmat_, jnp.float64),
            gmm.GMMParams(jnp.ones(len(means), jnp.float64), means, covs,
                          cov.precision_cholesky(covs)))
        # (standardised rows: a step's log-density in data units is d log(scale) lower)
        return (gmm.gaussian_component(self.covariance_type), params, gmm.GMMHyper(None, None),
                seqs, lengths, -self.n_features_in_ * math.log(s.scale))

    def standard_errors(self, X, lengths=None):
        """Standard errors of ``startprob_``, ``transmat_``, ``means_`` and
        ``covariances_`` on the sequences of X (the data the model was fitted on), from
        the observed information: the Hessian of the forward algorithm's log-likelihood
        by autodiff (float64), mapped to the parameters of ``restarts_.params`` (data
        units) by the delta method; a
        :class:`~emwidgets.estimators.information.StandardErrors`. Probabilities at
        0 (a transition never taken) are held fixed on the boundary, with error 0.

        Raises:
            ValueError: when the information matrix is singular: no standard errors exist.
        """
        from .information import Free, Symmetric

        self._check_fitted()
        cov = COVARIANCE_TYPES[self.covariance_type]
        with jax.enable_x64(True):
            component, fitted, hyper, seqs, _, _ = self._scoring_model(X, lengths)
            s = layout.fit_scaling(self._validate_X(X, reset=False))
            means, covs = (np.asarray(a, np.float64) for a in (fitted.emission.means,
                                                               fitted.emission.covariances))
            parts = {"means": Free(means),
                     "covariances": Symmetric(covs) if cov.matrices else Free(covs)}

            def emission_from(a):
                return gmm.GMMParams(jnp.ones(len(a["means"]), jnp.float64), a["means"],
                                     a["covariances"], cov.precision_cholesky(a["covariances"]))

            def shown(g):  # (data units, as restarts_.params)
                return {"means": g.means * s.scale + s.shift,
                        "covariances": g.covariances * s.scale**2}

            return self._chain_standard_errors(component, hyper, seqs, parts, emission_from,
                                               shown)

    def n_parameters(self) -> int:
        """hmmlearn's count: start probabilities, transitions, means, covariances."""
        s, d = self.means_.shape
        # (the mixture's count holds s - 1 weights: the start probabilities' number)
        return int(gmm.n_parameters(self.covariance_type, s, d)) + s * (s - 1)

    def sample(self, n_samples=1, random_state=None):
        """Draw one sequence: (X (n, D), states (n,)).

        The chain runs on the host in float64 from the fitted probabilities,
        renormalised (a model fitted in float32 has rows that sum to 1 only to
        float32 precision).
        """
        self._check_fitted()
        validation.check_int("n_samples", n_samples, 1)
        rng = np.random.default_rng(validation.seed_from(random_state if random_state is not None
                                                         else self.random_state))
        start = _probabilities(self.startprob_, "startprob_")
        trans = _probabilities(self.transmat_, "transmat_")
        start_cdf, trans_cdf = np.cumsum(start), np.cumsum(trans, axis=1)
        u = rng.random(n_samples)
        last = self.n_components - 1
        states = np.empty(n_samples, dtype=int)
        states[0] = min(int(np.searchsorted(start_cdf, u[0], side="right")), last)
        for t in range(1, n_samples):
            states[t] = min(int(np.searchsorted(trans_cdf[states[t - 1]], u[t], side="right")),
                            last)
        chol = np.linalg.cholesky(self.covars_)
        z = rng.standard_normal((n_samples, self.n_features_in_))
        X = np.asarray(self.means_, np.float64)[states] + np.einsum("nij,nj->ni", chol[states], z)
        return X, states
