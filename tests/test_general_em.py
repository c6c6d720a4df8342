"""EM for any latent-variable model (emwidgets.EM): the textbook examples against their
closed forms, published estimates or a direct maximisation (scipy), their standard errors
against the exact second derivative, and a user's bad functions, each one sentence.

The property list (tests/test_models.py) runs over an EM column too: a Gaussian mixture
written by hand as a user would (tests/_models.py)."""

import pickle
import sys
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

from emwidgets import EM, ConvergenceWarning, _compiles

sys.path.insert(0, str(Path(__file__).parent))
import _models  # noqa: E402

# --- Dempster, Laird and Rubin (1977): genetic linkage, 197 animals in four cells --------
LINKAGE = np.array([125.0, 18.0, 20.0, 34.0])


def linkage_init(key, y):
    return {"theta": jax.random.uniform(key, minval=0.05, maxval=0.95)}


def linkage_e_step(p, y):  # the expected split of the first cell: its theta/4 part
    return y[0] * p["theta"] / (2 + p["theta"])


def linkage_m_step(x2, y):
    return {"theta": (x2 + y[3]) / (x2 + y[1] + y[2] + y[3])}


def linkage_log_likelihood(p, y):
    t = p["theta"]
    return y[0] * jnp.log(2 + t) + (y[1] + y[2]) * jnp.log1p(-t) + y[3] * jnp.log(t)


def linkage(**kw):
    return EM(linkage_init, linkage_e_step, linkage_m_step, linkage_log_likelihood,
              **{"random_state": 0, **kw})


def test_genetic_linkage_is_the_root_of_its_quadratic_and_its_error_the_exact_one(x64):
    """The likelihood equation is 197 t^2 - 15 t - 68 = 0 (DLR 1977: t = 0.6268, and EM's
    linear rate 0.1328); the standard error is 1/sqrt of the exact observed information."""
    exact = (15 + np.sqrt(15**2 + 4 * 197 * 68)) / (2 * 197)
    plain = linkage(accelerate=None).fit(LINKAGE)
    fast = linkage().fit(LINKAGE)  # (the defaults: SQUAREM, the gap rule)
    for est in (plain, fast):
        assert est.converged_ and est.params_["theta"] == pytest.approx(exact, abs=1e-8)
        for trace in est.restarts_.trace:
            t = trace[np.isfinite(trace)]
            assert np.all(np.diff(t) >= -1e-12 * np.abs(t[1:]))
    assert fast.n_iter_ < plain.n_iter_
    # EM's rate: the error shrinks by the fraction of missing information, 0.1328 (DLR)
    x2 = LINKAGE[0] * exact / (2 + exact)
    info_complete = (x2 + 34) / exact**2 + 38 / (1 - exact) ** 2
    info = 125 / (2 + exact) ** 2 + 38 / (1 - exact) ** 2 + 34 / exact**2
    assert 1 - info / info_complete == pytest.approx(0.1328, abs=5e-4)
    se = fast.standard_errors(LINKAGE)
    assert se.errors["params"]["theta"] == pytest.approx(1 / np.sqrt(info), rel=1e-8)
    # a function of theta by the delta method: g(t) = 1 - 2 sqrt(t) has standard error
    # |g'(t)| se(t) = se(t) / sqrt(t)
    r = fast.standard_errors(LINKAGE, function=lambda p: 1 - 2 * jnp.sqrt(p["theta"]))
    assert r.estimates["function"] == pytest.approx(1 - 2 * np.sqrt(exact), rel=1e-8)
    assert r.errors["function"] == pytest.approx(1 / np.sqrt(info) / np.sqrt(exact), rel=1e-7)
    assert fast.lower_bound_ == pytest.approx(float(linkage_log_likelihood(
        {"theta": exact}, LINKAGE)), rel=1e-12)
    # the E-step's statistics at the estimate: the first cell's expected theta/4 part
    t = float(fast.params_["theta"])
    assert float(fast.expected_statistics(LINKAGE)) == pytest.approx(125 * t / (2 + t),
                                                                      rel=1e-12)
    assert float(fast.expected_statistics(LINKAGE, {"theta": 0.5})) == pytest.approx(25.0)


