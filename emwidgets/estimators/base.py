"""What every estimator shares: parameters (get/set_params), validation, the
record of every restart (:class:`Restarts`), the random keys, and a fit in
progress (:class:`LiveFit`)."""
from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import types
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Optional

import jax
import numpy as np

from .. import compare
from .._progress import StreamProgress
from ..core import em, iteration, layout, programs, stream
from . import validation

ConvergenceWarning = validation.ConvergenceWarning
NotFittedError = validation.NotFittedError
#: Values of the ``spurious`` parameter: rank spurious maxima after regular ones, or
#: by objective alone (flagged either way).
SPURIOUS_POLICIES = ("rank_last", "allow")




class _RestartModels:
    """Mixin: ``restart(r)`` for an estimator whose ``_restart_attributes(restarts, r)`` are
    restart r's fitted attributes (GaussianMixture, GaussianHMM; the families have theirs)."""

    def restart(self, restart: int):
        """The fitted model of restart ``restart`` of the last fit (a copy: the best one's
        attributes are ``self``'s; ``restarts_`` is shared)."""
        self._check_fitted()
        other = copy.copy(self)
        other.__dict__.update(self._restart_attributes(self.restarts_, int(restart)))
        return other


def fit_dtype(dtype) -> np.dtype:
    """The precision a fit computes in: ``dtype`` ("float32" or "float64"), or None:
    float64 on a CPU, where it costs little (1.2-2x an iteration) and EM's small steps
    near a maximum stay above rounding, float32 on an accelerator (GPU, TPU), where it
    pays. One sentence if ``dtype`` is neither."""
    if dtype is None:
        return np.dtype(np.float64 if jax.default_backend() == "cpu" else np.float32)
    try:
        d = np.dtype(dtype)
    except TypeError:
        d = None
    if d not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"Invalid value for 'dtype': {dtype!r}; choose None (float64 on a CPU, "
                         "float32 on a GPU or TPU), 'float32' or 'float64'.")
    return d


#: The lock a thread holds while it computes with JAX through emwidgets (every public
#: estimator method takes it; the widgets take it through this name, never from the core).
computing = programs.executing


def in_precision(method: Callable) -> Callable:
    """``method`` run in its object's precision (``self._x64()``): inside, JAX computes in
    float64 or float32 whatever the user's global ``jax_enable_x64`` setting, which stays
    as it was (the context is the calling thread's own). One thread at a time: the call
    holds :data:`emwidgets.core.programs.executing` (a Run and a background compilation
    each wait for the other's call, never execute beside it)."""
    if getattr(method, "emwidgets_precision", False):
        return method

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with computing, jax.enable_x64(self._x64()):
            return method(self, *args, **kwargs)

    wrapper.emwidgets_precision = True
    return wrapper


