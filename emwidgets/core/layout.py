"""Putting samples into the shape the compiled programs want.

* **Standardised**: samples are centred on their mean and divided by one
  scalar scale. EM is equivariant under this map for every covariance type
  (a scalar scale keeps spherical covariances spherical), so results are mapped
  back exactly; it keeps float32 sufficient statistics well conditioned.
* **Padded** to a bucketed length with zero-weight rows, so nearby sample
  counts share one compiled program (a widget that filters rows, or
  scikit-learn's estimator checks, do not recompile for every N).
* **Blocked**: the E-step walks over blocks of ``block_size`` rows, so its
  working memory is about ``block_size * (2 R K + P)`` numbers (R restarts,
  K components, P = D (D + 1) / 2 + D + 1 sufficient-statistic features),
  bounded by ``DEFAULT_BLOCK_BUDGET`` whatever the number of samples N. The
  only arrays that grow with N are the data themselves (N x D).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .em import Data

#: Numbers held by one block's largest working arrays (16 MiB in float32).
DEFAULT_BLOCK_BUDGET = 2**22
MIN_BLOCK, MAX_BLOCK = 256, 2**16


class Scaling(NamedTuple):
    """x_standardised = (x - shift) / factor, where ``factor`` is ``scale`` (a scalar:
    EM is equivariant under it) or, for a model fitted to standardised columns
    (``standardize=True``), ``scale * columns`` (each column divided by its standard
    deviation: the model is then defined in those units)."""

    shift: np.ndarray  # (D,)
    scale: float
    columns: np.ndarray | None = None  # (D,) per-column standard deviations, or None

    @property
    def factor(self):
        """The scalar ``scale``, or the (D,) per-column factors."""
        return self.scale if self.columns is None else self.scale * self.columns

    def log_factor(self, seen: np.ndarray) -> np.ndarray:
        """(N,) log of the Jacobian's inverse per row: log-densities in data units are the
        standardised ones minus this (``seen``: (N, D) the observed entries)."""
        if self.columns is None:
            return seen.sum(axis=1) * math.log(self.scale)
        return seen @ np.log(self.factor)


def float_dtype():
    """float64 when JAX's x64 mode is on, float32 otherwise."""
    return jnp.result_type(float)


#: A column whose most common value is held by at least this share of the rows is shifted
#: to that value rather than to its mean (:func:`fit_scaling`).
SHARED_VALUE_SHARE = 0.01
#: Rows :func:`common_values` looks at (evenly spaced).
COMMON_VALUE_ROWS = 10_000


