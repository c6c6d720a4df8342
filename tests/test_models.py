"""One property list over every public estimator (dynamax's ``test_models.py`` shape).

Each capability is a row, each estimator of ``tests/_models.py`` a column. Every cell runs,
or ``NOT_APPLICABLE`` says in one line why not; the README's table is printed from these
(``python tests/test_models.py``) and a test keeps the two equal. A new estimator joins
``MODELS``; a new capability joins ``ROWS`` and is checked on every column at once.
"""

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from _models import MODELS  # noqa: E402

from emwidgets import Chunks, _compiles  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: capability -> what the row checks (the README's words).
ROWS = {
    "monotone": "the objective never decreases, per restart (float64)",
    "batch = live": "a fit advanced a few iterations at a time equals the batch fit, bit for bit",
    "vmap = alone": "restart r replayed alone equals restart r of the batch",
    "scrub": "the run at iteration t equals a fit stopped at t, nothing compiled",
    "weights": "constant weights change nothing; integer weights = repeated rows",
    "devices": "rows sharded over 2 forced devices = 1 device",
    "streamed": "a fit streamed from chunks = the fit in memory",
    "squarem": "SQUAREM: monotone, and its best restart reaches plain EM's best",
    "gap rule": "convergence='gap' runs and stops no earlier than the change rule",
    "defaults": "the defaults (SQUAREM, gap rule, tol=1e-10) converge to plain EM's best at 1e-13",
    "standard errors": "finite, symmetric positive covariance; 4x the data halves them",
    "pickle": "a fitted estimator pickles and scores the same after",
    "compiles": "a second fit with another seed, tol and budget compiles nothing",
    "missing": "rows with NaN are fitted by EM over what is observed",
    "score & bic": "score_samples, score and bic agree (bic = -2 log L + p log n)",
    "scikit-learn checks": "scikit-learn's own estimator checks pass",
    "standardize": "standardize=True = the fit to StandardScaler's columns, in data units",
}

_HMM_SEQUENCES = "its rows are time steps of sequences, not exchangeable rows"
_NO_TAGS = "not yet: only GaussianMixture and KMeans declare scikit-learn's tags (issue 31)"
_NO_NAN = "refused in one sentence: this model has no missing-value EM yet"

#: (row, column) -> why the cell does not apply. Everything else runs.
NOT_APPLICABLE = {
    ("weights", "GaussianHMM"): _HMM_SEQUENCES,
    ("weights", "PoissonHMM"): _HMM_SEQUENCES,
    ("weights", "CategoricalHMM"): _HMM_SEQUENCES,
    ("streamed", "GaussianHMM"): "not yet: a sequence is not streamed in chunks of rows",
    ("streamed", "PoissonHMM"): "not yet: a sequence is not streamed in chunks of rows",
    ("streamed", "CategoricalHMM"): "not yet: a sequence is not streamed in chunks of rows",
    ("streamed", "MixtureModel"): "its M-step reads the data again (autodiff): refused",
    ("squarem", "KMeans"): "hard assignments: the objective is piecewise constant",
    ("gap rule", "KMeans"): "Lloyd's iteration reaches its fixed point exactly: no gap to estimate",
    ("defaults", "KMeans"): "Lloyd's iteration: its defaults are scikit-learn's",
    ("standard errors", "KMeans"): "k-means is not a likelihood model",
    ("missing", "GaussianMixture"): "missing='em' is the column GaussianMixture(missing)",
    ("missing", "KMeans"): _NO_NAN,
    ("missing", "GaussianHMM"): _NO_NAN,
    ("missing", "PoissonMixture"): _NO_NAN,
    ("missing", "MultinomialMixture"): _NO_NAN,
    ("missing", "PoissonHMM"): _NO_NAN,
    ("missing", "StudentMixture"): _NO_NAN,
    ("missing", "MixtureModel"): _NO_NAN,
    ("score & bic", "KMeans"): "k-means is not a likelihood model (score is -inertia)",
    **{("scikit-learn checks", n): _NO_TAGS for n in MODELS
       if n not in ("GaussianMixture", "KMeans", "GaussianMixture(factor)")},
    ("scikit-learn checks", "GaussianMixture(factor)"): "the checks build GaussianMixture's "
                                                         "defaults: its column",
    ("missing", "GaussianMixture(factor)"): "not yet: refused in one sentence "
                                            "(tests/test_factor_mixture.py)",
    ("standardize", "GaussianMixture(factor)"): "not yet: refused in one sentence "
                                                "(tests/test_factor_mixture.py)",
    ("standard errors", "GaussianMixture(factor)"): "the loadings are unique up to a rotation: "
                                                    "the information is singular",
    **{("standardize", n): "counts and coded answers are in their own units: nothing to scale"
       for n in ("PoissonMixture", "MultinomialMixture", "LatentClassModel", "PoissonHMM",
                 "CategoricalHMM")},
    ("standardize", "MixtureModel"): "a user's density is written in the units it is given",
    ("standardize", "EM"): "a user's model is written in the units it is given",
    ("missing", "EM"): "a user's model: missing values are what its E-step makes of them",
    ("score & bic", "EM"): "a user's model: no parameter count or row densities to agree",
    ("pickle", "EM"): "no predict (a user's model has no assignments): tests/test_general_em.py",
    ("scikit-learn checks", "EM"): "a model of pure functions on any pytree, not an (n, d) X",
    **{(row, "FactorAnalysis"): "not yet: FactorAnalysis fits through EM, not start (issue 30)"
       for row in ("batch = live", "vmap = alone", "scrub")},
    ("weights", "FactorAnalysis"): "its objective is the total log-likelihood (weights of 3 "
                                   "triple it): weights = repeated rows in "
                                   "tests/test_factor_analysis.py",
    ("devices", "FactorAnalysis"): "not yet: a user's model runs on one device (issue 30)",
    ("streamed", "FactorAnalysis"): "not yet: a user's model is fitted in memory (issue 30)",
    ("standard errors", "FactorAnalysis"): "the loadings are unique up to a rotation: the "
                                           "information is singular",
    ("pickle", "FactorAnalysis"): "no predict (it transforms): tests/test_factor_analysis.py",
    ("missing", "FactorAnalysis"): _NO_NAN,
    ("score & bic", "FactorAnalysis"): "no bic yet (issue 30); score against scikit-learn's "
                                       "in tests/test_factor_analysis.py",
    ("scikit-learn checks", "FactorAnalysis"): _NO_TAGS,
    ("standardize", "FactorAnalysis"): "it standardises its columns itself (the model is "
                                       "equivariant under their scales)",
    **{("standardize", n): "not yet: GaussianMixture's (the explorer's) first (issue 29)"
       for n in ("KMeans", "GaussianHMM", "StudentMixture")},
}


def cells(row):
    return [pytest.param(name, id=name) for name in MODELS if (row, name) not in NOT_APPLICABLE]


def _fit(est, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, **kw)


def _leaves(params):
    return [np.asarray(a, np.float64) for a in jax.tree.leaves(params)]


def _equal_restarts(a, b, rtol=0.0):
    np.testing.assert_allclose(a.trace, b.trace, rtol=rtol, atol=0)
    for u, v in zip(_leaves(a.params), _leaves(b.params)):
        np.testing.assert_allclose(u, v, rtol=rtol, atol=1e-300 if rtol else 0)


def _monotone(trace, rtol=1e-9):
    trace = trace[np.isfinite(trace)]
    assert len(trace) >= 2
    assert np.all(np.diff(trace) >= -rtol * np.abs(trace[1:])), np.diff(trace).min()


@pytest.mark.parametrize("name", cells("monotone"))
def test_monotone(x64, name):
    m = MODELS[name]
    X, kw = m.data()
    for trace in _fit(m.make(**m.exact), X, **kw).restarts_.trace:
        _monotone(trace)


@pytest.mark.slow
@pytest.mark.parametrize("name", cells("batch = live"))
def test_batch_equals_live(name):
    m = MODELS[name]
    X, kw = m.data()
    batch = _fit(m.make(), X, **kw).restarts_
    est = m.make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        live = est.start(X, **kw)
        while not live.done:
            live.advance(3)
        live.finish()
    _equal_restarts(est.restarts_, batch)


@pytest.mark.slow
@pytest.mark.parametrize("name", cells("vmap = alone"))
def test_vmap_equals_each_restart_alone(x64, name):
    m = MODELS[name]
    X, kw = m.data()
    est = _fit(m.make(), X, **kw)
    for r in range(est.restarts_.n_restarts):
        alone = est.replay(X, r, **kw).restarts_
        assert alone.n_iter[0] == est.restarts_.n_iter[r]
        np.testing.assert_allclose(alone.trace[0], est.restarts_.trace[r], rtol=1e-9)
        for u, v in zip(_leaves(alone.params), _leaves(est.restarts_.params)):
            np.testing.assert_allclose(u[0], v[r], rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("name", cells("scrub"))
def test_scrub_equals_a_fit_stopped_at_t(x64, name):
    m = MODELS[name]
    X, kw = m.data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        live = m.make(tol=1e-300, **{m.budget: 20}).start(X, **kw)
        while not live.done:
            live.advance(7)
        for t in (0, 1, 6, 20):
            with _compiles.count(this_thread=True) as c:
                frame = live.at(t).snapshot()
            assert c.compiled == 0, (t, c)
            fresh = m.make(tol=1e-300, **{m.budget: max(t, 1)}).start(X, **kw)
            if t:
                fresh.advance()
            for u, v in zip(_leaves(frame.params), _leaves(fresh.snapshot().params)):
                np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-12, err_msg=str(t))


@pytest.mark.slow
@pytest.mark.parametrize("name", cells("weights"))
def test_weights_are_repeated_rows(x64, name):
    m = MODELS[name]
    X, kw = m.data()
    plain = _fit(m.make(), X, **kw).restarts_
    _equal_restarts(_fit(m.make(), X, sample_weight=np.full(len(X), 3.0), **kw).restarts_,
                    plain, rtol=m.rtol)
    w = np.random.default_rng(5).integers(0, 4, len(X))
    converge = {"tol": 1e-12, m.budget: 3000}
    a = _fit(m.make(**converge), X, sample_weight=w.astype(float), **kw)
    b = _fit(m.make(**converge), np.repeat(X, w, axis=0), **kw)
    # Different rows give different starts; separated data and three restarts bring both
    # to the one maximum.
    best = [r.objective[r.best] for r in (a.restarts_, b.restarts_)]
    assert best[0] == pytest.approx(best[1], rel=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("name", cells("streamed"))
def test_streamed_equals_in_memory(x64, name):
    m = MODELS[name]
    X, kw = m.data()
    memory = _fit(m.make(), X, **kw).restarts_
    streamed = _fit(m.make(), Chunks(X, chunk_rows=70, progress=False), **kw).restarts_
    np.testing.assert_array_equal(streamed.n_iter, memory.n_iter)
    np.testing.assert_allclose(streamed.trace, memory.trace, rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("name", cells("squarem"))
def test_squarem_is_monotone_and_reaches_plain_ems_optimum(x64, name):
    m = MODELS[name]
    X, kw = m.data()
    converge = {"tol": 1e-10, m.budget: 5000}
    plain = _fit(m.make(**converge, **m.exact), X, **kw).restarts_
    fast = _fit(m.make(accelerate="squarem", **converge, **m.exact), X, **kw).restarts_
    for trace in fast.trace:
        _monotone(trace, rtol=1e-8)
    # (from one start the two may end in different basins: compared at the best)
    assert fast.objective.max() == pytest.approx(plain.objective.max(), rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", cells("gap rule"))
def test_gap_rule(x64, name):
    m = MODELS[name]
    X, kw = m.data()
    change = _fit(m.make(tol=1e-4, **{m.budget: 500}), X, **kw).restarts_
    gap = _fit(m.make(tol=1e-4, convergence="gap", **{m.budget: 500}), X, **kw).restarts_
    assert (gap.n_iter >= change.n_iter).all(), (gap.n_iter, change.n_iter)
    assert (gap.objective >= change.objective - 1e-9 * np.abs(change.objective)).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", cells("defaults"))
def test_the_defaults_reach_plain_ems_best(x64, name):
    """Issue 28: the estimator's own stopping defaults (the property list's models run plain
    EM by scikit-learn's rule otherwise) end converged, at plain EM's best run to 1e-13."""
    m = MODELS[name]
    X, kw = m.data()
    defaults = {"accelerate": "squarem", "convergence": "gap", "tol": 1e-10, m.budget: 1000}
    ours = _fit(m.make(**defaults, **m.exact), X, **kw)
    plain = _fit(m.make(tol=1e-13, **{m.budget: 20_000}, **m.exact), X, **kw).restarts_
    assert ours.restarts_.converged.all(), ours.restarts_.messages
    assert ours.restarts_.objective.max() == pytest.approx(plain.objective.max(), rel=1e-9,
                                                           abs=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("name", cells("standard errors"))
def test_standard_errors(x64, name):
    m = MODELS[name]
    X, kw = m.data()
    est = _fit(m.make(tol=1e-12, **{m.budget: 5000}), X, **kw)
    one = est.standard_errors(X)
    # (an HMM's four copies are four sequences: its information is exactly four times)
    copies = {"lengths": [len(X)] * 4} if m.budget == "n_iter" else {}
    four = est.standard_errors(np.concatenate([X] * 4), **copies)
    cov = np.asarray(one.covariance)
    errors = [se.errors for se in (one, four)]  # (every estimator's: {name: errors})
    np.testing.assert_allclose(cov, cov.T, rtol=1e-8, atol=1e-14)
    assert np.linalg.eigvalsh(cov).min() > -1e-12 * np.abs(cov).max()
    for a, b in zip(*map(_leaves, errors)):
        assert np.isfinite(a).all() and (a >= 0).all()
        np.testing.assert_allclose(b, a / 2, rtol=1e-6, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", cells("pickle"))
def test_pickle_round_trip(name):
    m = MODELS[name]
    X, kw = m.data()
    est = _fit(m.make(), X, **kw)
    again = pickle.loads(pickle.dumps(est))
    assert again.score(X) == est.score(X)
    np.testing.assert_array_equal(again.predict(X), est.predict(X))
    _equal_restarts(again.restarts_, est.restarts_)


@pytest.mark.parametrize("name", cells("compiles"))
def test_a_second_fit_compiles_nothing(name):
    m = MODELS[name]
    X, kw = m.data()
    _fit(m.make(), X, **kw)
    with _compiles.count() as c:
        _fit(m.make(random_state=9, tol=1e-3, **{m.budget: 17}), X, **kw)
    assert c.compiled == 0, c


@pytest.mark.parametrize("name", [n for n in MODELS if ("missing", n) not in NOT_APPLICABLE])
def test_missing_values(x64, name):
    m = MODELS[name]
    X, kw = m.data()
    X = np.array(X, float)
    X[::9, 0] = np.nan
    est = _fit(m.make(), X, **kw)
    for trace in est.restarts_.trace:
        _monotone(trace)
    assert np.isfinite(est.score(X))
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-10)


@pytest.mark.parametrize("name", sorted({n for (r, n) in NOT_APPLICABLE if r == "missing"}
                                        - {"GaussianMixture", "EM"}))
def test_nan_is_refused_in_one_sentence(name):
    m = MODELS[name]
    X, kw = m.data()
    X = np.array(X, float)
    X[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _fit(m.make(), X, **kw)


@pytest.mark.parametrize("name", cells("score & bic"))
def test_score_and_bic_agree(name):
    m = MODELS[name]
    X, kw = m.data()
    est = _fit(m.make(), X, **kw)
    if m.budget == "n_iter":  # hmmlearn's meaning: the total, and (total, posteriors)
        total, posteriors = est.score_samples(X)
        assert est.score(X) == pytest.approx(total, rel=1e-9)
        np.testing.assert_allclose(posteriors.sum(1), 1.0, rtol=1e-6)
    else:  # scikit-learn's: per row, and their mean
        total = float(np.sum(est.score_samples(X)))
        assert est.score(X) == pytest.approx(total / len(X), rel=1e-6)
    p = est.n_parameters()  # the count bic uses
    assert est.bic(X) == pytest.approx(-2 * total + p * np.log(len(X)), rel=1e-6)


# --- scikit-learn's own checks --------------------------------------------------------------

SKLEARN_EXPECTED_FAILURES = {
    # Our NotFittedError is a ValueError and AttributeError like scikit-learn's, but not its
    # subclass: emwidgets does not import scikit-learn at run time.
    "check_estimators_unfitted": "NotFittedError is emwidgets' own (no sklearn import at run time)",
}
#: (the weights = repeated rows row above checks the same property on the objective)
KMEANS_EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data":
        "weighted and repeated rows seed k-means++ from different rows: the same clusters, "
        "their labels permuted",
}


def _sklearn_cases():
    from sklearn.utils.estimator_checks import parametrize_with_checks

    from emwidgets import GaussianMixture, KMeans

    # On scikit-learn's settings, not the column's: with three components, the weighted and
    # the repeated rows of check_sample_weight_equivalence start k-means++ from different
    # rows and reach the same optimum with its labels permuted.
    estimators = {"GaussianMixture": GaussianMixture(n_init=2), "KMeans": KMeans(n_clusters=3)}
    assert set(estimators) == {n for n in MODELS
                               if ("scikit-learn checks", n) not in NOT_APPLICABLE}
    estimators = list(estimators.values())
    return parametrize_with_checks(
        estimators, expected_failed_checks=lambda e: {
            **SKLEARN_EXPECTED_FAILURES,
            **(KMEANS_EXPECTED_FAILURES if isinstance(e, KMeans) else {})})


@pytest.mark.slow
@_sklearn_cases()
def test_scikit_learn_checks(estimator, check):
    check(estimator)


# --- devices: every applicable column in one child with two forced CPU devices ---------

DEVICES = r'''
import json, sys, warnings
warnings.simplefilter("ignore")
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
sys.path.insert(0, "TESTS")
from _models import MODELS
assert jax.device_count() == 2, jax.devices()
out = {}
for name in NAMES:
    m = MODELS[name]
    X, kw = m.data()
    one, two = m.make().fit(X, **kw).restarts_, m.make(devices="all").fit(X, **kw).restarts_
    finite = np.isfinite(one.trace)
    out[name] = {"n_iter": bool((one.n_iter == two.n_iter).all()),
                 "trace": float(np.abs(one.trace - two.trace)[finite].max())}
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def two_devices():
    import json

    names = [n for n in MODELS if ("devices", n) not in NOT_APPLICABLE]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "EMWIDGETS_COMPILATION_CACHE": "0"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    code = DEVICES.replace("TESTS", os.path.dirname(__file__)).replace("NAMES", repr(names))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=900, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a fresh process compiling every estimator for two devices (~1 min)
@pytest.mark.parametrize("name", cells("devices"))
def test_two_devices_equal_one(two_devices, name):
    case = two_devices[name]
    assert case["n_iter"], case
    # A user's family's autodiff Newton steps amplify the psum's rounding (tests/test_sharding)
    assert case["trace"] < (1e-8 if name == "MixtureModel" else 1e-10), case


@pytest.mark.parametrize("name", cells("standardize"))
def test_standardize_is_the_fit_to_standardised_columns_in_data_units(x64, name):
    """The reference is scikit-learn's StandardScaler and a fit to its columns, mapped to
    data units by hand: means * s + m, covariances by s s', log-densities - sum log s."""
    from sklearn.metrics import adjusted_rand_score
    from sklearn.preprocessing import StandardScaler

    m = MODELS[name]
    X, kw = m.data()
    X = np.asarray(X, float) * [1.0, 300.0] + [0.0, 5e3]  # columns of unequal spread
    scaler = StandardScaler().fit(X)
    s, mu = scaler.scale_, scaler.mean_
    ours = _fit(m.make(standardize=True), X, **kw)
    ref = _fit(m.make(), scaler.transform(X), **kw)
    # Every restart (the best may be another of equal log-likelihood), in data units.
    scale = np.outer(s, s) if ref.covariances_.ndim == 3 else s**2
    got, want = ours.restarts_.params, ref.restarts_.params
    np.testing.assert_allclose(got["means"], want["means"] * s + mu, rtol=1e-9,
                               atol=1e-9 * s.max())
    np.testing.assert_allclose(got["covariances"], want["covariances"] * scale, rtol=1e-9)
    log_s = np.log(np.where(np.isnan(X), 1.0, s)).sum(1)  # per row, over what is observed
    np.testing.assert_allclose(ours.restarts_.objective, ref.restarts_.objective
                               - log_s.mean(), rtol=1e-12)
    np.testing.assert_allclose(ours.score_samples(X),
                               ref.score_samples(scaler.transform(X)) - log_s, rtol=1e-10)
    # (the same partition; its numbering is the kept restart's)
    assert adjusted_rand_score(ours.predict(X), ref.predict(scaler.transform(X))) == 1.0
    # Without it the widest column rules the start: another model altogether here.
    assert m.make().get_params()["standardize"] is False


def test_standardize_refuses_what_it_cannot_report_in_data_units():
    from emwidgets import GaussianMixture

    X = MODELS["GaussianMixture"].data()[0]
    with pytest.raises(ValueError, match="not spherical in data units"):
        GaussianMixture(2, covariance_type="spherical", standardize=True).fit(X)
    with pytest.raises(ValueError, match="prior is in data units"):
        GaussianMixture(2, prior="default", standardize=True).fit(X)
    with pytest.raises(ValueError, match="'standardize'"):
        GaussianMixture(2, standardize="yes").fit(X)


# --- the table ----------------------------------------------------------------------------


def table() -> str:
    """The README's table: a row per capability, a column per estimator."""
    names = list(MODELS)
    lines = ["| capability | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|---" * (len(names) + 1) + "|"]
    notes = {}
    for row in ROWS:
        marks = []
        for n in names:
            why = NOT_APPLICABLE.get((row, n))
            if why is None:
                marks.append("yes")
            else:
                notes.setdefault(why, len(notes) + 1)
                marks.append(f"no ({notes[why]})")
        lines.append(f"| {row}: {ROWS[row]} | " + " | ".join(marks) + " |")
    lines.append("")
    lines += [f"({i}) {why}" for why, i in notes.items()]
    return "\n".join(lines)


def test_readme_shows_this_table():
    readme = (ROOT / "README.md").read_text()
    assert table() in readme, "README's table is stale: paste `python tests/test_models.py`"


def test_every_cell_is_a_test_or_says_why():
    for (row, name), why in NOT_APPLICABLE.items():
        assert row in ROWS and name in MODELS and why, (row, name)


if __name__ == "__main__":
    print(table())
