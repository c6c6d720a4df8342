"""Gaussian HMMs: against hmmlearn (float64, same start), brute force, and EM's properties."""

import itertools
import warnings

import numpy as np
import pytest
from _numerics import PLAIN_EM
from hmmlearn.hmm import GaussianHMM as HmmlearnHMM

from emwidgets.estimators.gaussian_hmm import GaussianHMM

COV_TYPES = ("full", "tied", "diag", "spherical")


@pytest.fixture(scope="module")
def sequences():
    ref = HmmlearnHMM(3, covariance_type="full", random_state=0)
    ref.startprob_ = np.array([0.6, 0.3, 0.1])
    ref.transmat_ = np.array([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]])
    ref.means_ = np.array([[0.0, 0.0], [3.0, 3.0], [-3.0, 2.0]])
    ref.covars_ = np.array([np.eye(2) * 0.5, np.eye(2), [[1.0, 0.5], [0.5, 1.0]]])
    X, states = ref.sample(500, random_state=1)
    return X, [200, 150, 150], ref


def both_from_the_same_start(X, lengths, cov_type, n_iter):
    c = np.cov(X.T)
    covs = {"full": np.stack([c] * 3), "diag": np.stack([np.diag(c)] * 3),
            "spherical": np.full(3, np.diag(c).mean()), "tied": c}[cov_type]
    start = dict(startprob_=np.full(3, 1 / 3), transmat_=np.full((3, 3), 1 / 3),
                 means_=X[[0, 100, 300]] + 0.1)
    # hmmlearn without its default priors, so both maximise the plain likelihood.
    ref = HmmlearnHMM(3, covariance_type=cov_type, init_params="", params="stmc", n_iter=n_iter,
                      tol=1e-300, covars_prior=0, covars_weight=0 if cov_type == "tied" else 1,
                      min_covar=0, implementation="scaling")
    ours = GaussianHMM(3, covariance_type=cov_type, init_params="", n_iter=n_iter, tol=1e-300,
                       min_covar=0, **PLAIN_EM)
    for est in (ref, ours):
        for name, value in start.items():
            setattr(est, name, value.copy())
    ref.covars_ = covs
    ours.covariances_ = covs.copy()
    ours.n_features_in_ = 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.fit(X, lengths)
        ours.fit(X, lengths)
    return ours, ref


@pytest.mark.slow
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_agrees_with_hmmlearn_every_iteration(x64, sequences, cov_type):
    X, lengths, _ = sequences
    ours, ref = both_from_the_same_start(X, lengths, cov_type, n_iter=15)
    history = np.array(ref.monitor_.history)  # total log-likelihood per iteration
    assert ours.n_iter_ == len(history) == 15
    np.testing.assert_allclose(ours.restarts_.trace[0] * len(X), history, rtol=1e-6)
    np.testing.assert_allclose(ours.startprob_, ref.startprob_, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(ours.transmat_, ref.transmat_, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-6)
    # hmmlearn keeps a spherical covariance set by hand as one column per feature.
    expected = ref._covars_.reshape(3, -1)[:, 0] if cov_type == "spherical" else ref._covars_
    np.testing.assert_allclose(ours.covariances_, expected, rtol=1e-6)
    np.testing.assert_allclose(ours.score(X, lengths), ref.score(X, lengths), rtol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X, lengths), ref.predict_proba(X, lengths),
                               atol=1e-9)
    logp, path = ours.decode(X, lengths)
    ref_logp, ref_path = ref.decode(X, lengths)
    np.testing.assert_array_equal(path, ref_path)
    np.testing.assert_allclose(logp, ref_logp, rtol=1e-9)
    # hmmlearn's parameter count (its n_fit_scalars_per_param) and criteria
    np.testing.assert_allclose(ours.bic(X, lengths), ref.bic(X, lengths), rtol=1e-9)
    np.testing.assert_allclose(ours.aic(X, lengths), ref.aic(X, lengths), rtol=1e-9)
    total, posteriors = ours.score_samples(X, lengths)
    ref_total, ref_posteriors = ref.score_samples(X, lengths)
    np.testing.assert_allclose(total, ref_total, rtol=1e-9)
    np.testing.assert_allclose(posteriors, ref_posteriors, atol=1e-9)


