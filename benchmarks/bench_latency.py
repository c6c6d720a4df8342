"""The cold path: a first fit in a fresh process, and what each setting change costs.

Three parts, each in fresh processes, run twice: with an empty compilation cache,
then with the cache the first process filled (a restarted kernel).

1. Estimators (Old Faithful, 16 restarts): the first fit, then each setting
   change, as the wall time of a whole fit and the number of XLA programs it
   compiled (from JAX's events; emwidgets/_compiles.py).
2. First fits of every kind of model in a process of its own (a Gaussian mixture
   on 100,000 x 8 rows with 10 components; KMeans; GaussianHMM; missing values;
   a prior; select_model), beside the peers' whole fit in a fresh process.
3. The explorer as a user meets it (EMExplorer and HMMExplorer, background
   compilation on, as in a notebook): displayed, then Run; then each control
   change, timed from the Run to the first live frame (or the final one, for a
   run that ends sooner), with the programs that Run compiled. The background
   warm-up a Run starts is let finish before the next change (a user reading the
   plot), and its duration is printed.

    python benchmarks/bench_latency.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

ESTIMATORS = r'''
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

# One first fit in a fresh process: CASE is replaced by the case's name.
FIRST_FIT = r'''
import json, time, warnings
warnings.simplefilter("ignore")
import numpy as np
import emwidgets
from emwidgets import (GaussianHMM, GaussianMixture, KMeans, _compiles, datasets,
                       select_model)
case = CASE
faithful = datasets.load_faithful().to_numpy()
if case == "gmm 100k x 8, K=10":
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, (10, 8))
    X = centers[rng.integers(0, 10, 100_000)] + rng.normal(size=(100_000, 8))
    fit = lambda: GaussianMixture(10, n_init=16, random_state=0).fit(X)
elif case == "KMeans":
    fit = lambda: KMeans(2, n_init=16, random_state=0).fit(faithful)
elif case == "GaussianHMM":
    geyser = datasets.load_geyser().to_numpy()
    fit = lambda: GaussianHMM(2, covariance_type="full", n_init=16, random_state=0).fit(geyser)
elif case == "missing='em'":
    X = faithful.copy()
    X[np.random.default_rng(0).random(len(X)) < 0.2, 1] = np.nan
    fit = lambda: GaussianMixture(2, n_init=16, missing="em", random_state=0).fit(X)
elif case == "prior='default'":
    fit = lambda: GaussianMixture(2, n_init=16, prior="default", random_state=0).fit(faithful)
elif case == "select_model 1-6 x 4 types":
    fit = lambda: select_model(faithful, range(1, 7), n_init=8)
t = time.perf_counter()
with _compiles.count() as c:
    fit()
first = time.perf_counter() - t
t = time.perf_counter()
fit()
print(json.dumps({"first": first, "warm": time.perf_counter() - t, "compiled": c.compiled,
                  "loaded": c.loaded}))
'''

PEERS = r'''
import json, time, warnings
warnings.simplefilter("ignore")
import numpy as np
case = CASE
t = time.perf_counter()
if case == "KMeans":
    from sklearn.cluster import KMeans
    from emwidgets import datasets
    X = datasets.load_faithful().to_numpy()
    t = time.perf_counter()
    KMeans(2, n_init=16, random_state=0).fit(X)
elif case == "GaussianHMM":
    from hmmlearn.hmm import GaussianHMM
    from emwidgets import datasets
    X = datasets.load_geyser().to_numpy()
    t = time.perf_counter()
    for seed in range(16):  # hmmlearn has no restarts: 16 fits
        GaussianHMM(2, covariance_type="full", random_state=seed).fit(X)
else:
    from sklearn.mixture import GaussianMixture
    from emwidgets import datasets
    X = datasets.load_faithful().to_numpy()
    t = time.perf_counter()
    GaussianMixture(2, n_init=16, random_state=0).fit(X)
print(json.dumps({"seconds": time.perf_counter() - t}))
'''

EXPLORER = r'''
import json, threading, time, warnings
warnings.simplefilter("ignore")
import emwidgets
from emwidgets import EMExplorer, HMMExplorer, _compiles, datasets
kind = KIND
if kind == "EMExplorer":
    ex = EMExplorer(datasets.load_faithful(), n_components=2, n_init=16)
    changes = [("components 2 -> 3", {"n_components": 3}),
               ("components 3 -> 6", {"n_components": 6}),
               ("initialisation -> random", {"init_params": "random"}),
               ("initialisation -> k-means++", {"init_params": "k-means++"}),
               ("covariance -> diag", {"covariance_type": "diag"}),
               ("restarts 16 -> 32", {"n_init": 32}), ("restarts 16 -> 5", {"n_init": 5}),
               ("max_iter 100 -> 300", {"max_iter": 300}),
               ("tol -> 1e-5", {"tol": 1e-5}), ("reg_covar -> 1e-4", {"reg_covar": 1e-4}),
               ("seed -> 3", {"random_state": 3})]
else:
    ex = HMMExplorer(datasets.load_geyser(), n_components=2)
    changes = [("states 2 -> 3", {"n_components": 3}),
               ("initialisation -> kmeans", {"init_params": "kmeans"}),
               ("covariance -> diag", {"covariance_type": "diag"}),
               ("restarts 32 -> 16", {"n_init": 16}), ("tol -> 1e-4", {"tol": 1e-4}),
               ("seed -> 3", {"random_state": 3})]
s = ex.session
s.background_compile = True
frame = threading.Event()
s.observe(lambda ch: frame.set(), "snapshot")
said = []
s.observe(lambda ch: said.append(ch["new"]), "status")

def settle():
    t = time.perf_counter()
    time.sleep(0.05)
    while s.warming:
        time.sleep(0.02)
    return time.perf_counter() - t

def run():
    frame.clear()
    said.clear()
    with _compiles.count() as c:
        t = time.perf_counter()
        ex.run()
        frame.wait(600)
        first_frame = time.perf_counter() - t
        ex.session.wait()
    ran = [p for p in c.programs if not p.thread.startswith("emwidgets-warm-up")]
    return {"first_frame": first_frame, "done": time.perf_counter() - t,
            "compiled": sum(not p.loaded for p in ran), "loaded": sum(p.loaded for p in ran),
            "said_compiling": any("ompil" in text for text in said)}

rows = []
ex._repr_mimebundle_()  # displayed: the first Run's program compiles in the background
shown = settle()  # (the user reads the page; "Run at once" is part 1's first fit)
rows.append({"step": f"displayed ({shown:.1f} s), Run", **run()})
rows[-1]["warm_up"] = settle()
base = {k: getattr(s, k) for k in ("n_components", "init_params", "covariance_type",
                                   "max_iter", "n_init", "tol", "random_state", "reg_covar")}
for name, change in changes:
    for k, v in {**base, **change}.items():
        setattr(s, k, v)
    rows.append({"step": name, **run()})
    rows[-1]["warm_up"] = settle()
print(json.dumps({"rows": rows}))
'''

FIRST_FIT_CASES = ["gmm 100k x 8, K=10", "KMeans", "GaussianHMM", "missing='em'",
                   "prior='default'", "select_model 1-6 x 4 types"]
PEER_NAMES = {"KMeans": "scikit-learn KMeans(n_init=16)",
              "GaussianHMM": "hmmlearn, 16 fits",
              "missing='em'": "-", "prior='default'": "-",
              "select_model 1-6 x 4 types": "-",
              "gmm 100k x 8, K=10": "(bench_gmm.py: scikit-learn about 100 s)"}


def run(code, env):
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))}
    env.pop("EMWIDGETS_BACKGROUND_COMPILE", None)
    with tempfile.TemporaryDirectory() as cache:
        env["EMWIDGETS_COMPILATION_CACHE"] = cache
        cold = run(ESTIMATORS, env)
        warm = run(ESTIMATORS, env)
    sk = run(PEERS.replace("CASE", repr("gmm")), dict(os.environ))
    print(f"1. Old Faithful, 16 restarts; scikit-learn's whole fit in a fresh process: "
          f"{sk['seconds']:.2f} s")
    print(f"import emwidgets: {cold['import']:.2f} s (empty cache), {warm['import']:.2f} s")
    print(f"{'change, then fit':28s} {'empty cache':>20s} {'cache from before':>20s}")
    for a, b in zip(cold["rows"], warm["rows"]):
        print(f"{a['step']:28s} {a['seconds']:7.2f} s {a['compiled']:2d} compiled"
              f"   {b['seconds']:7.2f} s {b['compiled']:2d} compiled {b['loaded']:2d} loaded")

    print("\n2. First fits, each in a fresh process (16 restarts)")
    print(f"{'case':28s} {'empty cache':>20s} {'cache from before':>26s} {'warm':>8s}   peer")
    for case in FIRST_FIT_CASES:
        with tempfile.TemporaryDirectory() as cache:
            env["EMWIDGETS_COMPILATION_CACHE"] = cache
            code = FIRST_FIT.replace("CASE", repr(case))
            a, b = run(code, env), run(code, env)
        peer = PEER_NAMES[case]
        if case in ("KMeans", "GaussianHMM"):
            peer += f": {run(PEERS.replace('CASE', repr(case)), dict(os.environ))['seconds']:.2f} s"
        print(f"{case:28s} {a['first']:7.2f} s {a['compiled']:2d} compiled"
              f"   {b['first']:7.2f} s {b['compiled']:2d} compiled {b['loaded']:2d} loaded"
              f" {b['warm']:7.3f} s   {peer}")

    print("\n3. The explorer: Run to the first live frame (s), programs the Run compiled,"
          " and the background warm-up after it (s)")
    for kind in ("EMExplorer", "HMMExplorer"):
        for label, fresh in (("empty cache", True), ("cache from before", False)):
            if fresh:
                cache_dir = tempfile.mkdtemp()
            env["EMWIDGETS_COMPILATION_CACHE"] = cache_dir
            res = run(EXPLORER.replace("KIND", repr(kind)), env)
            print(f"{kind}, {label}:")
            for r in res["rows"]:
                print(f"  {r['step']:30s} first frame {r['first_frame']:5.2f} s, done "
                      f"{r['done']:5.2f} s, {r['compiled']} compiled, {r['loaded']} loaded"
                      f"{', said Compiling' if r['said_compiling'] else ''};"
                      f" warm-up after it {r['warm_up']:5.2f} s")


if __name__ == "__main__":
    main()