class _Estimator:
    """Parameter handling compatible with scikit-learn (get/set_params, clone), and the
    precision every public method computes in (``dtype``: :func:`fit_dtype`)."""

    _estimator_type = None

    #: Public methods that never compute with JAX (run as called).
    _PRECISION_FREE = frozenset({"get_params", "set_params"})

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in dir(cls):  # (its own methods and its mixins')
            value = inspect.getattr_static(cls, name)
            if (not name.startswith("_") and isinstance(value, types.FunctionType)
                    and name not in cls._PRECISION_FREE
                    and not getattr(value, "emwidgets_precision", False)):
                setattr(cls, name, in_precision(value))

    def _x64(self) -> bool:
        return fit_dtype(getattr(self, "dtype", None)) == np.float64

    def _shared_params(self) -> tuple:
        """Parameters its components share (a tied covariance), not per component."""
        return ("covariances",) if getattr(self, "covariance_type", None) == "tied" else ()

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(p for p in sig.parameters if p != "self")

    def _step(self):
        """How an iteration goes (:mod:`core.iteration`): ``accelerate`` None is plain EM,
        "squarem" a SQUAREM cycle (core/accel.py); one sentence if it is neither."""
        value = getattr(self, "accelerate", None)
        if not isinstance(value, (str, type(None))) or value not in iteration.STEPS:
            raise ValueError(f"Invalid value for 'accelerate': {value!r}; choose None (plain EM) "
                             "or 'squarem'.")
        return iteration.STEPS[value]

    def _rule(self):
        """When a restart has converged (:mod:`core.iteration`): ``convergence`` "change"
        (scikit-learn's rule: the objective changed by less than tol) or "gap" (Aitken's
        estimate of the distance to the limit is below tol as well); one sentence if it is
        neither."""
        value = getattr(self, "convergence", "change")
        if not isinstance(value, str) or value not in iteration.RULES:
            raise ValueError(f"Invalid value for 'convergence': {value!r}; choose 'change' "
                             "(stop when the objective changes by less than tol) or 'gap' "
                             "(also when its estimated distance to the limit is below tol).")
        return iteration.RULES[value]

    #: Its programs can hold more components than it fits, the extra ones masked
    #: (:meth:`compile_for`).
    masks_components = False

    def compile_for(self, n_components: int):
        """Fit with one compiled program that holds ``n_components`` components (at least the
        fitted ``n_components``), the extra ones masked: every later fit of up to that many
        components runs the same program, so that changing ``n_components`` compiles nothing
        (what the explorers' components slider and :func:`~emwidgets.select_model`'s grid
        do). The answers are those of an exact-size program, up to rounding. Estimators whose
        programs cannot mask components (``masks_components`` False) fit at their own size.
        Returns the estimator; ``program_components`` holds the size asked for."""
        validation.check_int("n_components", n_components, 1)
        self.program_components = int(n_components)
        return self

    def replay(self, X, restart: int, **fit_args):
        """Fit restart ``restart`` of the last fit alone, from its own key: a new
        estimator (``n_init=1``, the same program) equal to that restart up to rounding.
        ``fit_args``: what ``fit`` took besides X (``sample_weight``; an HMM's ``lengths``)."""
        self._check_fitted()
        key = jax.random.wrap_key_data(layout.to_device(self.restarts_.keys[restart]))
        other = type(self)(**{**self.get_params(), "n_init": 1})
        if hasattr(self, "program_components"):  # the same program
            other.compile_for(self.program_components)
        other.start(X, keys=key[None], **fit_args).finish()
        return other

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for {type(self).__name__}; valid parameters are "
                    f"{', '.join(valid)}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        sig = inspect.signature(type(self).__init__)
        changed = []
        for name, p in sig.parameters.items():
            if name == "self":
                continue
            value = getattr(self, name)
            default = p.default
            same = value is default or (
                not isinstance(value, np.ndarray) and not isinstance(default, np.ndarray)
                and type(value) is type(default) and value == default
            )
            if not same:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def _check_fitted(self):
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet; call 'fit' with some "
                "data first."
            )

    def _validate_X(self, X, reset: bool, allow_nan: bool = False,
                    nan_hint: str = validation.NAN_HINT):
        if not reset:
            X = _fitted_columns(X, getattr(self, "feature_names_in_", None))
        arr, names = validation.as_2d_float(X, allow_nan=allow_nan, nan_hint=nan_hint)
        if reset:
            # Set by _set_features once the fit succeeds: a failed refit keeps the old model.
            self._features_seen = (arr.shape[1], names)
        else:
            self.__dict__.pop("_features_seen", None)
            self._check_fitted()
            validation.check_n_features(self, arr.shape[1])
            fitted_names = getattr(self, "feature_names_in_", None)
            if fitted_names is not None and names is not None and list(names) != list(fitted_names):
                raise ValueError(
                    "The feature names of X differ from those seen in fit "
                    f"({list(fitted_names)}); pass the same columns in the same order."
                )
        return arr

    def live_view(self, live: "LiveFit", view: str, *args):
        """What an explorer's live view draws of the fit in progress ``live``, for every
        restart at once and without finishing it (the one door from the widgets into an
        estimator's live state):

        * ``"assignments"``, (rows) -> {"labels", "uncertainty", "X", ...} of the rows
          ``rows`` (Gaussian mixtures);
        * ``"probabilities"``, (rows) -> (R, n, K) responsibilities (the families);
        * ``"posteriors"``, () -> ((R, N, S) state posteriors, (N, D) rows) (Gaussian HMM);
        * ``"density"``, (restart, bins, n_bins) -> the fitted density on a grid.

        Raises ValueError for a view this estimator does not draw."""
        method = getattr(self, f"_live_{view}", None)
        if method is None:
            raise ValueError(f"{type(self).__name__} has no live view {view!r}.")
        return method(live, *args)

    def _live_fit(self, run, scaling, keys, n_samples, n_rows=None) -> "LiveFit":
        """The :class:`LiveFit` of ``run``, given this estimator's way to read its restarts
        and to conclude (the data's features, seen by ``_validate_X``, travel with it)."""
        features = self.__dict__.pop("_features_seen", None)
        # (the restarts' sentences name a column by its name: "along waiting", not "feature 1")
        self._column_names = None if features is None else features[1]
        return LiveFit(run, scaling, keys, n_samples, to_restarts=self._restarts,
                       conclude=self._conclude, features=features, n_rows=n_rows)

    def _conclude(self, live: "LiveFit"):
        estimator = self._finish(live)
        self._set_features(live.features)
        return estimator

    def _set_features(self, features):
        """Record n_features_in_ (and feature_names_in_) of a fit that succeeded."""
        if features is None:
            return
        self.n_features_in_, names = features
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_