def test_a_second_fit_of_the_same_model_compiles_nothing_and_replays(x64):
    est = linkage(accelerate=None).fit(LINKAGE)
    with _compiles.count() as c:
        again = linkage(accelerate=None, random_state=7, tol=1e-6, max_iter=50).fit(LINKAGE)
    assert c.compiled == 0, c
    assert again.params_["theta"] == pytest.approx(est.params_["theta"], abs=1e-6)
    alone = est.replay(LINKAGE, 3)
    np.testing.assert_allclose(alone.restarts_.trace[0], est.restarts_.trace[3], rtol=1e-12)
    # live: scrubbed to iteration 2 = a fit stopped there
    live = linkage(accelerate=None, max_iter=30).start(LINKAGE)
    while not live.done:
        live.advance(4)
    frame = live.at(2).snapshot().params["params"]["theta"]
    stopped = linkage(accelerate=None, max_iter=2).start(LINKAGE).advance().snapshot()
    np.testing.assert_allclose(frame, stopped.params["params"]["theta"], rtol=1e-12)
    # and it pickles (module-level functions), scoring the same after
    back = pickle.loads(pickle.dumps(est))
    assert back.score(LINKAGE) == est.score(LINKAGE) == pytest.approx(est.lower_bound_)


# --- the ABO blood groups by gene counting (Lange, "Applied Probability"; 521 people) -----
ABO = np.array([186.0, 38.0, 13.0, 284.0])  # phenotypes A, B, AB, O


def abo_probabilities(p):
    a, b, o = p["alleles"]
    return jnp.array([a * a + 2 * a * o, b * b + 2 * b * o, 2 * a * b, o * o])


def abo_init(key, n):
    return {"alleles": jax.random.dirichlet(key, jnp.ones(3))}


def abo_e_step(p, n):
    """Expected allele counts: A people split into AA and AO, B into BB and BO."""
    a, b, o = p["alleles"]
    aa = n[0] * a * a / (a * a + 2 * a * o)
    bb = n[1] * b * b / (b * b + 2 * b * o)
    return jnp.array([2 * aa + (n[0] - aa) + n[2], 2 * bb + (n[1] - bb) + n[2],
                      (n[0] - aa) + (n[1] - bb) + 2 * n[3]])


def abo_m_step(counts, n):
    return {"alleles": counts / counts.sum()}


def abo_log_likelihood(p, n):
    return jnp.sum(n * jnp.log(abo_probabilities(p)))


def test_abo_gene_counting_is_the_direct_maximum_and_its_errors_respect_the_simplex(x64):
    est = EM(abo_init, abo_e_step, abo_m_step, abo_log_likelihood,
             kinds={"alleles": "simplex"}, random_state=0).fit(ABO)

    def negative(v):  # a direct maximisation over the simplex (scipy), independent of EM
        a, b = v
        return -float(abo_log_likelihood({"alleles": jnp.array([a, b, 1 - a - b])}, ABO))

    direct = optimize.minimize(negative, [0.3, 0.1], method="Nelder-Mead",
                               options={"xatol": 1e-12, "fatol": 1e-12, "maxiter": 10_000})
    a, b = direct.x
    np.testing.assert_allclose(est.params_["alleles"], [a, b, 1 - a - b], atol=1e-7)
    np.testing.assert_allclose(est.params_["alleles"], [0.2136, 0.0501, 0.7363], atol=1e-4)
    se = est.standard_errors(ABO).errors["params"]["alleles"]
    # the exact information of (a, b) by finite differences of the likelihood (o = 1 - a - b)
    h = 1e-5
    hess = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            e_i, e_j = np.eye(2)[i] * h, np.eye(2)[j] * h
            hess[i, j] = (negative(direct.x + e_i + e_j) - negative(direct.x + e_i - e_j)
                          - negative(direct.x - e_i + e_j) + negative(direct.x - e_i - e_j)
                          ) / (4 * h * h)
    cov = np.linalg.inv(hess)
    sd_o = np.sqrt(cov.sum())  # var(1 - a - b)
    np.testing.assert_allclose(se, [np.sqrt(cov[0, 0]), np.sqrt(cov[1, 1]), sd_o], rtol=1e-3)


# --- right-censored lifetimes: exponential, by rows (sample_weight, blocks) -------------
def censored_init(key, row):
    return {"rate": jnp.exp(jax.random.normal(key))}


def censored_e_step(p, row):
    """A censored lifetime's expectation given that it outlived its time: t + 1/rate."""
    t, failed = row[0], row[1]
    return {"time": jnp.where(failed > 0, t, t + 1 / p["rate"]), "n": jnp.ones_like(t)}


def censored_m_step(s, _):
    return {"rate": s["n"] / s["time"]}


def censored_log_likelihood(p, row):
    t, failed = row[0], row[1]
    return failed * jnp.log(p["rate"]) - p["rate"] * t


