"""EM with the rows sharded over devices (10^6 rows), or the restarts spread over them
(small data, 50,000 rows), against one device, in fresh processes.

On a CPU the devices are forced (XLA_FLAGS=--xla_force_host_platform_device_count);
on a 2-core machine no speed-up is expected: the figure is the overhead of the
per-device sums and the collective. The same script runs unchanged on a machine
with several GPUs (it then uses the real devices: pass --real).

    python benchmarks/bench_shard.py [--rows 1000000] [--small-rows 50000] [--real]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r'''
import json, sys, time, warnings
warnings.simplefilter("ignore")
import jax, numpy as np
from emwidgets import GaussianMixture
n, devices = int(sys.argv[1]), sys.argv[2]
devices = None if devices == "1" else int(devices)
rng = np.random.default_rng(0)
centres = rng.normal(0, 3, (10, 8))
X = centres[rng.integers(0, 10, n)] + rng.normal(size=(n, 8))
make = lambda: GaussianMixture(10, n_init=16, tol=1e-300, max_iter=8, random_state=0,
                               devices=devices)
live = make().start(X)
layout = ("restarts" if live.run._device.objective.sharding.spec[:1] == ("restarts",)
          else "rows") if devices else "one device"
live.advance(1)  # compiles
t = time.perf_counter()
live.advance(7)
per_iteration = (time.perf_counter() - t) / 7
fitted = live.finish()
print(json.dumps({"devices": jax.device_count(), "per_iteration": per_iteration,
                  "layout": layout,
                  "best": float(fitted.lower_bound_)}))
'''


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=50_000)
    parser.add_argument("--real", action="store_true", help="use the machine's own devices")
    args = parser.parse_args()
    for rows in (args.rows, args.small_rows):
        run(rows, args.real)


def run(rows: int, real: bool):
    results = []
    for n_devices in (1, 2):
        env = dict(os.environ)
        if not real:
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n_devices}"
        out = subprocess.run([sys.executable, "-c", CHILD, str(rows), str(n_devices)],
                             env=env, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        results.append((n_devices, json.loads(out.stdout.strip().splitlines()[-1])))
    print(f"{rows:,} x 8 rows, K=10, 16 restarts, full covariance, float32 "
          f"({'real' if real else 'forced CPU'} devices)")
    base = results[0][1]["per_iteration"]
    for n_devices, r in results:
        where = "" if n_devices == 1 else f"{r['layout']} over "
        print(f"  {where}{n_devices} device{'s' if n_devices > 1 else ''}: "
              f"{r['per_iteration']:.3f} s an iteration ({r['per_iteration'] / base:.2f}x one "
              f"device), log-likelihood {r['best']:.5f}")


if __name__ == "__main__":
    main()