# ---------------------------------------------------------------------------
# Every restart, kept
# ---------------------------------------------------------------------------

_WHY = {
    em.DEGENERATE: (
        "its covariance stopped being positive definite (the component collapsed onto too few "
        "distinct points)"
    ),
    em.NONFINITE: "its log-likelihood became non-finite",
}


class SpuriousSolutionWarning(UserWarning):
    """A restart reached a spurious maximum (a component at the covariance floor, or
    on fewer points than its parameters): it is flagged, and ranked after the regular
    solutions unless ``spurious='allow'``."""


@dataclass
class Restarts:
    """Every restart of a fit, not only the best.

    Attributes (R = number of restarts):
        objective: (R,) final lower bound (mean log-likelihood per sample for
            mixtures, minus the mean squared distance for K-means).
        n_iter: (R,) iterations run.
        converged: (R,) bool.
        status: list of R words: 'converged', 'max_iter reached', 'degenerate'
            or 'non-finite objective'.
        trace: (R, max_iter) objective at each iteration, NaN after a restart
            stopped — what a convergence plot draws.
        params: dict of arrays with a leading restart axis (e.g. ``weights``,
            ``means``, ``covariances`` or ``cluster_centers``), in data units.
        keys: (R, 2) uint32 raw JAX keys; ``jax.random.wrap_key_data(keys[r])``
            replays restart r alone.
        bad_component, bad_iteration: (R,) the component that made a restart
            degenerate and when (-1 where none).
        best: index of the restart the estimator kept: the first of
            :meth:`ranking` (the best regular restart; the best spurious one
            only when every restart is spurious, or with ``spurious='allow'``).
        messages: R sentences ('' where there is nothing to say), spurious
            maxima included.
        spurious: (R,) bool, the restart ended on a spurious maximum (see
            :mod:`emwidgets.compare`); ``spurious_component`` (R,) which
            component (-1 where none) and ``spurious_reasons`` (R,) why.
        spurious_last: spurious restarts rank after regular ones.
        feature_scale: (D,) the data's standard deviation per feature, and
            ``tol`` the fit's tolerance: what grouping restarts into solutions uses.
        n_evals: (R,) EM maps evaluated: ``n_iter`` for plain EM; under
            ``accelerate='squarem'`` an iteration is a cycle of three maps (plus
            one to start), and ``accepted`` / ``rejected`` (R,) count its
            extrapolations (None for plain EM).
        gap: (R,) how far (in objective units, per sample) each restart stopped
            short of its limit, estimated from its last three objectives (Aitken:
            the remaining increments as a geometric series); NaN where the
            increments do not shrink geometrically. :func:`remaining_gap`.
        fell, fell_at: (R,) the largest fall of each restart's objective beyond the
            rounding of its ``precision`` ('float32' or 'float64'), and the iteration
            it fell at (0 and -1 where it never fell): EM never lowers it, so a fall
            is arithmetic losing the fit (:func:`likelihood_falls`).
    """

    objective: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    status: list
    trace: np.ndarray
    params: dict
    keys: np.ndarray
    bad_component: np.ndarray
    bad_iteration: np.ndarray
    best: int
    messages: list = field(default_factory=list)
    spurious: Optional[np.ndarray] = None
    spurious_component: Optional[np.ndarray] = None
    spurious_reasons: Optional[list] = None
    spurious_last: bool = True
    feature_scale: Optional[np.ndarray] = None
    tol: float = 1e-3
    n_evals: Optional[np.ndarray] = None
    accepted: Optional[np.ndarray] = None
    rejected: Optional[np.ndarray] = None
    gap: Optional[np.ndarray] = None
    fell: Optional[np.ndarray] = None
    fell_at: Optional[np.ndarray] = None
    precision: str = "float64"

    def __post_init__(self):
        r = len(self.objective)
        if self.n_evals is None:
            self.n_evals = np.asarray(self.n_iter)
        if self.gap is None:
            self.gap = remaining_gap(self.trace)
        if self.fell is None:
            self.fell, self.fell_at = likelihood_falls(self.trace, self.precision)
        if self.spurious is None:
            self.spurious = np.zeros(r, bool)
        if self.spurious_component is None:
            self.spurious_component = np.full(r, -1)
        if self.spurious_reasons is None:
            self.spurious_reasons = [""] * r

    @property
    def n_restarts(self) -> int:
        return len(self.objective)

    def ranking(self) -> np.ndarray:
        """Restart indices, best first: regular restarts by objective, then spurious
        ones (unless ``spurious_last`` is off), then failed ones."""
        return compare.rank_restarts(self.objective, self.failed, self.spurious, self.spurious_last)

    @property
    def failed(self) -> np.ndarray:
        return np.array([s in ("degenerate", "non-finite objective") for s in self.status])

    def to_frame(self):
        """One row per restart: objective, iterations, status, spurious, rank, message."""
        import pandas as pd

        order = self.ranking()
        rank = np.empty_like(order)
        rank[order] = np.arange(1, len(order) + 1)
        return pd.DataFrame(
            {
                "objective": self.objective,
                "n_iter": self.n_iter,
                "n_evals": self.n_evals,
                "gap": self.gap,
                "status": self.status,
                "spurious": np.asarray(self.spurious, bool),
                "rank": rank,
                "message": self.messages,
            }
        ).rename_axis("restart")