def test_forward_backward_and_viterbi_against_brute_force(x64):
    """All 3**6 state paths of a tiny problem, enumerated."""
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(2)
    X = rng.normal(size=(6, 2)) * 2
    hmm = GaussianHMM(3, covariance_type="full")
    hmm.startprob_ = np.array([0.5, 0.3, 0.2])
    hmm.transmat_ = np.array([[0.7, 0.2, 0.1], [0.3, 0.5, 0.2], [0.25, 0.25, 0.5]])
    hmm.means_ = np.array([[0.0, 0.0], [2.0, 1.0], [-1.0, 2.0]])
    hmm.covariances_ = np.array([np.eye(2), [[2.0, 0.3], [0.3, 1.0]], np.eye(2) * 0.7])
    hmm.n_features_in_ = 2
    dens = np.array([[multivariate_normal(m, c).pdf(x)
                      for m, c in zip(hmm.means_, hmm.covariances_)] for x in X])
    total, best, best_path = 0.0, -np.inf, None
    marg = np.zeros((6, 3))
    for path in itertools.product(range(3), repeat=6):
        p = hmm.startprob_[path[0]] * dens[0, path[0]]
        for t in range(1, 6):
            p *= hmm.transmat_[path[t - 1], path[t]] * dens[t, path[t]]
        total += p
        marg[np.arange(6), path] += p
        if p > best:
            best, best_path = p, path
    assert hmm.score(X) == pytest.approx(np.log(total), rel=1e-10)
    np.testing.assert_allclose(hmm.predict_proba(X), marg / total, atol=1e-10)
    logp, states = hmm.decode(X)
    assert tuple(states) == best_path and logp == pytest.approx(np.log(best), rel=1e-10)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_restarts_never_lower_the_likelihood(sequences, cov_type):
    X, lengths, _ = sequences
    hmm = GaussianHMM(3, covariance_type=cov_type, n_init=6, init_params="random", n_iter=50,
                      tol=1e-6, random_state=0).fit(X, lengths)
    for trace in hmm.restarts_.trace:
        t = trace[~np.isnan(trace)]
        assert len(t) >= 2 and np.all(np.diff(t) >= -1e-5 * np.abs(t[1:]))
    assert hmm.lower_bound_ == pytest.approx(hmm.restarts_.objective.max())
    np.testing.assert_allclose(hmm.transmat_.sum(1), 1, rtol=1e-5)


def test_recovers_the_generating_chain(sequences):
    X, lengths, ref = sequences
    hmm = GaussianHMM(3, covariance_type="full", n_init=8, random_state=0).fit(X, lengths)
    order = [int(np.argmin(((hmm.means_ - m) ** 2).sum(1))) for m in ref.means_]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(hmm.means_[order], ref.means_, atol=0.35)
    np.testing.assert_allclose(hmm.transmat_[np.ix_(order, order)], ref.transmat_, atol=0.12)


