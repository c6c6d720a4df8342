"""What a fit compiles, counted from JAX's own events (never timed).

A user exploring in a notebook waits for every compilation, so the number of
programs a fit needs, and which settings change them, is part of the interface.
"""

import warnings

import numpy as np
import pytest

from emwidgets import GaussianHMM, GaussianMixture, KMeans, _compiles


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    # A shape no other test uses, so the first fit here compiles.
    X = np.concatenate([rng.normal(0, 1, (173, 3)), rng.normal(5, 1, (150, 3))])
    return X


def fit(est, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _compiles.count() as c:
            est.fit(X)
    return c


def test_a_first_fit_compiles_one_initialisation_and_one_em_program(data):
    first = fit(GaussianMixture(2, n_init=4, covariance_type="diag", random_state=0), data)
    assert first.compiled + first.loaded == 2, first
    assert sorted(n.split("(")[1].rstrip(")") for n in
                  [p.name for p in first.programs]) == ["advance", "init_batch"]
    km = fit(KMeans(2, n_init=3, random_state=0), data[:301])
    assert km.compiled + km.loaded == 3, km  # seeds, Lloyd iterations, final assignment
    hmm = fit(GaussianHMM(2, n_init=3, covariance_type="diag", random_state=0), data[:299])
    assert hmm.compiled + hmm.loaded == 2, hmm


@pytest.mark.parametrize("make", [
    lambda **kw: GaussianMixture(2, n_init=4, covariance_type="diag", random_state=0,
                                 **{k.replace("n_iter", "max_iter"): v for k, v in kw.items()}),
    lambda **kw: KMeans(2, n_init=3, random_state=0,
                        **{k.replace("n_iter", "max_iter"): v for k, v in kw.items()}),
    lambda **kw: GaussianHMM(2, n_init=3, covariance_type="diag", random_state=0, **kw),
], ids=["mixture", "kmeans", "hmm"])
def test_iteration_budget_tolerance_seed_and_data_compile_nothing(data, make):
    fit(make(n_iter=100), data)
    for settings in ({"n_iter": 7}, {"n_iter": 300}, {"n_iter": 64}, {"n_iter": 65},
                     {"tol": 1e-6, "random_state": 3}):
        kw = {k: v for k, v in settings.items() if k != "random_state"}
        est = make(**kw)
        if "random_state" in settings:
            est.set_params(random_state=settings["random_state"])
        c = fit(est, data + 1.5)
        assert c.compiled == 0 and c.loaded == 0, (settings, c)


def test_a_budget_beyond_one_trace_chunk_records_every_iteration(data):
    """The trace is gathered on the host chunk by chunk: nothing lost at the seams."""
    from emwidgets.core.em import TRACE_CHUNK

    n = 2 * TRACE_CHUNK + 5
    # Three components for one Gaussian blob: EM creeps, no restart converges in n steps.
    X = np.random.default_rng(11).normal(0, 1, (323, 3))
    gm = GaussianMixture(3, n_init=4, covariance_type="diag", tol=1e-30, max_iter=n,
                         init_params="random", random_state=0)
    fit(gm, X)
    trace = gm.restarts_.trace
    assert trace.shape == (4, n)
    assert np.isfinite(trace).all()
    assert gm.n_iter_ == n and len(gm.lower_bounds_) == n
    assert (np.diff(trace, axis=1) >= -1e-5 * np.abs(trace[:, 1:])).all()
    # Live, a few iterations at a time across the chunk boundaries: the same numbers.
    live = GaussianMixture(**gm.get_params()).start(X)
    while not live.done:
        live.advance(TRACE_CHUNK // 3 + 1)
    np.testing.assert_array_equal(live.snapshot().trace, trace)


@pytest.mark.parametrize("make", [
    lambda r: GaussianMixture(2, n_init=r, covariance_type="diag", random_state=0),
    lambda r: KMeans(2, n_init=r, random_state=0),
    lambda r: GaussianHMM(2, n_init=r, covariance_type="diag", random_state=0),
], ids=["mixture", "kmeans", "hmm"])
def test_restart_counts_share_a_padded_program_and_padding_changes_nothing(data, make):
    four = make(4)
    fit(four, data)
    three = make(3)
    c = fit(three, data)
    assert c.compiled == 0 and c.loaded == 0, c  # 3 restarts run in the program for 4
    assert three.restarts_.n_restarts == 3
    # The three are the first three of the four (same keys), to the bit: padding is inert.
    np.testing.assert_array_equal(three.restarts_.trace, four.restarts_.trace[:3])
    np.testing.assert_array_equal(three.restarts_.n_iter, four.restarts_.n_iter[:3])
    assert three.restarts_.status == four.restarts_.status[:3]