#: A fit warns (and the explorer's status says) when the best restart's estimated distance
#: to its limit exceeds this many times the tolerance (the change rule stopped it short
#: of its limit: on two Gaussians 1.5 sd apart, tol=1e-3 stops 0.0027 below the optimum,
#: estimated 0.0013).
SHORT_OF_LIMIT = 1.0


def _fitted_columns(X, fitted_names):
    """A DataFrame with more columns than the fit's, holding every fitted name: those
    columns, by name (an explorer fits the columns it chose of the user's frame, and its
    estimator then takes that frame whole). Anything else is returned as it is (the same
    number of columns must carry the same names, in order, as in scikit-learn)."""
    columns = getattr(X, "columns", None)
    if fitted_names is None or columns is None or len(columns) <= len(fitted_names):
        return X
    by_name = {str(c): c for c in columns}
    if len(by_name) != len(columns) or not all(n in by_name for n in fitted_names):
        return X
    return X[[by_name[n] for n in fitted_names]]


def likelihood_falls(trace, precision: str = "float64") -> tuple[np.ndarray, np.ndarray]:
    """(R,) the largest fall of each row of ``trace`` beyond the rounding of
    ``precision`` (:func:`iteration.rounding_floor` at the objective's size), and the
    iteration it fell at; 0 and -1 where it never fell. EM's objective never falls
    (Dempster, Laird & Rubin 1977): a fall is rounding that lost the fit, or a floor
    such as reg_covar that makes the M-step inexact (a few 1e-9 in float64)."""
    trace = np.atleast_2d(np.asarray(trace, np.float64))
    steps = np.diff(trace, axis=1)
    floor = (iteration.ROUNDING_UNITS * np.finfo(precision).eps
             * np.maximum(1.0, np.abs(trace[:, 1:])))
    with np.errstate(invalid="ignore"):
        excess = np.where(np.isfinite(steps) & (steps < -floor), -steps, 0.0)
    if excess.shape[1] == 0:
        return np.zeros(len(trace)), np.full(len(trace), -1)
    at = np.where(excess.max(1) > 0, excess.argmax(1) + 1, -1)
    return excess.max(1), at


def fell_sentence(r: "Restarts", b: int) -> str:
    """What restart ``b``'s fall (:func:`likelihood_falls`) means, or ""."""
    # (float64's falls, a few 1e-9 near a maximum where a covariance is at reg_covar, are
    # reg_covar's own: added to each variance as scikit-learn does, it is not an exact
    # M-step. They stay in restarts_.fell, without a warning.)
    if r.fell is None or b < 0 or not r.fell[b] > 0 or r.precision != "float32":
        return ""
    return (f"its log-likelihood fell by {r.fell[b]:.2g} nats per sample at iteration "
            f"{int(r.fell_at[b]) + 1}, which EM never does: float32 rounding lost it; fit with "
            "dtype='float64' (in a Gaussian mixture a covariance near reg_covar makes the "
            "E-step's terms cancel: a larger reg_covar helps too)")


#: What to do about a restart that stopped short, in an explorer (it has no convergence
#: control: :func:`stopped_short`'s ``advice``).
CONTROLS_ADVICE = ("lower the tolerance slider, or tick accelerate (SQUAREM), which reaches "
                   "the limit in fewer iterations")


