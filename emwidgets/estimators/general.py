"""EM for any latent-variable model: your E-step and M-step on the engine.

A model is four pure JAX functions of one restart,

* ``init(key, data) -> params``: one start (any pytree of arrays), from a JAX key;
* ``e_step(params, data) -> stats``: the expected complete-data sufficient statistics
  (any pytree) under ``params``;
* ``m_step(stats, data) -> params``: the parameters that maximise the expected
  complete-data log-likelihood given ``stats``;
* ``log_likelihood(params, data) -> scalar``: the observed-data log-likelihood,

and :class:`EM` runs them as it runs the built-in models: every restart at once
(``jax.vmap``), one compiled program, every restart's trace kept, the same stopping
rules and report, SQUAREM, live fitting, scrubbing, replay and standard errors.

``rows=True`` says that the data are rows and the statistics sums over them: ``e_step``
and ``log_likelihood`` then take **one row** and the driver sums them over the rows
(weighted by ``sample_weight``, block by block: memory does not grow with the rows),
and ``m_step`` is called as ``m_step(stats, None)``; the rows may then also be read
chunk by chunk from a source too large for memory (:class:`~emwidgets.Chunks`, Parquet),
one pass an iteration. Otherwise ``data`` is any pytree and the functions see all of it
at once.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core import em, layout, stream
from ..core.accel import VectorForm
from ..core.family import Family, Health
from ..core.gmm import loglik_converged
from . import information, validation
from .base import (
    ConvergenceWarning,
    LiveFit,
    NotFittedError,
    Restarts,
    _Estimator,
    _keys,
    _restarts_from_state,
    _warn_stopped_short,
    start_streamed,
    stream_run,
)
from .mixture import check_sample_weight

#: The kinds of parameter the unconstrained form knows (:class:`emwidgets.core.accel.
#: VectorForm`): what SQUAREM extrapolates in, and the standard errors' coordinates.
KINDS = ("free", "log", "simplex", "cholesky")


class EMStats(NamedTuple):
    stats: Any  # the user's statistics (summed over the rows with rows=True)
    log_lik: Any  # the observed-data log-likelihood (summed)
    count: Any  # rows (total weight) with rows=True; 1 otherwise


def _finite(tree):
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves])) if leaves else True


@functools.lru_cache(maxsize=64)
def _family(e_step: Callable, m_step: Callable, log_likelihood: Callable, rows: bool,
            kinds_key) -> Family:
    """The driver's :class:`Family` of a user's model (cached by its functions, so that a
    second fit of the same model compiles nothing)."""

    def e(ctx, x, w, *_):
        params, data = ctx
        if rows:
            stats = jax.vmap(lambda row: e_step(params, row))(x)
            ll = jax.vmap(lambda row: log_likelihood(params, row))(x)
            keep = w > 0  # (padding rows: their statistics may be anything, even NaN)
            weigh = lambda s: jnp.tensordot(  # noqa: E731
                w, jnp.where(keep.reshape((-1,) + (1,) * (s.ndim - 1)), s, 0.0), axes=1)
            return EMStats(jax.tree.map(weigh, stats), jnp.sum(jnp.where(keep, w * ll, 0.0)),
                           w.sum())
        return EMStats(e_step(params, data), log_likelihood(params, data), jnp.ones((), w.dtype))

    def m(ctx, stats: EMStats, data):
        new = m_step(stats.stats, None if rows else data)
        new = jax.tree.map(lambda a, old: jnp.asarray(a, old.dtype), new, ctx[0])
        return new, Health(_finite(new), jnp.int32(-1))

    kinds = _kinds_function(kinds_key)
    return Family(prepare=lambda params, hyper: (params, hyper), e_step=e, m_step=m,
                  objective=lambda ctx, stats, hyper: stats.log_lik / stats.count,
                  converged=loglik_converged, vector_form=VectorForm(kinds))


@functools.lru_cache(maxsize=64)
def _e_step_program(e_step: Callable, rows: bool):
    """``e_step`` compiled: over each row with ``rows``, else over all the data."""
    if rows:
        return jax.jit(lambda p, data: jax.vmap(lambda row: e_step(p, row))(data))
    return jax.jit(e_step)


def _kinds_key(kinds):
    """A hashable form of ``kinds`` (None, a function, or a pytree of kind names)."""
    if kinds is None or callable(kinds):
        return kinds
    leaves, treedef = jax.tree.flatten(kinds)
    return (tuple(leaves), treedef)


def _kinds_function(key) -> Callable:
    """params -> the kind of each leaf (see :data:`KINDS`)."""
    if key is None:
        return lambda params: jax.tree.map(lambda _: "free", params)
    if callable(key):
        return key
    leaves, treedef = key
    return lambda params: jax.tree.unflatten(treedef, list(leaves))


class EM(_Estimator):
    """Maximum likelihood by EM for a model you write as four JAX functions.

    Parameters:
        init: ``init(key, data) -> params``, one start from a JAX key (a pytree of
            arrays: a dict, a tuple, a NamedTuple).
        e_step: ``e_step(params, data) -> stats``, the expected sufficient statistics.
        m_step: ``m_step(stats, data) -> params``, the M-step's maximiser.
        log_likelihood: ``log_likelihood(params, data) -> scalar``, observed data.
        rows: the data are rows and the statistics sums over them: ``e_step`` and
            ``log_likelihood`` take one row, ``m_step(stats, None)``; ``sample_weight``
            and memory bounded by blocks of rows come with it. The objective
            (``lower_bound_``, traces, ``tol``) is then per row; otherwise it is the
            total log-likelihood.
        kinds: the parameters' kinds, a pytree like ``params`` of ``"free"``, ``"log"``
            (positive), ``"simplex"`` (probabilities summing to 1 along the last axis)
            or ``"cholesky"`` (symmetric positive definite), or a function of the
            parameters returning one; default every leaf ``"free"``. SQUAREM
            extrapolates in the unconstrained form they give (so it never leaves the
            valid set), and the standard errors respect a simplex.
        n_init, tol, max_iter, random_state, accelerate, convergence, dtype: as for
            :class:`GaussianMixture` (SQUAREM and the gap rule by default).
        devices: as for :class:`GaussianMixture`: with ``rows=True`` the rows are split
            over the devices (each sums its own blocks; one collective adds them), or, for
            under 100,000 rows, the restarts; otherwise the restarts are spread.

    Fitted attributes: ``params_`` (the best restart's parameters), ``lower_bound_``,
    ``n_iter_``, ``converged_``, ``restarts_`` (every restart: ``restarts_.params
    ["params"]`` has a leading restart axis).

    Example (Dempster, Laird and Rubin's genetic linkage)::

        y = jnp.array([125., 18., 20., 34.])
        EM(init=lambda key, y: {"theta": jax.random.uniform(key, minval=0.05, maxval=0.95)},
           e_step=lambda p, y: y[0] * p["theta"] / (2 + p["theta"]),
           m_step=lambda x2, y: {"theta": (x2 + y[3]) / (x2 + y[1] + y[2] + y[3])},
           log_likelihood=lambda p, y: (y[0] * jnp.log(2 + p["theta"])
                                        + (y[1] + y[2]) * jnp.log1p(-p["theta"])
                                        + y[3] * jnp.log(p["theta"])),
           kinds={"theta": "free"}).fit(y).params_["theta"]      # 0.6268
    """

    def __init__(self, init: Callable = None, e_step: Callable = None, m_step: Callable = None,
                 log_likelihood: Callable = None, *, rows=False, kinds=None, n_init=16,
                 tol=1e-10, max_iter=1000, random_state=None, accelerate="squarem",
                 convergence="gap", devices=None, dtype=None):
        self.init = init
        self.e_step = e_step
        self.m_step = m_step
        self.log_likelihood = log_likelihood
        self.rows = rows
        self.kinds = kinds
        self.n_init = n_init
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.accelerate = accelerate
        self.convergence = convergence
        self.devices = devices
        self.dtype = dtype

    # -- checks -------------------------------------------------------------------
    def _check_settings(self):
        for name in ("init", "e_step", "m_step", "log_likelihood"):
            if not callable(getattr(self, name)):
                raise ValueError(f"EM needs {name} as a function (see EM's docstring: "
                                 "init(key, data), e_step(params, data), m_step(stats, data), "
                                 "log_likelihood(params, data)).")
        validation.check_int("n_init", self.n_init, 1)
        validation.check_int("max_iter", self.max_iter, 1)
        validation.check_positive("tol", self.tol, allow_zero=True)
        if not isinstance(self.rows, (bool, np.bool_)):
            raise ValueError(f"Invalid value for 'rows': {self.rows!r}; pass True or False.")
        self._step()
        self._rule()

    def _check_fitted(self):
        if not hasattr(self, "params_"):
            raise NotFittedError("This EM instance is not fitted yet; call 'fit' with some "
                                 "data first.")

    def _data(self, data, sample_weight):
        """(data on the device in the fit's precision, weights or None, rows)."""
        dtype = layout.float_dtype()

        def as_array(a):  # real numbers in the fit's precision; integers (codes, indices)
            a = np.asarray(a)  # and flags as they are
            return a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else a

        try:
            data = jax.tree.map(as_array, data)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"EM's data must be arrays or a pytree of arrays; got "
                             f"{type(data).__name__} ({exc}).") from None
        if not self.rows:
            if sample_weight is not None:
                raise ValueError("sample_weight needs rows=True (the data as rows whose "
                                 "statistics are summed).")
            return data, None, None
        lengths = {np.shape(a)[0] if np.ndim(a) else None for a in jax.tree.leaves(data)}
        if len(lengths) != 1 or None in lengths:
            got = sorted(map(str, lengths))
            raise ValueError("With rows=True every array of the data needs the rows on its "
                             f"first axis, the same number in each (got {got}).")
        n = lengths.pop()
        if n == 0:
            raise ValueError("The data have no rows.")
        weights = None if sample_weight is None else check_sample_weight(sample_weight, n)
        return data, weights, n

    def _call(self, name: str, fn: Callable, *args, traced: bool = False):
        """Call the user's ``fn`` once, its failure one sentence that names it."""
        sig = {"init": "init(key, data)", "e_step": "e_step(params, data)",
               "m_step": "m_step(stats, data)",
               "log_likelihood": "log_likelihood(params, data)"}[name]
        try:
            return jax.eval_shape(fn, *args) if traced else fn(*args)
        except Exception as exc:  # noqa: BLE001 (the user's function: say which failed)
            what = ("is not written in JAX (jax.numpy) or cannot be traced"
                    if traced and "Tracer" in type(exc).__name__ + str(exc)[:200] else "failed")
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ValueError(f"{sig} {what}: {type(exc).__name__}: {first}"[:400]) from None

    def _check_model(self, params, data):
        """One restart's functions called once, eagerly and traced: a failure, a wrong
        shape or a non-finite value is one sentence before anything compiles."""
        one = jax.tree.map(lambda a: a[0], data) if self.rows else data
        shapes = lambda t: jax.tree.map(lambda a: (np.shape(a), np.asarray(a).dtype), t)  # noqa
        for traced in (False, True):
            stats = self._call("e_step", self.e_step, params, one, traced=traced)
            new = self._call("m_step", self.m_step, stats, None if self.rows else data,
                             traced=traced)
            ll = self._call("log_likelihood", self.log_likelihood, params, one, traced=traced)
            if np.shape(ll) != ():
                raise ValueError(f"log_likelihood(params, data) returned shape {np.shape(ll)}; "
                                 "it must return one number.")
            if jax.tree.structure(new) != jax.tree.structure(params) or [
                    np.shape(a) for a in jax.tree.leaves(new)] != [
                    np.shape(a) for a in jax.tree.leaves(params)]:
                raise ValueError(
                    "m_step(stats, data) returned parameters of another structure or shape "
                    f"than init's: {jax.tree.map(np.shape, new)} against "
                    f"{jax.tree.map(np.shape, params)}; return the same pytree.")
            if not traced and not np.isfinite(np.asarray(ll)):
                raise ValueError(f"log_likelihood(params, data) returned {float(ll)} at the "
                                 "first restart's start; make init start where the data are "
                                 "possible.")
        del shapes

    # -- fitting ------------------------------------------------------------------
    def _initial_params(self, keys, data, r_program: int):
        """Every restart's start (``init`` on the host, one call a key), padded to the
        program's restarts by repeating the last."""
        starts = []
        for key in keys:
            p = self._call("init", self.init, key, data)
            starts.append(jax.tree.map(lambda a: np.asarray(a, np.float64), p))
        structure = jax.tree.structure(starts[0])
        if any(jax.tree.structure(s) != structure for s in starts):
            raise ValueError("init returned parameters of different structures; return the "
                             "same pytree every time.")
        starts += [starts[-1]] * (r_program - len(starts))
        dtype = layout.float_dtype()
        try:
            return jax.tree.map(lambda *a: np.stack(a).astype(dtype), *starts)
        except ValueError as exc:
            raise ValueError(f"init returned arrays of different shapes ({exc}); return the "
                             "same shapes every time.") from None

    #: Rows of the reservoir sample a streamed fit starts from (``init`` is given them).
    STREAM_SAMPLE = 20_000

    def start(self, data, y=None, *, sample_weight=None, keys=None) -> LiveFit:
        """Check the model, start every restart and return a :class:`~emwidgets.LiveFit`
        (``advance`` it, then ``finish``). ``keys`` replace the ones drawn from
        ``random_state`` (see :meth:`replay`). With ``rows=True`` the data may also be a
        source read chunk by chunk (:class:`~emwidgets.Chunks`, a Parquet path) of rows
        of numbers: ``init`` is given a reservoir sample of up to ``STREAM_SAMPLE`` rows
        (all of them when the source holds no more), then every iteration is one pass
        over the source, summing the rows' statistics chunk by chunk (plain EM maps)."""
        self._check_settings()
        if stream.is_source(data):
            return self._start_stream(data, sample_weight, keys)
        data, weights, n = self._data(data, sample_weight)
        n_restarts = self.n_init if keys is None else len(keys)
        keys = _keys(self.random_state, self.n_init) if keys is None else keys
        size = sum(int(np.size(a)) for a in jax.tree.leaves(data))
        r_program = em.restart_bucket(n_restarts, float(size))
        if self.rows:
            mesh = layout.device_mesh(self.devices, n, r_program)
        else:  # the data are not rows: the devices share out the restarts
            mesh = layout.restart_mesh(self.devices)
            r_program = layout.round_up(r_program, mesh)
        params = self._initial_params(keys, data, r_program)
        self._check_model(jax.tree.map(lambda a: jnp.asarray(a[0]), params), data)
        dtype = layout.float_dtype()
        if self.rows:
            width = max(1, size // n) * 4 + 4
            n_padded, block = layout.padded_length(
                n, layout.choose_block_size(n, width * r_program), layout.rows_shards(mesh))
            pad = lambda a: np.concatenate(  # noqa: E731
                [np.asarray(a), np.zeros((n_padded - n,) + np.shape(a)[1:], np.asarray(a).dtype)])
            w = np.zeros(n_padded, dtype)
            w[:n] = 1.0 if weights is None else weights
            drv = em.Data(jax.tree.map(lambda a: layout.to_device(pad(a)), data),
                          layout.to_device(w))
            hyper, n_samples = None, (n if weights is None else float(weights.sum()))
        else:  # one block of one "row": the functions see all the data, through hyper
            block = 1
            drv = em.Data(layout.to_device(np.zeros((1, 1), dtype)),
                          layout.to_device(np.ones(1, dtype)))
            hyper, n_samples = jax.tree.map(layout.to_device, data), 1
        family = _family(self.e_step, self.m_step, self.log_likelihood, bool(self.rows),
                         _kinds_key(self.kinds))
        state = em.host_init_state(params, n_real=len(keys))
        run = em.EMRun(family, block, state, drv, hyper, layout.to_device(self.tol, dtype),
                       max_iter=self.max_iter, quick=em.quick_compile(size * r_program),
                       step=self._step(), rule=self._rule(), mesh=mesh)
        self._n_rows = n
        return self._live_fit(run, None, keys, n_samples, n_rows=n)

    def _start_stream(self, source, sample_weight, keys) -> LiveFit:
        if not self.rows:
            raise ValueError("A source read chunk by chunk needs rows=True (each row's "
                             "statistics summed over the chunks).")
        start = start_streamed(self, source, sample_weight, keys)
        first, live0 = start.first, start.live

        def encode(x, w, rows, dtype):
            xp, wp = stream.pad_chunk(np.asarray(x), w, rows, dtype)
            return em.Data(layout.to_device(xp), layout.to_device(wp))

        width = (max(1, int(first.sample.shape[1])) * 4 + 4) * int(
            live0.run.state.status.shape[0])
        run = stream_run(start, live0.run.family, live0.run.hyper, width, encode,
                         self.max_iter, self._rule())
        self._n_rows = first.n
        return self._live_fit(run, None, live0.keys, first.total_w, n_rows=first.n)

    def fit(self, data, y=None, sample_weight=None):
        """Fit every restart and keep the best (highest log-likelihood)."""
        self.start(data, sample_weight=sample_weight).finish()
        return self

    def _restarts(self, state, scaling, keys, n_samples=None) -> Restarts:
        r = len(keys)
        tree = jax.tree.map(lambda a: np.asarray(a, np.float64)[:r], state.params)
        restarts = _restarts_from_state(state, {"params": tree}, keys, 0.0, tol=self.tol)
        for i, code in enumerate(np.asarray(state.status)[:r]):
            at = int(restarts.bad_iteration[i]) + 1
            if code == em.DEGENERATE:
                restarts.messages[i] = (f"restart {i}: m_step returned non-finite parameters "
                                        f"at iteration {at}.")
            elif code == em.NONFINITE:
                restarts.messages[i] = (f"restart {i}: log_likelihood was not finite at "
                                        f"iteration {at}.")
        return restarts

    def _finish(self, live: LiveFit):
        restarts = self._restarts(live.run.state, None, live.keys)
        b = restarts.best
        if b < 0:
            kept = "; the previous fit is kept" if hasattr(self, "params_") else ""
            raise ValueError(f"Every one of the {restarts.n_restarts} restarts failed "
                             f"({restarts.messages[0].rstrip('.')}){kept}.")
        self.params_ = jax.tree.map(lambda a: a[b], restarts.params["params"])
        self.n_iter_ = int(restarts.n_iter[b])
        self.converged_ = bool(restarts.converged[b])
        self.lower_bound_ = float(restarts.objective[b])
        self.restarts_ = restarts
        self.n_features_in_ = None
        fell = np.flatnonzero(restarts.fell > 0)
        if len(fell):
            i = int(fell[0])
            validation.warn(
                f"The log-likelihood fell by {restarts.fell[i]:.3g} at iteration "
                f"{int(restarts.fell_at[i]) + 1} of restart {i}: EM never lowers it, so "
                "m_step is not the maximiser of the expected complete-data log-likelihood "
                "given e_step's statistics, or e_step and log_likelihood disagree.",
                ConvergenceWarning)
        if not self.converged_:
            validation.warn(f"The best restart did not converge in max_iter={self.max_iter} "
                            "iterations; increase max_iter or tol.", ConvergenceWarning)
        _warn_stopped_short(restarts)
        return self

    def _conclude(self, live: LiveFit):
        return self._finish(live)

    def restart(self, restart: int) -> "EM":
        """The fitted model of restart ``restart`` (a copy)."""
        import copy

        self._check_fitted()
        other = copy.copy(self)
        other.params_ = jax.tree.map(lambda a: a[int(restart)], self.restarts_.params["params"])
        return other

    # -- using a fitted model -----------------------------------------------------
    def score(self, data, y=None, sample_weight=None) -> float:
        """The observed-data log-likelihood of ``data`` under the fitted parameters: per
        row with ``rows=True`` (weighted), the total otherwise (as ``lower_bound_``)."""
        self._check_fitted()
        total, count = self._total_log_likelihood(data, sample_weight)
        return float(total / count)

    def expected_statistics(self, data, params=None):
        """The E-step's statistics under ``params`` (default ``params_``): with
        ``rows=True`` each row's own (``e_step`` over the rows, a leading row axis: a
        row's responsibilities, its expected lifetime), otherwise ``e_step(params,
        data)``. What the explorer's E-step button hands a view that asks for them."""
        if params is None:
            self._check_fitted()
            params = self.params_
        data, _, _ = self._data(data, None)
        return _e_step_program(self.e_step, bool(self.rows))(
            jax.tree.map(jnp.asarray, params), data)

    def _total_log_likelihood(self, data, sample_weight=None, params=None):
        data, weights, n = self._data(data, sample_weight)
        p = jax.tree.map(jnp.asarray, self.params_ if params is None else params)
        if not self.rows:
            return self.log_likelihood(p, data), 1.0
        w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
        ll = jax.vmap(lambda row: self.log_likelihood(p, row))(data)
        return jnp.sum(jnp.asarray(w, ll.dtype) * ll), float(w.sum())

    def standard_errors(self, data, sample_weight=None,
                        function: Callable = None) -> information.StandardErrors:
        """Standard errors of ``params_`` from the observed information: the negative
        Hessian of ``log_likelihood`` summed over the data (autodiff, float64) at the
        estimate, in the free coordinates ``kinds`` give (a simplex's entries sum to 1),
        mapped to ``params_`` by the delta method. ``se.errors["params"]`` is shaped like
        ``params_``; ``se.covariance`` is the covariance of its entries, flattened.

        ``function``: ``function(params) -> array or pytree`` (written in JAX), the
        quantity whose errors you want (an odds ratio, a half-life): by the delta method
        through its autodiff Jacobian, in ``se.errors["function"]`` (and
        ``se.estimates["function"]``) instead of the parameters'."""
        self._check_fitted()
        with jax.enable_x64(True):
            data64 = jax.tree.map(
                lambda a: np.asarray(a, np.float64) if np.issubdtype(np.asarray(a).dtype,
                                                                     np.floating) else a,
                data)
            leaves, treedef = jax.tree.flatten(self.params_)
            kinds = jax.tree.leaves(_kinds_function(_kinds_key(self.kinds))(self.params_))
            parts = {str(i): (information.Simplex(a) if k == "simplex" else
                              information.Symmetric(a) if k == "cholesky" else
                              information.Free(a))
                     for i, (a, k) in enumerate(zip(leaves, kinds))}

            def params_from(arrays):
                return jax.tree.unflatten(treedef, [arrays[str(i)] for i in range(len(leaves))])

            def log_likelihood(params):
                return self._total_log_likelihood(data64, sample_weight, params)[0]

            shown = ((lambda p: {"params": p}) if function is None
                     else (lambda p: {"function": function(p)}))
            model = information.FamilyModel(parts, log_likelihood, params_from, shown)
            return information.family_standard_errors(model)

