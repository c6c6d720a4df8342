"""What a fit compiles, counted from JAX's own events (never timed).

A user exploring in a notebook waits for every compilation, so the number of
programs a fit needs, and which settings change them, is part of the interface.
"""

import warnings

import numpy as np
import pytest
from _numerics import PLAIN_EM

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
        with _compiles.count(this_thread=True) as c:  # (not another test's background work)
            est.fit(X)
    return c


@pytest.mark.slow
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
                         init_params="random", random_state=0, **PLAIN_EM)
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


def _settle(session):
    """Wait for an explorer's background compilation (its own thread) to finish."""
    import time

    time.sleep(0.2)
    t = time.time()
    while session.warming and time.time() - t < 300:
        time.sleep(0.05)
    assert session.warming == ""


def _run_compiles_nothing(ex):
    """Run the explorer; assert the Run compiled no program and gave a whole result."""
    s = ex.session
    with _compiles.count() as c:
        ex.run(block=True)
    # (Other explorers' background compilation, from earlier tests, may still go on.)
    ran = [p for p in c.programs if not p.thread.startswith("emwidgets-warm-up")]
    assert ran == [], ran
    assert s.error == "", s.error
    assert s.snapshot.done and s.estimator is not None
    assert s.estimator.get_params()["n_components"] == s.n_components
    assert "ompil" not in s.status, s.status


def _explore_settings(ex, changes):
    """Each change of the controls from the first settings, then a Run that compiles nothing.

    Every change is one step from the first settings, whose warm-up (settled before) has
    compiled what each needs; the warm-ups later Runs would start are turned off, so the
    test waits for none of them (they compiled each change's own neighbours: 80 s)."""
    s = ex.session
    s.background_compile = False
    base = {k: getattr(s, k) for k in ("n_components", "init_params", "covariance_type",
                                       "max_iter", "n_init", "tol", "random_state", "reg_covar",
                                       "accelerate")}
    for change in changes:
        for k, v in {**base, **change}.items():
            setattr(s, k, v)
        _settle(s)
        try:
            _run_compiles_nothing(ex)
        except AssertionError as e:
            raise AssertionError(f"{change}: {e}") from None


@pytest.mark.slow
def test_explorer_controls_after_a_first_run_compile_nothing(faithful):
    """After a Run (and the background warm-up it starts), every control but the data
    answers without compiling: components (one masked program), restarts within a bucket,
    initialisation and covariance (compiled in the background), and the traced numbers."""
    from emwidgets import EMExplorer

    ex = EMExplorer(faithful, n_components=2, n_init=16)
    ex.session.background_compile = True  # (off in the rest of the suite: conftest.py)
    ex.run(block=True)
    _settle(ex.session)
    _explore_settings(ex, (
        {"n_components": 3}, {"n_components": 7}, {"n_components": 1},
        {"init_params": "random"}, {"init_params": "k-means++"},
        {"covariance_type": "diag"}, {"covariance_type": "tied"},
        {"max_iter": 300}, {"n_init": 12}, {"n_init": 32}, {"n_init": 5}, {"tol": 1e-5},
        {"random_state": 4}, {"accelerate": True},
        {"reg_covar": 1e-4}))
    assert ex.session.estimator.means_.shape[0] == ex.session.n_components


def test_a_displayed_explorer_compiles_its_first_run_before_the_user_asks():
    """Displaying an explorer starts compiling the program of its settings in the
    background (the status says so, with the seconds elapsed): the first Run then
    compiles nothing."""
    from emwidgets import EMExplorer

    rng = np.random.default_rng(3)  # a shape no other test uses: its programs are new
    X = np.concatenate([rng.normal(0, 1, (97, 2)), rng.normal(4, 1, (88, 2))])
    ex = EMExplorer(X, n_components=3, n_init=16)
    ex.session.background_compile = True
    with _compiles.count() as c:
        bundle = ex._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle
        assert ex.session.warming.startswith("Compiling for 3 components, full covariance")
        assert "emwidgets-warming" in ex.status.value  # shown under the status line
        _settle(ex.session)
    assert c.compiled + c.loaded >= 2  # the initialisation's and the EM's programs
    _run_compiles_nothing(ex)


