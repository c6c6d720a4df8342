"""GaussianMixture: scikit-learn's estimator over the JAX EM engine.

It takes scikit-learn's parameter names, defaults and semantics and sets the
same fitted attributes, plus ``restarts_``: every restart's final objective,
iteration count, convergence status, trace, parameters, random key and
degeneracy report (:class:`emwidgets.Restarts`).

All ``n_init`` restarts run in one compiled program (``jax.vmap``); a fit can
also be advanced a few iterations at a time for live views with
:meth:`GaussianMixture.start` (``fit`` is ``start`` run to the end).
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from .. import compare
from ..core import em, gmm, host_kmeans, layout, observed, starts, stream
from ..core.covariance import COVARIANCE_TYPES, covariance_shape
from . import information, priors, validation
from .base import (
    SPURIOUS_POLICIES,
    ConvergenceWarning,
    LiveFit,
    Restarts,
    _implied_sd,
    _padded_key_data,
    _RestartModels,
    _restarts_from_state,
    _warn_spurious,
    _warn_stopped_short,
)
from .information import StandardErrors
from .kmeans import _kmeans_layout
from .mixture import (
    LikelihoodScoring,
    MixtureEstimator,
    Problem,
    ProgramPlan,
    check_sample_weight,
)

# Gaussian mixture
# ---------------------------------------------------------------------------

# Scoring (predict, score, bic...) as one compiled program per shape, not op by op.
_weighted_log_prob = jax.jit(gmm.weighted_log_prob, static_argnums=0)
_observed_log_prob = jax.jit(observed.observed_log_prob, static_argnums=0)
_impute = jax.jit(observed.impute, static_argnums=(0, 6))


class _GMMScaling:
    """Map mixture parameters between data units and standardised units (a scalar scale,
    or per-column factors with ``standardize=True``: covariances then scale by the outer
    product of the factors, precisions' Cholesky factors by row)."""

    @staticmethod
    def factors(s: layout.Scaling, matrices: bool):
        """(means', covariances', Cholesky factors') multipliers from standardised units
        to data units."""
        f = np.asarray(s.factor, np.float64)
        if f.ndim == 0:
            return f, f**2, f
        return f, (np.outer(f, f) if matrices else f**2), (f[:, None] if matrices else f)

    @staticmethod
    def to_data(p: gmm.GMMParams, s: layout.Scaling, cov_type: str = "full") -> gmm.GMMParams:
        m, c, pc = _GMMScaling.factors(s, COVARIANCE_TYPES[cov_type].matrices)
        return gmm.GMMParams(
            weights=p.weights,
            means=np.asarray(p.means, np.float64) * m + s.shift,
            covariances=np.asarray(p.covariances, np.float64) * c,
            precisions_cholesky=np.asarray(p.precisions_cholesky, np.float64) / pc,
        )

    @staticmethod
    def to_std(p: gmm.GMMParams, s: layout.Scaling, cov_type: str = "full") -> gmm.GMMParams:
        m, c, pc = _GMMScaling.factors(s, COVARIANCE_TYPES[cov_type].matrices)
        return gmm.GMMParams(
            weights=p.weights,
            means=(p.means - s.shift) / m,
            covariances=p.covariances / c,
            precisions_cholesky=p.precisions_cholesky * pc,
        )


class GaussianMixture(_RestartModels, LikelihoodScoring, MixtureEstimator):
    """Gaussian mixture fitted by EM, every restart at once.

    Parameters follow :class:`sklearn.mixture.GaussianMixture`, but the defaults fit to
    the maximum where EM crawls: ``accelerate='squarem'`` (SQUAREM cycles of three EM
    maps, Varadhan & Roland 2008), ``convergence='gap'`` (stop when Aitken's estimate of
    the distance left to the limit is below ``tol`` per sample, floored at the
    objective's rounding, and no parameter moves by more than 1e-6 relative in a map),
    ``tol=1e-10`` and ``max_iter=1000``. ``convergence='change'`` with ``tol=1e-3`` and
    ``accelerate=None`` is scikit-learn's rule (the absolute change of the mean
    per-sample log-likelihood). A streamed fit (``fit`` on a file or
    :class:`~emwidgets.Chunks`) runs plain EM maps, one pass each, whatever
    ``accelerate`` says. ``init_params`` is
    one of ``kmeans``, ``k-means++``, ``random``, ``random_from_data``;
    ``means_init`` may also be (n_init, n_components, n_features): one start per restart.
    ``weights_init``, ``means_init``, ``precisions_init`` override the
    initialisation. ``dtype`` (every estimator's): None computes in float64 on a CPU
    and in float32 on a GPU or TPU; "float32" or "float64" chooses. Each fit keeps its
    precision and leaves JAX's global x64 setting as it was.

    Beyond scikit-learn:

    * ``missing='em'`` fits data with NaN entries by EM over the observed
      values (conditional Gaussians per missing pattern, every covariance
      type); the objective is then the observed-data log-likelihood.
      :meth:`impute` fills the gaps. With the default ``missing='raise'`` a
      NaN is an error. An iteration costs about that of complete-data EM with
      M x K components, M the number of distinct missing patterns (at most
      the number of rows; 31 for 20% random gaps in 5 features).
    * ``prior`` (``'default'`` or a :class:`MixturePrior`) turns maximum
      likelihood into MAP estimation: the M-step returns the posterior mode
      and the objective (``lower_bound_``, traces) is the log posterior per
      sample, up to a constant. The prior's scale keeps every covariance
      positive definite, so ``reg_covar`` is not used.
    * ``spurious='rank_last'`` (default): a restart that ends on a spurious
      maximum — a component whose covariance sits at the floor (smallest
      eigenvalue, in each column's own units, at most 10 x (``reg_covar`` + the
      float type's rounding level)) or that holds too few points to estimate its
      covariance (full d + 1, diag and spherical 2, tied 1) — is flagged in
      ``restarts_`` and ranked after every regular restart, so the fitted
      attributes come from the best regular one; when every restart is
      spurious the best of them is kept, flagged, with a
      :class:`SpuriousSolutionWarning`. ``spurious='allow'`` flags but ranks
      by log-likelihood alone (scikit-learn's choice, which keeps the highest
      lower bound whatever it is). The rules are in :mod:`emwidgets.compare`.
    * ``standardize=True`` fits the model to standardised columns (each centred and
      divided by its standard deviation, as ``make_pipeline(StandardScaler(), ...)``
      would) and reports it in data units: ``means_``, ``covariances_``, ``score``,
      ``predict`` and the traces take and give the data's own units. Full, tied and
      diagonal mixtures are the same family in either units, so what changes is the
      start (k-means distances, no longer ruled by the widest column) and
      ``reg_covar``, which is then in standardised units. Spherical components are not
      spherical in data units (diag is that family with free variances), and a prior is
      in data units: neither combines with it.

    * ``covariance_type='factor'`` with ``n_factors=q``: a mixture of factor analysers,
      each covariance low rank plus diagonal, ``L_k L_k' + diag(psi_k)`` with ``q``
      factors (Ghahramani & Hinton 1996): for many columns (the digits' 64 pixels) it
      needs ``D q + D - q (q - 1) / 2`` numbers a component instead of ``D (D + 1) / 2``.
      The M-step is one EM step of the factor model on each component's scatter (a
      generalised EM step: the likelihood never falls); SQUAREM extrapolates the loadings
      and the log noise variances. ``covariances_`` are the full matrices,
      ``loadings_`` (K, D, q) and ``noise_variance_`` (K, D) their parts (the loadings
      unique up to a rotation of the factors, so no standard errors). Not yet with
      ``missing='em'``, a prior, ``standardize`` or ``precisions_init``.

    Memory: besides the data (N x D), one E-step holds about
    ``block_size * (2 R K + P)`` numbers (P = D (D + 1) / 2 + D + 1), with
    ``block_size`` chosen so this stays near 2**22 numbers (16 MiB in float32),
    independent of N; no (R, N, K, D) array is formed.

    Fitted attributes: ``weights_``, ``means_``, ``covariances_``,
    ``precisions_``, ``precisions_cholesky_``, ``converged_``, ``n_iter_``,
    ``lower_bound_``, ``lower_bounds_``, ``n_features_in_``,
    ``feature_names_in_`` (from a DataFrame) and ``restarts_``. After a fit on a
    DataFrame, ``predict``, ``score`` and the other methods take a wider frame holding
    those columns and use them by name (the frame an explorer was given).
    """

    init_methods = gmm.INIT_METHODS
    #: The covariance types, from the one registry (emwidgets.core.covariance).
    covariance_types = tuple(COVARIANCE_TYPES)

    _estimator_type = "DensityEstimator"

    #: Its programs always carry the mask of the fitted components (MixtureEstimator).
    masks_components = True

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-10, reg_covar=1e-6,
                 max_iter=1000, n_init=1, init_params="kmeans", weights_init=None,
                 means_init=None, precisions_init=None, random_state=None, missing="raise",
                 prior=None, spurious="rank_last", accelerate="squarem", convergence="gap",
                 devices=None, dtype=None, standardize=False, n_factors=None):
        self.dtype = dtype
        self.standardize = standardize
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.n_factors = n_factors
        self.tol = tol
        self.accelerate = accelerate
        self.convergence = convergence
        self.devices = devices
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.missing = missing
        self.prior = prior
        self.spurious = spurious

    @property
    def _core_cov(self) -> str:
        """The covariance type of the programs: ``"factor/q"`` for a mixture of factor
        analysers (:func:`emwidgets.core.covariance.factor_type`)."""
        return (f"factor/{self.n_factors}" if self.covariance_type == "factor"
                else self.covariance_type)

    @property
    def _host_cov(self) -> str:
        """The covariance type of the fitted attributes: a factor model's covariances are
        full matrices (its loadings in ``loadings_``, ``noise_variance_``)."""
        return "full" if self.covariance_type == "factor" else self.covariance_type

    # -- scikit-learn protocol ------------------------------------------------
    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(estimator_type="density_estimator", target_tags=TargetTags(required=False),
                    input_tags=InputTags())

    # -- fitting ----------------------------------------------------------------
    def _check_X(self, X, reset: bool):
        """X with NaN allowed where ``missing='em'``; otherwise the error names the option."""
        return self._validate_X(X, reset=reset, allow_nan=self.missing == "em", nan_hint=(
            "pass missing='em' to fit by EM over the observed values, or drop or impute those "
            "rows."))

    # The hooks of MixtureEstimator.start (the one fitting pipeline).
    def _check_settings(self):
        validation.check_in("missing", self.missing, ("raise", "em"))
        validation.check_in("spurious", self.spurious, SPURIOUS_POLICIES)

    def _problem(self, X, sample_weight) -> Problem:
        """Standardised rows (a missing value at its column's mean, 0: the initialisation
        sees mean-imputed data, EM the observed values), their missing-value patterns, the
        scaled regularisation and prior."""
        Xa = self._check_X(X, reset=True)
        check_parameters(self, Xa)
        k, (n, d) = self.n_components, Xa.shape
        weights = None if sample_weight is None else check_sample_weight(sample_weight, n)
        scaling = getattr(self, "_given_scaling", None) or (
            layout.standardising_scaling(Xa, weights) if self.standardize
            else layout.fit_scaling(Xa, weights))
        validation.check_scale(np.min(scaling.factor))
        validation.check_scale(np.max(scaling.factor))
        # (A prior, not reg_covar, regularises MAP estimates, and it scales with the data.)
        scaling = layout.floor_scale(scaling, self.reg_covar if self.prior is None else 0.0)
        seen = ~np.isnan(Xa)
        extra = {}
        if self.missing == "em":
            pattern, patterns = observed.encode_patterns(seen)
            # (nearby pattern counts share one program)
            extra.update(pattern=pattern, patterns=observed.pad_patterns(patterns))
        self._observed_per_row = float(np.average(seen.sum(axis=1), weights=weights))
        self._log_factor_per_row = float(np.average(scaling.log_factor(seen), weights=weights))
        dtype = layout.float_dtype()
        extra["reg"] = layout.to_device(self.reg_covar / scaling.scale**2, dtype)
        extra["prior"] = None
        if self.prior is not None:
            self._prior = priors.resolve(self.prior, Xa, self._host_cov, k)
            extra["prior"] = priors.to_standardised(self._prior, scaling, dtype)
        rows = (np.where(seen, Xa, scaling.shift) - scaling.shift) / scaling.factor
        stats = COVARIANCE_TYPES[self._host_cov].n_quad(d) + d + 1
        return Problem(rows, weights, scaling, stats,
                       n if weights is None else float(weights.sum()), extra)

    def _block_width(self, problem: Problem, n_restarts: int, n_components: int) -> int:
        patterns = len(problem.extra.get("patterns", [None]))
        return 2 * n_restarts * n_components * patterns + problem.stats

    def _check_plan(self, problem: Problem, plan: ProgramPlan):
        patterns = problem.extra.get("patterns")
        check_memory(self, *problem.rows.shape, plan.n_restarts, plan.n_components,
                           None if patterns is None else len(patterns))

    def _active(self, plan: ProgramPlan):
        """The program's components that are fitted (a program for more serves fewer)."""
        return layout.to_device(np.arange(plan.n_components) < self.n_components)

    def _initial_state(self, problem: Problem, plan: ProgramPlan, data: em.Data, keys):
        n, d = problem.rows.shape
        k_program, r_program = plan.n_components, plan.n_restarts
        dtype = data.x.dtype
        user = self._user_init(problem.scaling, dtype)
        if user.means is not None and user.means.ndim == 3:  # one start a restart: padded too
            pad = r_program - user.means.shape[0]
            user = user._replace(means=jnp.concatenate([user.means] + [user.means[-1:]] * pad)
                                 if pad > 0 else user.means)
        km_group, km_block = _kmeans_layout(r_program, data.x.shape[0], plan.block_size,
                                            k_program, d)
        draws = starts.for_method(self.init_params, _padded_key_data(keys, r_program), n,
                                  data.x.shape[0], k_program, dtype)
        if self.init_params == "kmeans" and plan.quick:  # small data: k-means on the host
            draws = starts.InitDraws(centers=host_kmeans.kmeans_centers(
                draws.uniforms, data.x, data.w, k_program, self.n_components))
        state = gmm.init_batch(draws, data, problem.extra["reg"], user, self._active(plan),
                               problem.extra["prior"], np.int32(len(keys)),
                               cov_type=self._core_cov, method=self.init_params,
                               n_components=k_program, block_size=plan.block_size, state=True,
                               kmeans_group_size=km_group, kmeans_block_size=km_block,
                               quick=plan.quick)
        return state, layout.to_device(self.tol, dtype)

    def _model(self, problem: Problem, plan: ProgramPlan, data: em.Data):
        reg, prior, active = problem.extra["reg"], problem.extra["prior"], self._active(plan)
        if self.missing != "em":
            return gmm.gmm_family(self._core_cov), gmm.GMMHyper(reg, active, prior), data
        rows = np.zeros(data.x.shape[0], np.int32)
        rows[:problem.rows.shape[0]] = problem.extra["pattern"]
        data = em.Data(observed.Rows(data.x, layout.to_device(rows)), data.w)
        hyper = gmm.GMMHyper(reg, active, prior, layout.to_device(problem.extra["patterns"]))
        return observed.missing_family(self._host_cov), hyper, data

    def _stream_options(self) -> dict:
        return {"missing": self.missing == "em",
                "reg_floor": self.reg_covar if self.prior is None else 0.0}

    def _stream_model(self, first, init, live0):
        missing = self.missing == "em"
        scaling, d = live0.scaling, first.sample.shape[1]
        k_program = live0.run.state.params.means.shape[1]
        r_program = live0.run.state.status.shape[0]
        stats = COVARIANCE_TYPES[self._host_cov].n_quad(d) + d + 1
        width = 2 * r_program * k_program + stats
        hyper, known = live0.run.hyper, None
        if missing:
            # Every pattern of the source (the sample's may be fewer), in the order and
            # padding of the in-memory fit; a chunk's rows are looked up by their keys.
            self._observed_per_row = first.observed_per_row
            patterns = observed.pad_patterns(observed.encode_patterns(first.patterns)[1])
            known = stream.pattern_keys(first.patterns)
            hyper = hyper._replace(patterns=layout.to_device(patterns))
            width = 2 * r_program * k_program * len(patterns) + stats
            family = observed.missing_family(self._host_cov)
        else:
            family = gmm.gmm_family(self._core_cov)
        return family, hyper, width, functools.partial(
            _chunk_data, scaling=scaling, known=known)

    def _user_init(self, s: layout.Scaling, dtype) -> gmm.UserInit:
        cov = COVARIANCE_TYPES[self._host_cov]
        as_j = lambda a: None if a is None else jnp.asarray(a, dtype)  # noqa: E731
        means = (None if self.means_init is None
                 else (np.asarray(self.means_init) - s.shift) / s.factor)
        pc = None
        if self.precisions_init is not None:
            pc = cov.from_precisions(jnp.asarray(np.asarray(self.precisions_init), dtype)) * (
                jnp.asarray(_GMMScaling.factors(s, cov.matrices)[2], dtype))
        return gmm.UserInit(as_j(self.weights_init), as_j(means), pc)

    def _restart_attributes(self, restarts, b: int) -> dict:
        """The fitted attributes of restart ``b``."""
        p = restarts.params
        # In float64 on the host: precisions of wide-ranged data stay finite.
        pc = np.asarray(p["precisions_cholesky"][b], np.float64)
        n_iter = int(restarts.n_iter[b])
        return {"weights_": p["weights"][b], "means_": p["means"][b],
                "covariances_": p["covariances"][b],
                "precisions_cholesky_": p["precisions_cholesky"][b],
                "precisions_": (pc @ np.swapaxes(pc, -1, -2)
                                if COVARIANCE_TYPES[self._host_cov].matrices
                                else pc**2),
                **({} if "factors" not in p else {
                    "loadings_": p["factors"][b][..., :-1],
                    "noise_variance_": p["factors"][b][..., -1]}),
                "converged_": bool(restarts.converged[b]), "n_iter_": n_iter,
                "lower_bound_": (float(restarts.objective[b]) if self.max_iter > 0
                                 else -np.inf),
                "lower_bounds_": list(restarts.trace[b, :n_iter])}

    def _restarts(self, state, scaling, keys, n_samples=None) -> Restarts:
        d = state.params.means.shape[-1]
        # Log-densities change units by -log(scale) per observed value.
        offset = (-getattr(self, "_observed_per_row", d) * math.log(scaling.scale)
                  if scaling.columns is None else
                  -getattr(self, "_log_factor_per_row", float(np.log(scaling.factor).sum())))
        r = len(keys)  # the restarts; the program may hold padding after them
        p = jax.tree.map(lambda a: np.asarray(a)[:r], state.params)
        factors = None
        if self.covariance_type == "factor":  # [loadings | noise variances], data units
            packed = np.asarray(p.covariances, np.float64)
            loadings, psi = packed[..., :-1], packed[..., -1]
            dense = loadings @ np.swapaxes(loadings, -1, -2) + psi[..., None] * np.eye(d)
            # (the program's precision factor is [P | c], see core.covariance: a true
            # Cholesky factor of the precision, on the host)
            chol = np.linalg.cholesky(dense)
            pc = np.swapaxes(np.tril(np.linalg.inv(chol)), -1, -2)  # (exactly triangular)
            p = p._replace(covariances=dense, precisions_cholesky=pc)
            factors = np.concatenate([loadings * scaling.scale, psi[..., None]
                                      * scaling.scale**2], axis=-1)[:, :self.n_components]
        p = _GMMScaling.to_data(p, scaling, self._host_cov)
        p = COVARIANCE_TYPES[self._host_cov].first_components(p, self.n_components)
        params = {
            "weights": np.asarray(p.weights, np.float64),
            "means": np.asarray(p.means, np.float64),
            "covariances": np.asarray(p.covariances, np.float64),
            "precisions_cholesky": np.asarray(p.precisions_cholesky, np.float64),
            **({} if factors is None else {"factors": factors}),
        }
        report = None
        sd = _implied_sd(self._host_cov, params["weights"], params["means"],
                         params["covariances"])
        if n_samples is not None:
            covs, variance = params["covariances"], scaling.scale**2 if sd is None else sd**2
            if scaling.columns is not None:  # judged in the units the model is defined in
                factors = _GMMScaling.factors(scaling, COVARIANCE_TYPES[self._host_cov]
                                              .matrices)[1]
                covs, variance = covs / factors, variance / scaling.factor**2
            report = compare.spurious_report(
                self._host_cov, params["weights"] * n_samples, covs, d,
                0.0 if self.prior is not None else self.reg_covar, variance,
                float(np.finfo(np.asarray(state.params.means).dtype).eps),
                "rounding" if self.prior is not None else "reg_covar",
                feature_names=getattr(self, "_column_names", None))
        return _restarts_from_state(
            state, params, keys, offset, report=report, shared=self._shared_params(),
            spurious_last=getattr(self, "spurious", "rank_last") == "rank_last",
            feature_scale=sd, tol=self.tol)

    def _finish(self, live: LiveFit):
        state = live.run.state
        restarts = self._restarts(state, live.scaling, live.keys, n_samples=live.n_samples)
        if restarts.best < 0:
            first = next(m for m in restarts.messages if m)
            remedy = ("pass a prior with a larger scale" if self.prior is not None else
                      f"increase reg_covar (now {self.reg_covar:g}) or pass prior='default'")
            raise ValueError(
                f"Every one of the {restarts.n_restarts} restarts collapsed ({first}); {remedy}, "
                "reduce n_components, or remove duplicate points."
            )
        b = restarts.best
        self._scaling = live.scaling
        self.__dict__.update(self._restart_attributes(restarts, b))
        self.restarts_ = restarts
        if not self.converged_ and self.max_iter > 0:
            validation.warn(
                "Best performing initialization did not converge. Try different init parameters, "
                "or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning)
        _warn_spurious(restarts, (
            "Reduce n_components, pass a prior with a larger scale, or remove duplicate points."
            if self.prior is not None else
            "Reduce n_components, pass prior='default', increase reg_covar, or remove duplicate "
            "points or constant columns."))
        _warn_stopped_short(restarts)
        return self

    # -- using a fitted model ---------------------------------------------------
    def _fitted_params64(self) -> gmm.GMMParams:
        """The fitted parameters in standardised units, float64 (call inside x64 mode)."""
        # NumPy arithmetic on the host (eager jnp operations each compile a program).
        p = gmm.GMMParams(*(np.asarray(a, np.float64) for a in (
            self.weights_, self.means_, self.covariances_, self.precisions_cholesky_)))
        return _GMMScaling.to_std(p, self._scaling, self._host_cov)

    def _log_joint(self, X):
        """(N, K) log(w_k) + log N(x | mu_k, Sigma_k) in data units.

        With ``missing='em'``, rows with NaN get the density of their
        observed values, log w_k + log N(x_o | mu_k,o, Sigma_k,oo).
        """
        Xa = self._check_X(X, reset=False)
        s = self._scaling
        z = (Xa - s.shift) / s.factor
        n_observed = (~np.isnan(Xa)).sum(axis=1)
        # In float64 whatever the fit's precision, row by row independent of
        # the batch: predictions do not depend on which other rows are passed.
        with jax.enable_x64(True):
            p = self._fitted_params64()
            if (n_observed == Xa.shape[1]).all():
                lp = _weighted_log_prob(self._host_cov, p, z)
            else:
                lp = _observed_log_prob(self._host_cov, p, *observed.split_rows(z))
            return np.asarray(lp) - (n_observed * math.log(s.scale) if s.columns is None
                                     else s.log_factor(~np.isnan(Xa)))[:, None]

    def impute(self, X, n_imputations: Optional[int] = None, random_state=None):
        """Fill the NaN entries of X under the fitted mixture.

        Without ``n_imputations``: each missing entry becomes its conditional
        expectation given the row's observed values, E[x_m | x_o] =
        sum_k P(k | x_o) (mu_k,m + Sigma_k,mo Sigma_k,oo^-1 (x_o - mu_k,o)).
        With ``n_imputations=m``: an (m, N, D) array of draws from the
        conditional distribution (a component drawn from P(k | x_o), then the
        missing values from its conditional Gaussian), for multiple imputation.
        Observed entries are returned unchanged; a DataFrame comes back as a
        DataFrame (single imputation). Works for any fitted model, also one
        fitted on complete data.
        """
        self._check_fitted()
        Xa = self._validate_X(X, reset=False, allow_nan=True)
        if n_imputations is not None:
            validation.check_int("n_imputations", n_imputations, 1)
        s = self._scaling
        with jax.enable_x64(True):  # float64 arrays: convert inside the context
            rows = observed.split_rows((Xa - s.shift) / s.factor)
            key = (None if n_imputations is None
                   else jax.random.key(validation.seed_from(random_state)))
            out = _impute(self._host_cov, self._fitted_params64(), *rows, key,
                          n_imputations)
            out = np.where(np.isnan(Xa), np.asarray(out) * s.factor + s.shift, Xa)
        if n_imputations is None and hasattr(X, "columns") and hasattr(X, "index"):
            import pandas as pd

            return pd.DataFrame(out, index=X.index, columns=X.columns)
        return out

    def sample(self, n_samples=1):
        """Draw samples: returns (X (n_samples, D), labels (n_samples,))."""
        self._check_fitted()
        validation.check_int("n_samples", n_samples, 1)
        self._n_sampled = getattr(self, "_n_sampled", 0) + 1
        seed = validation.seed_from(self.random_state) if self.random_state is not None else None
        key = jax.random.fold_in(jax.random.key(validation.seed_from(seed)), self._n_sampled)
        p = jax.tree.map(lambda a: jnp.asarray(a, jnp.result_type(float)), gmm.GMMParams(
            self.weights_, self.means_, self.covariances_, self.precisions_cholesky_))
        x, labels = gmm.sample(key, p, self._host_cov, n_samples)
        return np.asarray(x, np.float64), np.asarray(labels)

    def n_parameters(self) -> int:
        return gmm.n_parameters(self._core_cov, self.n_components, self.n_features_in_)

    def _live_assignments(self, live: LiveFit, rows) -> dict:
        """Every restart's assignment of the data's rows ``rows`` (indices) now, for the
        live views: ``labels``, ``uncertainty`` (R, n) and ``X`` (n, D) in data units;
        with missing values ``X`` has NaN where a value is missing, ``filled`` (R, n, D)
        each restart's imputation and ``missing`` (n, D) the mask."""
        return _live_assignments(live, rows, self._core_cov)

    def _live_density(self, live: LiveFit, restart: int, bins, n_bins: int) -> np.ndarray:
        """(n_bins, n_components) restart ``restart``'s responsibilities summed per bin of
        the plotted plane over every row (``bins``: one bin index per row of the padded
        data), for the explorer's density image of large data."""
        params = jax.tree.map(lambda a: a[restart], live.run.state.params)
        counts = gmm.binned_responsibilities(params, live.run.data, bins,
                                             cov_type=self._core_cov, n_bins=n_bins)
        return np.asarray(counts, np.float64)[:, :self.n_components]

    @staticmethod
    def program_work(n: int, d: int, k_program: int, n_init: int) -> float:
        """Numbers one EM iteration handles in a program of ``k_program`` components (the
        explorer's choice between one masked program and exact-size ones)."""
        return n * k_program * (d * d + d + 1) * em.restart_bucket(n_init, 1.0)

    def standard_errors(self, X, sample_weight=None) -> StandardErrors:
        """Standard errors of ``weights_``, ``means_`` and ``covariances_`` on data X.

        From the observed information (autodiff, float64) by the delta method, as for
        every estimator (:func:`~emwidgets.estimators.information.family_standard_errors`).
        ``X``: the data it was fitted on; with ``missing='em'`` its NaN entries count as
        missing (the information of the observed values: gaps widen the errors).

        Raises:
            ValueError: when the information matrix is singular (a collapsed
                component, coinciding components): no standard errors exist.
        """
        self._check_fitted()
        if self.covariance_type == "factor":
            raise ValueError("Standard errors of a mixture of factor analysers are not "
                             "available: its loadings are identified only up to a rotation "
                             "of the factors, so the information matrix is singular.")
        Xa = self._check_X(X, reset=False)
        return _standard_errors(self, Xa, check_sample_weight(sample_weight, len(Xa)))


def _standard_errors(est, Xa, w) -> StandardErrors:
    """:meth:`GaussianMixture.standard_errors` of fitted ``est`` on rows ``Xa``, weights ``w``:
    the observed-data log-likelihood (of the observed values of incomplete rows) in the free
    coordinates of weights, means and covariances."""
    from jax.scipy.special import logsumexp

    ct = est.covariance_type
    cov = COVARIANCE_TYPES[ct]
    with jax.enable_x64(True):  # (the data and parameters in float64 from the start)
        x = np.asarray(Xa, np.float64)
        rows = observed.split_rows(x) if np.isnan(x).any() else None
        w = jnp.asarray(w, jnp.float64)

        def log_likelihood(p):
            lp = (gmm.weighted_log_prob(ct, p, x) if rows is None
                  else observed.observed_log_prob(ct, p, *rows))
            return (w * logsumexp(lp, axis=1)).sum()

        covs = np.asarray(est.covariances_, np.float64)
        parts = {"weights": information.Simplex(est.weights_),
                 "means": information.Free(est.means_),
                 "covariances": (information.Symmetric(covs) if cov.matrices
                                 else information.Free(covs))}
        return information.family_standard_errors(information.FamilyModel(
            parts, log_likelihood,
            lambda a: gmm.GMMParams(a["weights"], a["means"], a["covariances"],
                                    cov.precision_cholesky(a["covariances"])),
            lambda p: {"weights": p.weights, "means": p.means, "covariances": p.covariances}))


def check_parameters(est, X):
    """Every setting of a GaussianMixture ``est`` checked against the rows ``X`` (its
    starts' shapes included), each failure one sentence: before a fit, and before the
    first fit of a model-selection grid."""
    validation.check_int("n_components", est.n_components, 1)
    validation.check_in("covariance_type", est.covariance_type,
                        tuple(COVARIANCE_TYPES) + ("factor",))
    _check_factors(est, X.shape[1])
    validation.check_positive("tol", est.tol)
    validation.check_positive("reg_covar", est.reg_covar, allow_zero=True)
    validation.check_int("max_iter", est.max_iter, 0)
    validation.check_int("n_init", est.n_init, 1)
    validation.check_in("init_params", est.init_params, gmm.INIT_METHODS)
    if not isinstance(est.standardize, (bool, np.bool_)):
        raise ValueError(f"Invalid value for 'standardize': {est.standardize!r}; pass True "
                         "or False.")
    if est.standardize and est.covariance_type == "spherical":
        raise ValueError(
            "standardize=True with covariance_type='spherical': a component spherical in "
            "standardised units is not spherical in data units; use covariance_type='diag' "
            "(free variances per column) or standardize=False.")
    if est.standardize and est.prior is not None:
        raise ValueError("standardize=True with a prior: the prior is in data units; pass "
                         "standardize=False (the prior's scale already adapts to the data).")
    n, d = X.shape
    if n < est.n_components:
        raise ValueError(
            f"Expected n_samples >= n_components but got n_components = {est.n_components}, "
            f"n_samples = {n}; reduce n_components or pass more samples."
        )
    k = est.n_components
    shapes = {
        "weights_init": (k,),
        "means_init": (k, d),
        "precisions_init": covariance_shape(est._host_cov, k, d),
    }
    for name, shape in shapes.items():
        value = getattr(est, name)
        if value is None:
            continue
        arr = np.asarray(value, dtype=np.float64)
        if name == "means_init" and arr.shape == (est.n_init, k, d):
            pass  # one start per restart (a basin map's grid of starts)
        elif arr.shape != shape:
            raise ValueError(f"'{name}' has shape {arr.shape}, but {shape} is expected "
                             f"for n_components={k}, n_features={d}, "
                             f"covariance_type={est.covariance_type!r}.")
        if not np.isfinite(arr).all():
            raise ValueError(f"'{name}' contains NaN or infinite values.")
    if est.weights_init is not None:
        w = np.asarray(est.weights_init, dtype=np.float64)
        if (w < 0).any() or not np.isclose(w.sum(), 1.0, atol=1e-6):
            raise ValueError("'weights_init' must be non-negative and sum to 1, got sum "
                             f"{w.sum():.5f}.")
    if est.precisions_init is not None:
        p = np.asarray(est.precisions_init, dtype=np.float64)
        if COVARIANCE_TYPES[est._host_cov].matrices:
            mats = p.reshape(-1, d, d)
            if not (np.allclose(mats, np.swapaxes(mats, 1, 2)) and
                    all(np.linalg.eigvalsh(m).min() > 0 for m in mats)):
                raise ValueError(
                    "'precisions_init' must be symmetric, positive-definite matrices.")
        elif (p <= 0).any():
            raise ValueError("'precisions_init' must be positive.")


def _check_factors(est, d: int):
    """``n_factors`` with ``covariance_type='factor'`` (and only with it), and what a
    mixture of factor analysers does not combine with, each one sentence."""
    factor = est.covariance_type == "factor"
    if not factor:
        if est.n_factors is not None:
            raise ValueError(f"n_factors={est.n_factors!r} is for covariance_type='factor' "
                             "(a mixture of factor analysers); leave it None for "
                             f"covariance_type={est.covariance_type!r}.")
        return
    if est.n_factors is None:
        raise ValueError("covariance_type='factor' needs n_factors, the number of factors "
                         f"per component (1 to {d - 1} for {d} features).")
    validation.check_int("n_factors", est.n_factors, 1)
    if est.n_factors >= d:
        raise ValueError(f"n_factors={est.n_factors} needs more than {est.n_factors} features "
                         f"(the data have {d}); with as many factors as features the model is "
                         "covariance_type='full'.")
    for name, bad, why in (
            ("missing='em'", est.missing == "em", "fit complete rows, or use 'full' or 'diag'"),
            ("a prior", est.prior is not None, "pass prior=None"),
            ("standardize=True", est.standardize, "standardise the columns before the fit"),
            ("precisions_init", est.precisions_init is not None,
             "start from means_init and weights_init")):
        if bad:
            raise ValueError(f"covariance_type='factor' does not take {name} yet; {why}.")


def memory_needed(cov_type, n, d, n_restarts, k, n_patterns, max_iter,
                  accelerated=False) -> float:
    """Bytes the compiled fit holds at once (XLA's own memory analysis agrees within ~20%).

    The E-step works on blocks of B rows: the features phi (B x P, P = Q + D + 1
    with Q = D (D + 1) / 2 for full and tied) and its intermediates take
    about 2.2 B (P + 2 R K) numbers; the parameters R K D^2 (full) a few
    times over; missing-data EM conditionals (M, K, D, D) per restart,
    about ten times over; plus the data and the traces. A SQUAREM cycle (``accelerated``)
    holds about ten more copies of the parameters (its EM maps, the extrapolation in the
    unconstrained form, the next cycle's map).
    """
    cov = COVARIANCE_TYPES[cov_type]
    p = cov.n_quad(d) + d + 1
    rk = n_restarts * k * (n_patterns or 1)
    width = 2 * rk + p
    n_padded, block = layout.padded_length(n, layout.choose_block_size(n, width))
    params = math.prod(covariance_shape(cov_type, k, d)) + k * d
    numbers = (2.2 * block * width + 4.0 * n_restarts * params + 2.0 * rk * p
               + 2.0 * n_padded * d + n_restarts * max_iter)
    if n_patterns is not None:
        numbers += 10.0 * n_restarts * n_patterns * k * d * d
    if accelerated:
        numbers += 10.0 * n_restarts * params
    return numbers * np.dtype(layout.float_dtype()).itemsize


def check_memory(est, n, d, n_restarts, k, n_patterns):
    """Refuse up front a fit that would exhaust memory, naming the types that fit."""
    available = validation.available_memory()
    squarem = est.accelerate == "squarem"
    needed = memory_needed(est._host_cov, n, d, n_restarts, k, n_patterns, est.max_iter,
                           squarem)
    if needed <= validation.MEMORY_FRACTION * available:
        return
    fits = [repr(c) for c in COVARIANCE_TYPES if c != est._host_cov and
            memory_needed(c, n, d, n_restarts, k, n_patterns, est.max_iter, squarem)
            <= validation.MEMORY_FRACTION * available]
    instead = f"use covariance_type={' or '.join(fits)}, or " if fits else ""
    if np.dtype(layout.float_dtype()).itemsize == 8 and (
            needed / 2 <= validation.MEMORY_FRACTION * available):
        instead = "pass dtype='float32' (half the memory), " + instead
    validation.check_memory(
        needed,
        f"A {est.covariance_type}-covariance fit of {d:,} features with {k} components and "
        f"{n_restarts} restart{'s' if n_restarts > 1 else ''}"
        + (f" over {n_patterns} missing-value patterns" if n_patterns is not None else ""),
        f"{instead}reduce the features, n_components, n_init or max_iter", available)


def _chunk_data(x, w, rows: int, dtype, scaling: layout.Scaling, known=None) -> em.Data:
    """One chunk of a streamed source as the driver's data: standardised, padded to
    ``rows``; with ``known`` (the sorted keys of every missing-value pattern of the
    source) its gaps at 0 and each row's pattern looked up."""
    z = (x - scaling.shift) / scaling.factor
    if known is None:
        xp, wp = stream.pad_chunk(z, w, rows, dtype)
        return em.Data(layout.to_device(xp), layout.to_device(wp))
    seen = ~np.isnan(x)
    xp, wp = stream.pad_chunk(np.where(seen, z, 0.0), w, rows, dtype)
    keys = stream.pattern_keys(seen)
    index = np.minimum(np.searchsorted(known, keys), len(known) - 1)
    if (known[index] != keys).any():
        raise ValueError("The source changed between passes: a row's missing values "
                         "form a pattern the first pass did not see.")
    pattern = np.zeros((rows,), np.int32)
    pattern[:len(x)] = index
    return em.Data(observed.Rows(layout.to_device(xp), layout.to_device(pattern)),
                   layout.to_device(wp))


def _live_assignments(live: LiveFit, rows, cov_type: str) -> dict:
    """GaussianMixture's live view "assignments" (see its ``_live_assignments``)."""
    state, s = live.run.state, live.scaling
    idx = np.asarray(rows)  # picked on the host (a device gather compiles per shape)
    r = len(live.keys)  # the program may hold padding restarts after these
    out = {}
    if isinstance(live.run.data.x, observed.Rows):  # missing values: from the observed part
        data, patterns = live.run.data.x, live.run.hyper.patterns
        z, pattern = np.asarray(data.values)[idx], np.asarray(data.pattern)[idx]
        labels, unc, filled = observed.assign_batch(state.params, z, pattern, patterns,
                                                    cov_type=cov_type)
        seen = np.asarray(patterns)[np.asarray(pattern)]
        X = np.where(seen, np.asarray(z, np.float64) * s.factor + s.shift, np.nan)
        filled = np.asarray(filled, np.float64)[:r]
        out = dict(filled=np.where(seen, X, filled * s.factor + s.shift), missing=~seen)
    else:
        z = np.asarray(live.run.data.x)[idx]
        labels, unc = gmm.assign_batch(state.params, z, cov_type=cov_type)
        X = np.asarray(z, np.float64) * s.factor + s.shift
    return dict(labels=np.asarray(labels)[:r], uncertainty=np.asarray(unc, np.float64)[:r],
                X=X, **out)