@pytest.mark.slow
def test_long_sequences_stay_finite():
    rng = np.random.default_rng(0)
    states = (np.arange(100_000) // 50) % 2
    X = rng.normal(size=(100_000, 1)) + 4 * states[:, None]
    # (Five iterations from a random transition matrix are too few for some seeds.)
    hmm = GaussianHMM(2, n_init=2, n_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hmm.fit(X)
    assert np.isfinite(hmm.restarts_.objective).all() and np.isfinite(hmm.score(X[:5000]))
    assert (hmm.predict(X[:2000]) == states[:2000]).mean() > 0.99 or \
        (hmm.predict(X[:2000]) != states[:2000]).mean() > 0.99


@pytest.mark.parametrize("lengths, message",
                         [([400, 99], "sum to"), ([499, 1], "at least 2 steps")])
def test_bad_lengths(sequences, lengths, message):
    X, _, _ = sequences
    with pytest.raises(ValueError, match=message):
        GaussianHMM(2).fit(X, lengths)


def test_nan_is_refused():
    X = np.ones((10, 2))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        GaussianHMM(2).fit(X)


def test_hmm_explorer_driven_headlessly():
    from emwidgets import HMMExplorer, datasets

    geyser = datasets.load_geyser()
    ex = HMMExplorer(geyser, n_components=2, n_init=6, init_params="random", random_state=0)
    assert ex.controls["init_params"].options == ("kmeans", "random")
    ex.controls["covariance_type"].value = "diag"
    ex.run_button.click()
    ex.session.wait(120)
    assert "Done" in ex.status.value, ex.status.value
    hmm = ex.session.estimator
    assert hmm.covariance_type == "diag" and hmm.restarts_.n_restarts == 6
    # Convergence lines are the traces; the heatmap is the best restart's (aligned) transmat.
    for r, line in enumerate(ex.convergence.artists.lines):
        n = hmm.restarts_.n_iter[r]
        np.testing.assert_allclose(line.get_data()[1], hmm.restarts_.trace[r][:n])
    shown = ex.transitions.image.get_array()
    np.testing.assert_allclose(np.sort(shown.ravel()), np.sort(hmm.transmat_.ravel()), rtol=1e-6)
    # The series is coloured by the decoded states, and the posteriors stack to one.
    snap = ex.session.snapshot
    assert snap.posteriors.shape == (6, len(geyser), 2)
    np.testing.assert_allclose(snap.posteriors.sum(-1), 1, rtol=1e-5)
    assert len(ex.series.points.get_offsets()) == len(geyser)
    # Selecting another restart redraws the views for it.
    worst = int(np.argmin(hmm.restarts_.objective))
    ex.restart_picker.value = worst
    assert ex.series.figure.axes[0].get_title().startswith(f"Restart {worst}")


def test_scoring_runs_in_float64_without_warnings(sequences):
    X, lengths, _ = sequences
    hmm = GaussianHMM(3, n_init=2, random_state=0).fit(X, lengths)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a float64 reduction outside x64 mode would warn
        total = hmm.score(X, lengths)
        hmm.predict_proba(X, lengths)
        logp, states = hmm.decode(X, lengths)
    assert isinstance(total, float) and np.isfinite(total) and logp <= total


@pytest.fixture(scope="module", params=["float32", "float64"])
def fitted_in(request, sequences):
    """The generating chain's fit in the default float32 mode, and in x64."""
    import jax

    X, lengths, _ = sequences
    with jax.enable_x64(request.param == "float64"):
        hmm = GaussianHMM(3, covariance_type="full", n_init=8, random_state=0).fit(X, lengths)
    return request.param, hmm


def test_sample_follows_the_fitted_chain(fitted_in):
    """A long sample's transition frequencies and per-state moments match the model's,
    within 5 standard errors (counts of a Markov chain's transitions out of state i are
    multinomial given the visits to i; a Gaussian sample covariance's entry (a, b) has
    variance (S_aa S_bb + S_ab^2) / n)."""
    import jax

    mode, hmm = fitted_in
    # Fitted in float32, the probabilities are renormalised rows in float64.
    np.testing.assert_allclose(hmm.transmat_.sum(1), 1, rtol=0, atol=1e-12)
    assert abs(hmm.startprob_.sum() - 1) < 1e-12
    n = 30_000
    with jax.enable_x64(mode == "float64"):
        X, states = hmm.sample(n, random_state=3)
    assert X.shape == (n, 2) and states.shape == (n,) and X.dtype == np.float64
    assert np.isfinite(X).all() and set(np.unique(states)) <= {0, 1, 2}
    counts = np.zeros((3, 3))
    np.add.at(counts, (states[:-1], states[1:]), 1)
    visits = counts.sum(1, keepdims=True)
    assert (visits > 2000).all(), visits
    p = hmm.transmat_
    assert (np.abs(counts / visits - p) <= 5 * np.sqrt(p * (1 - p) / visits) + 1 / visits).all()
    for s in range(3):
        x = X[states == s]
        cov = hmm.covars_[s]
        se_mean = np.sqrt(np.diag(cov) / len(x))
        assert (np.abs(x.mean(0) - hmm.means_[s]) <= 5 * se_mean).all(), s
        se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / len(x))
        assert (np.abs(np.cov(x.T) - cov) <= 5 * se_cov).all(), s
    # Reproducible from random_state, different for another one.
    again, again_states = hmm.sample(50, random_state=5)
    np.testing.assert_array_equal(again, hmm.sample(50, random_state=5)[0])
    assert not np.array_equal(hmm.sample(50, random_state=6)[0], again)


def test_sample_first_state_follows_startprob(fitted_in):
    _, hmm = fitted_in
    first = np.array([hmm.sample(1, random_state=seed)[1][0] for seed in range(1500)])
    freq = np.bincount(first, minlength=3) / len(first)
    p = hmm.startprob_
    assert (np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / len(first)) + 1 / len(first)).all()


