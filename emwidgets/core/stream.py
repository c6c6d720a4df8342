"""Exact EM over data read chunk by chunk: every iteration is one pass over the source.

Sufficient statistics are sums, so an E-step over data that do not fit in memory is
the sum, chunk after chunk, of the same per-block statistics the in-memory driver
computes (``em.block_sum`` of the family's ``e_step``, vmapped over restarts); the
M-step, the objective, the convergence test and the restarts' bookkeeping are the
driver's own (the plain step of :mod:`iteration` with the statistics given). Peak memory is that
of a few chunks, whatever the number of rows. While the device sums one chunk, the
next is read and prepared on a thread.

:class:`StreamRun` has :class:`em.EMRun`'s interface (``state``, ``done``,
``advance``), so an estimator's :class:`~emwidgets.estimators.base.LiveFit` runs on it as on
an in-memory fit; :class:`Chunks` says where the rows come from.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import weakref
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from . import em, iteration
from .em import RUNNING, Data, EMState, Family

#: Rows a chunk holds by default (about 2 MB of float32 at 8 features).
CHUNK_ROWS = 65_536


def is_source(X) -> bool:
    """Whether ``X`` is read chunk by chunk (:class:`Chunks`, a path, a function), not
    an array in memory."""
    if isinstance(X, (str, os.PathLike)):  # a path to Parquet data (other text is not data)
        return str(X).endswith(".parquet") or Path(X).is_dir() or (
            Path(X).is_file() and Path(X).suffix == ".parquet")
    return isinstance(X, Chunks) or (callable(X) and not hasattr(X, "shape"))


class Chunks:
    """A source of rows read a chunk at a time, re-read for every pass of EM.

    ``source`` may be a Parquet file or a directory of them (read with pyarrow;
    ``columns`` picks columns by name), any array with a shape and slicing (a
    NumPy memmap, a Zarr or HDF5 array, a Dask array: each slice is made a NumPy
    array), or a function returning a fresh iterator of (n_i, D) chunks (a
    re-iterable of chunks, such as a list, works too). ``sample_weight``: a column
    name (Parquet) or an array of one weight per row. ``progress``: a fit over the
    source shows one line of progress (passes, rows per second, the best
    log-likelihood, the restarts running) from the start (True), never (False), or
    once it has run two seconds (None).
    """

    def __init__(self, source, columns=None, chunk_rows: int = CHUNK_ROWS,
                 sample_weight=None, progress: Optional[bool] = None):
        self.source = source
        self.progress = progress
        self.columns = None if columns is None else list(columns)
        self.chunk_rows = int(chunk_rows)
        self.sample_weight = sample_weight
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows={chunk_rows}: a chunk needs at least one row.")

    def __iter__(self) -> Iterator[tuple[np.ndarray, Optional[np.ndarray]]]:
        """(rows (n_i, D) float64, weights (n_i,) or None) chunk by chunk."""
        src = self.source
        if isinstance(src, (str, os.PathLike)):
            yield from self._parquet(Path(src))
        elif hasattr(src, "shape") and hasattr(src, "__getitem__"):
            n = int(src.shape[0])
            w = None if self.sample_weight is None else np.asarray(self.sample_weight)
            for start in range(0, n, self.chunk_rows):
                stop = min(n, start + self.chunk_rows)
                yield (np.asarray(src[start:stop], np.float64),
                       None if w is None else np.asarray(w[start:stop], np.float64))
        else:
            chunks = src() if callable(src) else iter(src)
            for chunk in chunks:
                x = np.asarray(chunk, np.float64)
                yield (x[:, None] if x.ndim == 1 else x), None

    def _parquet(self, path: Path):
        try:
            import pyarrow.parquet
        except ImportError:  # an optional dependency
            raise ImportError("Reading Parquet needs pyarrow: pip install pyarrow.") from None
        if not path.exists():
            raise ValueError(f"There is no file or directory {str(path)!r} to read.")
        files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
        if not files:
            raise ValueError(f"No Parquet file in {str(path)!r}.")
        weight = self.sample_weight if isinstance(self.sample_weight, str) else None
        for file in files:
            reader = pyarrow.parquet.ParquetFile(file)
            names = self.columns or [n for n in reader.schema_arrow.names if n != weight]
            wanted = names + ([weight] if weight else [])
            for batch in reader.iter_batches(batch_size=self.chunk_rows, columns=wanted):
                column = lambda c, b=batch: b.column(c).to_numpy(zero_copy_only=False)  # noqa: E731
                x = np.column_stack([column(c) for c in names]).astype(np.float64, copy=False)
                yield x, (column(weight).astype(np.float64) if weight else None)


class FirstPass(NamedTuple):
    """What one pass over the source tells before EM starts (:func:`first_pass`)."""

    n: int  # rows
    total_w: float  # their summed weight
    mean: np.ndarray  # (D,) weighted column means (of the observed values)
    var: np.ndarray  # (D,) weighted column variances (of the observed values)
    sample: np.ndarray  # (S, D) a uniform reservoir sample of rows (NaN where missing)
    sample_w: np.ndarray  # (S,) their weights
    patterns: Optional[np.ndarray] = None  # (M, D) bool, the distinct observed-value masks
    observed_per_row: Optional[float] = None  # weighted mean count of observed values
    levels: Optional[list] = None  # per column, its sorted distinct observed values


#: Streamed missing values key a row's observed-value pattern by an int64 of its bits.
MAX_MISSING_COLUMNS = 62


def pattern_keys(observed: np.ndarray) -> np.ndarray:
    """(N, D) bool -> (N,) int64 whose order is the rows' lexicographic order (the
    order of ``np.unique(observed, axis=0)``, which :func:`missing.encode_patterns`
    uses in memory)."""
    d = observed.shape[1]
    return observed.astype(np.int64) @ (np.int64(1) << np.arange(d - 1, -1, -1, dtype=np.int64))


def _chunk_moments(x, w, observed):
    """Per column: summed weight of the observed values, their weighted mean and sum of
    squared deviations (centred in the chunk: no cancellation on large offsets)."""
    wo = w[:, None] * observed
    counts = wo.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, (wo * np.where(observed, x, 0.0)).sum(0) / counts, 0.0)
    dev = np.where(observed, x - mean, 0.0)
    return counts, mean, (wo * dev * dev).sum(0)


def _merge_moments(a, b):
    """Two chunks' (counts, mean, m2) combined (Chan, Golub & LeVeque's update)."""
    if a[0] is None:
        return b
    (na, ma, sa), (nb, mb, sb) = a, b
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n > 0, nb / n, 0.0)
    delta = mb - ma
    return n, ma + delta * share, sa + sb + delta**2 * na * share


def first_pass(chunks: Chunks, sample_size: int, seed: int, missing: bool = False,
               progress=None, levels: bool = False) -> FirstPass:
    """One pass: rows, weighted column means and variances (float64), and a uniform
    reservoir sample of at most ``sample_size`` rows (Vitter's algorithm R), in their
    order in the source when every row fits (then the sample is the data).

    ``missing``: NaN entries are missing values (moments over the observed ones, and
    the distinct observed-value patterns are collected); otherwise a NaN is an error.
    ``levels``: the columns are answers coded as numbers, NaN where unanswered; each
    column's distinct values are collected (a latent class model's levels).
    """
    rng = np.random.default_rng(seed)
    n = 0
    total_w = 0.0
    counts = mean = m2 = None
    keys = set()
    observed_count = 0.0
    sample, sample_w = [], []
    width = None
    seen = None
    for i, (x, w) in enumerate(chunks):
        if width is None:
            width = x.shape[1]
            if missing and width > MAX_MISSING_COLUMNS:
                raise ValueError(f"Streamed missing values take at most {MAX_MISSING_COLUMNS} "
                                 f"columns; the source has {width}.")
        elif x.shape[1] != width:
            raise ValueError(f"Chunk {i} of the source has {x.shape[1]} columns, the first "
                             f"had {width}: every chunk must have the same columns.")
        observed = ~np.isnan(x)
        if levels:
            if seen is None:
                seen = [set() for _ in range(width)]
            for j in range(width):
                seen[j].update(np.unique(x[observed[:, j], j]).tolist())
        if np.isinf(x).any() or not (missing or levels or observed.all()):
            raise ValueError(f"Chunk {i} of the source holds NaN or infinite values: streamed "
                             "EM fits complete rows only" + (
                                 " (infinite values never)" if missing else
                                 "; pass missing='em', or drop or fill them first") + ".")
        ww = np.ones(len(x)) if w is None else w
        counts, mean, m2 = _merge_moments((counts, mean, m2), _chunk_moments(x, ww, observed))
        total_w += float(ww.sum())
        if missing:
            keys.update(np.unique(pattern_keys(observed)).tolist())
            observed_count += float(ww @ observed.sum(1))
        take = min(len(x), max(sample_size - n, 0))
        if take:  # (the reservoir is still filling: a list)
            sample.extend(x[:take])
            sample_w.extend(ww[:take])
        if take < len(x):  # row t (0-based) replaces a uniform slot with probability S/(t+1)
            if not isinstance(sample, np.ndarray):
                sample, sample_w = np.asarray(sample), np.asarray(sample_w)
            t = n + np.arange(take, len(x))
            slot = rng.integers(0, t + 1)
            keep = slot < sample_size
            sample[slot[keep]] = x[take:][keep]  # (in order: a later row wins a slot)
            sample_w[slot[keep]] = ww[take:][keep]
        n += len(x)
        if progress is not None:
            progress.chunk(n)
    if progress is not None:
        progress.first_pass_done(n)
    if n == 0:
        raise ValueError("The source holds no row.")
    if (counts <= 0).any():
        raise ValueError(f"Column {int(np.argmax(counts <= 0))} of the source has no observed "
                         "value.")
    var = m2 / counts
    patterns = None
    if missing:
        bits = np.array(sorted(keys), np.int64)[:, None] >> np.arange(width - 1, -1, -1)
        patterns = (bits & 1).astype(bool)
    return FirstPass(n, total_w, mean, var, np.asarray(sample), np.asarray(sample_w),
                     patterns, observed_count / total_w if missing else None,
                     [np.array(sorted(v)) for v in seen] if levels else None)


def pad_chunk(values: np.ndarray, w: Optional[np.ndarray], rows: int, dtype):
    """A chunk's (n, D) values and weights (None: 1 each) in ``rows`` rows of ``dtype``,
    the padding rows weighing 0 (every chunk then runs one program)."""
    xp = np.zeros((rows, values.shape[1]), dtype)
    wp = np.zeros((rows,), dtype)
    xp[:len(values)] = values
    wp[:len(values)] = 1.0 if w is None else w
    return xp, wp


def _m_half(family: Family, params, stats, hyper):
    """The M half of ``em.em_step`` with the E-step's statistics given."""
    ctx = family.prepare(params, hyper)
    new_params, health = family.m_step(ctx, stats, hyper)
    return new_params, family.objective(ctx, stats, hyper), health


