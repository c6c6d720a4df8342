"""The one EM driver: every model family, every restart, batch or live.

A model family is a :class:`Family`: pure functions for one restart, which
the driver composes into an EM iteration::

    ctx = prepare(params, hyper)                  # per-iteration constants
    stats = sum over blocks of e_step(ctx, x, w)  # the driver's reduction
    new_params, health = m_step(ctx, stats, hyper)
    objective(ctx, stats, hyper)                  # of the params in ctx

The sum over blocks of samples is the driver's (:func:`block_sum`), never a
family's: a sum over devices or over chunks read from disk changes the driver only;
how it iterates and when it stops are objects it takes (:mod:`iteration`). The driver

* runs all restarts at once with ``jax.vmap`` inside one ``lax.while_loop``;
* freezes a restart once it has converged or failed (a done-mask), so the
  batched result equals running each restart alone;
* records the objective of every iteration per restart (NaN after the
  restart stopped) — the data a convergence plot draws — in a buffer of
  ``TRACE_CHUNK`` iterations that :class:`EMRun` gathers on the host after each
  call, so the iteration budget ``max_iter`` is a *traced* number and never
  part of a program's shape (changing it compiles nothing);
* stops after ``stop_at`` iterations, also traced, so the same compiled
  program serves the batch fit (``stop_at = max_iter``) and a live view that
  advances a few iterations per call (:class:`EMRun`). Both give bit-identical
  results because they run the same program.

Data are passed as :class:`Data`: a padded array of rows (samples, or whole
sequences for an HMM) with per-row weights (0 for padding), processed in
fixed-size blocks, so the memory of an E-step is bounded by the block size,
not by the number of rows.
"""

from __future__ import annotations

import contextvars
import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .family import (  # noqa: F401 (the driver's names for them, as before)
    CONVERGED,
    DEGENERATE,
    MAX_ITER,
    NONFINITE,
    PADDING,
    RUNNING,
    STATUS_NAMES,
    Data,
    Family,
    Health,
)
from .iteration import CHANGE, PLAIN
from .programs import StoredJit


def em_step(family: Family, params, data: "Data", hyper, block_size: int):
    """One EM iteration of one restart: (new_params, objective of ``params``, Health)."""
    ctx = family.prepare(params, hyper)
    stats = expected_stats(family, ctx, data, block_size)
    new_params, health = maximise(family, ctx, stats, hyper, data, block_size)
    return new_params, family.objective(ctx, stats, hyper), health


def expected_stats(family: Family, ctx, data: "Data", block_size: int):
    """The E-step: the expected sufficient statistics under ``ctx`` (a family's prepared
    parameters), summed over the rows by the driver's reduction."""
    return block_sum(lambda x, w, b, c: family.e_step(c, x, w), data, block_size, (ctx,))


def maximise(family: Family, ctx, stats, hyper, data: "Data", block_size: int):
    """The M-step: (new parameters, Health) from ``stats``; a family whose M-step reads
    the data gets its ``reduce`` over ``data``."""
    if not family.m_step_reads_data:
        return family.m_step(ctx, stats, hyper)

    def reduce(fn, *operands):
        return block_sum(lambda x, w, b, *o: fn(x, w, *o), data, block_size, operands)

    return family.m_step(ctx, stats, hyper, reduce)


@functools.lru_cache(maxsize=None)
def half_steps(family: Family, block_size: int):
    """EM's two halves as programs over every restart, for teaching (the explorer's step
    buttons replay whole iterations instead: :meth:`EMRun.at`):

    - ``e_step(params, data, hyper) -> stats``: every restart's expected sufficient
      statistics under its parameters (the responsibilities, summed);
    - ``m_step(params, stats, hyper) -> new params``: the parameters those statistics give.

    ``m_step(params, e_step(params, data, hyper), hyper, data)`` is one EM iteration
    (:func:`em_step`'s new parameters); ``data`` serves a family whose M-step reads the
    data (a user's family: its Newton steps sum over the rows)."""

    @jax.jit
    def e_step(params, data: Data, hyper):
        return jax.vmap(lambda p: expected_stats(family, family.prepare(p, hyper), data,
                                                 block_size))(params)

    @jax.jit
    def m_step(params, stats, hyper, data: Data):
        return jax.vmap(lambda p, st: maximise(family, family.prepare(p, hyper), st, hyper,
                                               data, block_size)[0])(params, stats)

    return e_step, m_step


