"""Input and parameter checks, each failing with one sentence that says what to do."""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import threading
import warnings

import numpy as np

_thread = threading.local()


@contextlib.contextmanager
def quiet():
    """Within it, in this thread only, the estimators' warnings are not issued: for a caller
    that says the same in its own words (an explorer's status line). Thread-safe, unlike
    ``warnings.catch_warnings``, which swaps the process's filters."""
    before = getattr(_thread, "quiet", False)
    _thread.quiet = True
    try:
        yield
    finally:
        _thread.quiet = before


def warn(message: str, category: type):
    """``warnings.warn`` pointing at the user's line (:func:`user_stacklevel`), unless
    :func:`quiet`."""
    if not getattr(_thread, "quiet", False):
        warnings.warn(message, category, stacklevel=user_stacklevel())


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first frame outside emwidgets
    (the user's line that called ``fit``), however deep in the package it is raised and
    through however many wrappers (:func:`~emwidgets.estimators.base.in_precision`)."""
    import inspect

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = inspect.currentframe().f_back, 1  # the caller of this function: level 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


class ConvergenceWarning(UserWarning):
    """The best restart stopped at ``max_iter`` before meeting ``tol``."""


class NotFittedError(ValueError, AttributeError):
    """A method that needs a fitted model was called before ``fit``."""


class DataTypeError(ValueError, TypeError):
    """X cannot be read as numbers (non-numeric columns, a sparse matrix, a ragged list).

    A ValueError like every other input error, and a TypeError as scikit-learn
    raises for these (its estimator checks expect one).
    """


NAN_HINT = "drop or impute those rows before fitting."


def _is_na(value) -> bool:
    """None, NaN, pandas' NA or NaT: a missing value in an object array."""
    if value is None:
        return True
    if type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, float) and value != value


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _object_to_float(arr: np.ndarray, what: str) -> np.ndarray:
    """An object (or string) array as float64, missing values (None, pd.NA) as NaN."""
    flat = arr.ravel()
    out = np.empty(flat.shape, np.float64)
    for i, value in enumerate(flat):
        if _is_na(value):
            out[i] = np.nan
            continue
        if isinstance(value, (complex, np.complexfloating)):
            raise ValueError(f"Complex data not supported: {what} holds complex numbers; pass the "
                             "real part or the magnitude.")
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            where = np.unravel_index(i, arr.shape)
            at = f" at row {where[0]}, column {where[1]}" if len(where) == 2 else ""
            raise DataTypeError(
                f"{what} holds non-numeric values ({_describe(value)}, a {type(value).__name__}"
                f"{at}, but each argument must be a number or a string of a number); convert or "
                "drop those columns (e.g. df.select_dtypes('number'))."
            ) from None
    return out.reshape(arr.shape)


def _frame_to_float(X, what: str) -> np.ndarray:
    """A DataFrame as float64, column by column: nullable dtypes' NA become NaN."""
    import pandas as pd
    from pandas.api import types

    columns, bad = [], []
    for name, col in X.items():
        dtype = col.dtype
        if types.is_complex_dtype(dtype):
            raise ValueError(f"Complex data not supported: column {name!r} of {what} holds complex "
                             "numbers; pass the real part or the magnitude.")
        if types.is_bool_dtype(dtype) or (types.is_numeric_dtype(dtype)
                                          and not isinstance(dtype, pd.CategoricalDtype)):
            columns.append(col.to_numpy(dtype=np.float64, na_value=np.nan))
        elif types.is_object_dtype(dtype) or types.is_string_dtype(dtype):
            numbers_ = pd.to_numeric(col, errors="coerce")
            if (numbers_.isna() & col.notna()).any():
                bad.append(f"{name!r} ({dtype})")
            else:
                columns.append(numbers_.to_numpy(dtype=np.float64, na_value=np.nan))
        else:  # dates, times, periods, intervals, categories
            bad.append(f"{name!r} ({dtype})")
    if bad:
        listed = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise DataTypeError(
            f"{what} has {len(bad)} non-numeric column{'s' if len(bad) > 1 else ''} ({listed}), "
            "but each argument must be a number or a string of a number; select the numeric "
            "columns (e.g. df.select_dtypes('number')) or encode those as numbers."
        )
    if not columns:
        return np.empty((len(X), 0), np.float64)
    return np.column_stack(columns)


