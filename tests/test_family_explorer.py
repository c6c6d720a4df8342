"""FamilyExplorer: latent classes, counts, t and user families in the explorer.

What a user of the explorer relies on: the explorer's fit is the batch fit of the
same settings, the class-profile view draws the fitted model's response
probabilities (colours aligned with the best restart), the assignments are
``predict``'s, a control change that keeps the program compiles nothing, bad data
get one sentence and keep the previous result, and several explorers share a
kernel.
"""

import threading
import time
import warnings

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from jax.scipy.special import i0e

from emwidgets import (
    ConvergenceWarning,
    EMExplorer,
    FamilyExplorer,
    GaussianMixture,
    LatentClassModel,
    MixtureModel,
    MultinomialMixture,
    PoissonHMM,
    PoissonMixture,
    StudentMixture,
    _compiles,
    datasets,
)
from emwidgets.widgets import views

warnings.filterwarnings("ignore", category=ConvergenceWarning)


@pytest.fixture(scope="module")
def carcinoma():
    return datasets.load_carcinoma()


@pytest.fixture(scope="module")
def deaths():
    return datasets.load_deaths()


@pytest.fixture(scope="module")
def lca(carcinoma):
    ex = FamilyExplorer(carcinoma, LatentClassModel(3, n_init=12, random_state=0))
    ex.run(block=True)
    return ex


def masked(estimator, k_program=10):
    """The batch fit an explorer on small data runs: its program holds the components
    slider's maximum, the extra ones masked (masked = exact-size is tested in float64 in
    test_families.py; in float32 a restart can round its way to another optimum)."""
    estimator.compile_for(k_program)
    return estimator


def _segments(line) -> np.ndarray:
    y = np.asarray(line.get_ydata(), np.float64)
    return y[np.isfinite(y)]


def test_the_explorers_latent_class_fit_is_the_batch_fit(lca, carcinoma):
    s = lca.session
    assert s.status.startswith("Done"), s.status
    assert s._make_estimator().program_components == 10
    batch = masked(LatentClassModel(3, n_init=12, random_state=0)).fit(carcinoma)
    est = s.estimator
    assert isinstance(est, LatentClassModel)
    np.testing.assert_allclose(est.lower_bound_, batch.lower_bound_, rtol=1e-6)
    np.testing.assert_allclose(est.weights_, batch.weights_, atol=1e-5)
    np.testing.assert_allclose(s.snapshot.restarts.objective, batch.restarts_.objective,
                               rtol=1e-6)


def test_the_class_profile_draws_the_fitted_response_probabilities(lca):
    s = lca.session
    est, snap = s.estimator, s.snapshot
    lines = lca.profile.artists.lines
    assert len(lines) == 3
    # The best restart is the colour reference: line k is class k of the fitted model,
    # drawn over every level of every item (the 5 ratings of each pathologist).
    perm = snap.solutions.permutations[snap.best]
    for colour, k in enumerate(perm):
        expected = np.concatenate([p[k] for p in est.probabilities_])
        np.testing.assert_allclose(_segments(lines[colour]), expected, atol=1e-6)
    legend = [t.get_text() for t in lca.profile.artists.ax.get_legend().get_texts()]
    assert legend == [f"{i} ({100 * w:.0f}%)" for i, w in enumerate(est.weights_[perm])]
    ticks = [t.get_text() for t in lca.profile.artists.ax.get_xticklabels()]
    assert ticks == [str(level) for c in est.categories_ for level in c]
    assert "Response probabilities per class: best restart" in lca.profile.artists.ax.get_title()


def test_the_shown_restart_is_drawn_with_aligned_colours(lca, carcinoma):
    s = lca.session
    snap = s.snapshot
    other = int(snap.restarts.ranking()[-1])
    lca._select(other)
    try:
        model = s.estimator.restart(other)
        perm = snap.solutions.permutations[other]
        for colour, k in enumerate(perm):
            expected = np.concatenate([p[k] for p in model.probabilities_])
            np.testing.assert_allclose(_segments(lca.profile.artists.lines[colour]), expected,
                                       atol=1e-6)
        assert f"restart {other}" in lca.profile.artists.ax.get_title()
    finally:
        lca._select(-1)


