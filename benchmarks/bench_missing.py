"""Missing-data EM and MAP: speed and accuracy, side by side in one process.

    .venv/bin/python benchmarks/bench_missing.py      (also run by `make bench`)

No widely used Python library fits Gaussian mixtures to data with missing
values, so the peers are (1) the textbook EM for one Gaussian with missing
values written plainly in NumPy (``tests/test_missing.py``; the same
computation as ours with K=1), and (2) what an analyst does without the
option: scikit-learn on the complete rows (listwise deletion), and
column-mean imputation.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from test_missing import _aligned_error, classic_mvn_em, remove_at_random  # noqa: E402

from emwidgets import GaussianMixture, datasets  # noqa: E402


def timed(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def known(n, d, k, seed):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(k, d))
    a = rng.normal(size=(k, d, d)) / np.sqrt(d)
    covs = a @ np.swapaxes(a, 1, 2) + 0.3 * np.eye(d)
    weights = rng.dirichlet(np.full(k, 5.0))
    labels = rng.choice(k, size=n, p=weights)
    X = np.stack([rng.multivariate_normal(means[j], covs[j]) for j in labels])
    return X, weights, means, covs


def one_gaussian():
    X, *_ = known(2000, 4, 1, seed=1)
    Xm = remove_at_random(X, 0.2, seed=2)
    t0 = time.perf_counter()
    gm = GaussianMixture(1, missing="em", tol=1e-10, max_iter=1000, reg_covar=0.0).fit(Xm)
    first = time.perf_counter() - t0
    ours, gm = timed(lambda: GaussianMixture(1, missing="em", tol=1e-10, max_iter=1000,
                                             reg_covar=0.0).fit(Xm))
    ref, (mu, sigma) = timed(lambda: classic_mvn_em(Xm, n_iter=gm.n_iter_, tol=0.0), repeat=1)
    gap = max(np.abs(gm.means_[0] - mu).max(), np.abs(gm.covariances_[0] - sigma).max())
    print(f"one Gaussian, 2000 x 4, 20% missing, {gm.n_iter_} iterations: NumPy textbook EM "
          f"{ref:.2f} s, ours {ours:.4f} s (first call {first:.1f} s): {ref / ours:.0f}x; "
          f"max parameter difference {gap:.1e} (float32)")


def mixture(n=10000, d=5, k=3, n_init=16):
    from sklearn.mixture import GaussianMixture as Sk

    X, w, m, c = known(n, d, k, seed=3)
    Xm = remove_at_random(X, 0.2, seed=4)
    rows = ~np.isnan(Xm).any(axis=1)
    n_patterns = len(np.unique(~np.isnan(Xm), axis=0))
    kw = dict(n_init=n_init, random_state=0, tol=1e-3, max_iter=200)
    t0 = time.perf_counter()
    GaussianMixture(k, missing="em", **kw).fit(Xm)
    first = time.perf_counter() - t0
    t_em, gm = timed(lambda: GaussianMixture(k, missing="em", **kw).fit(Xm))
    GaussianMixture(k, **kw).fit(X)
    t_full, full = timed(lambda: GaussianMixture(k, **kw).fit(X))
    t_sk, sk = timed(lambda: Sk(k, **kw).fit(Xm[rows]), repeat=1)
    its_em = gm.restarts_.n_iter.sum()
    its_full = full.restarts_.n_iter.sum()
    holes = np.isnan(Xm)
    rmse_em = np.sqrt(np.mean((gm.impute(Xm) - X)[holes] ** 2))
    rmse_mean = np.sqrt(np.mean((np.where(holes, np.nanmean(Xm, 0), Xm) - X)[holes] ** 2))
    e_em = _aligned_error(gm.weights_, gm.means_, gm.covariances_, w, m, c)
    e_sk = _aligned_error(sk.weights_, sk.means_, sk.covariances_, w, m, c)
    print(f"mixture {n} x {d}, K={k}, {n_init} restarts, 20% missing ({n_patterns} patterns, "
          f"{rows.mean():.0%} complete rows):")
    print(f"  ours missing='em' {t_em:.2f} s ({1e3 * t_em / its_em:.2f} ms per restart-iteration, "
          f"first call {first:.1f} s); ours on the data before removal {t_full:.2f} s "
          f"({1e3 * t_full / its_full:.2f} ms per restart-iteration): "
          f"{t_em / its_em / (t_full / its_full):.1f}x "
          "the cost per iteration")
    print(f"  scikit-learn on the complete rows {t_sk:.2f} s")
    print(f"  parameter error vs the truth: EM {e_em:.3f}, complete rows {e_sk:.3f}; "
          f"imputation RMSE: EM {rmse_em:.3f}, column means {rmse_mean:.3f}")


def air_quality():
    X = datasets.load_airquality()[["Ozone", "Solar.R", "Wind", "Temp"]].to_numpy()
    t0 = time.perf_counter()
    GaussianMixture(2, missing="em", n_init=16, random_state=0).fit(X)
    first = time.perf_counter() - t0
    t, gm = timed(lambda: GaussianMixture(2, missing="em", n_init=16, random_state=0).fit(X))
    t_map, _ = timed(lambda: GaussianMixture(2, missing="em", n_init=16, random_state=0,
                                             prior="default").fit(X))
    print(f"airquality 153 x 4 (42 incomplete rows), K=2, 16 restarts: {t * 1e3:.1f} ms "
          f"(first call {first:.1f} s); with the default prior {t_map * 1e3:.1f} ms")


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    one_gaussian()
    mixture()
    air_quality()
