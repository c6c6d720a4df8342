"""Which columns of a user's table are features, and a sentence on those left out.

The explorers take a DataFrame as a user has it (species names, a year, dates
beside the measurements). Numeric columns are the candidates; integer columns
with few distinct values beside measurements that are not integers, or far from
zero next to their range (a year), are codes (a year, a month, a group) rather
than measurements, and columns with no observed value cannot be fitted: both are
left out by default, as are constant columns (every component's covariance would be
singular along one), and every column left out is named with its reason. Where
every column holds integers (the pixels of scikit-learn's digits, counts, answers
on a scale) a column with few values is one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: An integer column with at most this many distinct values is taken for a code
#: (a year, a month, a group label) and left out of the default features.
MAX_CODE_VALUES = 10
#: A column left out with at most this many values can label the rows (``Table.labels``).
MAX_LABELS = 50


def listed(names, most: int = 4) -> str:
    """'a', 'a and b', 'a, b and c', or 'a, b, c, d and 5 more'."""
    names = [str(n) for n in names]
    if len(names) > most + 1:
        return ", ".join(names[:most]) + f" and {len(names) - most} more"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


@dataclass
class Table:
    """The columns of the user's data, sorted into features and the rest.

    Attributes:
        frame: the data as a DataFrame of float columns (numeric candidates only).
        numeric: names of the columns that can be features.
        default: the features used unless the user chooses others.
        reasons: ``{column: why it is not a default feature}``.
    """

    frame: pd.DataFrame
    numeric: list
    default: list
    reasons: dict = field(default_factory=dict)
    #: Columns left out that can label the rows (text, categories, true/false with 2 to
    #: MAX_LABELS values; integer codes): ``{name: (N,) values}``, None where missing.
    labels: dict = field(default_factory=dict)

    @classmethod
    def of(cls, data) -> "Table":
        if isinstance(data, pd.DataFrame):
            return cls._of_frame(data)
        X = np.asarray(data)
        if X.dtype.kind == "c":
            raise ValueError("The data hold complex numbers; pass the real part or the magnitude.")
        if X.ndim != 2:
            raise ValueError(f"Pass the data as a table (n_samples, n_features), not an array of "
                             f"{X.ndim} dimension{'s' if X.ndim != 1 else ''}.")
        try:
            X = X.astype(float)
        except (TypeError, ValueError):
            raise ValueError("The array holds non-numeric values; pass numbers, or a DataFrame "
                             "(its numeric columns are used).") from None
        return cls._of_frame(pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]))

    @classmethod
    def _of_frame(cls, df: pd.DataFrame) -> "Table":
        if df.shape[1] == 0:
            raise ValueError("The data have no column; pass a table with numeric columns.")
        if df.shape[0] == 0:
            raise ValueError(f"The data have no row (columns: "
                             f"{', '.join(map(str, df.columns))}); pass a table with rows.")
        numeric, default, reasons, values, integers, codes = [], [], {}, {}, {}, {}
        for name in df.columns:
            col = df[name]
            label = str(name)
            kind = col.dtype.kind if isinstance(col.dtype, np.dtype) else None
            if pd.api.types.is_bool_dtype(col.dtype):
                reasons[label] = "true/false"
                continue
            if not pd.api.types.is_numeric_dtype(col.dtype) or kind == "c":
                reasons[label] = ("dates" if pd.api.types.is_datetime64_any_dtype(col.dtype)
                                  else "complex" if kind == "c" else "not numeric")
                continue
            v = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy(na_value=np.nan)
            observed = v[np.isfinite(v)]
            if observed.size == 0:
                reasons[label] = "no observed value"
                continue
            numeric.append(label)
            values[label] = v
            if observed.min() == observed.max() and len(observed) > 1:
                # (a constant column makes every component's covariance singular along it)
                reasons[label] = f"constant: every value {observed[0]:g}"
                continue
            integers[label] = pd.api.types.is_integer_dtype(col.dtype) or bool(
                np.all(observed == np.round(observed)))
            n_values = len(np.unique(observed))
            few = n_values <= MAX_CODE_VALUES and len(observed) > 2 * MAX_CODE_VALUES
            # A year sits far from zero next to its range (2007-2009)
            far = abs(observed.mean()) > 10 * (observed.max() - observed.min() + 1)
            if integers[label] and few:
                codes[label] = (n_values, far)
        # Where every column holds integers (pixels, counts, answers on a scale) a column with
        # few values is one of them (a pixel blank in most images), unless it looks like a year.
        every_integer = bool(integers) and all(integers.values())
        for label in numeric:
            if label in reasons:  # (constant)
                continue
            if label in codes and (not every_integer or codes[label][1]):
                reasons[label] = (f"{codes[label][0]} integer values: a code such as a year or "
                                  "a group?")
            else:
                default.append(label)
        if numeric and not default:  # every candidate looks like a code: use them anyway
            default = list(numeric)
            for c in numeric:
                reasons.pop(c, None)
        frame = pd.DataFrame(values, index=df.index)
        labels = {}
        for name in df.columns:
            label, why = str(name), reasons.get(str(name), "")
            if why in ("not numeric", "true/false") or "a code" in why:
                col = df[name]
                if 2 <= col.nunique(dropna=True) <= MAX_LABELS:
                    labels[label] = col.astype(object).where(col.notna(), None).to_numpy()
        return cls(frame, numeric, default, reasons, labels)

    def values(self, columns) -> np.ndarray:
        """(N, D) float64 values of ``columns``."""
        return self.frame[list(columns)].to_numpy(dtype=np.float64)

    def describe_left_out(self, chosen) -> str:
        """'species (not numeric), year (3 integer values...)' for columns not in ``chosen``."""
        chosen = set(chosen)
        by_reason: dict = {}  # columns left out for the same reason are named together
        for c, why in self.reasons.items():
            if c not in chosen:
                by_reason.setdefault(why, []).append(c)
        unchosen = [c for c in self.numeric if c not in chosen and c not in self.reasons]
        if unchosen:
            by_reason.setdefault("not chosen", []).extend(unchosen)
        return ", ".join(f"{listed(names)} ({why})" for why, names in by_reason.items())