def as_2d_float(X, *, what: str = "X", allow_nan: bool = False, nan_hint: str = NAN_HINT):
    """Convert array-like data (NumPy, JAX, pandas, lists) to a float64 (N, D) array.

    Infinity is always an error; NaN (a missing value) only where ``allow_nan``,
    and then rows or columns with every value missing are. Missing values of
    pandas' nullable dtypes (``pd.NA``) and ``None`` in object arrays are NaN.
    Non-numeric data (strings, dates, categories) raise :class:`DataTypeError`;
    every other problem a ValueError. ``nan_hint`` is what the error for a
    disallowed NaN tells the user to do.

    Returns:
        (array, feature_names or None)
    """
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise DataTypeError(
            f"{what} is a sparse matrix; Gaussian mixtures need dense data: pass X.toarray()."
        )
    if X is None:
        raise ValueError(f"{what} is None; pass the data as an (n_samples, n_features) array.")
    names = None
    columns = getattr(X, "columns", None)
    if columns is not None and hasattr(X, "dtypes") and hasattr(X, "items"):
        names = np.asarray([str(c) for c in columns], dtype=object)
        if not all(isinstance(c, str) for c in columns):
            names = None
        arr = _frame_to_float(X, what)
    else:
        try:
            arr = np.asarray(X)
        except (ValueError, TypeError):
            raise DataTypeError(
                f"{what} could not be read as an array (its rows have different lengths, or it "
                "holds objects); pass a rectangular (n_samples, n_features) array of numbers."
            ) from None
    if arr.ndim == 0:
        raise ValueError(f"Expected 2D array, got a scalar ({type(X).__name__}) instead; pass "
                         f"{what} as (n_samples, n_features).")
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {what} holds complex numbers; pass the "
                         "real part or the magnitude.")
    if arr.dtype.kind in "mM":
        raise DataTypeError(
            f"{what} holds dates or times ({arr.dtype}), but each argument must be a number or a "
            "string of a number; convert them to numbers (e.g. days since a start) or drop them."
        )
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            arr = _object_to_float(arr, what)
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 1:
        raise ValueError(
            # "Reshape your data" is the phrase scikit-learn's estimator checks look for.
            "Expected 2D array, got 1D array instead: Reshape your data with "
            "X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample."
        )
    if arr.ndim != 2:
        raise ValueError(f"Expected 2D array, got an array with {arr.ndim} dimensions; pass "
                         f"{what} as (n_samples, n_features).")
    if arr.shape[0] == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={arr.shape}) while a minimum of 1 "
                         f"is required; pass a non-empty {what}.")
    if arr.shape[1] == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 "
                         f"is required; pass at least one numeric column of {what}.")
    if not np.isfinite(arr).all():
        infinite = np.isinf(arr).any(axis=1)
        if infinite.any():
            raise ValueError(
                f"Input {what} contains infinity ({int(infinite.sum())} of {arr.shape[0]} rows, "
                f"the first is row {int(np.argmax(infinite))}); replace those values by finite "
                "numbers or drop the rows."
            )
        nan_rows = np.isnan(arr).any(axis=1)
        if not allow_nan:
            raise ValueError(
                f"Input {what} contains NaN ({int(nan_rows.sum())} of {arr.shape[0]} rows have "
                f"missing values); {nan_hint}"
            )
        no_values = np.isnan(arr).all(axis=0)
        if no_values.any():
            which = (repr(str(names[int(np.argmax(no_values))])) if names is not None
                     else str(int(np.argmax(no_values))))
            raise ValueError(
                f"Column {which} of {what} has no observed value (every entry is NaN), so "
                "nothing can be estimated for it; drop that column."
            )
        empty = np.isnan(arr).all(axis=1)
        if empty.any():
            raise ValueError(
                f"{int(empty.sum())} rows of {what} have no observed value (the first is row "
                f"{int(np.argmax(empty))}); drop them: a row with every value missing says nothing "
                "about the model."
            )
    return arr, names


def check_in(name: str, value, options):
    if not isinstance(value, str) or value not in options:
        raise ValueError(
            f"Invalid value for '{name}': {value!r}; choose one of {', '.join(map(repr, options))}."
        )


def check_int(name: str, value, minimum: int):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(
            f"Invalid value for '{name}': {value!r}; it must be an integer >= {minimum}.")


def check_positive(name: str, value, allow_zero: bool = False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(
            f"Invalid value for '{name}': {value!r}; it must be a finite number {bound}.")


def seed_from(random_state) -> int:
    """An int seed from scikit-learn style ``random_state`` (None, int, RandomState)."""
    if random_state is None:
        return int(np.random.randint(0, 2**31 - 1))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    raise ValueError(
        f"Invalid value for 'random_state': {random_state!r}; pass None, an int, or a numpy "
        "RandomState."
    )


def check_n_features(est, X_features: int):
    expected = est.n_features_in_
    if X_features != expected:
        raise ValueError(
            f"X has {X_features} features, but {type(est).__name__} is expecting {expected} "
            "features as input (the number it was fitted on)."
        )


# ---------------------------------------------------------------------------
# Scale and memory: refuse up front what the compiled program cannot hold
# ---------------------------------------------------------------------------

#: Share of the available memory (host RAM, or the accelerator's) a fit may plan to use.
MEMORY_FRACTION = 0.75


def check_scale(scale: float, what: str = "X"):
    """Refuse data whose spread puts covariances or precisions outside float64.

    Covariances in data units are ``scale**2`` times the standardised ones and
    precisions ``scale**-2`` times, so either overflows float64 (1.8e308)
    beyond a spread of about 1e150 or below 1e-150.
    """
    if 1e-150 <= scale <= 1e150:
        return
    big = scale > 1e150
    power = round(math.log10(scale))
    raise ValueError(
        f"The values of {what} spread over about 1e{power:+d}, so its "
        f"{'covariances' if big else 'precisions'} (about 1e{abs(2 * power):+d}) would exceed "
        f"the float64 range (1.8e+308); rescale {what} (e.g. "
        f"{'divide' if big else 'multiply'} it by 1e{abs(power):+d})."
    )


def available_memory() -> int:
    """Bytes a computation can use now: the default JAX device's free memory for an
    accelerator, else the host's available memory (capped by a cgroup limit)."""
    import jax

    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return 2**62  # unknown: do not refuse
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            available = min(available, int(text))
    return int(available)


def _bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def check_memory(needed: float, what: str, remedy: str, available: int | None = None):
    """Refuse a fit whose compiled program would need more than MEMORY_FRACTION of memory.

    ``what`` describes the fit ("A full-covariance fit of 10,000 features"),
    ``remedy`` what to do instead.
    """
    available = available_memory() if available is None else available
    if needed <= MEMORY_FRACTION * available:
        return
    raise MemoryBudgetError(
        f"{what} needs about {_bytes(needed)} of memory, more than the {_bytes(available)} "
        f"available here; {remedy}."
    )


class MemoryBudgetError(ValueError):
    """A fit would need more memory than the machine has; raised before compiling."""