@pytest.mark.slow
def test_hmm_explorer_controls_after_a_first_run_compile_nothing():
    """The HMM explorer keeps exact-size programs (a masked one runs slower on the geyser):
    after a Run the neighbouring numbers of states, the other covariance types and the
    other initialisation compile in the background, so those controls compile nothing."""
    from emwidgets import HMMExplorer, datasets

    ex = HMMExplorer(datasets.load_geyser(), n_components=2, n_init=8, max_iter=20)
    ex.session.background_compile = True
    ex.run(block=True)
    _settle(ex.session)
    _explore_settings(ex, ({"n_components": 3}, {"n_components": 1},
                           {"covariance_type": "diag"}, {"init_params": "kmeans"},
                           {"n_init": 6}, {"n_init": 16}, {"tol": 1e-3}, {"accelerate": True},
                           {"random_state": 2}))
    assert ex.session.estimator.means_.shape[0] == ex.session.n_components


@pytest.mark.slow
def test_missing_value_patterns_share_a_padded_program_and_scoring_compiles_once(data):
    rng = np.random.default_rng(5)

    def holes(n_rows):  # the first n_rows rows each lose one entry: 1 to 4 patterns
        Xm = data.copy()
        for i in range(n_rows):
            Xm[i, rng.integers(3)] = np.nan
        return Xm

    first = holes(3)  # up to 4 patterns (with the complete rows)
    gm = GaussianMixture(2, n_init=4, covariance_type="spherical", missing="em", random_state=0)
    fit(gm, first)
    with _compiles.count(this_thread=True) as scored:
        gm.score(first), gm.predict(first), gm.impute(first)
    again = holes(40)  # 4 patterns: the same padded program
    c = fit(GaussianMixture(2, n_init=4, covariance_type="spherical", missing="em",
                            random_state=1), again)
    assert c.compiled == 0 and c.loaded == 0, c
    with _compiles.count(this_thread=True) as rescored:
        gm.score(again), gm.predict(again), gm.impute(again)
    assert rescored.compiled == 0, rescored  # same shapes: scoring is compiled programs
    assert scored.compiled <= 3, scored  # one program per method, not one per operation


@pytest.mark.slow
@pytest.mark.parametrize("cov_type", ["full", "tied", "diag", "spherical"])
def test_a_masked_program_gives_the_exact_size_result(x64, blobs, cov_type):
    """Three components in a program for eight (the explorer's slider, select_model's grid)
    start from the same draws and reach the same restarts as the three-component program."""
    X, _ = blobs
    for init in ("kmeans", "k-means++", "random", "random_from_data"):
        # (plain EM by scikit-learn's rule: the masked program's other rounding moves the
        # gap and parameter tests' stop by an iteration now and then)
        kw = dict(n_init=4, covariance_type=cov_type, init_params=init, random_state=0,
                  tol=1e-6, **PLAIN_EM)
        exact = GaussianMixture(3, **kw)
        masked = GaussianMixture(3, **kw)
        masked.compile_for(8)
        fit(exact, X), fit(masked, X)
        a, b = exact.restarts_, masked.restarts_
        np.testing.assert_array_equal(a.n_iter, b.n_iter, err_msg=init)
        np.testing.assert_allclose(b.trace, a.trace, rtol=1e-10, atol=1e-12, err_msg=init)
        for name in ("weights", "means", "covariances"):
            np.testing.assert_allclose(b.params[name], a.params[name], rtol=1e-8, atol=1e-10,
                                       err_msg=f"{init} {name}")


@pytest.mark.slow
@pytest.mark.parametrize("cov_type,init", [("full", "random"), ("tied", "random"),
                                           ("diag", "kmeans"), ("spherical", "kmeans")])