#: Iterations one call of the compiled driver records (and runs at most): the
#: trace buffer's length. A batch fit of ``max_iter`` iterations makes about
#: ``max_iter / TRACE_CHUNK`` calls; each costs one host round trip.
TRACE_CHUNK = 64


class EMState(NamedTuple):
    """The state of every restart (leading axis R) and the loop counter.

    ``trace[:, j]`` is the objective of iteration ``base + j``, where ``base``
    is ``iteration`` when the driver was called (0 for a fresh state).
    """

    params: Any
    objective: Any  # (R,) objective of the last evaluated parameters
    n_iter: Any  # (R,) M-steps applied
    status: Any  # (R,) status code
    bad_component: Any  # (R,) component that made a restart degenerate, or -1
    bad_iteration: Any  # (R,) iteration at which it happened, or -1
    trace: Any  # (R, L) objective per iteration from the call's first one, NaN where not run
    iteration: Any  # () iterations run so far (the same for all restarts)
    accel: Any = None  # the step's per-restart counters (SQUAREM's accel.Accel), else None
    #: (R,) the stopping rule's memory (the gap rule's objective before ``objective``,
    #: NaN until known: :mod:`iteration`), else None.
    before: Any = None


#: The device mesh whose "rows" axis the samples are sharded over, while the driver of
#: a sharded run is traced (:func:`make_runner`'s ``mesh``); None: one device.
ROW_MESH = contextvars.ContextVar("emwidgets_row_mesh", default=None)
ROWS = "rows"
#: A mesh with this axis spreads the restarts over its devices instead (small data:
#: every device holds all the rows and runs its share of the restarts; no collective
#: but the loop's "any restart still running").
RESTARTS = "restarts"


def spreads_restarts(mesh) -> bool:
    return mesh is not None and mesh.axis_names == (RESTARTS,)


def shard_rows(data: Data, mesh) -> Data:
    """``data`` with its rows split evenly over ``mesh``'s devices (the row count must
    be a multiple of the device count times the block size: :func:`data.prepare`)."""
    from jax.sharding import NamedSharding, PartitionSpec

    return place(data, NamedSharding(mesh, PartitionSpec(ROWS)))


def place(tree, sharding):
    """``tree``'s arrays laid out as ``sharding`` says. Where several processes share
    the mesh (under ``jax.distributed``, each with the same values), each process
    places the parts its own devices hold, from a host copy: an array already on one
    device would need a cross-host transfer, and device_put's check that the
    processes agree fails on NaN (a trace)."""
    if jax.process_count() == 1:
        return jax.device_put(tree, jax.tree.map(lambda _: sharding, tree))

    def one(a):
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(one, tree)