def test_assignments_are_predicts_for_every_restart(lca, carcinoma):
    snap = lca.session.snapshot
    est = lca.session.estimator
    for r in range(snap.restarts.n_restarts):
        proba = est.restart(r).predict_proba(carcinoma)
        np.testing.assert_array_equal(snap.labels[r], proba.argmax(1))
        np.testing.assert_allclose(snap.uncertainty[r], 1 - proba.max(1), atol=1e-5)


def test_the_gallery_shows_one_profile_per_distinct_solution(lca):
    g = lca.gallery
    sol = lca.session.snapshot.solutions
    assert len(g.solution_axes) == min(len(sol.groups), views.MAX_SOLUTIONS)
    assert all(len(ax.lines) == 3 for ax in g.solution_axes)
    titles = [ax.get_title() for ax in g.solution_axes]
    assert titles[0].startswith("#1:") and all("sd" not in t for t in titles)


@pytest.mark.slow
def test_classes_seed_tolerance_and_iterations_change_without_compiling(lca):
    """After a first Run every control compiles nothing: the classes slider included (one
    program for up to MAX_COMPONENTS classes, the extra ones masked)."""
    s = lca.session
    assert s.program_components() == s.MAX_COMPONENTS
    with _compiles.count() as c:
        for change in ({"n_components": 2}, {"n_components": 5}, {"init_params":
                       "random_from_data"}, {"random_state": 5}, {"tol": 1e-4},
                       {"max_iter": 300}, {"n_init": 10}):
            for name, value in change.items():
                setattr(s, name, value)
            s.run(block=True)
            assert s.status.startswith("Done"), s.status
            assert s.snapshot.profile.values.shape[1] == s.n_components
    assert c.compiled == 0, c.names
    assert len(lca.profile.artists.lines) == 5
    s.n_components, s.init_params, s.random_state, s.tol, s.max_iter, s.n_init = (
        3, "random", 0, 1e-6, 1000, 12)
    s.run(block=True)


def test_a_continuous_column_is_one_sentence_and_the_previous_result_stays(carcinoma):
    data = carcinoma.assign(score=np.linspace(0, 1, len(carcinoma)))
    ex = FamilyExplorer(data, LatentClassModel(2, n_init=4), columns=list(carcinoma.columns))
    ex.run(block=True)
    before = ex.session.snapshot
    assert ex.session.status.startswith("Done")
    ex.session.set_columns(list(data.columns))
    ex.run(block=True)
    s = ex.session
    assert s.error and s.error.count(". ") == 0 and "score" in s.error, s.error
    assert "The previous result is kept" in s.status and s.snapshot is before and s.stale


def test_poisson_counts_with_frequencies_are_the_weighted_batch_fit(deaths):
    ex = FamilyExplorer(deaths, PoissonMixture(2, n_init=8, random_state=1),
                        columns=["deaths_per_day"], sample_weight=deaths["n_days"])
    assert "1,096 days" not in ex.session.data_note  # (the weights are no column)
    assert "weighted" in ex.session.data_note
    ex.run(block=True)
    batch = masked(PoissonMixture(2, n_init=8, random_state=1)).fit(
        deaths[["deaths_per_day"]], sample_weight=deaths["n_days"])
    np.testing.assert_allclose(ex.session.estimator.lower_bound_, batch.lower_bound_, rtol=1e-6)
    rates = sorted(_segments(line)[0] for line in ex.profile.artists.lines)
    np.testing.assert_allclose(rates, np.sort(batch.rates_.ravel()), rtol=1e-5)