def common_values(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``shift`` with each column's most common value where one is shared by many rows.

    A Gaussian mixture's E-step is the product phi(x) @ W of terms of size P x^2 that
    cancel to -P (x - mu)^2 / 2, and its M-step a variance E[x^2] - mu^2. A column that
    is constant within a component (a pixel blank in every image of one digit) has a
    precision near 1 / reg_covar there, so the cancellation loses about eps P x^2: in
    float32 whole nats per sample on scikit-learn's digits, where the log-likelihood fell
    and no restart converged (and 1e-8 in float64). Shifted to the value its rows share,
    such a column is an exact 0 in those rows: every term vanishes exactly. EM is
    equivariant under the shift, so in exact arithmetic nothing else changes.
    """
    rows = x[:: max(1, x.shape[0] // COMMON_VALUE_ROWS)]
    out = np.array(shift, np.float64)
    for j in range(x.shape[1]):
        col = rows[:, j]
        col = col[~np.isnan(col)]
        if col.size < 2:
            continue
        values, counts = np.unique(col, return_counts=True)
        top = int(counts.argmax())
        if counts[top] >= max(2, SHARED_VALUE_SHARE * col.size):
            out[j] = values[top]
    return out


def fit_scaling(x: np.ndarray, weights: np.ndarray | None = None) -> Scaling:
    """Shift and scale: each column's most common value where many rows share one
    (:func:`common_values`), else its mean; the root mean column variance. NaN entries
    are ignored; a row of weight w counts as w copies of it."""
    x = np.asarray(x, dtype=np.float64)
    scaling = _moments_scaling(x, weights)
    return Scaling(common_values(x, scaling.shift), scaling.scale)


def standardising_scaling(x: np.ndarray, weights: np.ndarray | None = None) -> Scaling:
    """The scaling of a model fitted to standardised columns (``standardize=True``): each
    column divided by its standard deviation (NaN entries ignored, weighted by
    ``weights``; a constant column by 1, as scikit-learn's ``StandardScaler`` does) and
    shifted as :func:`fit_scaling` shifts it (which EM is equivariant under)."""
    x = np.asarray(x, dtype=np.float64)
    seen = ~np.isnan(x)
    w = (np.ones(len(x)) if weights is None else np.asarray(weights, np.float64))[:, None] * seen
    z = np.where(seen, x, 0.0)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        mean = (w * z).sum(0) / w.sum(0)
        sd = np.sqrt((w * (z - mean) ** 2).sum(0) / w.sum(0))
    sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
    return Scaling(fit_scaling(x, weights).shift, 1.0, sd)


def _moments_scaling(x: np.ndarray, weights: np.ndarray | None) -> Scaling:
    """Column means and the root mean column variance (ignoring NaN entries), weighted
    by ``weights``."""
    if weights is not None and not np.all(weights == 1):
        w = np.asarray(weights, np.float64)[:, None] * ~np.isnan(x)
        z = np.where(np.isnan(x), 0.0, x)
        shift = (w * z).sum(0) / w.sum(0)
        scale = float(np.sqrt(np.mean((w * (z - shift) ** 2).sum(0) / w.sum(0))))
        if np.isfinite(scale) and scale > 0 and np.isfinite(shift).all():
            return Scaling(shift, scale)
    mean, var = (np.nanmean, np.nanvar) if np.isnan(x).any() else (np.mean, np.var)
    with np.errstate(over="ignore", invalid="ignore"):
        shift = mean(x, axis=0)
        scale = float(np.sqrt(np.mean(var(x, axis=0))))
        if not (np.isfinite(scale) and np.isfinite(shift).all()):
            # Values beyond ~1e154 overflow the squares (or the sums): the same
            # moments computed on x / max|x|, then scaled back.
            top = float(np.nanmax(np.abs(x)))
            y = x / top
            shift = mean(y, axis=0) * top
            scale = float(np.sqrt(np.mean(var(y, axis=0)))) * top
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    return Scaling(shift, scale)


#: The largest reg_covar / scale**2 worked with: beyond it reg_covar is more than 1e12
#: times the data's variance, which is then invisible next to it (below float32's precision
#: and near float64's), while the ratio itself would overflow float32.
MAX_REG_RATIO = 1e12


def floor_scale(scaling: Scaling, reg_covar: float) -> Scaling:
    """A scale no smaller than sqrt(reg_covar / MAX_REG_RATIO).

    EM is equivariant under any scalar scale, so a larger one changes nothing but
    the rounding; for data whose spread is tiny next to ``reg_covar`` (values
    near 1e-30 with the default 1e-6) it keeps ``reg_covar / scale**2``
    representable, and the covariances come out as ``reg_covar``, as in exact
    arithmetic.
    """
    floor = math.sqrt(max(float(reg_covar), 0.0) / MAX_REG_RATIO)
    return scaling if scaling.scale >= floor else scaling._replace(scale=floor)


def choose_block_size(n_samples: int, width: int, budget: int = DEFAULT_BLOCK_BUDGET) -> int:
    """Rows per block so that a block's (rows x width) working set fits ``budget``."""
    rows = max(MIN_BLOCK, min(MAX_BLOCK, budget // max(width, 1)))
    return 2 ** int(math.floor(math.log2(rows)))


def padded_length(n_samples: int, block_size: int, n_shards: int = 1) -> tuple[int, int]:
    """(padded length, block size actually used).

    Small data (one block) is rounded up to one of eight sizes per octave, so
    the padding wastes at most 12.5%; larger data to a multiple of the block.
    With ``n_shards`` devices sharing the rows, every device gets the same number
    of whole blocks (zero-weight padding rows make up the difference).
    """
    if n_samples <= block_size:
        granule = max(64, 2 ** (int(math.floor(math.log2(max(n_samples, 1)))) - 3))
        granule = granule * n_shards // math.gcd(granule, n_shards)
        n_padded = -(-n_samples // granule) * granule
        return n_padded, n_padded
    n_blocks = -(-n_samples // block_size)
    n_blocks = -(-n_blocks // n_shards) * n_shards
    return n_blocks * block_size, block_size


#: Below this many rows a fit on several devices spreads its restarts over them (every
#: device holds all the rows) rather than sharding the rows, when the restarts (padded)
#: divide evenly; at and above it, or otherwise, the rows are sharded.
SPREAD_RESTARTS_BELOW = 100_000


def device_mesh(devices, n_rows: int, n_restarts: int):
    """The mesh a fit of ``n_rows`` rows and ``n_restarts`` (padded) restarts runs on:
    None (one device), a ``"restarts"`` mesh for small data whose restarts divide
    evenly over the devices (in one process: see :func:`restart_mesh`), else a
    ``"rows"`` mesh (:func:`row_mesh`)."""
    mesh = row_mesh(devices)
    spread = restart_mesh(devices) if mesh is not None and n_rows < SPREAD_RESTARTS_BELOW else None
    return spread if spread is not None and n_restarts % spread.devices.size == 0 else mesh


def restart_mesh(devices):
    """A ``"restarts"`` mesh over ``devices`` (:func:`row_mesh`'s values), or None for
    one device: an HMM spreads its restarts (its rows are sequences, not split). Only in
    one process: the host reads every restart's status and trace after each call, which
    across processes (``jax.distributed``) would need a gather; there it runs on one."""
    mesh = row_mesh(devices)
    if mesh is None or jax.process_count() > 1:
        return None
    from jax.sharding import Mesh

    return Mesh(mesh.devices, ("restarts",))


def round_up(n: int, mesh) -> int:
    """``n`` restarts padded to a multiple of ``mesh``'s devices (padded restarts start
    stopped, as :func:`em.restart_bucket`'s)."""
    size = 1 if mesh is None else mesh.devices.size
    return -(-n // size) * size


def rows_shards(mesh) -> int:
    """How many devices a fit's rows are split over (1 unless a ``"rows"`` mesh)."""
    return mesh.devices.size if mesh is not None and mesh.axis_names == ("rows",) else 1


def row_mesh(devices):
    """The mesh whose ``"rows"`` axis a fit shards its samples over (``devices`` of an
    estimator: None, one device; ``"all"``, every device of the default backend; an
    int n, the first n; or a list of devices), or None for one device."""
    if devices is None:
        return None
    from jax.sharding import Mesh

    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(f"Invalid value for 'devices': {devices!r}; choose None (one "
                             "device), 'all', a number of devices or a list of devices.")
        chosen = jax.devices()
    elif isinstance(devices, int) and not isinstance(devices, bool):
        available = jax.devices()
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices={devices}, but {len(available)} device"
                             f"{'s are' if len(available) != 1 else ' is'} available; "
                             "choose a number between 1 and that, or 'all'.")
        chosen = available[:devices]
    else:
        chosen = list(devices)
    if len(chosen) == 1:
        return None
    return Mesh(np.array(chosen), ("rows",))


def coarser_block(n_padded: int, block_size: int, width: int,
                  budget: int = DEFAULT_BLOCK_BUDGET) -> int:
    """The largest multiple of ``block_size`` dividing ``n_padded`` within ``budget``.

    A lighter computation on the same padded data (k-means over one restart at
    a time, say) can take bigger blocks: each block costs a fixed overhead.
    """
    n_blocks = n_padded // block_size
    best = block_size
    for m in range(1, n_blocks + 1):
        if n_blocks % m == 0 and block_size * m * width <= budget:
            best = block_size * m
    return best


def prepare(x: np.ndarray, width: int, scaling: Scaling | None = None,
            budget: int = DEFAULT_BLOCK_BUDGET,
            weights: np.ndarray | None = None,
            n_shards: int = 1) -> tuple[Data, Scaling, int]:
    """Standardise, pad and choose the block size.

    Args:
        x: (N, D) finite samples.
        width: numbers held per sample in one block's working set
            (about 2 R K + P for a mixture), to size the blocks.
        scaling: reuse a given standardisation (e.g. to score new data).
        weights: (N,) row weights (``sample_weight``; None: 1 each). Padding rows
            weigh 0.
        n_shards: devices the rows will be sharded over (:func:`padded_length`).
    Returns:
        (Data, Scaling, block_size).
    """
    x = np.asarray(x, dtype=np.float64)
    n_samples, n_features = x.shape
    scaling = fit_scaling(x, weights) if scaling is None else scaling
    z = (x - scaling.shift) / scaling.scale
    n_padded, block_size = padded_length(n_samples, choose_block_size(n_samples, width, budget),
                                         n_shards)
    dtype = float_dtype()
    xp = np.zeros((n_padded, n_features), dtype=dtype)
    xp[:n_samples] = z
    w = np.zeros((n_padded,), dtype=dtype)
    w[:n_samples] = 1.0 if weights is None else weights
    return Data(to_device(xp), to_device(w)), scaling, block_size


def to_device(a, dtype=None):
    """A host array on the default device, compiling nothing.

    (``jnp.asarray`` of a NumPy array, or ``jnp.int32(3)``, compiles a small
    conversion program the first time each shape is seen: several per fit.)
    """
    return jax.device_put(np.asarray(a, dtype))
