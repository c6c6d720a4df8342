"""A barrage of bad and awkward inputs over every public estimator (issue 11, defect 7).

Each input gives either a finite fit (finite parameters and objective, ``predict``
works) or a ValueError (or a documented subclass: DataTypeError,
MemoryBudgetError) whose message is one sentence with nothing of a traceback in
it; and a fitted estimator refitted with bad input keeps its previous result.

Every fit uses the same small shapes (2 features, at most 64 rows, 2
components, 1 restart, 5 iterations), so each estimator compiles once.
"""

import copy
import re
import warnings

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from emwidgets import GaussianHMM, GaussianMixture, KMeans, select_model
from emwidgets.estimators import validation as V
from emwidgets.estimators.gaussian_mixture import memory_needed

pytestmark = pytest.mark.filterwarnings("ignore::emwidgets.ConvergenceWarning")

N = 60
rng = np.random.default_rng(0)
X = rng.normal(size=(N, 2))
X[: N // 2] += 4.0
NAN = X.copy()
NAN[3, 1] = np.nan
RAW = ("Traceback", "LinAlgError", "XlaRuntimeError", "RESOURCE_EXHAUSTED", "\n",
       "File \"")


def frame(**columns):
    return pd.DataFrame(columns)


class Select:
    """select_model as an estimator: fit runs the grid, the best model answers."""

    def __init__(self, **params):
        self.params = params

    def fit(self, data):
        res = select_model(data, n_components=[1, 2], covariance_types=("full",), n_init=1,
                           max_iter=5, random_state=0, **self.params)
        for message in res.table["message"]:
            if message:
                assert_sentence(ValueError(message))
        if res.best is None:  # every fit of the grid failed: its first message is the answer
            raise ValueError(res.table["message"].iloc[0])
        return res.best


ESTIMATORS = {
    "gmm": lambda **kw: GaussianMixture(2, max_iter=5, random_state=0, **kw),
    "gmm_em": lambda **kw: GaussianMixture(2, max_iter=5, random_state=0, missing="em", **kw),
    "gmm_prior": lambda **kw: GaussianMixture(2, max_iter=5, random_state=0, prior="default",
                                              **kw),
    "kmeans": lambda **kw: KMeans(2, n_init=1, max_iter=5, random_state=0, **kw),
    "hmm": lambda **kw: GaussianHMM(2, n_iter=5, random_state=0, **kw),
    "select": lambda **kw: Select(**kw),
}
FITTED = {}


def fitted(kind):
    """A model of this kind fitted on good data (once per kind)."""
    if kind not in FITTED:
        FITTED[kind] = ESTIMATORS[kind]().fit(X)
    return FITTED[kind]


def assert_sentence(exc):
    assert isinstance(exc, ValueError), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert message.endswith("."), message
    assert not any(raw in message for raw in RAW), message
    assert not re.search(r"[.!?]\s+[A-Z]", message), f"more than one sentence: {message}"


def state_of(model):
    names = ("means_", "covariances_", "cluster_centers_", "transmat_", "lower_bound_",
             "inertia_", "n_features_in_")
    return {n: copy.deepcopy(getattr(model, n)) for n in names if hasattr(model, n)}


def assert_finite_fit(model, data, kind, max_iter_zero=False):
    model = getattr(model, "best", model)
    for name in ("means_", "covariances_", "cluster_centers_", "precisions_", "transmat_",
                 "startprob_", "weights_", "inertia_"):
        if hasattr(model, name):
            assert np.isfinite(np.asarray(getattr(model, name), np.float64)).all(), name
    if hasattr(model, "lower_bound_"):
        assert np.isfinite(model.lower_bound_) or (max_iter_zero and model.lower_bound_ == -np.inf)
    labels = model.predict(data)
    assert len(labels) == V.as_2d_float(data, allow_nan=True)[0].shape[0]


def check(kind, data, expect=None, make=None, **params):
    """Fit (a copy of) a fitted model of this kind on ``data``; see the module docstring."""
    model = make() if make is not None else (
        copy.deepcopy(fitted(kind)).set_params(**params) if kind != "select" else Select(**params))
    before = state_of(model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", V.ConvergenceWarning)
            out = model.fit(data)
    except Exception as exc:  # noqa: BLE001 - the barrage checks what escapes
        assert_sentence(exc)
        assert expect != "fit", f"{kind} should fit this, but: {exc}"
        after = state_of(model)
        assert after.keys() == before.keys()
        for name, value in before.items():
            np.testing.assert_array_equal(after[name], value, err_msg=name)
        if before:  # the previous result still answers (with the parameters it was fitted with)
            model.set_params(**fitted(kind).get_params()).predict(X)
        return exc
    assert expect != "error", f"{kind} accepted input that must be refused"
    assert_finite_fit(out, data, kind, max_iter_zero=params.get("max_iter") == 0)
    return out


# ---------------------------------------------------------------------------
# Data: every estimator
# ---------------------------------------------------------------------------

def _nullable(dtype, values):
    return pd.array(values, dtype=dtype)


# name -> (data, {kind: "fit" / "error"}; "*" for every kind not named)
DATA = {
    "good": (X, {"*": "fit"}),
    "list of lists": (X.tolist(), {"*": "fit"}),
    "ints": (np.round(X * 10).astype(int), {"*": "fit"}),
    "float32": (X.astype(np.float32), {"*": "fit"}),
    "jax array": (jnp.asarray(X), {"*": "fit"}),
    "strided view": (np.asfortranarray(X)[:, ::-1], {"*": "fit"}),
    "bools": (X > 2, {}),
    "frame": (frame(a=X[:, 0], b=X[:, 1]), {"*": "fit"}),
    "frame int names": (pd.DataFrame(X), {"*": "fit"}),
    "Float64 nullable": (frame(a=_nullable("Float64", X[:, 0]), b=X[:, 1]), {"*": "fit"}),
    "Int64 with NA": (frame(a=_nullable("Int64", [1, None] * (N // 2)), b=X[:, 1]),
                      {"gmm_em": "fit", "*": "error"}),
    "boolean with NA": (frame(a=_nullable("boolean", [True, None, False] * (N // 3)), b=X[:, 1]),
                        {"gmm_em": "fit", "*": "error"}),
    "Int64 all NA": (frame(a=_nullable("Int64", [None] * N), b=X[:, 1]), {"*": "error"}),
    "object with None": (np.array([[1.0, None]] + X[1:].tolist(), dtype=object),
                         {"gmm_em": "fit", "*": "error"}),
    "numeric strings": (frame(a=[f"{v:.3f}" for v in X[:, 0]], b=X[:, 1]), {"*": "fit"}),
    "text column": (frame(a=["x", "y"] * (N // 2), b=X[:, 1]), {"*": "error"}),
    "string dtype": (frame(a=pd.array(["x"] * N, dtype="string"), b=X[:, 1]), {"*": "error"}),
    "categorical": (frame(a=pd.Categorical(["x", "y"] * (N // 2)), b=X[:, 1]), {"*": "error"}),
    "datetime column": (frame(a=X[:, 0], t=pd.date_range("2020", periods=N)), {"*": "error"}),
    "datetime only": (frame(t=pd.date_range("2020", periods=N)), {"*": "error"}),
    "timedelta column": (frame(a=X[:, 0], t=pd.to_timedelta(np.arange(N), "s")),
                         {"*": "error"}),
    "datetime64 array": (np.array(["2020-01-01"] * N * 2, "datetime64[D]").reshape(N, 2),
                         {"*": "error"}),
    "dict in object array": (np.array([[{"a": 1}, 1.0]] + X[1:].tolist(), dtype=object),
                             {"*": "error"}),
    "empty frame": (pd.DataFrame(), {"*": "error"}),
    "frame without columns": (pd.DataFrame(index=range(N)), {"*": "error"}),
    "zero rows": (np.empty((0, 2)), {"*": "error"}),
    "zero columns": (np.empty((N, 0)), {"*": "error"}),
    "one row": (X[:1], {"*": "error"}),
    "two rows": (X[[0, -1]], {"hmm": "skip", "select": "fit"}),  # hmm: another length
    "1-D": (X[:, 0], {"*": "error"}),
    "series": (pd.Series(X[:, 0]), {"*": "error"}),
    "3-D": (X.reshape(N // 2, 2, 2), {"*": "error"}),
    "scalar": (5.0, {"*": "error"}),
    "None": (None, {"*": "error"}),
    "string": ("abc", {"*": "error"}),
    "dict": ({"a": [1, 2]}, {"*": "error"}),
    "ragged": ([[1.0, 2.0], [3.0]], {"*": "error"}),
    "complex": (X + 1j, {"*": "error"}),
    "complex frame": (frame(a=X[:, 0] + 1j, b=X[:, 1]), {"*": "error"}),
    "sparse": (scipy.sparse.csr_matrix(X), {"*": "error"}),
    "one NaN": (NAN, {"gmm_em": "fit", "*": "error"}),
    "all-NaN column": (np.c_[X[:, :1], np.full(N, np.nan)], {"*": "error"}),
    "all-NaN row": (np.r_[X[1:], [[np.nan, np.nan]]], {"*": "error"}),
    "all NaN": (np.full((N, 2), np.nan), {"*": "error"}),
    "inf": (np.where(X > 5, np.inf, X), {"*": "error"}),
    "-inf": (np.where(X > 5, -np.inf, X), {"*": "error"}),
    "values near 1e30": (X * 1e30, {"*": "fit"}),
    "values near 1e140": (X * 1e140, {"*": "fit"}),
    "values near 1e300": (X * 1e300, {"*": "error"}),
    "values near 1e-30": (X * 1e-30, {"*": "fit"}),
    "values near 1e-300": (X * 1e-300, {}),
    "offset 1e30": (X + 1e30, {}),
    "constant": (np.ones((N, 2)), {}),
    "one constant column": (np.c_[X[:, :1], np.ones(N)], {}),
    "two distinct points": (np.repeat(X[[0, -1]], N // 2, axis=0), {}),
    "huge ints": (np.array([[10**30, 1]] * N, dtype=object) * rng.integers(1, 9, (N, 2)), {}),
}
KINDS = tuple(ESTIMATORS)


def _expected(table, kind):
    return table.get(kind, table.get("*"))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(DATA))
def test_data(name, kind):
    data, table = DATA[name]
    if _expected(table, kind) == "skip":
        pytest.skip("a new sequence length would compile another program")
    check(kind, data, expect=_expected(table, kind))


# ---------------------------------------------------------------------------
# Parameters, per estimator
# ---------------------------------------------------------------------------

GMM_PARAMS = [
    dict(n_components=0), dict(n_components=-1), dict(n_components=2.5), dict(n_components="2"),
    dict(n_components=True), dict(n_components=10**9), dict(n_init=0), dict(n_init=-1),
    dict(n_init=1.5), dict(tol=-1.0), dict(tol=np.nan), dict(tol=np.inf), dict(reg_covar=-1e-6),
    dict(reg_covar=np.nan), dict(max_iter=-1), dict(max_iter=2.5), dict(covariance_type="foo"),
    dict(init_params="foo"), dict(missing="foo"), dict(prior="foo"),
    dict(means_init=np.full((2, 2), np.nan)), dict(means_init=np.zeros((3, 2))),
    dict(weights_init=[0.9, 0.3]), dict(precisions_init=-np.eye(2)[None].repeat(2, 0)),
    dict(random_state="abc"), dict(max_iter=10**12), dict(n_init=10**9),
]


@pytest.mark.slow
@pytest.mark.parametrize("params", GMM_PARAMS, ids=repr)
def test_gmm_parameters(params):
    check("gmm", X, expect="error", **params)


@pytest.mark.parametrize("make", [lambda: GaussianMixture(2, n_init=10**9),
                                  lambda: KMeans(2, n_init=10**9)], ids=["gmm", "kmeans"])
def test_an_absurd_n_init_is_refused_before_a_key_is_drawn(monkeypatch, make):
    """The plan's memory check comes before the restarts' keys are drawn: with the check after
    them, n_init=10**9 drew a billion keys (8 GB, 197 s in a suite) before its one sentence;
    KMeans had no memory check at all."""
    from emwidgets.estimators import mixture
    from emwidgets.estimators.validation import MemoryBudgetError

    def no_keys(*args, **kwargs):
        raise AssertionError("a restart's key was drawn before the plan was checked")

    monkeypatch.setattr(mixture, "_keys", no_keys)
    with pytest.raises(MemoryBudgetError, match="1000000000 restarts needs about"):
        make().fit(X)


def test_gmm_max_iter_zero_keeps_the_initialisation():
    """scikit-learn's meaning: no EM iteration, lower_bound_ = -inf."""
    gm = check("gmm", X, expect="fit", max_iter=0)
    assert gm.lower_bound_ == -np.inf and gm.n_iter_ == 0


@pytest.mark.parametrize("params", [
    dict(n_clusters=0), dict(n_clusters=10**9), dict(n_init=0), dict(max_iter=0), dict(tol=-1.0),
    dict(n_init=10**9),
    dict(init="foo"), dict(init=np.zeros((3, 2))), dict(init=np.full((2, 2), np.nan)),
], ids=repr)
def test_kmeans_parameters(params):
    check("kmeans", X, expect="error", **params)


@pytest.mark.parametrize("params", [
    dict(n_components=0), dict(n_iter=0), dict(min_covar=-1.0), dict(tol=-1.0),
    dict(covariance_type="foo"), dict(init_params="foo"),
], ids=repr)
def test_hmm_parameters(params):
    check("hmm", X, expect="error", **params)


@pytest.mark.parametrize("lengths", [[30, 29], [1, N - 1], "abc", [30.5, 29.5], [], [N, 0],
                                     [-2, N + 2]], ids=repr)
def test_hmm_lengths(lengths):
    model = fitted("hmm")
    before = state_of(model)
    with pytest.raises(ValueError) as info:
        model.fit(X, lengths)
    assert_sentence(info.value)
    assert state_of(model).keys() == before.keys()
    np.testing.assert_array_equal(model.means_, before["means_"])


@pytest.mark.parametrize("call", [
    lambda: select_model(X, n_components=[]), lambda: select_model(X, n_components=[0, 1]),
    lambda: select_model(X, n_components=[1, 2.5]), lambda: select_model(X, n_components="ab"),
    lambda: select_model(X, criterion="r2"), lambda: select_model(X, covariance_types=["foo"]),
    lambda: select_model(X, covariance_types=[]), lambda: select_model(X, n_init=0),
    lambda: select_model(X, tol=-1.0), lambda: select_model(X, colour="red"),
    lambda: select_model(X, n_components=[1, 2], random_state="abc"),
    lambda: select_model(X, prior="foo"), lambda: select_model(X, n_components=range(1, 100)),
], ids=range(13))
def test_select_model_parameters_are_one_error_up_front(call):
    with pytest.raises(ValueError) as info:
        call()
    assert_sentence(info.value)


# ---------------------------------------------------------------------------
# Calling a fitted model with bad input
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["gmm", "gmm_em", "kmeans", "hmm"])
@pytest.mark.parametrize("data", [X[:, :1], np.c_[X, X], NAN, X[:, 0], "abc",
                                  frame(t=pd.date_range("2020", periods=N), b=X[:, 1])],
                         ids=["fewer features", "more features", "NaN", "1-D", "string",
                              "datetime"])
def test_predict_with_bad_input(kind, data):
    model = fitted(kind)
    try:
        labels = model.predict(data)
    except ValueError as exc:
        assert_sentence(exc)
    else:  # only missing-data models predict from the observed values
        assert kind == "gmm_em" and len(labels) == len(data)


def test_unfitted_model_says_fit_first():
    for make in (GaussianMixture, KMeans, GaussianHMM):
        with pytest.raises(ValueError) as info:
            make().predict(X)
        assert_sentence(info.value)


# ---------------------------------------------------------------------------
# Memory: refused up front with the size and the covariance types that fit
# ---------------------------------------------------------------------------

def test_a_fit_too_big_for_memory_is_refused_naming_what_fits(monkeypatch):
    monkeypatch.setattr(V, "available_memory", lambda: 8 * 10**9)
    wide = np.random.default_rng(1).normal(size=(20, 10_000))
    gm = copy.deepcopy(fitted("gmm"))
    exc = check("gmm", wide, expect="error", make=lambda: gm)
    assert isinstance(exc, V.MemoryBudgetError)
    message = str(exc)
    assert "10,000 features" in message and " GB" in message
    assert "covariance_type='diag' or 'spherical'" in message
    needed = float(re.search(r"about ([\d.]+) GB", message).group(1))
    # The E-step's (64 x P) features, P = D (D + 1) / 2 + D + 1, twice over, and SQUAREM's
    # (the default's) ten copies of the 2 x D x D covariances, in the fit's precision
    # (float64 on a CPU: 8 bytes a number).
    numbers = 2 * 64 * 50_015_001 + 10 * 2 * 10_000**2
    assert 0.8 * numbers * 8 / 1e9 < needed < 1.5 * numbers * 8 / 1e9
    assert "float32" not in message  # (half of it would not fit either)


def test_a_fit_that_fits_in_float32_says_so(monkeypatch):
    """Refused in float64 but fitting in half the memory: the sentence offers float32."""
    import jax

    from emwidgets.estimators.gaussian_mixture import memory_needed

    monkeypatch.setattr(V, "available_memory", lambda: 4 * 10**9)
    wide = np.random.default_rng(1).normal(size=(20, 2_500))
    gm = GaussianMixture(2, max_iter=5, random_state=0)
    with jax.enable_x64(True):
        needed = memory_needed("full", 20, 2_500, 1, 2, None, 5)
    assert needed > V.MEMORY_FRACTION * 4e9 > needed / 2  # (the case this test is about)
    with pytest.raises(V.MemoryBudgetError, match="dtype='float32' \\(half the memory\\)"):
        gm.fit(wide)


@pytest.mark.slow
@pytest.mark.parametrize("accelerate", [None, "squarem"])
def test_the_memory_estimate_matches_the_compiled_program(accelerate):
    """Against XLA's own memory analysis of the compiled EM iteration (full, 100 features),
    plain EM and a SQUAREM cycle (the default)."""
    data = np.random.default_rng(2).normal(size=(20, 100))
    gm = GaussianMixture(2, max_iter=5, random_state=0, accelerate=accelerate)
    run = gm.start(data).run
    compiled = run._advance.lower(run.state, run.data, run.hyper, run.tol,
                                  jnp.int32(5)).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
        pytest.skip("this backend gives no memory analysis")
    actual = (analysis.temp_size_in_bytes + analysis.argument_size_in_bytes
              + analysis.output_size_in_bytes)
    estimate = memory_needed("full", 20, 100, 1, 2, None, gm.max_iter,
                             accelerated=accelerate is not None)
    assert 0.7 * actual < estimate < 2.0 * actual, (estimate, actual)