def test_counts_that_are_not_counts_are_one_sentence():
    data = pd.DataFrame({"n": [0, 1, 2.5, 3, 1, 0]})
    ex = FamilyExplorer(data, PoissonMixture(2, n_init=2))
    ex.run(block=True)
    s = ex.session
    assert s.error and "Nothing was fitted" in s.status and s.snapshot is None, s.status
    assert s.status.count("Error:") == 1


def test_a_t_mixture_is_drawn_in_the_datas_plane(faithful):
    ex = FamilyExplorer(faithful, StudentMixture(2, n_init=6, random_state=0))
    assert ex.controls["covariance_type"].layout.display != "none"
    assert ex.controls["missing"].layout.display == "none"
    ex.session.covariance_type = "diag"
    ex.run(block=True)
    est = ex.session.estimator
    batch = StudentMixture(2, n_init=6, random_state=0, covariance_type="diag").fit(faithful)
    np.testing.assert_allclose(est.lower_bound_, batch.lower_bound_, rtol=1e-6)
    centres = ex.assignments.artists.centres.get_offsets()
    np.testing.assert_allclose(np.sort(np.asarray(centres)[:, 0]),
                               np.sort(est.means_[:, 0]), rtol=1e-5)


def von_mises(theta, x):
    kappa = jnp.exp(theta["log_kappa"])
    return kappa * (jnp.cos(x[0] - theta["mu"]) - 1) - jnp.log(2 * jnp.pi * i0e(kappa))


def test_a_family_of_ones_own_shows_its_parameters():
    rng = np.random.default_rng(0)
    angles = np.concatenate([rng.vonmises(0.5, 8, 300), rng.vonmises(2.8, 4, 200)])
    model = MixtureModel(von_mises, lambda g, X: {"mu": float(g.choice(X[:, 0])),
                                                   "log_kappa": 0.0},
                         n_components=2, n_init=6, random_state=0)
    ex = FamilyExplorer(pd.DataFrame({"angle": angles}), model)
    ex.run(block=True)
    assert ex.session.status.startswith("Done"), ex.session.status
    ticks = [t.get_text() for t in ex.profile.artists.ax.get_xticklabels()]
    assert ticks == ["log_kappa", "mu"]
    est = ex.session.estimator
    drawn = sorted(_segments(line)[1] for line in ex.profile.artists.lines)
    np.testing.assert_allclose(drawn, np.sort(np.asarray(est.params_["mu"])), rtol=1e-5)


@pytest.mark.parametrize("estimator, words", [
    (GaussianMixture(2), "use EMExplorer"),
    (PoissonHMM(2), "hidden Markov model"),
])
def test_what_it_does_not_explore_is_one_sentence(faithful, estimator, words):
    with pytest.raises(ValueError, match=words):
        FamilyExplorer(faithful, estimator)


def _survey(n, seed=3):
    rng = np.random.default_rng(seed)
    z = rng.choice(3, size=n)
    theta = rng.dirichlet(np.ones(4), size=(8, 3))
    return pd.DataFrame({f"q{j}": [f"a{rng.choice(4, p=theta[j, c])}" for c in z]
                         for j in range(8)})


@pytest.mark.slow
def test_a_session_of_three_explorers_with_a_stop(carcinoma, faithful):
    """Three explorers in one kernel run at once; one long latent class run is stopped
    mid-run: it shows where it stopped, the others finish their own fits."""
    big = FamilyExplorer(_survey(20_000), LatentClassModel(4, n_init=16, tol=0, max_iter=5000))
    small = FamilyExplorer(carcinoma, LatentClassModel(2, n_init=8, random_state=2))
    gauss = EMExplorer(faithful, n_components=2, n_init=8)
    big.run()
    small.run()
    gauss.run()
    deadline = time.time() + 120
    while big.session.phase != "running" and time.time() < deadline:
        time.sleep(0.05)
    assert big.session.phase == "running", big.session.status
    big.session.stop()
    for ex in (small, gauss):
        ex.session.wait()
    assert big.session.status.startswith("Stopped at iteration"), big.session.status
    stopped = big.session.estimator
    assert stopped is not None and stopped.n_iter_ < 5000
    assert big.session.snapshot.stopped
    assert small.session.status.startswith("Done") and gauss.session.status.startswith("Done")
    np.testing.assert_allclose(
        small.session.estimator.lower_bound_,
        masked(LatentClassModel(2, n_init=8, random_state=2)).fit(carcinoma).lower_bound_,
        rtol=1e-6)
    assert threading.active_count() < 50


