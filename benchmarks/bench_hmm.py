"""emwidgets GaussianHMM against hmmlearn, side by side in one process.

    .venv/bin/python benchmarks/bench_hmm.py      (also run by `make bench`)

hmmlearn has no restarts: a loop of 16 fits (each its own k-means start)
against emwidgets ``n_init=16``; both full covariance, at most 100 iterations,
hmmlearn's default tolerance, 0.01 on the total log-likelihood (ours, per
sample, is that divided by N).
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from emwidgets import datasets  # noqa: E402
from emwidgets.estimators.gaussian_hmm import GaussianHMM

N_INIT, N_ITER, TOL_TOTAL = 16, 100, 1e-2


def synthetic(n_seq=50, length=1000, n_states=4, n_features=3, seed=0):
    from hmmlearn.hmm import GaussianHMM as H

    rng = np.random.default_rng(seed)
    ref = H(n_states, covariance_type="full", random_state=seed)
    ref.startprob_ = np.full(n_states, 1 / n_states)
    t = rng.dirichlet(np.full(n_states, 1.0), size=n_states) + 4 * np.eye(n_states)
    ref.transmat_ = t / t.sum(1, keepdims=True)
    ref.means_ = rng.normal(scale=3, size=(n_states, n_features))
    a = rng.normal(size=(n_states, n_features, n_features)) / np.sqrt(n_features)
    ref.covars_ = a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(n_features)
    X = np.concatenate([ref.sample(length, random_state=seed + i)[0] for i in range(n_seq)])
    return X, [length] * n_seq, n_states


def run_case(name, X, lengths, k):
    from hmmlearn.hmm import GaussianHMM as H

    n = len(X)
    ours = lambda seed: GaussianHMM(  # noqa: E731
        k, covariance_type="full", n_iter=N_ITER, tol=TOL_TOTAL / n,
        n_init=N_INIT, random_state=seed, min_covar=1e-3,
        accelerate=None, convergence="change",  # hmmlearn's rule, plain EM: the same work
    ).fit(X, lengths)
    t = time.perf_counter()
    ours(0)
    first = time.perf_counter() - t
    warm = []
    for seed in (1, 2, 3):
        t = time.perf_counter()
        est = ours(seed)
        warm.append(time.perf_counter() - t)
    t = time.perf_counter()
    best = -np.inf
    for seed in range(N_INIT):
        ref = H(
            k, covariance_type="full", n_iter=N_ITER, tol=TOL_TOTAL, random_state=seed
        ).fit(X, lengths)
        best = max(best, ref.score(X, lengths))
    t_ref = time.perf_counter() - t
    w = float(np.median(warm))
    print(f"| {name} | {t_ref:.2f} s | {first:.2f} s | {w:.3f} s | **{t_ref / w:.1f}x** "
          f"| {best / n:.4f} / {est.score(X, lengths) / n:.4f} |", flush=True)


def main():
    warnings.simplefilter("ignore")
    print("| case | hmmlearn, 16 fits | emwidgets n_init=16 first | warm | speed-up warm "
          "| best log-lik per sample hmmlearn / ours |")
    print("|---|---|---|---|---|---|")
    X, lengths, k = synthetic()
    run_case("50 sequences x 1000 steps, 4 states, 3 features", X, lengths, k)
    geyser = datasets.load_geyser().to_numpy(float)
    run_case("geyser, 299 steps, 2 states", geyser, None, 2)


if __name__ == "__main__":
    main()
