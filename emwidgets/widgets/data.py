"""The explorer's data: intake (columns, missing values, unusable rows) and display
(the rows shown, the plotted plane, the density image of large data).

:class:`DataIntake` is the part of a session that knows the rows: which columns are
fitted and why others were left out, which rows are dropped and why (one line,
``data_note``), the rows the plots show (at most :data:`MAX_DISPLAY_POINTS`), the
projection onto the plotted axes, and the per-cell grid of the density image. A
change of data moves ``data_version`` on, which the session's results are keyed by.
"""

from __future__ import annotations

import numpy as np
import traitlets

from .._table import Table as _Table
from ..plotting import principal_axes
from .snapshot import Snapshot

MAX_DISPLAY_POINTS = 5000


class DataError(ValueError):
    """Data an explorer cannot take. In IPython and Jupyter its one sentence is the whole
    message, as in an explorer's status at Run time (no traceback through the constructor)."""

    def _render_traceback_(self):  # (IPython's hook for an exception's display)
        return [f"{type(self).__name__}: {self}"]


class DataIntake(traitlets.HasTraits):
    """The rows a session fits and shows (a session's base: see the module's docstring)."""

    x_axis = traitlets.Unicode()
    y_axis = traitlets.Unicode()
    #: Rows with missing values: fit them by EM over their observed values ("em")
    #: or use complete rows only ("drop").
    missing = traitlets.Enum(["em", "drop"], default_value="em")
    supports_missing = True
    #: One line on the data: rows and columns fitted, what was left out or dropped and why.
    data_note = traitlets.Unicode("")
    data_version = traitlets.Int(0)

    # -- data -------------------------------------------------------------------
    def set_data(self, data, columns=None):
        """Use a DataFrame or an (N, D) array; ``columns`` picks the features.

        By default every numeric column is a feature except integer columns with
        at most :data:`MAX_CODE_VALUES` distinct values beside columns that are not
        integers, or that look like a year (codes such as a year or a month; where
        every column holds integers, as pixels do, they are kept), constant columns and
        columns with no observed value; what is left out, and why,
        is in ``data_note``. NaN marks a missing value. Rows with infinite values
        or with nothing observed are dropped (``n_dropped``); other incomplete
        rows are fitted by EM over their observed values or dropped, as
        ``missing`` says. Raises ``ValueError`` (one sentence) for data with no
        usable column or row.
        """
        try:
            table = _Table.of(data)
        except ValueError as error:  # the sentence, without a traceback in a notebook
            raise DataError(str(error)) from None
        self._use_columns(table, columns)

    def set_columns(self, columns):
        """Fit these columns of the current data (names from ``available_columns``)."""
        self._use_columns(self._table, columns)

    def fit_frame(self):
        """The rows in use as a DataFrame of the chosen columns: the explorer's estimator
        records their names (``feature_names_in_``), so it takes the user's own frame
        (:meth:`~emwidgets.GaussianMixture.predict` picks those columns by name)."""
        import pandas as pd

        return pd.DataFrame(self.X, columns=self.columns, copy=False)

    @property
    def shown_data_is_current(self) -> bool:
        """The shown result was fitted on the data and columns in use now."""
        return self._shown_key is not None and self._shown_key[1] == self.data_version

    def _use_columns(self, table, columns):
        self.available_columns = table.numeric
        chosen = table.default if columns is None else list(columns)
        unknown = [c for c in chosen if c not in table.numeric]
        if unknown:
            raise DataError(
                f"Column {unknown[0]!r} is not a numeric column of the data; choose among "
                f"{', '.join(map(repr, table.numeric)) or 'none (there is no numeric column)'}.")
        if not chosen:
            raise DataError("No numeric column to fit: " + (
                table.describe_left_out(chosen) or "the data have no column") +
                ". Pass a table with at least one numeric column.")
        self._table = table
        self.columns = [str(c) for c in chosen]
        X = table.values(chosen)
        usable = ~np.isinf(X).any(axis=1) & ~np.isnan(X).all(axis=1)
        self._all_rows = X[usable]
        self._usable_rows = usable  # (which rows of the table: an HMM's sequences follow them)
        self._n_infinite = int(np.isinf(X).any(axis=1).sum())
        self._n_unusable = int((~usable).sum())
        self.has_missing = bool(self.supports_missing and np.isnan(self._all_rows).any())
        self._choose_rows()
        self.data_version += 1  # first: controls showing the axis choices follow them
        choices = self.axis_choices
        self.x_axis = choices[0]
        self.y_axis = choices[1] if len(choices) > 1 else choices[0]

    @traitlets.observe("missing")
    def _missing_changed(self, change):
        if hasattr(self, "_all_rows"):
            self._choose_rows()
            self.data_version += 1

    def _choose_rows(self):
        X = self._all_rows
        self._kept_rows = np.ones(len(X), bool)
        if not (self.has_missing and self.missing == "em"):
            self._kept_rows = ~np.isnan(X).any(axis=1)
            X = X[self._kept_rows]
        self.n_dropped = self._n_unusable + len(self._all_rows) - len(X)
        self._n_incomplete_dropped = len(self._all_rows) - len(X)
        self.X = X
        rng = np.random.default_rng(0)
        self._display = (np.sort(rng.choice(len(X), MAX_DISPLAY_POINTS, replace=False))
                         if len(X) > MAX_DISPLAY_POINTS else np.arange(len(X)))
        self.data_note = self._describe_data()

    def _describe_data(self) -> str:
        """One line: what is fitted, what was left out or dropped and why, what is shown."""
        n, d = self.X.shape
        shown = (", ".join(self.columns) if d <= 8 else
                 ", ".join(self.columns[:3]) + ", …, " + ", ".join(self.columns[-2:]))
        parts = [f"Data: {n:,} rows × {d} column{'s' if d != 1 else ''} ({shown})"]
        left = self._table.describe_left_out(self.columns)
        if left:
            parts.append("left out " + left)
        if self._n_infinite:
            parts.append(f"{self._n_infinite} row{'s' if self._n_infinite != 1 else ''} with an "
                         "infinite value dropped")
        nothing = self._n_unusable - self._n_infinite
        if nothing:
            parts.append(f"{nothing} row{'s' if nothing != 1 else ''} with no observed value "
                         "dropped")
        if self._n_incomplete_dropped:
            k = self._n_incomplete_dropped
            parts.append(f"{k} incomplete row{'s' if k != 1 else ''} dropped (missing: drop)")
        if len(self._display) < n and self.density_mode:
            parts.append("the assignments show every row as a density, the gallery a random "
                         f"{len(self._display):,}")
        elif len(self._display) < n:
            parts.append(f"the plots show a random {len(self._display):,} of the {n:,} points "
                         "(the fit uses all)")
        if d == 1:
            parts.append("one feature: the scatter plots it against itself")
        if n > 1 and np.all(self.X == self.X[:1]):  # (NaN differs: missing values say so)
            parts.append(f"all {n:,} rows are identical: there is nothing to tell apart")
        return "; ".join(parts) + "."

    @property
    def fits_missing(self) -> bool:
        """Incomplete rows are in the fit (EM over observed values)."""
        return self.has_missing and self.missing == "em"

    @property
    def axis_choices(self) -> list:
        extra = ["PC1", "PC2"] if self.X.shape[1] > 2 else []
        return self.columns + extra

    def projection(self) -> np.ndarray:
        """(D, 2) matrix mapping samples to the plotted axes."""
        d = self.X.shape[1]
        pcs = None
        if d > 2 and ("PC1" in (self.x_axis, self.y_axis) or "PC2" in (self.x_axis, self.y_axis)):
            complete = self.X[~np.isnan(self.X).any(axis=1)]
            pcs = principal_axes(complete if len(complete) > d else self._mean_filled())
        cols = []
        for name in (self.x_axis, self.y_axis):
            if name in ("PC1", "PC2") and pcs is not None:
                cols.append(pcs[:, int(name[-1]) - 1])
            else:
                v = np.zeros(d)
                v[self.columns.index(name) if name in self.columns else 0] = 1.0
                cols.append(v)
        return np.column_stack(cols)

    def _mean_filled(self) -> np.ndarray:
        if len(self.X) == 0:
            return self.X
        return np.where(np.isnan(self.X), np.nanmean(self.X, axis=0), self.X)

    def label_columns(self) -> list:
        """Columns left out that can label the rows (a species, a group), to compare the
        fitted components with (``Table.labels``)."""
        table = getattr(self, "_table", None)
        return list(table.labels) if isinstance(table, _Table) else []

    def _in_use(self, values):
        """``values`` (one a row of the table) of the rows in use, in the order of ``X``."""
        return values[self._usable_rows][self._kept_rows]

    def label_values(self, name: str) -> np.ndarray:
        """Column ``name`` of :meth:`label_columns` for the rows in use (None: missing)."""
        return self._in_use(self._table.labels[name])

    def shown_row(self, i: int) -> tuple:
        """(the user's index label, the values) of the ``i``-th row the plots show."""
        row = int(self._display[i])
        return self._in_use(self._table.frame.index)[row], self.X[row]

    def row_index(self):
        """The user's index labels of the rows in use, or None where the data had none of
        their own (an array, a default RangeIndex): a DatetimeIndex stays one, so a series
        is drawn against its dates."""
        import pandas as pd

        index = self._table.frame.index
        if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
            return None
        if not (isinstance(index, pd.DatetimeIndex) or pd.api.types.is_numeric_dtype(index)):
            return None
        return self._in_use(index)

    def display_points(self) -> np.ndarray:
        """(n, D) the rows the plots show before a fit (gaps at the column means)."""
        return self._mean_filled()[self._display]

    def plane_to_data(self, xy) -> np.ndarray:
        """Points ``xy`` (m, 2) of the plotted plane as data rows (m, D): the data's mean
        moved within the plane (exact on the plotted columns)."""
        w = self.projection()  # (D, 2)
        m = np.nanmean(self.X, axis=0)
        xy = np.atleast_2d(np.asarray(xy, np.float64))
        return m + (xy - m @ w) @ np.linalg.pinv(w)

    #: Above this many rows the assignments view draws every row as a density image
    #: (responsibilities summed per cell of a DENSITY_BINS x DENSITY_BINS grid, blended by
    #: component colour) instead of a marker per displayed point.
    DENSITY_ROWS = 20_000
    DENSITY_BINS = 160

    @property
    def density_mode(self) -> bool:
        """Large complete data: the density image (incomplete rows keep markers)."""
        return len(self.X) > self.DENSITY_ROWS and not self.fits_missing

    def _density_bins(self, live):
        """Every row's cell of the plotted plane's grid (on the device, padding rows in
        cell 0 with weight 0), and the grid's extent; kept while data, axes and padding
        stay the same."""
        w = self.projection()
        n_padded = int(live.run.data.w.shape[0])
        key = (self.data_version, w.tobytes(), n_padded)
        cached = getattr(self, "_bins_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        g = self.DENSITY_BINS
        xy = np.asarray(self.X, np.float64) @ w
        lo, hi = np.percentile(xy, 0.2, axis=0), np.percentile(xy, 99.8, axis=0)
        pad = 0.05 * (hi - lo + 1e-12)
        lo, hi = lo - pad, hi + pad
        cell = np.clip(((xy - lo) / (hi - lo) * g).astype(np.int64), 0, g - 1)
        bins = np.zeros(n_padded, np.int32)
        bins[:len(xy)] = cell[:, 1] * g + cell[:, 0]
        extent = (lo[0], hi[0], lo[1], hi[1])
        import jax

        device_bins = jax.device_put(bins)
        self._bins_cache = (key, device_bins, extent)
        return device_bins, extent

    def refresh_density(self, snap: Snapshot):
        """The plotted axes changed: the density image's grid follows them."""
        if snap is None or snap.density is None or snap.density_source is None:
            return
        live, est, _ = snap.density_source
        bins, extent = self._density_bins(live)
        snap.density_source = (live, est, bins)
        snap.density, snap.density_extent = {}, extent

    def density_for(self, snap: Snapshot, restart: int):
        """The density image's counts of ``restart`` in ``snap`` (G, G, K), computed once
        per restart and snapshot (None when ``snap`` has no density)."""
        if snap is None or snap.density is None:
            return None
        if restart not in snap.density:
            if snap.density_source is None:
                return None
            live, est, bins = snap.density_source
            g = self.DENSITY_BINS
            snap.density[restart] = est.live_view(live, "density", restart, bins, g * g).reshape(
                g, g, -1)
        return snap.density[restart]