def stopped_short(r: "Restarts", b: int, advice: Optional[str] = None) -> str:
    """A sentence when restart ``b`` stopped short of the limit it was converging to:
    Aitken's estimate of the distance (``restarts_.gap``) above the tolerance, or a restart
    that stopped after fewer than three changing objectives, too few to estimate it (a
    random start on a plateau: the objective barely moves, then moves on); else "".
    ``advice``: what to do instead of the estimator's parameters (an explorer's controls:
    :data:`CONTROLS_ADVICE`)."""
    gap = getattr(r, "gap", None)
    if gap is None or b < 0:
        return ""
    fell = fell_sentence(r, b)
    if fell:
        return f"the best restart: {fell}"
    row = np.asarray(r.trace[b], np.float64)
    row = row[np.isfinite(row)]
    if r.status[b] == "converged" and len(row) == 2 and row[-1] != row[-2]:
        return (f"the best restart stopped after {len(row)} iterations, too few to tell a "
                "maximum from a plateau (the change fell below tol at once): " + (
                    advice or "lower tol, or keep the default convergence='gap', which "
                    "waits for three"))
    if (not np.isfinite(gap[b]) or gap[b] <= SHORT_OF_LIMIT * r.tol
            or getattr(r, "accepted", None) is not None):  # (SQUAREM's cycles: no series)
        return ""
    return (f"the best restart stopped about {gap[b]:.2g} nats per sample short of its "
            "limit (Aitken's estimate from its last iterations): " + (
                advice or "lower tol, or keep the defaults (convergence='gap', "
                "accelerate='squarem', tol=1e-10)"))


def _warn_stopped_short(restarts: "Restarts"):
    """A ConvergenceWarning when the kept restart stopped short (:func:`stopped_short`)."""
    b = restarts.best
    fell = fell_sentence(restarts, b)
    if fell:
        validation.warn(f"The kept restart cannot be trusted: {fell}.",
                        validation.ConvergenceWarning)
        return
    said = stopped_short(restarts, b) if b >= 0 and restarts.converged[b] else ""
    if said:  # (one that hit max_iter has its own warning)
        validation.warn(f"Stopped short: {said}.", validation.ConvergenceWarning)


def remaining_gap(trace) -> np.ndarray:
    """(R,) Aitken's estimate of how far each restart's objective is from its limit.

    From a restart's last three objectives L0, L1, L2 (increments d1 = L1 - L0,
    d2 = L2 - L1): with the rate c = d2 / d1 in (0, 1), the increments to come
    sum to d2 c / (1 - c) (linear convergence, EM's rate of missing
    information). 0 where the objective stopped changing; NaN where the rate is
    not in (0, 1) or fewer than three objectives were recorded.
    """
    trace = np.atleast_2d(np.asarray(trace, np.float64))
    out = np.full(len(trace), np.nan)
    for r, row in enumerate(trace):
        row = row[np.isfinite(row)]
        if len(row) < 3:
            continue
        d1, d2 = row[-2] - row[-3], row[-1] - row[-2]
        if d2 == 0.0:
            out[r] = 0.0
        elif d1 > 0 and 0 < d2 / d1 < 1:
            c = d2 / d1
            out[r] = d2 * c / (1.0 - c)
    return out


