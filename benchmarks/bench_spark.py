"""emwidgets against Spark MLlib's GaussianMixture on 10^6 x 8 rows, K=10.

Spark's GaussianMixture has no restarts (one fit a seed), full covariance only, and
stops on a change of the *summed* log-likelihood (tol=0.01 on 10^6 rows is a
relative change of 1e-8 a row, so it runs to maxIter). Here: ``--spark-fits`` Spark
fits (seeds 0, 1, ...; local[2], maxIter=100, default tol) against one emwidgets fit
of 16 restarts (full covariance, max_iter=100, tol=1e-3 on the mean log-likelihood,
float32), on the same rows from 10 Gaussian clusters. Every model's log-likelihood
is recomputed here in float64 with SciPy from its parameters, so both are scored
alike. The Spark time of 16 fits is the measured mean a fit times 16 when fewer are
run (say so).

Spark is a benchmark dependency only, in its own environment (pyspark from PyPI and
a Java runtime, e.g. Debian's openjdk-17-jre-headless)::

    python -m venv spark-venv && spark-venv/bin/pip install pyspark numpy
    python benchmarks/bench_spark.py --spark-python spark-venv/bin/python [--spark-fits 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

SPARK = r'''
import json, sys, time
import numpy as np
path, n_fits, max_iter = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
from pyspark.sql import SparkSession
from pyspark.ml.clustering import GaussianMixture
from pyspark.ml.feature import VectorAssembler
spark = (SparkSession.builder.master("local[2]").config("spark.driver.memory", "6g")
         .config("spark.ui.enabled", "false").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
t = time.perf_counter()
raw = spark.read.parquet(path)
df = VectorAssembler(inputCols=raw.columns, outputCol="features").transform(raw).select(
    "features").repartition(2).cache()
df.count()
load = time.perf_counter() - t
fits = []
for seed in range(n_fits):
    t = time.perf_counter()
    model = GaussianMixture(k=10, maxIter=max_iter, seed=seed).fit(df)
    seconds = time.perf_counter() - t
    g = model.gaussiansDF.collect()
    fits.append({"seconds": seconds, "iterations": model.summary.numIter,
                 "spark_loglik": model.summary.logLikelihood,
                 "weights": list(model.weights),
                 "means": [list(r["mean"]) for r in g],
                 "covariances": [r["cov"].toArray().tolist() for r in g]})
    print(json.dumps({"progress": seed, "seconds": seconds}), file=sys.stderr, flush=True)
print(json.dumps({"load": load, "fits": fits}))
'''

OURS = r'''
import json, sys, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
import numpy as np
from emwidgets import GaussianMixture
X = np.load(sys.argv[1])
t = time.perf_counter()
gm = GaussianMixture(10, n_init=16, max_iter=int(sys.argv[2]), random_state=0).fit(X)
first = time.perf_counter() - t
t = time.perf_counter()
gm = GaussianMixture(10, n_init=16, max_iter=int(sys.argv[2]), random_state=0).fit(X)
warm = time.perf_counter() - t
print(json.dumps({"first": first, "warm": warm, "weights": gm.weights_.tolist(),
                  "means": gm.means_.tolist(), "covariances": gm.covariances_.tolist(),
                  "iterations": gm.restarts_.n_iter.tolist()}))
'''


def data(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (10, 8))
    return centres[rng.integers(0, 10, n)] + rng.normal(size=(n, 8))


def loglik(X, weights, means, covariances) -> float:
    """The total log-likelihood of a Gaussian mixture, in float64 with SciPy."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    logs = np.column_stack([np.log(w) + multivariate_normal(m, c, allow_singular=False).logpdf(X)
                            for w, m, c in zip(weights, means, covariances)])
    return float(logsumexp(logs, axis=1).sum())


def run(args_list, label):
    res = subprocess.run(args_list, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{label} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--spark-fits", type=int, default=16)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--spark-python", default=sys.executable,
                        help="a Python with pyspark (Spark is a benchmark dependency only)")
    args = parser.parse_args()
    X = data(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = os.path.join(tmp, "rows.npy")
        np.save(path, X)
        parquet = os.path.join(tmp, "rows.parquet")
        pq.write_table(pa.table({f"x{j}": X[:, j] for j in range(X.shape[1])}), parquet)
        ours = run([sys.executable, "-c", OURS, path, str(args.max_iter)], "emwidgets")
        t = time.perf_counter()
        spark = run([args.spark_python, "-c", SPARK, parquet, str(args.spark_fits),
                     str(args.max_iter)], "Spark")
        spark_wall = time.perf_counter() - t
    ours_ll = loglik(X, ours["weights"], ours["means"], ours["covariances"])
    spark_ll = [loglik(X, f["weights"], f["means"], f["covariances"]) for f in spark["fits"]]
    per_fit = np.mean([f["seconds"] for f in spark["fits"]])
    spark_16 = per_fit * 16
    measured = "measured" if args.spark_fits == 16 else \
        f"projected: 16 x the mean of {args.spark_fits} measured fits"
    print(f"{args.rows:,} x 8 rows from 10 clusters, K=10, full covariance, max_iter "
          f"{args.max_iter}; 2-core CPU")
    print(f"  emwidgets, 16 restarts in one fit (float32): first fit in a fresh process "
          f"{ours['first']:.1f} s (compilation included), again {ours['warm']:.1f} s; "
          f"iterations {min(ours['iterations'])}-{max(ours['iterations'])}; "
          f"log-likelihood {ours_ll:.1f}")
    print(f"  Spark MLlib local[2]: {args.spark_fits} fits, {per_fit:.1f} s a fit (mean; "
          f"iterations {[f['iterations'] for f in spark['fits']]}), data into Spark "
          f"{spark['load']:.1f} s, process {spark_wall:.0f} s; best log-likelihood "
          f"{max(spark_ll):.1f} (each: {', '.join(f'{v:.1f}' for v in spark_ll)})")
    print(f"  16 Spark fits {spark_16:.0f} s ({measured}): emwidgets is "
          f"{spark_16 / ours['first']:.1f}x faster on its first fit, "
          f"{spark_16 / ours['warm']:.1f}x warm; best log-likelihood "
          f"{'equal or better' if ours_ll >= max(spark_ll) - 1e-6 * abs(ours_ll) else 'WORSE'} "
          f"({ours_ll - max(spark_ll):+.1f})")


if __name__ == "__main__":
    main()