def test_right_censored_lifetimes_reach_failures_over_exposure_with_weights(x64):
    rng = np.random.default_rng(0)
    t = rng.exponential(2.0, 400)
    c = rng.uniform(0, 4, 400)
    rows = np.column_stack([np.minimum(t, c), (t <= c).astype(float)])
    kw = dict(rows=True, kinds={"rate": "log"}, random_state=0)
    est = EM(censored_init, censored_e_step, censored_m_step, censored_log_likelihood,
             **kw).fit(rows)
    closed = rows[:, 1].sum() / rows[:, 0].sum()  # the MLE: failures / total time at risk
    assert est.params_["rate"] == pytest.approx(closed, rel=1e-9)
    se = est.standard_errors(rows).errors["params"]["rate"]
    assert se == pytest.approx(closed / np.sqrt(rows[:, 1].sum()), rel=1e-8)  # rate/sqrt(d)
    # integer weights are repeated rows
    w = rng.integers(0, 3, 400)
    weighted = EM(censored_init, censored_e_step, censored_m_step, censored_log_likelihood,
                  **kw).fit(rows, sample_weight=w.astype(float))
    repeated = EM(censored_init, censored_e_step, censored_m_step, censored_log_likelihood,
                  **kw).fit(np.repeat(rows, w, axis=0))
    assert weighted.params_["rate"] == pytest.approx(repeated.params_["rate"], rel=1e-10)
    assert weighted.lower_bound_ == pytest.approx(repeated.lower_bound_, rel=1e-10)
    # streamed from a Parquet file, chunk by chunk, the weights a column of it: the same fit
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    import tempfile

    from emwidgets import Chunks

    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/lifetimes.parquet"
        pd.DataFrame({"time": rows[:, 0], "failed": rows[:, 1], "w": w.astype(float)}
                     ).to_parquet(path)
        streamed = EM(censored_init, censored_e_step, censored_m_step, censored_log_likelihood,
                      **kw).fit(Chunks(path, columns=["time", "failed"], chunk_rows=64,
                                       sample_weight="w", progress=False))
    # (passes are plain EM maps: stopped by the gap rule at 1e-10 in log-likelihood per
    # row, the rate is within ~1e-5 of the maximum; the log-likelihood within 1e-10)
    assert streamed.converged_
    assert streamed.params_["rate"] == pytest.approx(
        (w * rows[:, 1]).sum() / (w * rows[:, 0]).sum(), rel=1e-5)
    assert streamed.lower_bound_ == pytest.approx(weighted.lower_bound_, rel=1e-10)
    with pytest.raises(ValueError, match="needs rows=True"):
        linkage().fit(Chunks(rows, progress=False))


def test_a_hand_written_mixture_equals_a_numpy_em_from_the_same_start(x64):
    """tests/_models.py's mixture (the property list's EM column) against plain NumPy EM."""
    X = _models._blobs()
    est = EM(_models._mixture_init, _models.mixture_e_step, _models.mixture_m_step,
             _models.mixture_log_likelihood, rows=True, n_init=1, random_state=3,
             accelerate=None, convergence="change", tol=1e-300, max_iter=25).fit(X)
    p = jax.tree.map(np.asarray, _models._mixture_init(
        jax.random.wrap_key_data(est.restarts_.keys[0]), jnp.asarray(X)))
    w, mu, var = p["w"], p["mu"], p["var"]
    for _ in range(25):
        log = (np.log(w) - 0.5 * (np.log(2 * np.pi * var)[None]
                                  + (X[:, None] - mu[None]) ** 2 / var[None]).sum(2))
        r = np.exp(log - log.max(1, keepdims=True))
        r /= r.sum(1, keepdims=True)
        n = r.sum(0)
        w, mu = n / n.sum(), (r.T @ X) / n[:, None]
        var = (r.T @ X**2) / n[:, None] - mu**2
    np.testing.assert_allclose(est.params_["mu"], mu, rtol=1e-9)
    np.testing.assert_allclose(est.params_["var"], var, rtol=1e-9)


# --- a user's bad functions: one sentence each, the previous fit kept --------------------
def _bad(**changes):
    fns = dict(init=linkage_init, e_step=linkage_e_step, m_step=linkage_m_step,
               log_likelihood=linkage_log_likelihood)
    return EM(**{**fns, **changes}, random_state=0, n_init=2)