def _restarts_from_state(state: em.EMState, params: dict, keys, offset: float,
                         objective=None, report: Optional[compare.SpuriousReport] = None,
                         spurious_last: bool = True, feature_scale=None,
                         tol: float = 1e-3, shared=()) -> Restarts:
    n_real = len(keys)  # the program may hold padding restarts after these (em.restart_bucket)
    status_codes = np.asarray(state.status)[:n_real]
    obj = np.asarray(state.objective if objective is None else objective,
                     dtype=np.float64)[:n_real] + offset
    raw = np.asarray(state.trace)[:n_real]
    precision = "float32" if raw.dtype == np.float32 else "float64"
    fell, fell_at = likelihood_falls(raw, precision)
    trace = raw.astype(np.float64) + offset
    bad_c = np.asarray(state.bad_component)[:n_real]
    bad_i = np.asarray(state.bad_iteration)[:n_real]
    status = [em.STATUS_NAMES[int(c)] for c in status_codes]
    messages = []
    for r, code in enumerate(status_codes):
        if code in _WHY:
            messages.append(
                f"restart {r}: component {bad_c[r]} was dropped at iteration {bad_i[r] + 1}: "
                f"{_WHY[int(code)]}."
            )
        elif code == em.MAX_ITER:
            messages.append(f"restart {r}: stopped at max_iter before the change fell below tol.")
        else:
            messages.append("")
    if state.accel is not None and state.accel.fell is not None:  # SQUAREM's plain maps
        mapped = np.asarray(state.accel.fell, np.float64)[:n_real]
        fell_at = np.where(mapped > fell, np.asarray(state.accel.fell_at)[:n_real], fell_at)
        fell = np.maximum(fell, mapped)
    # (float64's falls, a few 1e-9 where a covariance sits at reg_covar, are reg_covar's own:
    # added to each variance as scikit-learn does, it is not an exact M-step. They stay in
    # restarts_.fell, without a message: see fell_sentence.)
    for r in np.flatnonzero((fell > 0) & (precision == "float32")):
        text = (f"restart {r}: its log-likelihood fell by {fell[r]:.2g} at iteration "
                f"{int(fell_at[r]) + 1} (float32 rounding).")
        messages[r] = f"{messages[r]} {text}" if messages[r] else text
    usable = ~np.isin(status_codes, list(_WHY))
    report = compare.SpuriousReport.none(len(obj)) if report is None else report
    # Coinciding components (every estimator with components; ``shared``: parameters not
    # per component, such as a tied covariance): flagged as a spurious solution.
    if "weights" in params or "startprob" in params:
        report = compare.with_coinciding(report, compare.coinciding_components(params, shared))
    spurious = report.spurious & usable
    for r in np.flatnonzero(spurious):
        text = f"restart {r}: spurious maximum: {report.reasons[r]}."
        messages[r] = f"{messages[r]} {text}" if messages[r] else text
    order = compare.rank_restarts(obj, ~usable, spurious, spurious_last)
    best = int(order[0]) if usable.any() else -1
    return Restarts(
        objective=obj,
        n_iter=np.asarray(state.n_iter)[:n_real],
        converged=status_codes == em.CONVERGED,
        status=status,
        trace=trace,
        params=params,
        keys=np.asarray(jax.random.key_data(keys)),
        bad_component=bad_c,
        bad_iteration=bad_i,
        best=best,
        messages=messages,
        spurious=spurious,
        spurious_component=np.where(spurious, report.component, -1),
        spurious_reasons=[t if f else "" for t, f in zip(report.reasons, spurious)],
        spurious_last=spurious_last,
        feature_scale=feature_scale,
        tol=float(tol),
        fell=fell,
        fell_at=fell_at,
        precision=precision,
        **_accel_counts(state, n_real),
    )


def _accel_counts(state: em.EMState, n_real: int) -> dict:
    if state.accel is None:
        return {}
    a = state.accel
    return {"n_evals": np.asarray(a.evals)[:n_real], "accepted": np.asarray(a.accepted)[:n_real],
            "rejected": np.asarray(a.rejected)[:n_real]}


def _implied_sd(cov_type: str, weights, means, covariances) -> Optional[np.ndarray]:
    """(D,) the data's standard deviation per feature implied by the fitted mixtures
    (exactly the sample one at a maximum-likelihood fixed point for full, tied and
    diag covariances): the median over restarts of sqrt(sum_k w_k (S_k,jj + mu_kj^2)
    - mean_j^2)."""
    w = np.asarray(weights, np.float64)
    m = np.asarray(means, np.float64)
    k, d = m.shape[-2:]
    diag = np.diagonal(compare.dense_covariances(cov_type, covariances, k, d), axis1=-2, axis2=-1)
    mean = (w[..., None] * m).sum(-2)
    var = (w[..., None] * (diag + m**2)).sum(-2) - mean**2
    ok = np.isfinite(var).all(-1)
    if not ok.any():
        return None
    sd = np.sqrt(np.maximum(np.median(var[ok], axis=0), 0.0))
    return np.where(sd > 0, sd, 1.0)


def _warn_spurious(restarts: Restarts, floor_hint: str):
    """Say when the kept restart is spurious, or when a spurious one ranked above it."""
    r = restarts
    b = r.best
    if b < 0 or not r.spurious.any():
        return
    n_sp = int(r.spurious.sum())
    if r.spurious[b]:
        every = n_sp == int((~r.failed).sum())
        head = ("Every restart ended on a spurious maximum" if every else
                f"The kept restart ({b}) is a spurious maximum (spurious='allow')")
        validation.warn(
            f"{head}: in restart {b} (kept) {r.spurious_reasons[b]}; its log-likelihood "
            f"{r.objective[b]:.4g} is not that of a regular solution. {floor_hint}",
            SpuriousSolutionWarning)
        return
    above = np.flatnonzero(r.spurious & (r.objective > r.objective[b]))
    if above.size:
        top = int(above[np.argmax(r.objective[above])])
        validation.warn(
            f"{above.size} of {r.n_restarts} restarts reached a higher log-likelihood than the "
            f"kept restart {b} only by a spurious maximum (restart {top}: "
            f"{r.spurious_reasons[top]}); they rank after the regular solutions "
            "(spurious='allow' ranks by log-likelihood alone).",
            SpuriousSolutionWarning)