def test_sample_refuses_what_is_not_a_probability(fitted_in):
    import copy

    hmm = copy.deepcopy(fitted_in[1])
    hmm.transmat_ = hmm.transmat_ * 1.5
    with pytest.raises(ValueError, match="transmat_ must hold probabilities"):
        hmm.sample(5)
    with pytest.raises(ValueError, match="n_samples"):
        fitted_in[1].sample(0)


@pytest.mark.slow
def test_hmm_explorer_defaults_find_the_geysers_better_optimum():
    """The explorer's default restarts differ and reach hmmlearn's best solution.

    The reference: hmmlearn's own default start (k-means means, Dirichlet start and
    transition probabilities, the data's covariance) on per-feature standardised data,
    over 12 seeds, plain likelihood (no covariance prior); its log-likelihood per step
    is brought back to the data's units. Its optima are 0.09 and more apart, so a
    tolerance of 2e-3 (our min_covar is added at every M-step) tells them apart.
    """
    from emwidgets import datasets
    from emwidgets.widgets.hmm_explorer import HMMSession

    geyser = datasets.load_geyser()
    X = geyser.to_numpy(float)
    sd = X.std(0)
    Z = (X - X.mean(0)) / sd
    reference = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(12):
            ref = HmmlearnHMM(2, covariance_type="full", n_iter=200, tol=1e-6 * len(X),
                              covars_prior=0, random_state=seed, implementation="scaling").fit(Z)
            reference.append((ref.score(Z) - len(X) * np.log(sd).sum()) / len(X))
    best_ref = max(reference)
    assert best_ref - min(reference) > 0.05  # the reference itself sees several optima

    session = HMMSession(geyser)
    session.run(block=True)
    assert session.error == "", session.status
    hmm, snap = session.estimator, session.snapshot
    assert hmm.score(X) / len(X) == pytest.approx(best_ref, abs=2e-3)
    assert hmm.lower_bound_ == pytest.approx(best_ref, abs=2e-3)
    assert len(snap.solutions.groups) >= 2  # the restarts did not all start alike


def _numerical_standard_errors(hmm, X, emission_names):
    """Standard errors from the inverse of a central-difference Hessian of ``hmm.score``
    (the forward algorithm in float64) in coordinates written here: each transition
    row's smaller entry (the other is 1 minus it), then the 1-D emission attributes."""
    import copy

    free = [(i, j) for i in range(2) for j in range(2) if j != hmm.transmat_[i].argmax()]
    theta0 = np.r_[[hmm.transmat_[i, j] for i, j in free],
                   np.concatenate([np.ravel(getattr(hmm, a)) for a in emission_names])]

    def score(theta):
        m = copy.copy(hmm)
        t = np.array(hmm.transmat_, np.float64)
        for (i, j), v in zip(free, theta[:2]):
            t[i, j], t[i, 1 - j] = v, 1 - v
        m.transmat_ = t
        for k, a in enumerate(emission_names):
            setattr(m, a, theta[2 + 2 * k: 4 + 2 * k].reshape(np.shape(getattr(hmm, a))))
        return m.score(X)

    n, h = len(theta0), 1e-4 * np.maximum(np.abs(theta0), 1e-2)

    def at(a, b, da, db):
        t = theta0.copy()
        t[a] += da * h[a]
        t[b] += db * h[b]
        return score(t)

    hessian = np.zeros((n, n))
    for a in range(n):
        for b in range(n):
            hessian[a, b] = (at(a, b, 1, 1) - at(a, b, 1, -1) - at(a, b, -1, 1)
                             + at(a, b, -1, -1)) / (4 * h[a] * h[b])
    return free, np.sqrt(np.diag(np.linalg.inv(-hessian)))


