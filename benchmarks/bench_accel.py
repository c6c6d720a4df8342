"""Plain EM against SQUAREM (accelerate="squarem"), side by side in one process.

Same starts (same random_state), 16 restarts vmapped, a tight tolerance (1e-10
on the mean log-likelihood, float64), on EM's slow cases and two fast ones:
EM-map evaluations per restart (median, and the batch's slowest restart, which
sets the batch's time), warm wall time (a second fit with the same settings;
the first fit's compile time is printed apart), the best objective, and the
extrapolations accepted / rejected. The issue's figures from R's SQUAREM
package (and plain NumPy ports) are printed beside them.

    python benchmarks/bench_accel.py
"""

from __future__ import annotations

import time
import warnings

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from emwidgets import GaussianHMM, GaussianMixture, PoissonMixture, datasets  # noqa: E402

TOL = 1e-10
R_FIGURES = {
    "deaths (Poisson, 2 components)": "R SQUAREM: median 2,870 -> 78 evaluations (tol 1e-8 "
                                      "on the parameters), 13x less time",
    "1-D Gaussians 1.5 sd apart, n=1000": "plain NumPy: 13,055 -> 280",
    "1-D Gaussians 3 sd apart, n=1000": "plain NumPy: 278 -> 38",
}


def cases():
    d = datasets.load_deaths()
    deaths = d[["deaths_per_day"]].to_numpy(float), {"sample_weight": d["n_days"].to_numpy(float)}
    rng = np.random.default_rng(0)
    near = np.r_[rng.normal(0, 1, 500), rng.normal(1.5, 1, 500)][:, None]
    far = np.r_[rng.normal(0, 1, 500), rng.normal(3.0, 1, 500)][:, None]
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 2.0, (3, 5))
    X = centres[rng.integers(0, 3, 10_000)] + rng.normal(size=(10_000, 5))
    X[rng.random(X.shape) < 0.2] = np.nan
    X = X[~np.isnan(X).all(axis=1)]  # (a row with nothing observed says nothing)
    geyser = datasets.load_geyser().to_numpy()
    common = dict(n_init=16, tol=TOL, random_state=0)
    return [
        ("deaths (Poisson, 2 components)",
         lambda a: PoissonMixture(2, max_iter=100_000, init_params="random", accelerate=a,
                                  **common), deaths),
        ("1-D Gaussians 1.5 sd apart, n=1000",
         lambda a: GaussianMixture(2, max_iter=100_000, init_params="random", accelerate=a,
                                   **common), (near, {})),
        ("1-D Gaussians 3 sd apart, n=1000",
         lambda a: GaussianMixture(2, max_iter=100_000, init_params="random", accelerate=a,
                                   **common), (far, {})),
        ("10k x 5, K=3, 20% missing",
         lambda a: GaussianMixture(3, max_iter=100_000, missing="em", accelerate=a, **common),
         (X, {})),
        ("GaussianHMM, geyser, 2 states",
         lambda a: GaussianHMM(2, covariance_type="full", n_iter=100_000, init_params="random",
                               accelerate=a, **common), (geyser, {})),
    ]


def measure(make, data):
    X, kw = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        make().fit(X, **kw)
        first = time.perf_counter() - t
        t = time.perf_counter()
        est = make().fit(X, **kw)
        warm = time.perf_counter() - t
    r = est.restarts_
    return {"median": float(np.median(r.n_evals)), "max": int(r.n_evals.max()), "warm": warm,
            "first": first, "best": float(r.objective.max()),
            "accepted": None if r.accepted is None else int(r.accepted.sum()),
            "rejected": None if r.rejected is None else int(r.rejected.sum())}


def main():
    print(f"Plain EM vs SQUAREM: 16 restarts vmapped, same starts, tol {TOL:g}, float64 "
          f"(jax {jax.__version__}, {jax.devices()[0].platform})")
    print(f"{'case':38s} {'EM maps median / slowest':>26s} {'warm time':>18s} "
          f"{'ratio maps / time':>18s}  best objective plain / squarem")
    for name, make, data in cases():
        plain = measure(lambda make=make: make(None), data)
        fast = measure(lambda make=make: make("squarem"), data)
        print(f"{name:38s} {plain['median']:7.0f} / {plain['max']:5d} -> "
              f"{fast['median']:5.0f} / {fast['max']:4d} "
              f"{plain['warm']:7.3f} -> {fast['warm']:6.3f} s "
              f"{plain['max'] / fast['max']:6.1f}x / {plain['warm'] / fast['warm']:5.1f}x  "
              f"{plain['best']:.10f} / {fast['best']:.10f}")
        print(f"{'':38s} first fits (compile) {plain['first']:.2f} s / {fast['first']:.2f} s; "
              f"extrapolations accepted {fast['accepted']}, rejected {fast['rejected']}"
              + (f"; {R_FIGURES[name]}" if name in R_FIGURES else ""))


if __name__ == "__main__":
    main()