def _padded_key_data(keys, n_program: int) -> np.ndarray:
    """The (n_program, 2) words of ``keys`` on the host, padded by copies of the last
    (padding restarts draw like the last real one; they never run)."""
    data = np.asarray(jax.random.key_data(keys))
    return np.concatenate([data, np.repeat(data[-1:], n_program - len(data), axis=0)])


def _keys(random_state, n: int):
    """One threefry key per restart, drawn on the host (splitting on the device compiles)."""
    seed = validation.seed_from(random_state)
    data = np.random.SeedSequence(seed).generate_state(2 * n, np.uint32).reshape(n, 2)
    return jax.random.wrap_key_data(layout.to_device(data), impl="threefry2x32")


# ---------------------------------------------------------------------------

class StreamStart(NamedTuple):
    """What every streamed fit does before its first EM pass (:func:`start_streamed`)."""

    chunks: stream.Chunks
    progress: StreamProgress
    first: stream.FirstPass  # the first pass: rows, moments, the reservoir sample
    init: Any  # the estimator copy that initialised on the sample
    live: "LiveFit"  # its fit, not run: the initial state, hyperparameters and tol


def start_streamed(estimator, source, sample_weight, keys, missing: bool = False,
                   reg_floor: float = 0.0, levels: bool = False) -> StreamStart:
    """The common start of a streamed fit: the source as :class:`~emwidgets.Chunks`,
    one pass for the moments and a reservoir sample of ``estimator.STREAM_SAMPLE``
    rows, and every restart initialised on that sample by a copy of the estimator
    given the whole data's scaling (its scale floored for ``reg_floor``:
    :func:`data.floor_scale`); ``levels``: the columns are coded answers, and the
    copy is given every column's levels in the whole source (the sample may lack some)."""
    chunks = source if isinstance(source, stream.Chunks) else stream.Chunks(source)
    if sample_weight is not None:
        raise ValueError("Streamed rows take their weights from the source: "
                         "Chunks(source, sample_weight=...).")
    seed = int(np.random.default_rng(estimator.random_state).integers(2**31))
    progress = StreamProgress(chunks.progress, estimator.max_iter)
    first = stream.first_pass(chunks, estimator.STREAM_SAMPLE, seed, missing=missing,
                              progress=progress, levels=levels)
    init = type(estimator)(**estimator.get_params())
    if getattr(estimator, "standardize", False):  # each column by its standard deviation
        sd = np.sqrt(np.asarray(first.var, np.float64))
        scaling = layout.Scaling(first.mean, 1.0, np.where(sd > 0, sd, 1.0))
    else:
        scaling = layout.Scaling(first.mean, float(np.sqrt(np.mean(first.var))) or 1.0)
    init._given_scaling = layout.floor_scale(scaling, reg_floor)
    if levels:
        init._given_levels = first.levels
    if hasattr(estimator, "program_components"):
        init.compile_for(estimator.program_components)
    weighted = not np.all(first.sample_w == 1.0)
    live = init.start(first.sample, sample_weight=first.sample_w if weighted else None,
                      keys=keys)
    return StreamStart(chunks, progress, first, init, live)


def stream_run(start: "StreamStart", family, hyper, width: int, encode: Callable, max_iter: int,
               rule) -> stream.StreamRun:
    """The driver of a streamed fit from its :func:`start_streamed`: blocks of ``width``
    numbers a row, each chunk made the driver's data by ``encode(x, w, rows, dtype)``
    (padded to ``rows``), the state of the start's fit on the sample."""
    chunks, live0 = start.chunks, start.live
    rows, block = layout.padded_length(chunks.chunk_rows, layout.choose_block_size(
        chunks.chunk_rows, width))
    dtype = np.dtype(jax.tree.leaves(live0.run.state.params)[0].dtype)
    return stream.StreamRun(family, chunks, lambda x, w: encode(x, w, rows, dtype),
                            start.first.n, live0.run.state, hyper, live0.run.tol, block,
                            max_iter, rule=rule, progress=start.progress)


