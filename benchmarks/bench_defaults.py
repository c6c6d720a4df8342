"""Right answers by default (issue 28): the defaults against plain EM and scikit-learn.

For each case of the issue's table, side by side in one process, in float64: the defaults
(SQUAREM cycles stopped by the gap rule at tol=1e-10), plain EM stopped by the same rule
(accelerate=None), scikit-learn's rule as the estimators had it before (accelerate=None,
convergence="change", the old tol and max_iter), and for the Gaussian cases scikit-learn's
GaussianMixture itself at its defaults and run to its limit (tol=1e-10). Each: the fit (the
first weight of the components sorted by location, the locations), iterations, and the warm
time (the best of three fits after a first one that compiles; scikit-learn the same); then the
defaults in float32. The reference is the first row's source.

    python benchmarks/bench_defaults.py
    python benchmarks/bench_defaults.py --spurious   # the spurious rule on wine, iris, ...
"""

from __future__ import annotations

import time
import warnings
from functools import partial

import numpy as np

from emwidgets import GaussianMixture, PoissonMixture, datasets


def cases():
    d = datasets.load_deaths()
    deaths = np.repeat(d["deaths_per_day"].to_numpy(float), d["n_days"].to_numpy())[:, None]
    rng = np.random.default_rng(0)
    near = np.r_[rng.normal(0.5, 1, 860), rng.normal(2.0, 1, 140)][:, None]
    faithful = datasets.load_faithful().to_numpy(float)
    old_gmm = dict(tol=1e-3, max_iter=100)
    return [
        ("deaths, PoissonMixture(2)", PoissonMixture, dict(n_components=2), deaths,
         dict(tol=1e-6, max_iter=1000), "Hasselblad 1969: 0.3599, 1.2561 / 2.6634"),
        ("1.5 sd apart, GaussianMixture(2)", GaussianMixture, dict(n_components=2), near,
         old_gmm, "float64 EM to 1e-14: 0.0519, 0.6343 / 0.6635"),
        ("Old Faithful, GaussianMixture(2)", GaussianMixture, dict(n_components=2), faithful,
         old_gmm, "-4.15538"),
        ("Old Faithful, 16 random starts", GaussianMixture,
         dict(n_components=2, n_init=16, init_params="random"), faithful, old_gmm, "-4.15538"),
    ]


def describe(est, X):
    loc = (est.rates_ if hasattr(est, "rates_") else est.means_)[:, 0]
    order = np.argsort(loc)
    return (f"{est.weights_[order][0]:.4f}, {' / '.join(f'{v:.4f}' for v in loc[order])}, "
            f"{est.score(X):.6f}")


def timed(make, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = time.perf_counter()
        est = make().fit(X)
        first = time.perf_counter() - first
        warm = []
        for _ in range(3):
            t = time.perf_counter()
            est = make().fit(X)
            warm.append(time.perf_counter() - t)
    return est, first, min(warm)


def main():
    from sklearn.mixture import GaussianMixture as SkGM

    print(__doc__.split("\n")[0])
    header = f"{'':34s} {'fit (weight, locations, log-lik)':44s} {'iter':>6s} {'warm':>9s}"
    for name, cls, kw, X, old, ref in cases():
        print(f"\n{name}   reference: {ref}\n{header}")
        rows = [
            ("defaults", partial(cls, **kw, random_state=0)),
            ("plain EM, same rule", partial(cls, **kw, random_state=0, accelerate=None,
                                            max_iter=100_000)),
            ("scikit-learn's rule (before)", partial(cls, **kw, random_state=0, accelerate=None,
                                                     convergence="change", **old)),
            ("defaults, float32", partial(cls, **kw, random_state=0, dtype="float32")),
        ]
        if cls is GaussianMixture:
            rows += [("scikit-learn, its defaults", partial(SkGM, **kw, random_state=0)),
                     ("scikit-learn, tol=1e-10", partial(SkGM, **kw, random_state=0, tol=1e-10,
                                                         max_iter=100_000))]
        base = None
        for label, make in rows:
            est, first, warm = timed(make, X)
            base = warm if base is None else base
            print(f"{label:34s} {describe(est, X):44s} {est.n_iter_:6d} {warm * 1e3:7.1f}ms"
                  f"  ({warm / base:5.1f}x the defaults' time; first fit {first:.2f} s)")


def spurious():
    """Restarts flagged spurious (of 16), and the best fit against scikit-learn's."""
    from sklearn.datasets import load_digits, load_iris, load_wine
    from sklearn.metrics import adjusted_rand_score
    from sklearn.mixture import GaussianMixture as SkGM

    wine, iris, digits = load_wine(), load_iris(), load_digits()
    rng = np.random.default_rng(0)
    collapse = np.r_[rng.normal(size=(200, 2)), np.repeat([[5.0, 5.0]], 3, 0)]
    standardised = (wine.data - wine.data.mean(0)) / wine.data.std(0)
    cases = [("wine, raw, K=3", wine.data, wine.target, 3, "full"),
             ("wine, standardised, K=3", standardised, wine.target, 3, "full"),
             ("iris, K=3", iris.data, iris.target, 3, "full"),
             ("Old Faithful, K=2", datasets.load_faithful().to_numpy(float), None, 2, "full"),
             ("digits, diag, K=10", digits.data, digits.target, 10, "diag"),
             ("200 points and 3 duplicates, K=3", collapse, None, 3, "full")]
    for name, X, y, k, cov in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = GaussianMixture(k, covariance_type=cov, n_init=16, random_state=0).fit(X)
            sk = SkGM(k, covariance_type=cov, n_init=16, random_state=0).fit(X)
        r = ours.restarts_
        ari = ["" if y is None else f", ARI {adjusted_rand_score(y, m.predict(X)):.2f}"
               for m in (ours, sk)]
        print(f"{name:34s} flagged {int(r.spurious.sum()):2d}/16  ours {ours.lower_bound_:.4f}"
              f"{ari[0]}  scikit-learn {sk.lower_bound_:.4f}{ari[1]}")
        if r.spurious.any():
            print(f"{'':34s} {r.messages[int(np.argmax(r.spurious))]}")


if __name__ == "__main__":
    import sys

    spurious() if "--spurious" in sys.argv else main()
