"""Warm fit times of one checkout, for comparing two versions in fresh processes.

    python benchmarks/bench_warm.py [CHECKOUT]     # CHECKOUT defaults to this one

Run it alternately for two checkouts (e.g. a `git worktree` of the previous commit): each call
prints the median wall time of 11 warm fits (after one compiling fit) per case, and for the HMM
the time per batch iteration (the same seeds run the same iterations in both versions).
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, root)
sys.path.insert(0, os.path.join(root, "benchmarks"))
warnings.simplefilter("ignore")

from _data import make_mixture  # noqa: E402

import emwidgets as E  # noqa: E402


def main():
    X, _ = make_mixture(10_000, 2, 3, seed=0)
    Xb, _ = make_mixture(100_000, 8, 10, seed=0)
    geyser = E.datasets.load_geyser().to_numpy()
    cases = {
        "GMM 10k x 2, K=3, 16 restarts": lambda s: E.GaussianMixture(
            3, n_init=16, random_state=s).fit(X),
        "GMM 100k x 8, K=10, 4 restarts, 30 iterations": lambda s: E.GaussianMixture(
            10, n_init=4, max_iter=30, tol=1e-12, random_state=s).fit(Xb),
        "KMeans 100k x 8, K=10, 4 restarts": lambda s: E.KMeans(
            10, n_init=4, random_state=s).fit(Xb),
        "GaussianHMM geyser, 3 states, 16 restarts": lambda s: E.GaussianHMM(
            3, n_init=16, random_state=s).fit(geyser),
    }
    for name, fit in cases.items():
        fit(0)
        times, iterations = [], 0
        for seed in range(1, 12):
            t = time.perf_counter()
            est = fit(seed)
            times.append(time.perf_counter() - t)
            iterations += int(est.restarts_.n_iter.max())
        extra = (f", {sum(times) / iterations * 1e3:.2f} ms per batch iteration"
                 if "HMM" in name else "")
        print(f"{name}: {np.median(times) * 1e3:.1f} ms median{extra}", flush=True)


if __name__ == "__main__":
    main()