@pytest.mark.parametrize("make", [
    lambda d, f: FamilyExplorer(d, PoissonMixture(2, tol=1e-10, max_iter=20_000, n_init=80),
                                columns=["deaths_per_day"]),
    lambda d, f: EMExplorer(f, tol=1e-10, max_iter=20_000, n_init=80),
], ids=["family", "gaussian"])
def test_settings_beyond_a_sliders_range_are_kept(deaths, faithful, make):
    """A slider clips its value, and its link would change the setting given in code."""
    ex = make(deaths, faithful)
    s = ex.session
    assert (s.tol, s.max_iter, s.n_init) == (1e-10, 20_000, 80)
    assert ex.controls["max_iter"].value == 20_000 and ex.controls["n_init"].value == 80
    np.testing.assert_allclose(ex.controls["tol"].value, 1e-10)


def test_documents_word_counts_explored_as_a_multinomial_mixture():
    rng = np.random.default_rng(4)
    topics = rng.dirichlet(np.full(8, 0.3), size=2)
    z = rng.choice(2, 150)
    words = np.stack([rng.multinomial(rng.integers(30, 90), topics[c]) for c in z])
    data = pd.DataFrame(words, columns=[f"w{j}" for j in range(8)])
    ex = FamilyExplorer(data, MultinomialMixture(2, n_init=6, random_state=0))
    assert ex.session.columns == list(data.columns)  # counts are no codes: every column
    ex.run(block=True)
    est = ex.session.estimator
    batch = masked(MultinomialMixture(2, n_init=6, random_state=0)).fit(data)
    np.testing.assert_allclose(est.lower_bound_, batch.lower_bound_, rtol=1e-6)
    perm = ex.session.snapshot.solutions.permutations[ex.session.snapshot.best]
    for colour, k in enumerate(perm):
        np.testing.assert_allclose(_segments(ex.profile.artists.lines[colour]),
                                   est.probabilities_[k], rtol=1e-5)


def test_a_likert_survey_is_readable_and_keeps_its_scales_order():
    # Six items on one five-level scale: the levels were 30 words running into each other,
    # in alphabetical order, under a legend covering the lines.
    rng = np.random.default_rng(0)
    scale = ["strongly disagree", "disagree", "neutral", "agree", "strongly agree"]
    centre = np.array([0.8, 2.0, 3.3])[rng.integers(0, 3, 300)]
    answers = np.clip(np.round(centre[:, None] + rng.normal(0, 0.9, (300, 4))), 0, 4)
    words = pd.DataFrame({f"q{j + 1}": [scale[int(a)] for a in answers[:, j]]
                          for j in range(4)})
    ex = FamilyExplorer(words, LatentClassModel(3, n_init=4, random_state=0))
    assert "alphabetical order" in ex.data_note.value and "CategoricalDtype" in \
        ex.data_note.value
    ordered = words.astype(pd.CategoricalDtype(scale, ordered=True))
    ex = FamilyExplorer(ordered, LatentClassModel(3, n_init=4, random_state=0))
    assert "alphabetical" not in ex.data_note.value
    ex.run(block=True)
    ax = ex.profile.artists.ax
    ex.profile.figure.canvas.draw()
    # The shared scale numbered under each item and named once, in the scale's order.
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4", "5"] * 4
    assert ax.get_xlabel() == ("levels: 1 strongly disagree, 2 disagree, 3 neutral, "
                               "4 agree, 5 strongly agree")
    legend = ax.get_legend()
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1 - 1  # beside the lines
