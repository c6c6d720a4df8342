"""EM for any model (emwidgets.EM) against the same EM written as a NumPy loop, and
FactorAnalysis against scikit-learn's, side by side in one process (float64).

    .venv/bin/python benchmarks/bench_general.py

1. A diagonal Gaussian mixture written by hand as the four functions (tests/_models.py),
   600 rows (a textbook's size) and 50,000 rows, 16 restarts x 100 plain EM iterations,
   against the same EM in NumPy (vectorised over rows, a loop over restarts). At 600 rows
   NumPy pays its per-call overhead 16 x 100 times and the one compiled program wins by
   far; at 50,000 both are bound by the same arithmetic over (rows, 3, 2) arrays and the
   ratio falls to ~1.5x on 2 CPU cores (the built-in GaussianMixture, whose E-step is one
   matrix product, is ~3x faster than the hand-written one there).
2. Right-censored exponential lifetimes (rows=True, 100,000 rows, 16 restarts, plain EM
   run for 200 iterations, tol 0: the same work on both sides): emwidgets.EM warm (a second
   fit, another seed) and first (compilation included; a fresh process pays it once per
   model) against a NumPy loop over the 16 restarts, vectorised over the rows.
3. FactorAnalysis, wine (178 x 13) and 20,000 synthetic rows x 20 with 4 factors:
   emwidgets (4 restarts, SQUAREM, the gap rule at 1e-10) against scikit-learn's
   FactorAnalysis (tol=1e-8): time and the log-likelihood per row each reached.

The machine is shared and noisy: compare the ratios, not absolute times.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
jax.config.update("jax_enable_x64", True)

from emwidgets import EM, FactorAnalysis  # noqa: E402

RESTARTS, ITERATIONS = 16, 200


def c_init(key, row):
    return {"rate": jnp.exp(jax.random.normal(key))}


def c_e_step(p, row):
    t, failed = row[0], row[1]
    return {"time": jnp.where(failed > 0, t, t + 1 / p["rate"]), "n": jnp.ones_like(t)}


def c_m_step(s, _):
    return {"rate": s["n"] / s["time"]}


def c_log_likelihood(p, row):
    t, failed = row[0], row[1]
    return failed * jnp.log(p["rate"]) - p["rate"] * t


def first_and_warm(fit):
    """Seconds of ``fit(0)`` (compilation included) and of ``fit(1)`` (warm), and the
    second fit."""
    t = time.perf_counter()
    fit(0)
    first = time.perf_counter() - t
    t = time.perf_counter()
    est = fit(1)
    return first, time.perf_counter() - t, est


def numpy_em(rows, rates):
    """The same EM, a Python loop over restarts, NumPy over rows; log-likelihood traced."""
    t, failed = rows[:, 0], rows[:, 1]
    out = []
    for rate in rates:
        trace = []
        for _ in range(ITERATIONS):
            trace.append(np.mean(failed * np.log(rate) - rate * t))
            expected = np.where(failed > 0, t, t + 1 / rate)
            rate = len(t) / expected.sum()
        out.append((rate, trace))
    return out


def bench_censored():
    rng = np.random.default_rng(0)
    n = 100_000
    life, seen = rng.exponential(2.0, n), rng.uniform(0, 1.0, n)
    rows = np.column_stack([np.minimum(life, seen), (life <= seen).astype(float)])
    kw = dict(rows=True, kinds={"rate": "log"}, n_init=RESTARTS, accelerate=None,
              convergence="change", tol=0.0, max_iter=ITERATIONS)

    def fit(seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return EM(c_init, c_e_step, c_m_step, c_log_likelihood, random_state=seed,
                      **kw).fit(rows)

    first, warm, est = first_and_warm(fit)
    starts = np.exp([float(jax.random.normal(jax.random.wrap_key_data(k)))
                     for k in est.restarts_.keys])
    t = time.perf_counter()
    ref = numpy_em(rows, starts)
    loop = time.perf_counter() - t
    rate_ref = max(ref, key=lambda r: r[1][-1])[0]
    print(f"censored lifetimes, {n:,} rows, {RESTARTS} restarts x {ITERATIONS} EM iterations "
          "(float64)")
    print(f"  emwidgets.EM  warm {warm:6.3f} s   first {first:6.3f} s (compilation included)")
    print(f"  NumPy loop         {loop:6.3f} s   ->  warm {loop / warm:5.1f}x faster")
    print(f"  same answer: rate {float(est.params_['rate']):.10f} vs {rate_ref:.10f}")


def numpy_mixture(X, starts, iterations):
    """tests/_models.py's diagonal mixture of 3 as plain NumPy EM, a loop over restarts."""
    out = []
    for w, mu, var in starts:
        for _ in range(iterations):
            log = (np.log(w) - 0.5 * (np.log(2 * np.pi * var)[None]
                                      + (X[:, None] - mu[None]) ** 2 / var[None]).sum(2))
            top = log.max(1, keepdims=True)
            r = np.exp(log - top)
            total = r.sum(1, keepdims=True)
            r /= total
            n = r.sum(0)
            w, mu = n / n.sum(), (r.T @ X) / n[:, None]
            var = (r.T @ X**2) / n[:, None] - mu**2
        out.append((w, mu, var))
    return out