def block_sum(fn: Callable, data: Data, block_size: int, operands: tuple = ()):
    """Sum ``fn(x_block, w_block, block_index, *operands)`` over blocks of samples.

    ``data.x`` is an (n_padded, D) array or a pytree of per-row arrays (each
    with leading axis n_padded; see :mod:`missing`). ``fn`` returns a pytree
    of per-block sums; the result has the same structure. Memory is that of
    one block, whatever the number of samples.

    The reduction is the driver's: while a sharded run is traced (``ROW_MESH``),
    every device sums the blocks of its own rows and the devices' sums are added
    with one collective (``psum``), whatever the family. Arrays ``fn`` needs besides the
    rows (the parameters, a family's prepared context) come as ``operands``, not closed
    over: each device then sees them as its own replicated copy (closed over, a value
    laid out for the whole mesh meets the devices' manual view, and some operations
    refuse it: "Context mesh ... should match the mesh of sharding").
    """
    mesh = ROW_MESH.get()
    if mesh is None:
        return _local_block_sum(lambda x, w, b: fn(x, w, b, *operands), data, block_size)
    from jax.sharding import PartitionSpec

    n_devices = mesh.devices.size
    local_block = min(block_size, data.w.shape[0] // n_devices)

    def local(d: Data, ops):
        return lax.psum(_local_block_sum(lambda x, w, b: fn(x, w, b, *ops), d, local_block),
                        ROWS)

    spec = jax.tree.map(lambda _: PartitionSpec(ROWS), data)
    everywhere = jax.tree.map(lambda _: PartitionSpec(), tuple(operands))
    return jax.shard_map(local, mesh=mesh, in_specs=(spec, everywhere),
                         out_specs=PartitionSpec())(data, tuple(operands))


def _local_block_sum(fn: Callable, data: Data, block_size: int):
    n_padded = data.w.shape[0]
    n_blocks = n_padded // block_size
    if n_blocks == 1:
        return fn(data.x, data.w, jnp.int32(0))
    xb = jax.tree.map(lambda a: a.reshape((n_blocks, block_size) + a.shape[1:]), data.x)
    wb = data.w.reshape(n_blocks, block_size)
    idx = jnp.arange(n_blocks, dtype=jnp.int32)
    # The sum starts from the first block's (0 + s0 is s0 to the bit), not from zeros: under
    # shard_map the zeros would not vary over the devices while the blocks' sums do, and
    # scan needs its carry's type to stay the same.
    init = fn(jax.tree.map(lambda a: a[0], xb), wb[0], idx[0])

    # (The later blocks are read by index: slicing xb[1:] would copy the data.)
    def body(carry, i):
        block = jax.tree.map(lambda a: lax.dynamic_index_in_dim(a, i, 0, keepdims=False),
                             (xb, wb))
        return jax.tree.map(jnp.add, carry, fn(*block, i)), None

    out, _ = lax.scan(body, init, idx[1:])
    return out


def init_state(params, trace_length: int = TRACE_CHUNK, n_real=None) -> EMState:
    """A fresh state for a batch of restarts whose parameters have leading axis R.

    ``trace_length`` is the most iterations one call of the driver runs (keep
    the default unless the driver is called once, inside another program).
    With ``n_real`` (traced) < R, the restarts from ``n_real`` on are padding:
    they never run (see :func:`restart_bucket`).
    """
    n_restarts = jax.tree.leaves(params)[0].shape[0]
    dtype = jax.tree.leaves(params)[0].dtype
    minus_one = jnp.full((n_restarts,), -1, jnp.int32)
    return EMState(
        params=params,
        objective=jnp.full((n_restarts,), -jnp.inf, dtype),
        n_iter=jnp.zeros((n_restarts,), jnp.int32),
        status=(jnp.zeros((n_restarts,), jnp.int32) if n_real is None else
                jnp.where(jnp.arange(n_restarts) < n_real, RUNNING, PADDING).astype(jnp.int32)),
        bad_component=minus_one,
        bad_iteration=minus_one,
        trace=jnp.full((n_restarts, trace_length), jnp.nan, dtype),
        iteration=jnp.int32(0),
    )


def host_init_state(params, n_real=None, trace_length: int = TRACE_CHUNK) -> EMState:
    """:func:`init_state` built in NumPy from host parameters (R leading): a start
    drawn on the host needs no compiled program."""
    leaves = jax.tree.leaves(params)
    n_restarts, dtype = leaves[0].shape[0], np.asarray(leaves[0]).dtype
    n_real = n_restarts if n_real is None else int(n_real)
    minus_one = np.full((n_restarts,), -1, np.int32)
    state = EMState(
        params=params,
        objective=np.full((n_restarts,), -np.inf, dtype),
        n_iter=np.zeros((n_restarts,), np.int32),
        status=np.where(np.arange(n_restarts) < n_real, RUNNING, PADDING).astype(np.int32),
        bad_component=minus_one,
        bad_iteration=minus_one.copy(),
        trace=np.full((n_restarts, trace_length), np.nan, dtype),
        iteration=np.int32(0),
    )
    return jax.device_put(state)


#: Restarts are padded to a power of two when a padded batch holds at most this
#: many numbers per iteration (samples x components x statistics x restarts):
#: then n_init 3, 5, 10 or 12 share the programs of 4, 8 and 16, and a restarts
#: slider compiles a few programs, not one per value. Padding costs at most 2x
#: the work of an iteration, which on such small data is below the fixed cost of
#: an iteration; larger data keep the exact count (nothing wasted).
PAD_RESTARTS_WORK = 2.0**21


def restart_bucket(n_restarts: int, work_per_restart: float) -> int:
    """The number of restarts a program holds for ``n_restarts`` (see PAD_RESTARTS_WORK)."""
    bucket = 1 << max(int(n_restarts) - 1, 0).bit_length()
    return bucket if bucket * work_per_restart <= PAD_RESTARTS_WORK else int(n_restarts)


#: On a CPU, programs doing at most this many numbers of work per iteration
#: (samples x components x statistics x restarts) compile with XLA's LLVM
#: optimisation off (QUICK_COMPILE_OPTIONS). Measured on a 2-core CPU for Old
#: Faithful: an initialisation program compiles in 1.4 s instead of 2.7 s and
#: the EM program in 0.6 s instead of 1.0 s, while the fit itself runs for
#: milliseconds either way. On large data the unoptimised code runs 2-2.4x
#: slower (100k x 8, 10 components: 7.1 s instead of 3.0 s), so those keep the
#: optimised program. GPUs always get the default.
QUICK_COMPILE_WORK = 2.0**21
QUICK_COMPILE_OPTIONS = {"xla_backend_optimization_level": 0}
#: True while the driver of a quickly compiled program is being traced: a family may trace
#: the form that runs faster unoptimised (forward-backward's matrix products, see baum_welch.py).
TRACING_QUICK = contextvars.ContextVar("emwidgets_tracing_quick", default=False)


def quick_compile(work: float) -> bool:
    """Whether a program of ``work`` numbers per iteration compiles for speed of compilation."""
    return work <= QUICK_COMPILE_WORK and jax.default_backend() == "cpu"


class SizedJit:
    """``jax.jit`` with two programs per signature: the default one, and one that
    compiles quickly (``QUICK_COMPILE_OPTIONS``) for small work, chosen per call
    with ``quick=`` (see :func:`quick_compile`). Both are cached as usual."""

    def __init__(self, fun, **jit_kwargs):

        functools.update_wrapper(self, fun)
        self.optimised = StoredJit(fun, **jit_kwargs)
        self.quick = StoredJit(fun, compiler_options=QUICK_COMPILE_OPTIONS, **jit_kwargs)

    def __call__(self, *args, quick: bool = False, **kwargs):
        return (self.quick if quick else self.optimised)(*args, **kwargs)

    def cache_size(self) -> int:
        return self.optimised.cache_size() + self.quick.cache_size()


def sized_jit(**jit_kwargs):
    """Decorator: :class:`SizedJit` with ``jax.jit``'s keyword arguments."""
    return lambda fun: SizedJit(fun, **jit_kwargs)


def group_size_for(n_restarts: int, work_per_restart: float, target: float = 2.0**21) -> int:
    """Restarts per vmapped group: enough work per iteration to amortise its fixed cost.

    A vmapped batch iterates until its slowest restart stops, so small groups
    waste less on restarts that converged early, while large groups amortise
    the fixed cost of each loop iteration and widen the matrix products. The
    group holds about ``target`` numbers per iteration (``work_per_restart``
    each), rounded to a divisor of ``n_restarts``.
    """
    want = max(1, int(np.ceil(target / max(work_per_restart, 1.0))))
    # (the divisors from those up to the square root: n_init=10**9 is refused for memory
    # in one sentence, after this, and a loop to n_restarts took 47 s)
    small = [g for g in range(1, math.isqrt(n_restarts) + 1) if n_restarts % g == 0]
    divisors = sorted(set(small + [n_restarts // g for g in small]))
    return next((g for g in divisors if g >= want), n_restarts)


@functools.lru_cache(maxsize=None)
def make_runner(family: Family, block_size: int, group_size: int | None = None,
                quick: bool = False, step=PLAIN, rule=CHANGE, mesh=None):
    """The compiled driver for one family, block size and restart grouping.

    Returns ``advance(state, data, hyper, tol, stop_at, max_iter=None) ->
    state``: iterate every running restart until all have stopped,
    ``min(stop_at, max_iter)`` iterations have run in all, or the trace buffer
    (length L, from the call's first iteration) is full. ``tol``, ``hyper``,
    ``data``, ``stop_at`` and ``max_iter`` are traced: changing them never
    recompiles (``max_iter=None`` means the buffer's length L). Restarts still
    running at ``max_iter`` get status ``MAX_ITER``.

    With ``group_size`` g < R, the restarts run as R / g vmapped groups one
    after the other inside the same program (``lax.map``): each group stops
    when *its* slowest restart stops (see :func:`group_size_for`). With
    ``quick``, the program compiles for speed of compilation (:func:`quick_compile`).
    ``step`` and ``rule``: how an iteration goes and when a restart has converged
    (:mod:`iteration`: plain EM or a SQUAREM cycle; the change rule or the gap rule).
    ``mesh``: a device mesh whose ``"rows"`` axis the data's rows are sharded over
    (:func:`shard_rows`): every reduction over samples is a per-device sum and a
    collective (:func:`block_sum`); or whose ``"restarts"`` axis the restarts are
    spread over (the state's restart axis split, the data on every device; the
    compiler partitions the vmapped restarts, :class:`EMRun` places the arrays).
    The state must carry the step's counters and the rule's memory (:class:`EMRun` adds
    them: ``step.initial``, ``rule.initial``).
    """
    step.check(family)

    def em_map(data, hyper):
        return lambda p: em_step(family, p, data, hyper, block_size)

    def run_group(state: EMState, data: Data, hyper, tol, stop_at, max_iter, base):
        end = jnp.minimum(jnp.minimum(stop_at, max_iter), base + state.trace.shape[1])

        def cond(s: EMState):
            return (s.iteration < end) & jnp.any(s.status == RUNNING)

        def body(s: EMState):
            update = step.update(em_map(data, hyper), family, s.iteration, base, tol, hyper,
                                 rule)
            args = (s.params, s.objective, s.n_iter, s.status, s.bad_component,
                    s.bad_iteration, s.trace, s.accel, s.before)
            if s.status.shape[0] == 1:
                # One restart per group: the step unbatched. Through a vmapped axis of
                # size 1 the products became batched ones, and a Lloyd iteration on
                # 100k x 8 rows took 2.3 ms instead of 1.4 ms.
                out = jax.tree.map(lambda a: a[None],
                                   update(*jax.tree.map(lambda a: a[0], args)))
            else:
                out = jax.vmap(update)(*args)
            return EMState(*out[:7], iteration=s.iteration + 1, accel=out[7], before=out[8])

        return lax.while_loop(cond, body, state)

    def advance(state: EMState, data: Data, hyper, tol, stop_at, max_iter=None):
        base = state.iteration
        if max_iter is None:
            max_iter = base + state.trace.shape[1]
        state = state._replace(trace=jnp.full_like(state.trace, jnp.nan))
        state = step.prime(em_map(data, hyper), state)
        n_restarts = state.status.shape[0]
        g = n_restarts if group_size is None else group_size
        if g >= n_restarts:
            state = run_group(state, data, hyper, tol, stop_at, max_iter, base)
        else:
            per_restart = state._replace(iteration=jnp.zeros((n_restarts,), jnp.int32))
            grouped = jax.tree.map(lambda a: a.reshape((n_restarts // g, g) + a.shape[1:]),
                                   per_restart)

            def one_group(s):
                s = s._replace(iteration=state.iteration)
                out = run_group(s, data, hyper, tol, stop_at, max_iter, base)
                return out._replace(iteration=jnp.full((g,), out.iteration))

            out = lax.map(one_group, grouped)
            out = jax.tree.map(lambda a: a.reshape((n_restarts,) + a.shape[2:]), out)
            state = out._replace(iteration=out.iteration.max())
        hit_max = (state.status == RUNNING) & (state.iteration >= max_iter)
        return state._replace(status=jnp.where(hit_max, MAX_ITER, state.status))

    traced = advance

    @functools.wraps(traced)
    def advance(*args, **kwargs):  # (the body runs when traced: the flag holds for tracing)
        token = TRACING_QUICK.set(quick)
        rows = ROW_MESH.set(None if spreads_restarts(mesh) else mesh)
        try:
            return traced(*args, **kwargs)
        finally:
            TRACING_QUICK.reset(token)
            ROW_MESH.reset(rows)

    if mesh is not None:  # a sharded program: jit's own (it names its devices; not exported)
        return jax.jit(advance, compiler_options=QUICK_COMPILE_OPTIONS if quick else None)
    return StoredJit(advance, compiler_options=QUICK_COMPILE_OPTIONS if quick else None,
                     key_extra=(family.name, block_size, group_size)
                     + tuple(k for k in (rule.key, step.key) if k),
                     persist=bool(family.name))


def with_policies(state: EMState, step=PLAIN, rule=CHANGE) -> EMState:
    """``state`` with the step's counters and the rule's memory where it has none yet."""
    n_restarts = int(state.status.shape[0])
    dtype = np.dtype(jax.tree.leaves(state.params)[0].dtype)
    if state.accel is None:
        acc = step.initial(state.params, n_restarts, dtype)
        state = state._replace(accel=None if acc is None else jax.device_put(acc))
    if state.before is None:
        before = rule.initial(n_restarts, dtype)
        state = state._replace(before=None if before is None else jax.device_put(before))
    return state


class EMRun:
    """A fit advanced a few iterations at a time, for live views.

    Each :meth:`advance` call runs the same compiled program as the batch fit,
    so stopping early, resuming and the batch fit all agree exactly. The
    program records at most ``TRACE_CHUNK`` iterations per call; the run
    gathers them into a host array, so :attr:`state` has the whole
    ``(R, max_iter)`` trace (a NumPy array) and the device arrays of the rest.

    Example:
        >>> run = EMRun(family, block_size, state0, data, hyper, tol, max_iter=100)
        >>> while not run.done:
        ...     state = run.advance(5)   # draw state.trace between calls
    """

    def __init__(self, family: Family, block_size: int, state: EMState, data: Data, hyper, tol,
                 group_size: int | None = None, max_iter: int | None = None,
                 quick: bool = False, step=PLAIN, rule=CHANGE, mesh=None):
        self._advance = make_runner(family, block_size, group_size, quick, step, rule, mesh)
        self.family, self.block_size = family, block_size
        state = with_policies(state, step, rule)
        self.quick = quick  # programs that go with this run can compile the same way
        self.max_iter = int(state.trace.shape[1] if max_iter is None else max_iter)
        n_restarts = int(state.status.shape[0])
        self._trace = np.full((n_restarts, self.max_iter), np.nan,
                              np.dtype(jax.tree.leaves(state.params)[0].dtype))
        if spreads_restarts(mesh):  # each device its share of the restarts, and every row
            from jax.sharding import NamedSharding, PartitionSpec

            everywhere = NamedSharding(mesh, PartitionSpec())
            split = NamedSharding(mesh, PartitionSpec(RESTARTS))
            state = jax.tree.map(
                lambda a: place(a, split if np.ndim(a) and np.shape(a)[0] == n_restarts
                                else everywhere), state)
            data, hyper, tol = place((data, hyper, tol), everywhere)
        elif mesh is not None:  # rows split over the devices, everything else on each of them
            from jax.sharding import NamedSharding, PartitionSpec

            data = shard_rows(data, mesh)
            everywhere = NamedSharding(mesh, PartitionSpec())
            state, hyper, tol = place((state, hyper, tol), everywhere)
        self._device = state
        self._iteration = int(state.iteration)
        self._status = np.asarray(state.status)
        self.data = data
        self.hyper = hyper
        self.tol = tol
        # The device state after each call (iteration -> state): :meth:`at` replays from
        # the nearest one. At most MAX_CHECKPOINTS, thinned by halves (the first kept).
        self._checkpoints = {self._iteration: state}

    @property
    def state(self) -> EMState:
        """The state of every restart, with the whole trace (R, max_iter) as a host array."""
        return self._device._replace(trace=self._trace)

    @state.setter
    def state(self, value: EMState):
        self._device = value._replace(trace=self._device.trace)
        self._iteration = int(value.iteration)
        self._status = np.asarray(value.status)

    @property
    def done(self) -> bool:
        return bool((self._status != RUNNING).all()) or self._iteration >= self.max_iter

    def advance(self, n_iterations: int | None = None) -> EMState:
        """Run up to ``n_iterations`` more iterations (all remaining if None)."""
        stop_at = self.max_iter if n_iterations is None else self._iteration + n_iterations
        stop_at = min(stop_at, self.max_iter)
        while True:
            base = self._iteration
            s = self._advance(self._device, self.data, self.hyper, self.tol, np.int32(stop_at),
                              np.int32(self.max_iter))
            self._device = s
            self._iteration = int(s.iteration)
            self._status = np.asarray(s.status)
            ran = self._iteration - base
            if ran > 0:
                self._trace[:, base:self._iteration] = np.asarray(s.trace)[:, :ran]
                self._checkpoint(s)
            if ran <= 0 or self._iteration >= stop_at or self.done:
                break
        return self.state

    #: Device states kept for :meth:`at`: memory is this many times the state's (every
    #: restart's parameters and a (R, TRACE_CHUNK) trace buffer), whatever the run's length.
    MAX_CHECKPOINTS = 32

    def _checkpoint(self, s: EMState):
        if self._checkpoints is None:
            return
        self._checkpoints[self._iteration] = s
        if len(self._checkpoints) > self.MAX_CHECKPOINTS:
            kept = sorted(self._checkpoints)
            self._checkpoints = {t: self._checkpoints[t] for t in kept[::2]}

    def at(self, iteration: int) -> "EMRun":
        """This run as it was after ``iteration`` iterations (clipped to those run),
        exactly: a copy replayed by the same compiled program from the nearest earlier
        checkpoint (a call's ``stop_at`` is traced, so nothing compiles). Every restart
        that had stopped by then is as it stopped; the copy keeps no checkpoints (its own
        ``at`` asks the original run)."""
        if self._checkpoints is None:
            return self._origin.at(iteration)
        # (May be called while another thread advances the run, an explorer scrubbing a
        # run in progress: read the checkpoints and the iteration once, as they stand.)
        checkpoints, last = dict(self._checkpoints), self._iteration
        t = int(np.clip(iteration, 0, last))
        start = max(c for c in checkpoints if c <= t)
        copy = object.__new__(EMRun)
        copy.__dict__.update(self.__dict__)
        copy._checkpoints, copy._origin = None, self
        state = checkpoints[start]
        copy._device, copy._iteration = state, start
        copy._status = np.asarray(state.status)
        copy._trace = self._trace.copy()
        copy._trace[:, start:] = np.nan
        if t > start:
            copy.advance(t - start)
        return copy
