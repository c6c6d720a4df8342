"""EM streamed from a Parquet file against the same fit in memory.

N x 8 rows from 10 Gaussian clusters, written to Parquet by this script; K=10, 16
restarts, full covariance, float32, a fixed number of iterations (tol=1e-300) so both
runs do the same work. Each fit in a fresh process: the rate (rows x restarts x
iterations per second, after the first pass and the initialisation) and the
peak resident memory. The issue's target: streaming costs at most 1.5x the
in-memory rate, in memory bounded by the chunk size.

    python benchmarks/bench_stream.py                # N = 1,000,000 (make bench)
    python benchmarks/bench_stream.py --rows 10000000  # make bench-large
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r'''
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
from emwidgets import Chunks, GaussianMixture
mode, path, n_iter = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "memory":
    import pyarrow.parquet as pq
    X = np.column_stack([c.to_numpy() for c in pq.read_table(path).columns])
    source = X
else:
    source = Chunks(path, chunk_rows=262144)
est = GaussianMixture(10, n_init=16, tol=1e-300, max_iter=n_iter, random_state=0)
t = time.perf_counter()
live = est.start(source)
t_start = time.perf_counter() - t
live.advance(1)  # compiles
t = time.perf_counter()
live.advance(n_iter - 1)
t_iter = time.perf_counter() - t
live.finish()
print(json.dumps({"start": t_start, "iter_seconds": t_iter / (n_iter - 1),
                  "best": float(est.lower_bound_),
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def write_parquet(path, n_rows, seed=0):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (10, 8))
    writer = None
    for start in range(0, n_rows, 1_000_000):
        m = min(1_000_000, n_rows - start)
        x = (centres[rng.integers(0, 10, m)] + rng.normal(size=(m, 8))).astype(np.float32)
        table = pa.table({f"x{j}": x[:, j] for j in range(8)})
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--iterations", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.parquet")
        write_parquet(path, args.rows)
        out = {}
        for mode in ("memory", "stream"):
            res = subprocess.run([sys.executable, "-c", CHILD, mode, path, str(args.iterations)],
                                 capture_output=True, text=True)
            if res.returncode:
                raise SystemExit(res.stderr[-3000:])
            out[mode] = json.loads(res.stdout.strip().splitlines()[-1])
    n = args.rows
    print(f"{n:,} x 8 rows, K=10, 16 restarts, full covariance, float32, "
          f"{args.iterations} iterations")
    for mode, r in out.items():
        rate = n * 16 / r["iter_seconds"]
        print(f"  {mode:7s} start {r['start']:6.2f} s, {r['iter_seconds']:6.2f} s an iteration "
              f"({rate / 1e6:6.1f} M row-restarts/s), peak RSS {r['peak_mib']:7.0f} MiB, "
              f"log-likelihood {r['best']:.5f}")
    print(f"  streaming costs {out['stream']['iter_seconds'] / out['memory']['iter_seconds']:.2f}x "
          "the in-memory iteration")


if __name__ == "__main__":
    main()