def test_a_masked_hmm_program_gives_the_exact_size_result(x64, cov_type, init):
    """Two states in a program for five (the HMM explorer's slider): the unused states are
    never entered, and every restart runs as in the two-state program."""
    from emwidgets import datasets

    X = datasets.load_geyser().to_numpy()
    kw = dict(n_init=4, covariance_type=cov_type, init_params=init, random_state=0, tol=1e-7,
              n_iter=60, **PLAIN_EM)
    exact, masked = GaussianHMM(2, **kw), GaussianHMM(2, **kw)
    masked.compile_for(5)
    program = masked.start(X).run.state.params.emission
    assert program.means.shape[1] == 5  # really a five-state program
    fit(exact, X), fit(masked, X)
    a, b = exact.restarts_, masked.restarts_
    np.testing.assert_array_equal(a.n_iter, b.n_iter)
    np.testing.assert_allclose(b.trace, a.trace, rtol=1e-9, atol=1e-11)
    for name in ("startprob", "transmat", "means", "covariances"):
        np.testing.assert_allclose(b.params[name], a.params[name], rtol=1e-7, atol=1e-9,
                                   err_msg=name)
    assert masked.transmat_.shape == (2, 2) and masked.means_.shape[0] == 2
    np.testing.assert_allclose(masked.score(X), exact.score(X), rtol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["PoissonHMM", "CategoricalHMM"])
def test_a_masked_family_hmm_program_gives_the_exact_size_result(x64, name):
    """The Poisson and categorical HMMs mask states as the Gaussian HMM does (one program
    for a grid of state counts): two states in a program for five give the two-state fit,
    and a fit of three states in the same program compiles nothing."""
    from _models import MODELS

    X, _ = MODELS[name].data()
    exact, masked = MODELS[name].make(), MODELS[name].make()
    masked.compile_for(5)
    assert masked.start(X).run.state.params.transmat.shape[-1] == 5  # a five-state program
    fit(exact, X), fit(masked, X)
    a, b = exact.restarts_, masked.restarts_
    np.testing.assert_array_equal(a.n_iter, b.n_iter)
    np.testing.assert_allclose(b.trace, a.trace, rtol=1e-9, atol=1e-11)
    for key in a.params:
        np.testing.assert_allclose(b.params[key], a.params[key], rtol=1e-7, atol=1e-9,
                                   err_msg=key)
    assert masked.transmat_.shape == (2, 2)
    np.testing.assert_allclose(masked.score(X), exact.score(X), rtol=1e-9)
    three = MODELS[name].make().set_params(n_components=3, random_state=5).compile_for(5)
    with _compiles.count(this_thread=True) as c:
        fit(three, X)
    assert c.compiled == 0 and three.transmat_.shape == (3, 3)


def test_a_streamed_fit_compiles_three_programs_and_a_second_source_none():
    """A streamed fit: the initialisation (on the reservoir sample), a chunk's statistics added
    and the update of every restart from a pass's sums; another source of the same
    width, more rows, another tolerance, budget and seed compiles nothing (every chunk
    is padded to the chunk size; the initialisation sees a reservoir of the same size
    once both sources hold more rows than it: 1,000 here, 20,000 by default)."""
    from emwidgets import Chunks

    def make(**kw):
        est = GaussianMixture(2, n_init=4, covariance_type="tied", **kw)
        est.STREAM_SAMPLE = 1000
        return est

    rng = np.random.default_rng(12)
    X = np.concatenate([rng.normal(0, 1, (1301, 3)), rng.normal(4, 1, (1200, 3))])
    first = fit(make(random_state=0), Chunks(X, chunk_rows=513))
    names = sorted(p.name.split("(")[1].rstrip(")") for p in first.programs)
    assert first.compiled + first.loaded == 3, (first, names)
    assert names == ["accumulate", "init_batch", "update"], names
    again = fit(make(random_state=5, tol=1e-5, max_iter=40),
                Chunks(np.r_[X, X[:700]] + 1.0, chunk_rows=513))
    assert again.compiled == 0 and again.loaded == 0, again
