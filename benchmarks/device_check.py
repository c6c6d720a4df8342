"""Every estimator once on the default JAX device (a GPU where there is one).

Prints, per case, the best objective of plain EM and of SQUAREM from the same
starts, the first fit's time (compilation included) and a warm fit's, so that the
output of a GPU machine can be set beside this machine's:

    python benchmarks/device_check.py            # here (CPU)
    python3 benchmarks/device_check.py           # on the GPU machine

No widget, browser or reference package is needed: only NumPy, pandas, SciPy, JAX.
"""

from __future__ import annotations

import time
import warnings

import jax
import numpy as np

from emwidgets import (
    CategoricalHMM,
    GaussianHMM,
    GaussianMixture,
    KMeans,
    LatentClassModel,
    MultinomialMixture,
    PoissonHMM,
    PoissonMixture,
    StudentMixture,
    datasets,
)


def data():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (10, 8))
    big = centres[rng.integers(0, 10, 100_000)] + rng.normal(size=(100_000, 8))
    faithful = datasets.load_faithful().to_numpy()
    holes = faithful.copy()
    holes[rng.random(len(holes)) < 0.2, 1] = np.nan
    d = datasets.load_deaths()
    counts = rng.poisson(np.array([[1.0, 4.0], [5.0, 1.0], [8.0, 8.0]])[rng.choice(3, 2000)])
    words = rng.multinomial(40, rng.dirichlet(np.ones(12), 3)[rng.choice(3, 500)])
    return {"big": big, "faithful": faithful, "holes": holes,
            "deaths": (d[["deaths_per_day"]].to_numpy(float), d["n_days"].to_numpy(float)),
            "geyser": datasets.load_geyser().to_numpy(), "carcinoma": datasets.load_carcinoma(),
            "counts": counts.astype(float), "words": words.astype(float)}


def cases(d):
    yield "GMM full 100k x 8 K=10", lambda a: GaussianMixture(10, n_init=16, accelerate=a,
                                                              random_state=0), d["big"]
    for cov in ("full", "tied", "diag", "spherical"):
        yield f"GMM {cov} faithful", lambda a, c=cov: GaussianMixture(
            2, covariance_type=c, n_init=16, accelerate=a, random_state=0), d["faithful"]
    yield "GMM missing='em'", lambda a: GaussianMixture(2, n_init=16, missing="em", accelerate=a,
                                                        random_state=0), d["holes"]
    yield "GMM prior", lambda a: GaussianMixture(2, n_init=16, prior="default", accelerate=a,
                                                 random_state=0), d["faithful"]
    yield "GaussianHMM geyser", lambda a: GaussianHMM(2, n_init=16, accelerate=a,
                                                      random_state=0), d["geyser"]
    yield "KMeans faithful", lambda a: None if a else KMeans(2, n_init=16,
                                                             random_state=0), d["faithful"]
    yield "LatentClassModel carcinoma", lambda a: LatentClassModel(
        3, n_init=16, accelerate=a, random_state=0), d["carcinoma"]
    yield "PoissonMixture deaths", lambda a: PoissonMixture(
        2, n_init=16, tol=1e-8, max_iter=10_000, accelerate=a, random_state=0), d["deaths"]
    yield "MultinomialMixture", lambda a: MultinomialMixture(3, n_init=16, accelerate=a,
                                                             random_state=0), d["words"]
    yield "StudentMixture faithful", lambda a: StudentMixture(2, n_init=16, accelerate=a,
                                                              random_state=0), d["faithful"]
    yield "PoissonHMM", lambda a: PoissonHMM(3, n_init=16, accelerate=a,
                                             random_state=0), d["counts"]
    yield "CategoricalHMM carcinoma", lambda a: CategoricalHMM(3, n_init=16, accelerate=a,
                                                               random_state=0), d["carcinoma"]


def fit(est, X):
    if isinstance(X, tuple):
        return est.fit(X[0], sample_weight=X[1])
    return est.fit(X)


def main():
    print(f"jax {jax.__version__}, devices {jax.devices()}")
    d = data()
    print(f"{'case':30s} {'plain best':>14s} {'first':>7s} {'warm':>7s}   "
          f"{'squarem best':>14s} {'first':>7s} {'warm':>7s}  EM maps plain/squarem (max)")
    for name, make, X in cases(d):
        row = []
        for acc in (None, "squarem"):
            if make(acc) is None:
                row.append(None)
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                fit(make(acc), X)
                first = time.perf_counter() - t
                t = time.perf_counter()
                est = fit(make(acc), X)
                warm = time.perf_counter() - t
            r = est.restarts_
            row.append((float(np.nanmax(r.objective)), first, warm, int(r.n_evals.max())))
        plain, fast = row
        text = f"{name:30s} {plain[0]:14.6f} {plain[1]:6.2f}s {plain[2]:6.3f}s   "
        if fast is None:
            text += f"{'-':>14s}"
        else:
            text += (f"{fast[0]:14.6f} {fast[1]:6.2f}s {fast[2]:6.3f}s  "
                     f"{plain[3]}/{fast[3]}")
        print(text, flush=True)


if __name__ == "__main__":
    main()