class StreamRun:
    """:class:`em.EMRun`'s interface (``state``, ``done``, ``iteration``, ``advance``)
    for a family fitted by passes over :class:`Chunks` (see the module).

    ``prepare_chunk(x, w) -> Data`` standardises and pads one chunk to
    ``chunk_rows`` rows (zero-weight padding), on the host. ``progress`` (an
    :class:`emwidgets._progress.StreamProgress`) hears of every chunk and pass.

    A pass is all or nothing: a KeyboardInterrupt (the notebook's Stop) during a
    pass leaves the state of the last complete one, and :meth:`interrupted` tidies
    the trace; the estimator's :class:`~emwidgets.estimators.base.LiveFit` keeps that model.
    """

    def __init__(self, family: Family, chunks: Chunks, prepare_chunk: Callable, n_rows: int,
                 state: EMState, hyper, tol, block_size: int, max_iter: int,
                 rule=iteration.CHANGE, progress=None):
        if family.m_step_reads_data:
            raise ValueError(f"The {family.name or 'given'} family's M-step reads the data "
                             "again: it cannot be streamed.")
        self.family, self.chunks, self.prepare_chunk = family, chunks, prepare_chunk
        self.n_rows, self.hyper, self.tol = n_rows, hyper, tol
        self.block_size = block_size
        self.max_iter = int(max_iter)
        self.quick = False
        self.progress = progress
        self._reader = None
        n_restarts = int(state.status.shape[0])
        dtype = np.dtype(jax.tree.leaves(state.params)[0].dtype)
        if state.before is None:
            state = state._replace(before=rule.initial(n_restarts, dtype))
        # Passes are plain EM maps: a state made for SQUAREM (the estimators' default) drops
        # its counters, which the update would drop after its first call (a second compile).
        state = state._replace(accel=None)
        # Every leaf committed to the parameters' device(s): the host-made trace put
        # uncommitted made the update's second call compile it again.
        self._device = jax.device_put(
            state._replace(trace=np.full((n_restarts, 1), np.nan, dtype)),
            jax.tree.leaves(state.params)[0].sharding)
        self._trace = np.full((n_restarts, self.max_iter), np.nan, dtype)
        self._iteration = int(state.iteration)
        self._status = np.asarray(state.status)
        self._stats = _chunk_stats(family, block_size)
        self._stats_shapes = self._stats.__wrapped__.shapes
        self._sum_shapes = None
        self._update = _stream_update(family, rule)

    @property
    def state(self) -> EMState:
        return self._device._replace(trace=self._trace)

    @property
    def done(self) -> bool:
        return bool((self._status != RUNNING).all()) or self._iteration >= self.max_iter

    def _pass_stats(self, params):
        """The E-step statistics of every restart, summed over one pass of the source."""
        total, rows = None, 0
        # (JAX's x64 mode is a per-thread setting: the reader thread gets the caller's, or
        # a float64 fit would put float32 chunks on the device.)
        x64 = bool(jax.config.jax_enable_x64)
        # One reader thread for the whole fit: a new thread a pass gets a new malloc arena
        # from glibc, and the freed chunks' memory stayed in each (RSS grew ~100 MiB a pass).
        if self._reader is None:
            self._reader = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="emwidgets-stream")
            weakref.finalize(self, self._reader.shutdown, wait=False)
        reader = self._reader
        source = iter(self.chunks)

        def read():
            with jax.enable_x64(x64):
                try:
                    x, w = next(source)
                except StopIteration:
                    return None
                return len(x), self.prepare_chunk(x, w)

        pending = reader.submit(read)
        while True:
            item = pending.result()
            if item is None:
                break
            pending = reader.submit(read)  # the next chunk is read while this one sums
            n, data = item
            rows += n
            if total is None:  # zeros made on the host (0 + s is s to the bit)
                if self._sum_shapes is None:  # (traced once a fit, not once a pass)
                    self._sum_shapes = jax.eval_shape(self._stats_shapes, params, data,
                                                      self.hyper)
                total = jax.device_put(  # (committed where the sums will be)
                    jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), self._sum_shapes),
                    jax.tree.leaves(params)[0].sharding)
            previous, total = total, self._stats(total, params, data, self.hyper)
            # At most this chunk computing and the next one read: the sums are dispatched
            # without waiting, and a reader faster than the device queued every chunk of
            # a pass on it (10^7 rows: +200 MiB).
            jax.block_until_ready(previous)
            if self.progress is not None:
                self.progress.chunk(rows)
        if rows != self.n_rows:
            raise ValueError(f"The source changed between passes: {rows} rows in this pass, "
                             f"{self.n_rows} in the first.")
        return total

    def advance(self, n_iterations: int | None = None) -> EMState:
        """Run up to ``n_iterations`` more passes (all remaining if None)."""
        stop_at = self.max_iter if n_iterations is None else self._iteration + n_iterations
        while self._iteration < min(stop_at, self.max_iter) and not self.done:
            if self.progress is not None:
                self.progress.start_pass()
            s = self._device
            stats = self._pass_stats(s.params)
            s = self._update(s, stats, self.hyper, self.tol, np.int32(self._iteration))
            row, status = np.asarray(s.trace)[:, 0], np.asarray(s.status)
            # The device keeps one trace column, which a stopped restart leaves as it was:
            # only the restarts that ran this pass have a value for it (NaN after, as the
            # in-memory driver's trace).
            self._trace[:, self._iteration] = np.where(self._status == RUNNING, row, np.nan)
            # (one statement: an interrupt between its stores is not checked for)
            self._device, self._status, self._iteration = s, status, self._iteration + 1
            if self.progress is not None:
                self.progress.pass_done(self._iteration)
        if self._iteration >= self.max_iter:
            running = self._status == RUNNING
            if running.any():
                status = np.where(running, em.MAX_ITER, self._status).astype(np.int32)
                self._device = self._device._replace(status=jax.device_put(status))
                self._status = status
        return self.state

    def interrupted(self):
        """After a KeyboardInterrupt in :meth:`advance`: the trace of the last complete
        pass (an interrupted one may have written its column)."""
        self._trace[:, self._iteration:] = np.nan


