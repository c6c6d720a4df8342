"""Input and parameter checks, each failing with one sentence that says what to do."""

from __future__ import annotations

import numbers

import numpy as np


class ConvergenceWarning(UserWarning):
    """The best restart stopped at ``max_iter`` before meeting ``tol``."""


class NotFittedError(ValueError, AttributeError):
    """A method that needs a fitted model was called before ``fit``."""


NAN_HINT = "drop or impute those rows before fitting."


def as_2d_float(X, *, what: str = "X", allow_nan: bool = False, nan_hint: str = NAN_HINT):
    """Convert array-like data (NumPy, JAX, pandas, lists) to a float64 (N, D) array.

    Infinity is always an error; NaN (a missing value) only where ``allow_nan``,
    and then rows with every value missing are. ``nan_hint`` is what the
    error for a disallowed NaN tells the user to do.

    Returns:
        (array, feature_names or None)
    """
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"{what} is a sparse matrix; Gaussian mixtures need dense data: pass X.toarray()."
        )
    names = None
    columns = getattr(X, "columns", None)
    if columns is not None and hasattr(X, "dtypes"):
        names = np.asarray([str(c) for c in columns], dtype=object)
        if not all(isinstance(c, str) for c in columns):
            names = None
    arr = np.asarray(X)
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {what} holds complex numbers; pass the real part or the magnitude.")
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise type(exc)(
                f"{what} holds non-numeric values ({exc}); convert or drop those "
                "columns (e.g. df.select_dtypes('number'))."
            ) from None
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 1:
        raise ValueError(
            "Expected 2D array, got 1D array instead. Reshape your data with "
            "X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample."
        )
    if arr.ndim != 2:
        raise ValueError(f"Expected 2D array, got an array with {arr.ndim} dimensions; pass {what} as (n_samples, n_features).")
    if arr.shape[0] == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={arr.shape}) while a minimum of 1 is required; pass a non-empty {what}.")
    if arr.shape[1] == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required; pass at least one column of {what}.")
    if not np.isfinite(arr).all():
        infinite = np.isinf(arr).any(axis=1)
        if infinite.any():
            raise ValueError(
                f"Input {what} contains infinity ({int(infinite.sum())} of {arr.shape[0]} rows, the "
                f"first is row {int(np.argmax(infinite))}); replace those values by finite numbers "
                "or drop the rows."
            )
        nan_rows = np.isnan(arr).any(axis=1)
        if not allow_nan:
            raise ValueError(
                f"Input {what} contains NaN ({int(nan_rows.sum())} of {arr.shape[0]} rows have "
                f"missing values); {nan_hint}"
            )
        no_values = np.isnan(arr).all(axis=0)
        if no_values.any():
            raise ValueError(
                f"Column {int(np.argmax(no_values))} of {what} has no observed value (every entry "
                "is NaN); drop that column."
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
        raise ValueError(f"Invalid value for '{name}': {value!r}; it must be an integer >= {minimum}.")


def check_positive(name: str, value, allow_zero: bool = False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"Invalid value for '{name}': {value!r}; it must be a finite number {bound}.")


def seed_from(random_state) -> int:
    """An int seed from scikit-learn style ``random_state`` (None, int, RandomState)."""
    if random_state is None:
        return int(np.random.randint(0, 2**31 - 1))
    if isinstance(random_state, (numbers.Integral, np.integer)) and not isinstance(random_state, bool):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    raise ValueError(
        f"Invalid value for 'random_state': {random_state!r}; pass None, an int, or a numpy RandomState."
    )


def check_n_features(est, X_features: int):
    expected = est.n_features_in_
    if X_features != expected:
        raise ValueError(
            f"X has {X_features} features, but {type(est).__name__} is expecting {expected} "
            "features as input (the number it was fitted on)."
        )
