"""One line that says how a streamed fit is going: passes, rows per second, the best
log-likelihood so far and the restarts still running.

In a notebook the line is one output updated in place; elsewhere it is rewritten on
standard error. ``mode`` (``Chunks(progress=...)``): True shows it from the start,
False never, None (the default) once the fit has run :data:`AUTO_SECONDS` (a fit over
a small source says nothing).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional

#: A streamed fit with progress=None starts showing its line after this many seconds.
AUTO_SECONDS = 2.0
#: At most one update of the line this often (seconds), except at the end of a pass.
MIN_INTERVAL = 0.5


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 60 else f"{int(s // 60)} min {int(s % 60):02d} s"


def _rate(rows: float, seconds: float) -> str:
    r = rows / max(seconds, 1e-9)
    return f"{r / 1e6:.2f} M rows/s" if r >= 1e5 else f"{r:,.0f} rows/s"


class StreamProgress:
    """The progress line of one streamed fit (see the module)."""

    def __init__(self, mode: Optional[bool] = None, max_iter: Optional[int] = None):
        self.mode = mode
        self.max_iter = max_iter
        self.t0 = time.perf_counter()
        self.pass_started = self.t0
        self.n_rows: Optional[int] = None  # known after the first pass
        self.iteration = 0  # EM iterations done (pass 1 reads the scaling and the sample)
        #: () -> (best objective, restarts running, restarts) from the fit, set by the
        #: estimator's LiveFit (the objective in data units).
        self.best: Optional[Callable[[], tuple]] = None
        self._best_text = ""
        self._last = 0.0
        self._handle = None
        self._shown = False
        self._width = 0

    # -- what the fit reports --------------------------------------------------
    def start_pass(self):
        self.pass_started = time.perf_counter()

    def chunk(self, rows_this_pass: int):
        now = time.perf_counter()
        if now - self._last >= MIN_INTERVAL:
            self._show(self._running_line(rows_this_pass, now))

    def first_pass_done(self, n_rows: int):
        self.n_rows = n_rows

    def pass_done(self, iteration: int):
        self.iteration = iteration
        now = time.perf_counter()
        if not self._wanted(now):
            return
        running = ""
        if self.best is not None:
            objective, n_running, total = self.best()
            self._best_text = f"; best mean log-likelihood {objective:.6g}"
            running = f"; {n_running} of {total} restarts running"
        of = f" of at most {self.max_iter}" if self.max_iter else ""
        self._show(f"Streamed EM: iteration {iteration}{of} done, {self.n_rows or 0:,} rows in "
                   f"{_seconds(now - self.pass_started)} "
                   f"({_rate(self.n_rows or 0, now - self.pass_started)}){self._best_text}"
                   f"{running}; {_seconds(now - self.t0)}", force=True)

    def close(self, interrupted: bool = False, failed: bool = False):
        if not self._shown:
            return
        if failed:  # the error says the rest; the line stays as it was
            if self._handle is None:
                sys.stderr.write("\n")
            return
        now = time.perf_counter()
        rows = (self.n_rows or 0) * (self.iteration + 1)
        how = "interrupted after" if interrupted else "done:"
        # (plain EM maps, one a pass, whatever the estimator's accelerate says: its docstring)
        self._show(f"Streamed EM {how} {self.iteration} iterations of plain EM "
                   f"({self.iteration + 1} passes of {self.n_rows or 0:,} rows) in "
                   f"{_seconds(now - self.t0)}, "
                   f"{_rate(rows, now - self.t0)}{self._best_text}.", force=True)
        if self._handle is None:
            sys.stderr.write("\n")
            sys.stderr.flush()

    # -- the line ----------------------------------------------------------------
    def _running_line(self, rows: int, now: float) -> str:
        if self.n_rows is None:
            what = f"first pass (scaling and a sample), {rows:,} rows"
        else:
            what = f"iteration {self.iteration + 1}, {rows:,} of {self.n_rows:,} rows"
        return (f"Streamed EM: {what}, {_rate(rows, now - self.pass_started)}"
                f"{self._best_text}; {_seconds(now - self.t0)}")

    def _wanted(self, now: float) -> bool:
        return self.mode is True or (self.mode is None and now - self.t0 >= AUTO_SECONDS)

    def _show(self, line: str, force: bool = False):
        now = time.perf_counter()
        if not self._wanted(now) or (not force and now - self._last < MIN_INTERVAL):
            return
        self._last = now
        self._shown = True
        if self._handle is None and _in_notebook():
            from IPython.display import display

            self._handle = display({"text/plain": line}, raw=True, display_id=True)
            return
        if self._handle is not None:
            self._handle.update({"text/plain": line}, raw=True)
            return
        sys.stderr.write("\r" + line.ljust(self._width))
        sys.stderr.flush()
        self._width = len(line)