@functools.lru_cache(maxsize=None)
def _chunk_stats(family: Family, block_size: int):
    """``(total, params, data, hyper) -> total + the chunk's statistics`` of every
    restart: one program, the pass's running sum included (a sum op by op compiled one
    small program per leaf's shape). One per family and block size, as the in-memory
    driver (:func:`em.make_runner`): a later fit traces nothing."""

    def stats(params, data: Data, hyper):
        def one(p):
            return em.expected_stats(family, family.prepare(p, hyper), data, block_size)

        return jax.vmap(one)(params)

    def accumulate(total, params, data: Data, hyper):
        return jax.tree.map(jnp.add, total, stats(params, data, hyper))

    accumulate.shapes = stats  # (for jax.eval_shape: the zeros a pass starts from)
    return jax.jit(accumulate)


@functools.lru_cache(maxsize=None)
def _stream_update(family: Family, rule):
    """The driver's per-restart update (:class:`iteration.PlainStep`'s) for one iteration
    whose statistics were summed over the chunks."""

    def update(state: EMState, stats, hyper, tol, it):
        def one(params, stat, objective, n_iter, status, bad_c, bad_i, trace, before):
            inner = iteration.PLAIN.update(_restart_step(family, stat, hyper), family, it, it,
                                           tol, hyper, rule)
            return inner(params, objective, n_iter, status, bad_c, bad_i, trace, None, before)

        out = jax.vmap(one)(state.params, stats, state.objective, state.n_iter, state.status,
                            state.bad_component, state.bad_iteration, state.trace, state.before)
        return EMState(*out[:7], iteration=it + 1, accel=None, before=out[8])

    return jax.jit(update)


def _restart_step(family: Family, stats, hyper):
    return lambda params: _m_half(family, params, stats, hyper)
