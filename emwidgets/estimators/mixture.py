"""The estimator of a mixture over any model family: one ``start`` / ``fit`` for all.

A subclass says how rows are encoded (``_encode``), which family fits them
(``_family``, ``_hyper``), how every restart starts (``_initial_params``, on the
host in NumPy: nothing to compile) and which fitted attributes come from the
best restart (``_fitted``, a dict of them). Everything else is shared: validation of the
common parameters, sample weights, all restarts at once on the EM driver,
``restarts_``, live fits for the explorers (:meth:`start`), scoring, BIC/AIC.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple, Optional

import jax
import numpy as np
from scipy.special import logsumexp

from ..core import em, layout, stream
from . import validation
from .base import (
    ConvergenceWarning,
    LiveFit,
    Restarts,
    _Estimator,
    _keys,
    _padded_key_data,
    _restarts_from_state,
    _warn_spurious,
    _warn_stopped_short,
    start_streamed,
    stream_run,
)

_log_joint_jit = jax.jit(lambda log_joint, params, hyper, x: log_joint(params, hyper, x),
                         static_argnums=0)
# Every restart's posteriors of some rows, from the state of a live fit: one program per
# family and row count (the explorers' display rows), whatever the iteration.
_live_proba_jit = jax.jit(
    lambda log_joint, params, hyper, x: jax.nn.softmax(
        jax.vmap(lambda p: log_joint(p, hyper, x))(params), axis=-1),
    static_argnums=0)


class Profile(NamedTuple):
    """What a profile view draws of every restart: the components' parameters at named
    positions (a latent class model's response probabilities per item and answer, a
    Poisson mixture's rates per column), for families not drawn in the data's plane.

    Attributes:
        values: (R, K, M) per restart, component and position.
        labels: (M,) the positions' names.
        ylabel, title: axis label and title of the view.
        ylim: a fixed y range (probabilities: (0, 1)), or None to follow the values.
        log: a log y axis (rates spanning decades).
        word: what a component is called ("class", "component").
        groups: (name, positions) runs of consecutive positions that belong together
            (an item's levels): drawn as separate line segments under one name.
    """

    values: np.ndarray
    labels: list
    ylabel: str
    title: str
    ylim: Optional[tuple] = None
    log: bool = False
    word: str = "component"
    groups: Optional[list] = None


def check_sample_weight(sample_weight, n: int) -> np.ndarray:
    """(n,) finite non-negative weights with a positive sum (None: all 1)."""
    if sample_weight is None:
        return np.ones(n)
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if w.shape != (n,):
        raise ValueError(f"sample_weight has {w.size} values for {n} samples; pass one per row.")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite and non-negative with a positive sum.")
    if w.sum() <= 0:
        raise ValueError("sample_weight is zero for every row: there is nothing to fit; give "
                         "some rows a positive weight.")
    return w


class Problem(NamedTuple):
    """A mixture estimator's data as its programs see them (:meth:`MixtureEstimator._problem`).

    Attributes:
        rows: (n, p) float64 rows in the program's units: standardised or encoded, a missing
            value filled (``extra`` says where the values are missing).
        weights: (n,) row weights, or None (every row weighs 1).
        scaling: the standardisation the rows went through (None: the data's own units).
        stats: sufficient statistics one row gives one component: an iteration's work is
            about n x K x ``stats`` numbers (sizes the restart bucket and the compile mode).
        n_samples: what the fitted objective is per (rows, or their total weight).
        extra: what the estimator's own hooks need besides (missing-value patterns, a prior).
    """

    rows: np.ndarray
    weights: Optional[np.ndarray]
    scaling: Optional[layout.Scaling]
    stats: int
    n_samples: float
    extra: dict


class ProgramPlan(NamedTuple):
    """The compiled program a fit runs, and how its data are laid out
    (:meth:`MixtureEstimator._plan`): one plan serves several settings (a program for more
    components than fitted masks the extra ones; restarts are padded to a bucket)."""

    n_components: int  # components the program holds (the fitted ones first)
    n_restarts: int  # restarts it holds (the real ones first, padding after)
    masked: bool  # its hyperparameters carry an ``active`` mask of the components
    n_padded: int  # rows after padding (zero weight)
    block_size: int  # rows per block of the E-step's sum
    mesh: Any  # devices the rows or restarts are laid over (None: one device)
    quick: bool  # compiled without optimisation (small work: compiling would dominate)
    group_size: Optional[int] = None  # restarts run together (None: all at once)


class LikelihoodScoring:
    """``score_samples``, ``score``, ``predict_proba``, ``predict``, ``bic`` and ``aic`` of
    a fitted mixture, from the rows' log joint densities ``_log_joint(X)`` (N, K): one
    definition for the Gaussian mixture and every family (k-means has its own: it is no
    likelihood model)."""

    def _log_joint(self, X) -> np.ndarray:
        """(N, K) log w_k + log p(x | k), in float64 on the host."""
        raise NotImplementedError

    def _objective_offset(self, fitted: bool = False) -> float:
        """Log-density units of the rows the program saw -> of the data (0: the same)."""
        return 0.0

    def score_samples(self, X):
        """(N,) log-likelihood of each row."""
        return logsumexp(self._log_joint(X), axis=1) + self._objective_offset(fitted=True)

    def score(self, X, y=None):
        """Mean log-likelihood per row."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X):
        """(N, K) posterior probability of each component (class) for each row."""
        lj = self._log_joint(X)
        return np.exp(lj - logsumexp(lj, axis=1, keepdims=True))

    def predict(self, X):
        """(N,) the most probable component of each row."""
        return self._log_joint(X).argmax(axis=1)

    def bic(self, X):
        """Bayesian information criterion, -2 log L + p log n (lower is better)."""
        log_lik = self.score_samples(X)
        return -2 * log_lik.sum() + self.n_parameters() * np.log(len(log_lik))

    def aic(self, X):
        """Akaike information criterion, -2 log L + 2 p (lower is better)."""
        return -2 * self.score_samples(X).sum() + 2 * self.n_parameters()


class MixtureEstimator(_Estimator):
    """One estimator base for mixtures: :meth:`start` is the one fitting pipeline, made of
    small hooks (:meth:`_problem`, :meth:`_plan`, :meth:`_initial_state`, :meth:`_model`);
    ``fit`` and ``fit_predict`` follow from it (``replay`` and ``compile_for`` are every
    estimator's)."""

    # masks_components (True where every parameter has the components on axis 1, (R, K,
    # ...), and the hyperparameters an ``active`` mask: a program compiled for more
    # components then serves fewer, the extra ones never responsible for a row): see
    # _Estimator.compile_for.

    # -- hooks ------------------------------------------------------------------
    def _check_settings(self):
        """Validate the settings that do not depend on the data (before a stream is read)."""

    def _problem(self, X, sample_weight) -> Problem:
        raise NotImplementedError

    def _block_width(self, problem: Problem, n_restarts: int, n_components: int) -> int:
        """Numbers one row holds in the E-step's working set (sizes the blocks)."""
        raise NotImplementedError

    def _check_plan(self, problem: Problem, plan: ProgramPlan):
        """Refuse a plan that cannot run (say, one that needs more memory than there is)."""

    def _n_restarts(self) -> int:
        return self.n_init

    def _n_fitted(self) -> int:
        """Components fitted (``n_components``; KMeans' ``n_clusters``)."""
        return self.n_components

    def _initial_state(self, problem: Problem, plan: ProgramPlan, data: em.Data, keys):
        """(every restart's initial :class:`em.EMState`, the tolerance in the program's
        units): the program's restarts and components, each restart from its key."""
        raise NotImplementedError

    def _model(self, problem: Problem, plan: ProgramPlan, data: em.Data):
        """(family, hyperparameters, data) of the driver's run."""
        raise NotImplementedError

    # -- the pipeline ------------------------------------------------------------
    def _program_size(self) -> int:
        """Components the program holds: ``n_components``, or more when a caller asked for
        one program to serve several (:meth:`compile_for`; masked)."""
        k = self._n_fitted()
        if self.masks_components and hasattr(self, "program_components"):
            return max(k, self.program_components)
        return k

    def _plan(self, problem: Problem, n_restarts: int) -> ProgramPlan:
        n = problem.rows.shape[0]
        k_program = self._program_size()
        work = n * k_program * problem.stats
        r_program = em.restart_bucket(n_restarts, work)
        mesh = layout.device_mesh(getattr(self, "devices", None), n, r_program)
        width = self._block_width(problem, r_program, k_program)
        n_padded, block = layout.padded_length(n, layout.choose_block_size(n, width),
                                               layout.rows_shards(mesh))
        # (After compile_for, a mask even when K is the program's size: one program for
        # every K up to it.)
        masked = self.masks_components and hasattr(self, "program_components")
        return ProgramPlan(k_program, r_program, masked, n_padded, block, mesh,
                           em.quick_compile(work * r_program))

    @staticmethod
    def _place(problem: Problem, plan: ProgramPlan) -> em.Data:
        """The rows padded to the plan's length (padding weighs 0), on the device."""
        n, p = problem.rows.shape
        dtype = layout.float_dtype()
        xp = np.zeros((plan.n_padded, p), dtype)
        xp[:n] = problem.rows
        wp = np.zeros(plan.n_padded, dtype)
        wp[:n] = 1.0 if problem.weights is None else problem.weights
        return em.Data(layout.to_device(xp), layout.to_device(wp))

    def start(self, X, y=None, *, sample_weight=None, keys=None) -> LiveFit:
        """Validate, initialise every restart and return a :class:`~emwidgets.LiveFit`.

        ``sample_weight`` (one per row, non-negative): a row of weight w counts as w
        copies of it. ``keys`` (JAX keys, one per restart) replace the ones drawn from
        ``random_state``; see :meth:`replay`.
        """
        self._check_settings()
        if stream.is_source(X):
            return self._start_stream(X, sample_weight, keys)
        problem = self._problem(X, sample_weight)
        n, k = problem.rows.shape[0], self._n_fitted()
        if n < k:
            raise ValueError(f"n_samples={n} should be >= n_components={k}; reduce n_components "
                             "or pass more samples.")
        plan = self._plan(problem, self._n_restarts() if keys is None else len(keys))
        self._check_plan(problem, plan)  # (before a key is drawn: n_init may be absurd)
        keys = _keys(self.random_state, self._n_restarts()) if keys is None else keys
        self._k_program = plan.n_components
        data = self._place(problem, plan)
        state, tol = self._initial_state(problem, plan, data, keys)
        family, hyper, data = self._model(problem, plan, data)
        run = em.EMRun(family, plan.block_size, state, data, hyper, tol,
                       group_size=plan.group_size, max_iter=self.max_iter, quick=plan.quick,
                       step=self._step(), rule=self._rule(),
                       mesh=plan.mesh)
        return self._live_fit(run, problem.scaling, keys, problem.n_samples, n_rows=n)

    #: Rows of the reservoir sample a streamed fit initialises from (and takes its
    #: default prior from); all the rows when the source holds no more.
    STREAM_SAMPLE = 20_000

    def _stream_options(self) -> dict:
        """Keywords of :func:`start_streamed` (missing values, a scale floor, levels)."""
        return {}

    def _stream_model(self, first, init, live0):
        """(family, hyperparameters, width of a block's working set, ``encode(x, w, rows,
        dtype) -> em.Data`` of one chunk) of a streamed fit, from its first pass
        ``first``, the copy ``init`` that started on the sample and its fit ``live0``."""
        raise NotImplementedError

    def _start_stream(self, source, sample_weight=None, keys=None) -> LiveFit:
        """A fit over rows read chunk by chunk (:class:`emwidgets.Chunks`, a path to
        Parquet data): one pass for the moments and a reservoir sample, every restart
        initialised on the sample by a copy of this estimator given the whole source's
        scaling (and levels), then every EM iteration one pass of the source
        (:mod:`emwidgets.core.stream`)."""
        start = start_streamed(self, source, sample_weight, keys, **self._stream_options())
        first, init, live0 = start.first, start.init, start.live
        for name, value in vars(init).items():  # what the start learnt (masking, totals)
            if name.startswith("_") and name not in ("_features_seen", "_given_scaling",
                                                     "_given_levels"):
                setattr(self, name, value)
        family, hyper, width, encode = self._stream_model(first, init, live0)
        run = stream_run(start, family, hyper, width, encode, self.max_iter, self._rule())
        self._features_seen = (first.sample.shape[1], None)
        return self._live_fit(run, live0.scaling, live0.keys, first.total_w)

    def fit(self, X, y=None, sample_weight=None):
        """Fit every restart and keep the best (highest final objective).
        ``sample_weight``: see :meth:`start`."""
        self.start(X, sample_weight=sample_weight).finish()
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        return self.fit(X, sample_weight=sample_weight).predict(X)


class FamilyMixture(LikelihoodScoring, MixtureEstimator):
    """Shared machinery; see the module docstring. Subclasses set ``init_methods``."""

    _estimator_type = "density_estimator"
    init_methods: tuple = ("random",)
    #: What a row holds: "categories" (answers), "counts" or "measurements".
    data_kind = "measurements"
    #: The explorer draws the components in the data's plane (means and scale
    #: matrices as ellipses) instead of by their profile (:meth:`profile_of`).
    plane_view = False

    # -- hooks ------------------------------------------------------------------
    def _encode(self, X, reset: bool) -> np.ndarray:
        raise NotImplementedError

    def _family(self) -> em.Family:
        raise NotImplementedError

    def _hyper(self, n_components: int):
        raise NotImplementedError

    def _initial_params(self, key_data, rows, weights, n_components: int):
        raise NotImplementedError

    def _param_dict(self, params) -> dict:
        raise NotImplementedError

    def _fitted(self, params: dict, best: int) -> dict:
        raise NotImplementedError

    def n_parameters(self) -> int:
        """The fitted model's number of free parameters: the count :meth:`bic` and
        :meth:`aic` use."""
        raise NotImplementedError

    def _program_log_joint(self):
        """(log_joint, hyper): the family's ``(params, hyper, x) -> (B, K)`` log w_k +
        log p(x | k) on the program's parameters and encoded rows (live views use it)."""
        raise NotImplementedError

    def profile_of(self, params: dict, names) -> Optional[Profile]:
        """The :class:`Profile` of restarts' parameters ``params`` (as in ``restarts_``;
        ``names``: the data's columns), or None for a family drawn in the data's plane
        (means and covariances)."""
        return None

    def _free_parts(self) -> dict:
        """The fitted parameters in the program's units as ``{name: part}``
        (:mod:`emwidgets.estimators.information`: Free, Simplex, ...), the coordinates the
        standard errors' information is computed over; ``_params_from`` inverts it."""
        raise NotImplementedError

    def _params_from(self, arrays: dict):
        """The family's parameters (program units) from ``{name: array}`` of the parts."""
        raise NotImplementedError

    def standard_errors(self, X, sample_weight=None):
        """Standard errors of the fitted parameters on data X (the data it was fitted on),
        from the observed information by autodiff in float64, mapped to the parameters of
        ``restarts_.params`` (data units) by the delta method; a
        :class:`~emwidgets.estimators.information.StandardErrors`. Probabilities at 0
        (on the boundary) are held fixed, with error 0.

        Raises:
            ValueError: when the information matrix is singular (coinciding or empty
                components): no standard errors exist.
        """
        import jax.numpy as jnp
        from jax.scipy.special import logsumexp

        from .information import FamilyModel, family_standard_errors

        self._check_fitted()
        rows = self._encode(X, reset=False)
        weights = check_sample_weight(sample_weight, len(rows))
        with jax.enable_x64(True):  # (the parts and constants in float64 from the start)
            log_joint = self._program_log_joint()[0]
            hyper = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), self._scoring()[2])
            x, w = jnp.asarray(rows, jnp.float64), jnp.asarray(weights, jnp.float64)

            def log_likelihood(params):
                return (w * logsumexp(log_joint(params, hyper, x), axis=1)).sum()

            model = FamilyModel(self._free_parts(), log_likelihood, self._params_from,
                                self._param_dict)
            return family_standard_errors(model)

    def _features_per_row(self, p: int) -> int:
        """Numbers one row holds in the E-step's working set (sizes the blocks)."""
        return p + 1

    # -- fitting ----------------------------------------------------------------
    def _check_common(self):
        validation.check_int("n_components", self.n_components, 1)
        validation.check_int("n_init", self.n_init, 1)
        validation.check_int("max_iter", self.max_iter, 1)
        validation.check_positive("tol", self.tol, allow_zero=True)
        validation.check_in("init_params", self.init_params, self.init_methods)

    def _check_settings(self):
        self._check_common()

    def _problem(self, X, sample_weight) -> Problem:
        rows = self._encode(X, reset=True)
        n, p = rows.shape
        # (every row is a sample: the objective is per row, whatever the weights)
        return Problem(rows, check_sample_weight(sample_weight, n), None, p + 1, n, {})

    def _block_width(self, problem: Problem, n_restarts: int, n_components: int) -> int:
        return 2 * n_restarts * n_components + self._features_per_row(problem.rows.shape[1])

    def _initial_state(self, problem: Problem, plan: ProgramPlan, data: em.Data, keys):
        k = self.n_components
        params = self._initial_params(_padded_key_data(keys, plan.n_restarts), problem.rows,
                                      problem.weights, k)
        if plan.masked:  # the real components drawn as for K, then masked ones
            params = _pad_components(params, plan.n_components)
        dtype = layout.float_dtype()
        return (em.host_init_state(jax.tree.map(lambda a: np.asarray(a, dtype), params),
                                   n_real=len(keys)), layout.to_device(self.tol, dtype))

    def _model(self, problem: Problem, plan: ProgramPlan, data: em.Data):
        hyper = self._hyper(self.n_components)
        if plan.masked:
            hyper = hyper._replace(active=layout.to_device(
                np.arange(plan.n_components) < self.n_components))
        return self._family(), hyper, data

    def _stream_model(self, first, init, live0):
        p = first.sample.shape[1]
        width = 2 * live0.run.state.status.shape[0] * self._k_program + self._features_per_row(p)

        def encode(x, w, rows, dtype):
            # (validated chunk by chunk)
            xp, wp = stream.pad_chunk(init._encode(x, reset=True), w, rows, dtype)
            return em.Data(layout.to_device(xp), layout.to_device(wp))

        return self._family(), live0.run.hyper, width, encode

    def _stream_options(self) -> dict:
        return {"levels": self.data_kind == "categories"}  # levels from the first pass

    def restart(self, restart: int):
        """The fitted model of restart ``restart`` of the last fit (a copy: the best one's
        attributes are ``self``'s)."""
        r = int(restart)
        self._check_fitted()
        other = copy.copy(self)
        other.__dict__.update(self._fitted(self.restarts_.params, r))
        return other

    def _restarts(self, state, scaling, keys, n_samples=None) -> Restarts:
        r, k = len(keys), self.n_components
        masked = getattr(self, "_k_program", k) > k
        params = self._param_dict(jax.tree.map(
            lambda a: np.asarray(a, np.float64)[:r, :k] if masked
            else np.asarray(a, np.float64)[:r], state.params))
        return _restarts_from_state(state, params, keys, self._objective_offset(), tol=self.tol,
                                    shared=self._shared_params())

    def _finish(self, live: LiveFit):
        restarts = self._restarts(live.run.state, None, live.keys)
        b = restarts.best
        if b < 0:
            raise ValueError(f"Every restart failed ({restarts.messages[0]}); try more restarts "
                             "or fewer components.")
        self.__dict__.update(self._fitted(restarts.params, b))
        self.n_iter_ = int(restarts.n_iter[b])
        self.converged_ = bool(restarts.converged[b])
        self.lower_bound_ = float(restarts.objective[b])
        self.restarts_ = restarts
        if not self.converged_:
            validation.warn(
                f"The best restart did not converge in max_iter={self.max_iter} iterations; "
                "increase max_iter or tol.", ConvergenceWarning)
        _warn_spurious(restarts, "Refit with more restarts or fewer components.")
        _warn_stopped_short(restarts)
        return self

    @staticmethod
    def program_work(n: int, width: int, k_program: int, n_init: int) -> float:
        """Numbers one EM iteration handles with ``k_program`` components over rows of
        ``width`` encoded numbers (the explorer's choice of a masked program)."""
        return n * k_program * (width + 1) * em.restart_bucket(n_init, 1.0)

    def _live_probabilities(self, live: LiveFit, rows) -> np.ndarray:
        """(R, n, K) every restart's posterior probabilities of the data's rows ``rows``
        (indices) at the live fit's current iteration."""
        host = live.__dict__.get("_host_rows")
        if host is None:  # one copy per fit; the display rows are gathered on the host
            host = live.__dict__["_host_rows"] = np.asarray(live.run.data.x)
        log_joint = self._program_log_joint()[0]
        proba = _live_proba_jit(log_joint, live.run.state.params, live.run.hyper,
                                layout.to_device(host[np.asarray(rows)]))
        return np.asarray(proba, np.float64)[:len(live.keys), :, :self.n_components]

    # -- using a fitted model ---------------------------------------------------
    def _log_joint(self, X) -> np.ndarray:
        """(N, K) log w_k + log p(x | k), in float64 on the host."""
        self._check_fitted()
        rows = self._encode(X, reset=False)
        family_log_joint, params, hyper = self._scoring()
        k, k_program = self.n_components, getattr(self, "_k_program", self.n_components)
        if self.masks_components and hasattr(self, "program_components"):
            # scored by the fit's program size too: one scoring program for a whole grid
            params = jax.tree.map(lambda a: np.asarray(a)[None], params)
            params = jax.tree.map(lambda a: layout.to_device(a[0]), _pad_components(params,
                                                                                    k_program))
            hyper = hyper._replace(active=layout.to_device(np.arange(k_program) < k))
        out = _log_joint_jit(family_log_joint, params, hyper, layout.to_device(rows))
        return np.asarray(out, np.float64)[:, :k]


def _pad_components(params, k_program: int):
    """(R, K, ...) parameters -> (R, k_program, ...): the extra components copy the
    first one, with weight 0 (masked, they stay so)."""
    def pad(name, a):
        a = np.asarray(a)
        extra = np.repeat(a[:, :1], k_program - a.shape[1], axis=1)
        return np.concatenate([a, np.zeros_like(extra) if name == "weights" else extra], axis=1)

    return type(params)(**{name: pad(name, a) for name, a in params._asdict().items()})


class SamplesRows:
    """Mixin for the families that can draw rows (``_sample_rows(labels, rng)``)."""

    def sample(self, n_samples=1, random_state=None):
        """Draw ``n_samples`` rows: (rows, component labels (n_samples,))."""
        self._check_fitted()
        validation.check_int("n_samples", n_samples, 1)
        rng = np.random.default_rng(validation.seed_from(random_state))
        w = np.asarray(self.weights_, np.float64)
        labels = rng.choice(len(w), size=n_samples, p=w / w.sum())  # float32 sums to 1 +- eps
        return self._sample_rows(labels, rng), labels