@pytest.mark.parametrize("kind", ["poisson", "gaussian"])
def test_hmm_standard_errors_match_a_numerical_hessian(x64, kind):
    """An HMM's standard errors (autodiff through the forward algorithm, the one
    implementation every HMM shares) against the inverse of a numerical Hessian of its
    own score, for a Poisson and a 1-D Gaussian HMM. The one sequence's first state is
    certain (start probabilities at 0 and 1, on the boundary: held fixed, error 0)."""
    from emwidgets import PoissonHMM

    rng = np.random.default_rng(4)
    states = [0]
    for _ in range(399):
        states.append(states[-1] if rng.random() < 0.9 else 1 - states[-1])
    if kind == "poisson":
        X = rng.poisson(np.array([2.0, 7.0])[states])[:, None].astype(float)
        hmm = PoissonHMM(2, n_init=4, random_state=0, tol=1e-12, n_iter=5000).fit(X)
        names, shown = ["rates_"], ["rates"]
    else:
        X = (np.array([0.0, 3.0])[states] + rng.normal(size=400))[:, None]
        hmm = GaussianHMM(2, covariance_type="diag", n_init=4, random_state=0, tol=1e-12,
                          n_iter=5000, min_covar=1e-9).fit(X)
        names, shown = ["means_", "covariances_"], ["means", "covariances"]
    se = hmm.standard_errors(X)
    free, expected = _numerical_standard_errors(hmm, X, names)
    got = np.r_[[se.errors["transmat"][i, j] for i, j in free],
                np.concatenate([np.ravel(se.errors[n]) for n in shown])]
    np.testing.assert_allclose(got, expected, rtol=1e-3)
    np.testing.assert_array_equal(se.errors["startprob"], [0.0, 0.0])


def test_hmm_explorer_draws_a_series_against_its_dates():
    import pandas as pd

    from emwidgets.widgets import HMMExplorer

    rng = np.random.default_rng(3)
    states = np.repeat(rng.integers(0, 2, 30), 10)
    days = pd.date_range("2020-01-01", periods=300, freq="D", name="day")
    df = pd.DataFrame({"returns": rng.normal(states * 3.0, 1.0)}, index=days)
    df.iloc[5, 0] = np.nan  # a gap: the series keeps each row's own date
    ex = HMMExplorer(df, n_components=2, n_init=2, random_state=0)
    ex.run(block=True)
    a = ex.series.artists
    assert a["bottom"].get_xlabel() == "day"
    t = np.asarray(a["t"])
    assert np.issubdtype(t.dtype, np.datetime64) and len(t) == 299
    np.testing.assert_array_equal(t, days.delete(5).to_numpy())
    # One feature: the gallery's thumbnails are lag plots (x at t - 1, x at t), not a line.
    xy, _, covs2 = ex.gallery._projected(ex.session.snapshot, ex.session.snapshot.best)
    x = df["returns"].dropna().to_numpy()
    np.testing.assert_allclose(xy[1:], np.c_[x[:-1], x[1:]])
    assert np.all(covs2[:, 0, 1] == 0) and np.all(covs2[:, 0, 0] > 0)
    # Without an index of its own, the axis counts time steps.
    plain = HMMExplorer(df.reset_index(drop=True), n_components=2, n_init=2, random_state=0)
    plain.run(block=True)
    assert plain.series.artists["bottom"].get_xlabel() == "time step"
