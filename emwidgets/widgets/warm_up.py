"""Background compilation: what the controls will ask for next, compiled before they do.

After a Run, and when an explorer is displayed, a session compiles on a background
thread (:meth:`runner.Runner.background`) the programs a user is likely to want next:
the neighbouring numbers of components and restarts, the other covariance types and
initialisations, SQUAREM or plain EM. Only on small data, where the work is
compilation, not fitting. ``warming`` says what compiles, with the seconds elapsed.
"""

from __future__ import annotations

import os
import time
from typing import Optional

import traitlets

from ..estimators.gaussian_mixture import GaussianMixture
from . import runner


class WarmUp(traitlets.HasTraits):
    """A session's background compilation (a session's base: see the module's docstring)."""

    #: Numbers per iteration below which one masked program serves every number of
    #: components (see :meth:`program_components`).
    MASK_COMPONENTS_WORK = 2**23
    #: After a Run, compile the other covariance types and initialisations in the
    #: background (:meth:`_warm_up`); EMWIDGETS_BACKGROUND_COMPILE=0 turns it off.
    background_compile = os.environ.get("EMWIDGETS_BACKGROUND_COMPILE", "1") != "0"
    #: What compiles in the background (after a Run, the programs of the other
    #: covariance types and initialisations), or "".
    warming = traitlets.Unicode("")

    def _alternatives(self) -> list:
        """(label, settings) of the programs a user is likely to want next: the
        neighbouring numbers of components where the program is exact-size, then the
        other covariance types and initialisations."""
        more, fewer = self._neighbouring_restarts()
        out = self._neighbouring_components() + more
        out += [(f"{c} covariance", {"covariance_type": c})
                for c in GaussianMixture.covariance_types if c != self.covariance_type]
        out += [(f"{m} initialisation", {"init_params": m})
                for m in getattr(self, "init_options", GaussianMixture.init_methods)
                if m != self.init_params]
        out += [("plain EM" if self.accelerate else "SQUAREM",
                 {"accelerate": None if self.accelerate else "squarem"})]
        return out + fewer

    def _neighbouring_restarts(self) -> tuple:
        """([the next larger bucket of restarts], [the next smaller]): on small data the
        restarts are padded to a power of two (``em.restart_bucket``), so these two
        programs serve every value of the slider from half to four times the bucket."""
        bucket = 1 << max(self.n_init - 1, 0).bit_length()
        up, down = 2 * bucket, bucket // 2
        return ([(f"{up} restarts", {"n_init": up})] if up <= self.MAX_RESTARTS else [],
                [(f"{down} restarts", {"n_init": down})] if down >= 1 else [])

    def _neighbouring_components(self) -> list:
        """One more and one fewer component, where each number is its own program
        (a masked program already serves every number up to the slider's maximum)."""
        k = self.n_components
        if self.program_components() != k:
            return []
        return [(f"{j} component{'s' if j != 1 else ''}", {"n_components": j})
                for j in (k + 1, k - 1) if 1 <= j <= self.MAX_COMPONENTS]

    def prepare(self):
        """Compile the program of the current settings on a background thread, before
        the user asks (an explorer calls it when it is displayed): the first Run then
        finds it compiled, or waits only for what is left of it."""
        if self.snapshot is None and not self.running and not self.warming:
            self._warm_up(self.runner.generation, [(self._describe_run(), {})])

    def _small_data(self) -> bool:
        """Whether a program of the slider's maximum costs little work per iteration
        (``MASK_COMPONENTS_WORK``): then one iteration of it is cheap, and warming a
        program up in the background costs compilation, not fitting."""
        k_max = max(self.MAX_COMPONENTS, self.n_components)
        n, d = self.X.shape
        return (GaussianMixture.program_work(n, d, k_max, self.n_init)
                <= self.MASK_COMPONENTS_WORK)

    def _warm_up(self, generation: int, choices: Optional[list] = None):
        """Compile, on a background thread, what other choices of the controls need
        (``choices``: (label, settings changes); by default :meth:`_alternatives`).

        Only on small data (:meth:`_small_data`), where the work is compilation,
        not fitting: each program is compiled by starting its fit and running one
        iteration. ``warming`` says what compiles, with the seconds elapsed. A Run
        started meanwhile takes precedence: the warm-up stops before its next
        program (a Run that needs the program being compiled waits for it rather
        than compiling it twice: emwidgets/core/programs.py).
        """
        if not self.background_compile or len(self.X) == 0 or not self._small_data():
            return
        choices = self._alternatives() if choices is None else choices
        if not choices:
            return
        label_now = [choices[0][0], time.perf_counter()]

        def clock():
            label, t0 = label_now
            if self.runner.current(generation) and not self.running:
                self.warming = (f"Compiling for {label} in the background… "
                                f"{time.perf_counter() - t0:.1f} s")

        def work():
            for label, change in choices:
                if not self.runner.current(generation) or runner.exiting.is_set():
                    return  # a Run goes first
                label_now[:] = [label, time.perf_counter()]
                self.warming = f"Compiling for {label} in the background…"
                est = self._make_estimator()
                est.set_params(**change)
                # (No warnings.catch_warnings here: it swaps the process-wide filters,
                # and from this thread it silenced warnings of the user's own cells.)
                try:
                    live = self._start_fit(est).advance(1)
                    self._snapshot(live, est, 0.0, done=False)  # the views' program
                except Exception:  # noqa: BLE001 (a choice that cannot fit: no program)
                    pass

        def end():
            self.warming = ""

        self.warming = f"Compiling for {choices[0][0]} in the background…"  # before the thread
        runner.Runner.background(work, clock, end)