@pytest.mark.parametrize("changes, words", [
    ({"e_step": lambda p, y: y[7]}, "e_step(params, data) failed"),
    ({"m_step": lambda s, y: {"theta": jnp.ones(2)}}, "another structure or shape"),
    ({"m_step": lambda s, y: {"p": s}}, "another structure or shape"),
    ({"log_likelihood": lambda p, y: jnp.log(p["theta"]) * y}, "must return one number"),
    ({"log_likelihood": lambda p, y: jnp.log(p["theta"] - 2)}, "returned nan"),
    ({"m_step": lambda s, y: {"theta": np.asarray(s) / 197}}, "not written in JAX"),
    ({"init": lambda key, y: 1 / 0}, "init(key, data) failed"),
    ({"e_step": None}, "EM needs e_step as a function"),
])
def test_a_bad_user_function_is_one_sentence_and_the_previous_fit_is_kept(changes, words):
    est = _bad().fit(LINKAGE)
    before = est.params_
    est.set_params(**changes)
    with pytest.raises(ValueError) as info:
        est.fit(LINKAGE)
    message = str(info.value)
    assert words in message and "\n" not in message, message
    assert est.params_ is before


def test_nan_on_the_way_and_a_wrong_m_step_are_said(x64):
    # NaN from the second iteration on (theta falls from 0.9 past 0.64): said, with when
    def late_nan(x2, y):
        new = linkage_m_step(x2, y)["theta"]
        return {"theta": jnp.where(new < 0.64, jnp.nan, new)}

    with pytest.raises(ValueError, match="m_step returned non-finite parameters at iteration 2"):
        _bad(m_step=late_nan, init=lambda key, y: {"theta": jnp.asarray(0.9)},
             accelerate=None).fit(LINKAGE)
    # an M-step that lowers the likelihood: EM never does, and the warning says which
    def wrong(x2, y):
        return {"theta": 0.5 * linkage_m_step(x2, y)["theta"] + 0.1}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _bad(m_step=wrong, init=lambda key, y: {"theta": jnp.asarray(0.62)},
             accelerate=None).fit(LINKAGE)
    said = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert any("m_step is not the maximiser" in s for s in said), said


DEVICES = r'''
import json, sys, warnings
warnings.simplefilter("ignore")
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
sys.path.insert(0, "TESTS")
import test_general_em as t
from emwidgets import EM
assert jax.device_count() == 2
rng = np.random.default_rng(0)
n = 120_000  # over 100,000 rows: the rows are split over the devices
life, seen = rng.exponential(2.0, n), rng.uniform(0, 4, n)
rows = np.column_stack([np.minimum(life, seen), (life <= seen).astype(float)])
out = {}
cases = {
    "rows": (lambda **k: EM(t.censored_init, t.censored_e_step, t.censored_m_step,
                            t.censored_log_likelihood, rows=True, kinds={"rate": "log"},
                            n_init=4, random_state=0, **k), rows),
    "restarts": (lambda **k: EM(t.linkage_init, t.linkage_e_step, t.linkage_m_step,
                                t.linkage_log_likelihood, n_init=3, random_state=0, **k),
                 t.LINKAGE),
}
for name, (make, data) in cases.items():
    one, two = make().fit(data), make(devices="all").fit(data)
    live = make(devices="all").start(data)
    a, b = one.restarts_, two.restarts_
    finite = np.isfinite(a.trace)
    out[name] = {"n_iter": bool((a.n_iter == b.n_iter).all()),
                 "trace": float(np.abs(a.trace - b.trace)[finite].max()),
                 "layout": str(getattr(live.run.data.w, "sharding", ""))}
print(json.dumps(out))
'''


@pytest.mark.slow  # a fresh process with two forced CPU devices
def test_two_devices_equal_one_for_rows_and_for_restarts():
    import json
    import os
    import subprocess

    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "EMWIDGETS_COMPILATION_CACHE": "0"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    code = DEVICES.replace("TESTS", str(Path(__file__).parent))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for name, case in result.items():
        assert case["n_iter"] and case["trace"] < 1e-10, (name, case)
    assert "rows" in result["rows"]["layout"], result  # the rows were split over the devices


# --- a linear mixed model: random intercepts by EM (Laird & Ware 1982) ---------------------
# y_ij = x_ij' beta + b_i + e_ij, b_i ~ N(0, tau2), e_ij ~ N(0, sigma2). The hidden values are
# the intercepts b_i; a row of the data is a group (its observations padded, a mask saying
# which are real), so the driver sums the groups' statistics (rows=True).
def lmm_init(key, g):
    p = g["x"].shape[-1]
    return {"beta": jax.random.normal(key, (p,)), "sigma2": jnp.var(g["y"]) + 0.5,
            "tau2": jnp.asarray(1.0)}


