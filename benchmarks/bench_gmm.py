"""emwidgets against scikit-learn, side by side in one process.

    make bench                      # every case
    .venv/bin/python benchmarks/bench_gmm.py --quick      # small cases only

For each case both fit a full-covariance mixture with 16 restarts (tol=1e-3,
max_iter=100, k-means initialisation): wall time (emwidgets' first call
includes compilation; 'warm' is a second call with another seed), time per
restart-iteration, the best mean log-likelihood each reached, and peak memory
(scikit-learn: tracemalloc peak of the fit; emwidgets: XLA's temporary buffers of
the compiled EM program plus the padded data). Then the vmapped batch against a
Python loop over the same 16 restarts, one compiled fit each.

Every case runs in float64 (emwidgets' default on a CPU: the same arithmetic as
scikit-learn, so the speed-up compares like with like), then in float32
(``dtype="float32"``, the default on an accelerator), reported in its own table.

The machine is shared and noisy: compare the ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
import warnings

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _data import make_mixture  # noqa: E402

from emwidgets import GaussianMixture  # noqa: E402
from emwidgets.estimators.base import _keys

N_INIT, TOL, MAX_ITER = 16, 1e-3, 100


def load_faithful():
    try:
        from emwidgets import datasets

        return datasets.load_faithful().to_numpy(dtype=float)
    except Exception:  # the datasets module lands with the notebooks issue
        import pandas as pd

        here = os.path.dirname(__file__)
        return pd.read_csv(os.path.join(here, "..", "..", "shared", "data", "faithful.csv"),
                           index_col=0).to_numpy(dtype=float)


#: scikit-learn's stopping rule and plain EM, as scikit-learn runs it: the same iterations on
#: both sides (the estimators' defaults since issue 28 are SQUAREM and the gap rule at 1e-10;
#: benchmarks/bench_defaults.py times those).
SKLEARN_RULE = {"accelerate": None, "convergence": "change"}


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def fit_ours(X, k, seed, keys=None, n_init=N_INIT, dtype="float64"):
    gm = GaussianMixture(k, covariance_type="full", n_init=n_init, tol=TOL, max_iter=MAX_ITER,
                         random_state=seed, dtype=dtype, **SKLEARN_RULE)
    live = gm.start(X, keys=keys)
    live.finish()
    return gm, live


def xla_bytes(live) -> int:
    run = live.run
    with jax.enable_x64(live.x64):  # (lowered in the fit's own precision)
        compiled = run._advance.lower(run.state, run.data, run.hyper, run.tol,
                                      jnp.int32(1)).compile()
    mem = compiled.memory_analysis()
    return int(mem.temp_size_in_bytes + run.data.x.nbytes + run.data.w.nbytes)


def bench_case(name, X, k, with_sklearn=True, dtype="float64"):
    from sklearn.mixture import GaussianMixture as SkGM

    n, d = X.shape
    row = {"case": name}
    # emwidgets: first call (compiles), then warm calls with other seeds.
    (gm, live), row["ours_first"] = timed(lambda: fit_ours(X, k, 0, dtype=dtype))
    warm = []
    for seed in (1, 2, 3):
        (gm, live), t = timed(lambda seed=seed: fit_ours(X, k, seed, dtype=dtype))
        warm.append(t)
    row["ours_warm"] = float(np.median(warm))
    loop_iters = int(live.run.state.iteration)
    # EM iterations alone (initialisation excluded), per restart and iteration of the batch.
    gm_em = GaussianMixture(k, covariance_type="full", n_init=N_INIT, tol=TOL, max_iter=MAX_ITER,
                            random_state=2, dtype=dtype, **SKLEARN_RULE)
    live_em = gm_em.start(X)
    jax.block_until_ready(live_em.run.state)
    _, t_em = timed(lambda: jax.block_until_ready(live_em.advance().run.state))
    row["ours_iter"] = t_em / (N_INIT * max(int(live_em.run.state.iteration), 1))
    row["ours_ll"] = max(gm.restarts_.objective)
    row["ours_mem"] = xla_bytes(live)
    row["ours_iters"] = f"{int(np.median(gm.restarts_.n_iter))}/{loop_iters}"
    # A Python loop over the same 16 restarts, each its own compiled fit.
    keys = _keys(1, N_INIT)
    fit_ours(X, k, 1, keys=keys[:1], n_init=1, dtype=dtype)  # compile the one-restart program
    loops = [timed(lambda: [fit_ours(X, k, 1, keys=keys[r:r + 1], n_init=1, dtype=dtype)
                            for r in range(N_INIT)])[1] for _ in range(3)]
    row["loop"] = float(np.median(loops))
    if with_sklearn:
        sk = SkGM(k, covariance_type="full", n_init=N_INIT, tol=TOL, max_iter=MAX_ITER,
                  random_state=1)
        tracemalloc.start()
        _, row["sk"] = timed(lambda: sk.fit(X))
        row["sk_mem"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        row["sk_ll"] = sk.lower_bound_
    return row


def explorer_latency(repeats: int = 5):
    """Run -> first live update of the explorer on Old Faithful, 16 restarts, after compiling."""
    from emwidgets import EMExplorer, datasets

    ex = EMExplorer(datasets.load_faithful(), n_components=2, n_init=16, random_state=0)
    ex.run(block=True)  # compile
    times = []
    for seed in range(1, repeats + 1):
        ex.session.random_state = seed
        before = ex.convergence.n_draws
        t = time.perf_counter()
        ex.run()
        while ex.convergence.n_draws == before:
            time.sleep(0.0005)
        times.append(time.perf_counter() - t)
        ex.session.wait()
    return float(np.median(times)), float(np.max(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small cases only")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs")
    cases = [("faithful N=272 D=2 K=2", load_faithful(), 2),
             ("N=10k D=2 K=3", make_mixture(10_000, 2, 3, seed=0)[0], 3)]
    if not args.quick:
        cases += [("N=100k D=8 K=10", make_mixture(100_000, 8, 10, seed=0)[0], 10),
                  ("N=50k D=32 K=16", make_mixture(50_000, 32, 16, seed=0)[0], 16)]
    jnp.zeros(1).block_until_ready()  # start JAX's backend outside the timings
    mb = 2**20
    for dtype in ("float64", "float32"):
        rows = []
        for name, X, k in cases:
            rows.append(bench_case(name, X, k, dtype=dtype))
            print(f"  done {name} ({dtype})", flush=True)
        print()
        print(f"emwidgets in {dtype}" + (" (its default on a CPU: scikit-learn's arithmetic)"
                                         if dtype == "float64" else
                                         " (dtype='float32'; scikit-learn in float64)"))
        print("| case | sklearn n_init=16 | emwidgets first (compile) | emwidgets warm "
              "| speed-up warm | per restart sklearn / ours "
              "| ours per restart-iteration (EM only) | best log-lik sklearn / ours "
              "| iterations median/batch | loop of 16 fits | batch vs loop "
              "| peak memory sklearn / ours |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            sk_iter = r["sk"] / (N_INIT * 1.0)
            print(
                f"| {r['case']} | {r['sk']:.2f} s | {r['ours_first']:.2f} s "
                f"| {r['ours_warm']:.3f} s | **{r['sk'] / r['ours_warm']:.1f}x** "
                f"| {sk_iter * 1e3:.0f} / {r['ours_warm'] / N_INIT * 1e3:.1f} ms "
                f"| {r['ours_iter'] * 1e3:.2f} ms | {r['sk_ll']:.4f} / {r['ours_ll']:.4f} "
                f"| {r['ours_iters']} | {r['loop']:.3f} s "
                f"| **{r['loop'] / r['ours_warm']:.1f}x** "
                f"| {r['sk_mem'] / mb:.0f} / {r['ours_mem'] / mb:.0f} MiB |")
    median, worst = explorer_latency()
    print(f"\nExplorer, Old Faithful, 16 restarts, after compilation: Run -> first live update "
          f"{median * 1e3:.0f} ms median, {worst * 1e3:.0f} ms worst of 5.")


if __name__ == "__main__":
    main()
