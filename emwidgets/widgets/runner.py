"""One background runner: generations, Stop, the worker thread and the frame budget.

A run happens in a worker thread that advances every restart a few jitted
iterations at a time and publishes a frame between chunks, so the notebook stays
responsive. Every run gets a generation number: a newer run, a Stop while it
compiles or a change of data abandons the older one by moving the generation on,
and whatever its worker would still publish is dropped (:meth:`Runner.current`).
The explorer's session runs its fits here; :meth:`Runner.background` runs the
warm-up compilations.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from typing import Callable, Optional

import numpy as np

from ..estimators import validation

CHUNK_SECONDS = 0.1
#: The frame budget of a live run: at most one frame per FRAME_SECONDS (the first
#: at once, the last when the run ends). A frame updates up to four figures, which
#: ipympl renders with Agg on the kernel's thread when the browser asks for them
#: (20-80 ms each here): at one frame per 0.1 s chunk the renders queued behind
#: each other, and a warm HMM run that takes 0.5 s headless took 8 s in the browser.
FRAME_SECONDS = 0.3
#: The first live frame waits until the run has computed this long: a warm run that
#: ends sooner draws its figures once, at the end, instead of twice (in the browser each
#: frame renders every figure: 0.1-0.2 s), and a longer one shows its first frame
#: within 0.3 s of the Run all the same.
FIRST_FRAME_SECONDS = 0.15
#: The frame budget, in the browser: rendering the live frames takes at most this share
#: of a run's time. Renders run on the kernel's thread and hold the GIL that the run's
#: worker needs, so a frame whose renders take c seconds is followed by at least
#: c (1 - RENDER_SHARE) / RENDER_SHARE seconds of computing (2c), the first frame too.
#: The final frame's renders are asked for once its status is out (the answer is read
#: at once; the figures follow). Headless (no browser asks) the cost is 0: FRAME_SECONDS.
RENDER_SHARE = 1 / 3


def frame_interval(render_cost: float, first: bool = False) -> float:
    """Seconds of computing before the next live frame (see :data:`RENDER_SHARE`)."""
    paced = render_cost * (1.0 - RENDER_SHARE) / RENDER_SHARE
    return max(FIRST_FRAME_SECONDS if first else FRAME_SECONDS, paced)


# Threads that may be compiling when the interpreter exits (a script that ends while a
# Run or the background warm-up compiles): XLA aborts the process ("FATAL: exception
# not rethrown") if the interpreter shuts down under a compiling thread. At exit they
# are told to stop and given time to finish the program in flight.
exiting = threading.Event()
_compiling: "weakref.WeakKeyDictionary[threading.Thread, threading.Event]" = (
    weakref.WeakKeyDictionary())


def start_compiling_thread(thread: threading.Thread, stop: threading.Event | None = None):
    """Start ``thread``, which may compile: told (``stop``) and awaited at exit."""
    _compiling[thread] = stop or exiting
    thread.start()


def in_background(work: Callable, *args, name: str = "emwidgets-worker",
                  compiling: bool = True, stop: threading.Event | None = None
                  ) -> threading.Thread:
    """Start ``work(*args)`` on a daemon thread and return it: the one place the widgets
    start threads (a run's worker, the warm-up, intervals, basin maps, the clocks). One
    that may compile is told (``stop``) and awaited at exit. The estimators' warnings are
    not issued there (:func:`validation.quiet`): the widget says the same in its status,
    and a warning raised in a thread reaches the notebook as a stray block pointing into
    ``threading.py``."""

    def quietly(*a):
        with validation.quiet():
            work(*a)

    thread = threading.Thread(target=quietly, args=args, daemon=True, name=name)
    if compiling:
        start_compiling_thread(thread, stop)
    else:
        thread.start()
    return thread


@atexit.register
def _let_compilations_finish(timeout: float = 120.0):
    exiting.set()
    deadline = time.monotonic() + timeout
    for thread, stop in list(_compiling.items()):
        stop.set()
        thread.join(max(0.0, deadline - time.monotonic()))


class Runner:
    """The runs of one explorer: a generation counter, the current run's Stop and its
    worker thread, under one lock (which the session's publishing shares)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.generation = 0
        self.stop_event = threading.Event()
        self.thread: Optional[threading.Thread] = None

    def launch(self, work: Callable, *args) -> int:
        """Abandon the run in progress (never waiting for it) and start
        ``work(generation, stop, *args)`` on a new worker thread; returns its generation."""
        with self.lock:
            self.abandon()
            self.stop_event = stop = threading.Event()
            self.thread = in_background(work, self.generation, stop, *args,
                                        name="emwidgets-run", stop=stop)
            return self.generation

    def abandon(self):
        """Stop the current run and drop whatever it would still publish."""
        with self.lock:
            self.stop_event.set()
            self.generation += 1

    def request_stop(self):
        """Ask the current run to stop after its chunk (what it shows stays)."""
        self.stop_event.set()

    def current(self, generation: int) -> bool:
        return generation == self.generation

    def join(self):
        """Wait for the worker (not from the worker itself)."""
        t = self.thread
        if t is not None and t.is_alive() and t is not threading.current_thread():
            t.join()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for the current run's thread to end; True if it has."""
        t = self.thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True

    def advance(self, live, generation: int, stop: threading.Event, started: threading.Event,
                render_cost: Callable[[], float], frame: Callable[[], bool]) -> bool:
        """Advance ``live`` in chunks of about :data:`CHUNK_SECONDS` until it is done or
        stopped, calling ``frame()`` when the frame budget allows (False from it: the
        frame was dropped, the run is abandoned). ``started`` is set once the first chunk
        has compiled. Returns False when the run was abandoned (replaced, or stopped
        while it compiled): it must publish nothing more."""
        chunk = 1
        first = True
        last_frame = -np.inf
        computing_since = time.perf_counter()
        while not live.done and not stop.is_set():
            t = time.perf_counter()
            live.advance(chunk)
            dt = time.perf_counter() - t
            if first:
                started.set()
                computing_since = time.perf_counter()  # compiled: the run computes
                if stop.is_set():  # stopped while compiling: already abandoned
                    return False
            if not self.current(generation):  # replaced by a new Run
                return False
            now = time.perf_counter()
            cost = render_cost()
            if (now - last_frame >= frame_interval(cost) if last_frame > -np.inf
                    else now - computing_since >= frame_interval(cost, first=True)):
                if not frame():
                    return False
                last_frame = time.perf_counter()
            first = False
            chunk = int(np.clip(chunk * CHUNK_SECONDS / max(dt, 1e-4), 1, 64))
        started.set()
        return self.current(generation)

    @staticmethod
    def background(work: Callable[[], None], clock: Callable[[], None],
                   end: Callable[[], None], name: str = "emwidgets-warm-up"):
        """Run ``work()`` on a compiling background thread, ``clock()`` every 0.5 s while
        it runs and ``end()`` once it has ended (no ``clock()`` after ``end()``)."""
        done = threading.Event()
        said = threading.Lock()

        def tick():
            while not done.wait(0.5):
                with said:
                    if not done.is_set():
                        clock()

        def run():
            try:
                work()
            finally:
                with said:
                    done.set()
                    end()

        in_background(tick, name=name + "-clock", compiling=False)
        in_background(run, name=name)
