"""Counting XLA compilations, from JAX's own monitoring events (never from time).

JAX records one duration event per program it prepares (compiled, or loaded
from the on-disk cache) and, just before it, a cache-hit event on the same
thread when the program came from the cache. :func:`count` tells the two apart:

    >>> with count() as c:
    ...     GaussianMixture(2).fit(X)
    >>> c.compiled, c.loaded, c.names
    (3, 0, ['init_batch', 'advance', 'assign'])

The tests use it to assert that a control change compiles nothing, and the
latency benchmark to report how many programs a fit compiles.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import NamedTuple

_PROGRAM = "/jax/core/compile/backend_compile_duration"
_HIT = "/jax/compilation_cache/cache_hits"

_lock = threading.Lock()
_events: list["Program"] = []
_local = threading.local()
_registered = False


class Program(NamedTuple):
    name: str
    seconds: float
    loaded: bool  # from the on-disk cache, not compiled
    thread: str


def _on_event(event: str, **kwargs) -> None:
    if event == _HIT:
        _local.hit = True


def _on_duration(event: str, duration: float, **kwargs) -> None:
    if event != _PROGRAM:
        return
    hit = getattr(_local, "hit", False)
    _local.hit = False
    name = str(kwargs.get("fun_name", "?"))
    with _lock:
        _events.append(Program(name, float(duration), hit, threading.current_thread().name))


def _register() -> None:
    global _registered
    with _lock:
        if _registered:
            return
        from jax import monitoring

        monitoring.register_event_listener(_on_event)
        monitoring.register_event_duration_secs_listener(_on_duration)
        _registered = True


class Count:
    """The programs prepared since the count started (all threads, or only this one)."""

    def __init__(self, this_thread: bool = False):
        _register()
        with _lock:
            self._start = len(_events)
        self._stop = None
        self._thread = threading.current_thread().name if this_thread else None

    @property
    def programs(self) -> list[Program]:
        with _lock:
            out = list(_events[self._start:self._stop])
        return out if self._thread is None else [p for p in out if p.thread == self._thread]

    @property
    def compiled(self) -> int:
        """Programs compiled (not found in the on-disk cache)."""
        return sum(not p.loaded for p in self.programs)

    @property
    def loaded(self) -> int:
        """Programs loaded from the on-disk cache."""
        return sum(p.loaded for p in self.programs)

    @property
    def names(self) -> list[str]:
        """Names of the compiled programs, in order."""
        return [p.name for p in self.programs if not p.loaded]

    @property
    def seconds(self) -> float:
        """Time spent compiling or loading programs."""
        return sum(p.seconds for p in self.programs)

    def stop(self) -> "Count":
        with _lock:
            self._stop = len(_events)
        return self

    def __repr__(self):
        return f"Count(compiled={self.compiled}, loaded={self.loaded}, names={self.names})"


@contextmanager
def count(this_thread: bool = False):
    """Count the programs compiled (and loaded from the cache) inside the block.

    ``this_thread``: only those of the calling thread (not, say, an explorer's
    background compilation running meanwhile).
    """
    c = Count(this_thread)
    try:
        yield c
    finally:
        c.stop()
