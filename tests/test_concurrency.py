"""One thread at a time computes with JAX (emwidgets.core.programs.executing): a Run beside
the background compilation once hung for ever, both threads waiting in BlockUntilReady."""

import threading
import time

import numpy as np
import pytest

from emwidgets import EMExplorer, GaussianMixture
from emwidgets.core import programs


def test_a_public_estimator_method_waits_while_another_thread_computes():
    X = np.random.default_rng(0).normal(size=(200, 2))
    GaussianMixture(2, n_init=2, random_state=0).fit(X)  # compiled before the clock
    done = threading.Event()

    def fit():
        GaussianMixture(2, n_init=2, random_state=0).fit(X)
        done.set()

    with programs.executing:  # as a Run's chunk or the warm-up's program holds it
        thread = threading.Thread(target=fit, daemon=True)
        thread.start()
        assert not done.wait(1.0), "the fit ran beside another thread's computation"
    assert done.wait(60.0), "the fit should run once the other thread is done"
    thread.join()


@pytest.mark.slow
def test_runs_started_during_background_compilation_never_hang():
    # The hang's scene, many times in a row: an explorer's Run ends and its background
    # compilation starts; a second explorer's Run (new programs: another number of
    # components each time) starts at once. A watchdog, not a timer: each must end.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4)) + rng.integers(0, 3, 300)[:, None] * 2.0
    first = EMExplorer(X, n_components=2, n_init=4, random_state=0)
    first.session.background_compile = True
    beside = 0  # Runs started while the first explorer compiled in the background
    for k in range(2, 8):
        first.controls["n_components"].value = 2 + (k % 3)
        first.run(block=True)
        beside += bool(first.session.warming)
        second = EMExplorer(X, n_components=k, n_init=3, max_iter=5, random_state=k)
        worker = threading.Thread(target=second.run, kwargs={"block": True}, daemon=True)
        t0 = time.perf_counter()
        worker.start()
        worker.join(300.0)
        assert not worker.is_alive(), f"the Run with {k} components hung beside compilation"
        assert second.status.value and "Done" in second.status.value, second.status.value
        assert time.perf_counter() - t0 < 300
    assert beside >= 3, f"only {beside} of 6 Runs started beside background compilation"


def test_a_thread_preparing_a_program_lets_the_others_execute(monkeypatch):
    # A Run waited 1.5 s for the warm-up's compilation while the lock covered it: a
    # StoredJit lets the lock go while it traces and compiles, and takes it back after.
    inside, go_on = threading.Event(), threading.Event()
    f = programs.StoredJit(lambda x: x + 1.0, name="plus_one", persist=False)
    prepare = f._export_once

    def slow(key, static):
        inside.set()
        go_on.wait(30)
        return prepare(key, static)

    monkeypatch.setattr(f, "_export_once", slow)
    out = []

    def work():
        with programs.executing:
            out.append(float(f(np.ones(3, np.float32)).sum()))
            out.append(programs.executing._is_owned())  # taken back after compiling

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    assert inside.wait(30)
    assert programs.executing.acquire(timeout=5), "the lock is held through compilation"
    programs.executing.release()
    go_on.set()
    thread.join(30)
    assert out == [6.0, True]