def bench_mixture(n):
    """A Gaussian mixture written by hand as EM's four functions (rows=True) against the
    same EM in NumPy, vectorised over rows, a Python loop over the 16 restarts."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    import _models

    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(c, 0.8, (n // 3, 2)) for c in ([0, 0], [3, 1], [0, 4])])
    iters = 100
    kw = dict(rows=True, kinds=_models.MIXTURE_KINDS, n_init=RESTARTS, accelerate=None,
              convergence="change", tol=0.0, max_iter=iters)

    def fit(seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return EM(_models._mixture_init, _models.mixture_e_step, _models.mixture_m_step,
                      _models.mixture_log_likelihood, random_state=seed, **kw).fit(X)

    first, warm, est = first_and_warm(fit)
    starts = []
    for k in est.restarts_.keys:
        p = _models._mixture_init(jax.random.wrap_key_data(k), jnp.asarray(X))
        starts.append(tuple(np.asarray(p[f]) for f in ("w", "mu", "var")))
    t = time.perf_counter()
    ref = numpy_mixture(X, starts, iters)
    loop = time.perf_counter() - t
    best = est.restarts_.best
    same = np.abs(np.asarray(est.restarts_.params["params"]["mu"][best]) - ref[best][1]).max()
    print(f"a hand-written diagonal mixture of 3, {len(X):,} rows x 2, {RESTARTS} restarts x "
          f"{iters} EM iterations (float64)")
    print(f"  emwidgets.EM  warm {warm:6.3f} s   first {first:6.3f} s (compilation included)")
    print(f"  NumPy loop         {loop:6.3f} s   ->  warm {loop / warm:5.1f}x faster")
    print(f"  same answer: largest difference of the best restart's means {same:.1e}")


def bench_factor_analysis():
    from sklearn.datasets import load_wine
    from sklearn.decomposition import FactorAnalysis as SkFA

    rng = np.random.default_rng(1)
    load = rng.normal(size=(4, 20))
    synthetic = rng.normal(size=(20_000, 4)) @ load + rng.normal(size=(20_000, 20))
    for name, X, k in (("wine 178 x 13", load_wine().data, 3),
                       ("synthetic 20,000 x 20", synthetic, 4)):
        t = time.perf_counter()
        FactorAnalysis(k, random_state=0).fit(X)
        first = time.perf_counter() - t
        t = time.perf_counter()
        ours = FactorAnalysis(k, random_state=1).fit(X)
        warm = time.perf_counter() - t
        t = time.perf_counter()
        ref = SkFA(k, tol=1e-8, max_iter=100_000).fit(X)
        sk = time.perf_counter() - t
        print(f"FactorAnalysis, {name}, {k} factors")
        print(f"  emwidgets  warm {warm:6.3f} s  first {first:6.3f} s  log-lik/row "
              f"{ours.score(X):.6f}  ({ours.n_iter_} SQUAREM cycles, 4 restarts)")
        print(f"  sklearn         {sk:6.3f} s                  log-lik/row {ref.score(X):.6f}"
              f"  ({ref.n_iter_} iterations)  ->  warm {sk / warm:5.1f}x")


if __name__ == "__main__":
    bench_mixture(600)
    bench_mixture(50_000)
    bench_censored()
    bench_factor_analysis()