def _lmm_posterior(p, g):
    n = g["mask"].sum()
    r = (g["y"] - g["x"] @ p["beta"]) * g["mask"]
    v = 1.0 / (n / p["sigma2"] + 1.0 / p["tau2"])
    return n, r, v, v * r.sum() / p["sigma2"]


def lmm_e_step(p, g):
    n, _, v, m = _lmm_posterior(p, g)
    x, mask = g["x"] * g["mask"][:, None], g["mask"]
    ym = (g["y"] - m) * mask
    return {"xx": x.T @ x, "xym": x.T @ ym, "yym": ym @ ym, "nv": n * v, "bb": m * m + v,
            "n": n, "groups": jnp.ones_like(n)}


def lmm_m_step(s, _):
    beta = jnp.linalg.solve(s["xx"], s["xym"])
    rss = s["yym"] - 2 * beta @ s["xym"] + beta @ s["xx"] @ beta + s["nv"]
    return {"beta": beta, "sigma2": rss / s["n"], "tau2": s["bb"] / s["groups"]}


def lmm_log_likelihood(p, g):
    """The group's marginal density, N(X beta, sigma2 I + tau2 1 1') (Sherman-Morrison)."""
    n, r, _, _ = _lmm_posterior(p, g)
    s2, t2 = p["sigma2"], p["tau2"]
    log_det = (n - 1) * jnp.log(s2) + jnp.log(s2 + n * t2)
    quad = r @ r / s2 - t2 * r.sum() ** 2 / (s2 * (s2 + n * t2))
    return -0.5 * (n * jnp.log(2 * jnp.pi) + log_det + quad)


def test_a_linear_mixed_model_by_em_is_the_direct_maximum_of_its_likelihood(x64):
    """Random intercepts for 40 unbalanced groups: EM's estimates equal a direct
    maximisation of the marginal likelihood (scipy, no EM in it), and the standard errors
    of the fixed effects those of its numerical second derivative."""
    from scipy import optimize

    rng = np.random.default_rng(4)
    sizes = rng.integers(2, 12, 40)
    width = sizes.max()
    x = np.zeros((40, width, 2))
    y = np.zeros((40, width))
    mask = np.zeros((40, width))
    for i, n in enumerate(sizes):
        xi = np.column_stack([np.ones(n), rng.normal(size=n)])
        x[i, :n], mask[i, :n] = xi, 1.0
        y[i, :n] = xi @ [1.0, 2.0] + rng.normal(0, 0.8) + rng.normal(0, 0.5, n)
    groups = {"x": x, "y": y, "mask": mask}
    est = EM(lmm_init, lmm_e_step, lmm_m_step, lmm_log_likelihood, rows=True,
             kinds={"beta": "free", "sigma2": "log", "tau2": "log"}, n_init=4,
             random_state=0).fit(groups)
    assert est.converged_

    def negative(v):
        p = {"beta": jnp.asarray(v[:2]), "sigma2": jnp.exp(v[2]), "tau2": jnp.exp(v[3])}
        return -float(sum(lmm_log_likelihood(p, {k: a[i] for k, a in groups.items()})
                          for i in range(40)))

    direct = optimize.minimize(negative, [0.0, 0.0, 0.0, 0.0], method="BFGS",
                               options={"gtol": 1e-8})
    got = np.r_[est.params_["beta"], np.log(est.params_["sigma2"]), np.log(est.params_["tau2"])]
    np.testing.assert_allclose(got, direct.x, atol=1e-4)
    assert est.lower_bound_ * 40 == pytest.approx(-direct.fun, abs=1e-6)
    # the fixed effects' errors against the observed information by central differences of
    # the direct negative log-likelihood (in beta, log sigma2, log tau2: the beta block of
    # the inverse is the same in any coordinates of the variances, at the maximum)
    h, k = 1e-4, len(got)
    hess = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            e_i, e_j = np.eye(k)[i] * h, np.eye(k)[j] * h
            hess[i, j] = (negative(got + e_i + e_j) - negative(got + e_i - e_j)
                          - negative(got - e_i + e_j) + negative(got - e_i - e_j)) / (4 * h * h)
    se = est.standard_errors(groups).errors["params"]["beta"]
    np.testing.assert_allclose(se, np.sqrt(np.diag(np.linalg.inv(hess)))[:2], rtol=1e-4)
