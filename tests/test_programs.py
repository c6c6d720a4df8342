"""The store of traced programs (emwidgets/core/programs.py), in one process.

Across processes (a new kernel traces nothing) see tests/test_cache.py.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emwidgets.core import programs as _programs
from emwidgets.core.programs import StoredJit


def affine(x, b, *, power):
    return {"y": x ** power + b, "n": jnp.sum(x)}


def _let_background_compilations_end(timeout: float = 120.0):
    """An explorer's warm-up or Run left compiling by an earlier test in this worker would
    store its programs in this test's folder (CI once saw init_batch there): they are told
    to stop before their next program (the warm-ups read the exit event) and awaited."""
    from emwidgets.widgets import runner

    alive = [(t, stop) for t, stop in list(runner._compiling.items()) if t.is_alive()]
    if not alive:
        return
    runner.exiting.set()
    try:
        for thread, stop in alive:
            stop.set()
            thread.join(timeout)
    finally:
        runner.exiting.clear()


@pytest.fixture
def store(tmp_path, monkeypatch):
    _let_background_compilations_end()
    folder = tmp_path / "programs"
    monkeypatch.setattr(_programs, "directory", lambda: folder)
    return folder


def test_a_stored_program_computes_what_jit_does_and_is_read_back(store):
    x, b = np.arange(6.0, dtype=np.float32).reshape(2, 3), np.float32(0.5)
    expect = jax.jit(affine, static_argnames="power")(x, b, power=3)
    first = StoredJit(affine, static_argnames=("power",))
    got = first(x, b, power=3)
    np.testing.assert_array_equal(got["y"], expect["y"])
    assert float(got["n"]) == float(expect["n"])
    # (affine's own only: a background compilation left running by an earlier test in the
    # worker may store its programs in the same directory meanwhile; CI saw init_batch there)
    assert len(list(store.glob("affine-*.jaxexport"))) == 1
    # A new wrapper (as in a new process) reads the file instead of tracing.
    second = StoredJit(affine, static_argnames=("power",))
    second._export = lambda *a: pytest.fail("traced again although the program was stored")
    np.testing.assert_array_equal(second(x, b, power=3)["y"], expect["y"])


def test_programs_are_keyed_by_static_arguments_shapes_dtypes_and_options(store):
    f = StoredJit(affine, static_argnames=("power",))
    x = np.ones((2, 3), np.float32)
    f(x, 1.0, power=2)
    f(x, 1.0, power=3)  # another static value
    f(np.ones((4, 3), np.float32), 1.0, power=2)  # another shape
    f(np.ones((2, 3), np.int32), 1, power=2)  # another dtype
    StoredJit(affine, static_argnames=("power",),
              compiler_options={"xla_backend_optimization_level": 0})(x, 1.0, power=2)
    StoredJit(affine, static_argnames=("power",), key_extra=("other",))(x, 1.0, power=2)
    # (affine's own: an explorer's background compilation left running by an earlier test
    # in the worker stores its programs in the same directory meanwhile)
    assert len(list(store.glob("affine-*.jaxexport"))) == 6
    f(x, 2.0, power=2)  # a new value of the same signature: no new program
    assert len(list(store.glob("affine-*.jaxexport"))) == 6


def test_unpersisted_and_cache_off_programs_write_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(_programs, "directory", lambda: None)
    f = StoredJit(affine, static_argnames=("power",))
    assert float(f(np.ones(3, np.float32), 1.0, power=2)["n"]) == 3.0
    folder = tmp_path / "p"
    monkeypatch.setattr(_programs, "directory", lambda: folder)
    g = StoredJit(affine, static_argnames=("power",), persist=False)
    assert float(g(np.ones(3, np.float32), 1.0, power=2)["n"]) == 3.0
    assert not folder.exists()


def test_traced_arguments_go_to_plain_jit(store):
    f = StoredJit(affine, static_argnames=("power",))
    xs = np.arange(12.0, dtype=np.float32).reshape(4, 3)
    got = jax.vmap(lambda x: f(x, 1.0, power=2)["y"])(xs)
    np.testing.assert_allclose(got, xs ** 2 + 1.0)
    assert not store.exists()  # nothing exported for a traced call


def test_the_store_is_bounded_least_recently_used_first(store, monkeypatch):
    f = StoredJit(affine, static_argnames=("power",))
    f(np.ones(3, np.float32), 1.0, power=1)
    size = next(store.glob("*.jaxexport")).stat().st_size
    monkeypatch.setattr(_programs, "MAX_BYTES", int(2.5 * size))
    for power in (2, 3, 4):
        f(np.ones(3, np.float32), 1.0, power=power)
    files = list(store.glob("*.jaxexport"))
    assert len(files) == 2
    assert sum(p.stat().st_size for p in files) <= _programs.MAX_BYTES


def _memory_mappings() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="Linux's /proc needed")
def test_a_process_keeps_a_bounded_number_of_compiled_programs(store, monkeypatch):
    """Every compiled CPU program holds memory mappings; a process may have 65,530.
    Before MAX_LIVE, a kernel that had compiled ~600 EM programs died of a segmentation
    fault when LLVM could not map more (reproduced; see the module doc)."""
    from emwidgets._compiles import count

    f = StoredJit(affine, static_argnames=("power",))
    x = [np.arange(n, dtype=np.float32) for n in range(1, 41)]
    monkeypatch.setattr(_programs, "MAX_LIVE", 10**6)  # unbounded: every program stays
    before = _memory_mappings()
    for a in x[:20]:
        f(a, 1.0, power=2)
    unbounded = _memory_mappings() - before
    assert len(f._compiled) == 20 and unbounded > 20  # each program maps memory

    monkeypatch.setattr(_programs, "MAX_LIVE", 3)
    middle = _memory_mappings()
    for a in x[20:]:
        f(a, 1.0, power=2)
    assert _programs.live_programs() <= 3 and len(f._compiled) <= 3
    assert _memory_mappings() - middle < unbounded / 2  # evicted programs were unmapped

    # An evicted program comes back from the disk caches, loaded, not compiled, and right.
    with count() as c:
        got = f(x[0], 1.0, power=2)
    np.testing.assert_array_equal(got["y"], x[0] ** 2 + 1.0)
    assert (c.compiled, c.loaded) == (0, 1)


def test_a_program_evicted_while_another_thread_runs_it_finishes(store, monkeypatch):
    """Eviction from one thread never pulls a program from under a call in another."""
    import threading

    monkeypatch.setattr(_programs, "MAX_LIVE", 1)
    f = StoredJit(affine, static_argnames=("power",))
    errors, x = [], np.ones(5, np.float32)

    def call(power):
        try:
            for _ in range(30):
                assert float(f(x, 0.0, power=power)["n"]) == 5.0
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=call, args=(p,)) for p in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and _programs.live_programs() <= 1