@dataclass
class LiveFit:
    """A fit in progress: call :meth:`advance` until ``done``, then :meth:`finish`.

    Between calls, :meth:`snapshot` gives the traces and parameters of every
    restart in data units, for drawing. It is given what it needs from its estimator
    when it is made (:meth:`_Estimator._live_fit`) and never reaches back into it.
    """

    run: em.EMRun
    scaling: layout.Scaling
    keys: Any
    n_samples: int
    #: (state, scaling, keys, n_samples=) -> :class:`Restarts` in data units
    to_restarts: Callable
    #: (this LiveFit) -> the estimator, its fitted attributes set from the best restart
    conclude: Callable
    features: Any = None  # (n_features, names) of the data, set on the estimator by finish
    n_rows: Optional[int] = None  # rows of the data (n_samples is their total weight)
    #: Whether it computes in float64: the precision its estimator's start ran in (every
    #: method runs in it, from any thread: :func:`in_precision`).
    x64: Optional[bool] = None

    def _x64(self) -> bool:
        return self.x64

    def __post_init__(self):
        if self.x64 is None:
            self.x64 = bool(jax.config.jax_enable_x64)
        progress = getattr(self.run, "progress", None)
        if progress is not None:  # a streamed fit's line: the best restart so far
            progress.best = self._best_so_far

    def _best_so_far(self) -> tuple:
        r = self.snapshot()
        running = int(sum(s == "running" for s in r.status))
        return (float(r.objective[r.best]) if r.best >= 0 else float("nan"), running,
                len(r.status))

    @property
    def done(self) -> bool:
        return self.run.done

    @property
    def iteration(self) -> int:
        return int(self.run.state.iteration)

    @in_precision
    def advance(self, n_iterations: Optional[int] = None):
        self.run.advance(n_iterations)
        return self

    @in_precision
    def snapshot(self) -> Restarts:
        return self.to_restarts(self.run.state, self.scaling, self.keys,
                                n_samples=self.n_samples)

    @in_precision
    def e_step(self):
        """Every restart's expected sufficient statistics under its current parameters
        (EM's first half; :func:`em.half_steps`), on the device."""
        e, _ = em.half_steps(self.run.family, self.run.block_size)
        return e(self.run.state.params, self.run.data, self.run.hyper)

    @in_precision
    def m_step(self, stats=None):
        """The parameters ``stats`` (from :meth:`e_step`; None: this fit's own E-step) give
        every restart (EM's second half): with this fit's statistics, its next
        iteration's parameters."""
        _, m = em.half_steps(self.run.family, self.run.block_size)
        stats = self.e_step() if stats is None else stats
        return m(self.run.state.params, stats, self.run.hyper, self.run.data)

    @in_precision
    def at(self, iteration: int) -> "LiveFit":
        """This fit as it was after ``iteration`` iterations, exactly (an iteration
        scrubber's frame): every restart's parameters equal a fresh fit stopped there
        (``max_iter=iteration``); replayed from a stored checkpoint by the same compiled
        program, so nothing compiles (:meth:`em.EMRun.at`). Not for a streamed fit."""
        if not hasattr(self.run, "at"):
            raise ValueError("A streamed fit cannot be rewound: each iteration was a pass "
                             "over the source. Fit the data in memory to scrub it.")
        return dataclasses.replace(self, run=self.run.at(iteration))

    @in_precision
    def finish(self):
        """Set the estimator's fitted attributes from the best restart.

        A streamed fit (every iteration a pass over the source) interrupted by a
        KeyboardInterrupt (the notebook's Stop, Ctrl-C) after at least one complete
        iteration keeps the model of its last complete pass, with a
        ConvergenceWarning that says so, and returns; before that, the interrupt
        propagates.
        """
        progress = getattr(self.run, "progress", None)
        interrupted = False
        if not self.done:
            try:
                self.run.advance()
            except KeyboardInterrupt:
                if progress is None or self.iteration == 0:
                    raise
                self.run.interrupted()
                interrupted = True
            except BaseException:
                if progress is not None:
                    progress.close(failed=True)
                raise
        if progress is not None:
            progress.close(interrupted=interrupted)
        if interrupted:
            validation.warn(
                f"Interrupted during EM iteration {self.iteration + 1} (a pass over the "
                f"source): the model is the one after {self.iteration} iterations, not "
                "converged.",
                validation.ConvergenceWarning)
        return self.conclude(self)

