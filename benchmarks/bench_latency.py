"""The cold path: a first fit in a fresh process, and what each setting change costs.

Old Faithful, 16 restarts. Each row is the wall time of a whole fit right after
the change (what a user waits for) and the number of XLA programs it compiled
(from JAX's events; emwidgets/_compiles.py), beside scikit-learn's time for the
same fit. Run twice in fresh processes: with an empty compilation cache, then
with the cache the first process filled (a restarted kernel).

    python benchmarks/bench_latency.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

CHILD = r'''
import json, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
import emwidgets
from emwidgets import GaussianMixture, _compiles, datasets
t_import = time.perf_counter() - t0
X = datasets.load_faithful().to_numpy()
base = dict(n_components=2, n_init=16, covariance_type="full", init_params="kmeans",
            max_iter=100, tol=1e-3, random_state=0)
steps = [("first fit", {}), ("components 2 -> 3", {"n_components": 3}),
         ("restarts 16 -> 12", {"n_init": 12}), ("restarts 16 -> 32", {"n_init": 32}),
         ("max_iter 100 -> 300", {"max_iter": 300}),
         ("initialisation -> random", {"init_params": "random"}),
         ("covariance full -> diag", {"covariance_type": "diag"}),
         ("tol 1e-3 -> 1e-5", {"tol": 1e-5}), ("seed 0 -> 1", {"random_state": 1}),
         ("same fit again (warm)", {})]
rows = []
for name, change in steps:
    t = time.perf_counter()
    with _compiles.count() as c:
        GaussianMixture(**{**base, **change}).fit(X)
    rows.append({"step": name, "seconds": time.perf_counter() - t, "compiled": c.compiled,
                 "loaded": c.loaded})
print(json.dumps({"import": t_import, "rows": rows}))
'''

SKLEARN = r'''
import json, time, warnings
warnings.simplefilter("ignore")
from sklearn.mixture import GaussianMixture
from emwidgets import datasets
X = datasets.load_faithful().to_numpy()
t = time.perf_counter()
GaussianMixture(2, n_init=16, random_state=0).fit(X)
print(json.dumps({"seconds": time.perf_counter() - t}))
'''


def run(code, env):
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))}
        env["EMWIDGETS_COMPILATION_CACHE"] = cache
        cold = run(CHILD, env)
        warm = run(CHILD, env)
    sk = run(SKLEARN, dict(os.environ))
    print(f"Old Faithful, 16 restarts; scikit-learn's whole fit in a fresh process: "
          f"{sk['seconds']:.2f} s")
    print(f"import emwidgets: {cold['import']:.2f} s (empty cache), {warm['import']:.2f} s")
    print(f"{'change, then fit':28s} {'empty cache':>20s} {'cache from before':>20s}")
    for a, b in zip(cold["rows"], warm["rows"]):
        print(f"{a['step']:28s} {a['seconds']:7.2f} s {a['compiled']:2d} compiled"
              f"   {b['seconds']:7.2f} s {b['compiled']:2d} compiled {b['loaded']:2d} loaded")


if __name__ == "__main__":
    main()
