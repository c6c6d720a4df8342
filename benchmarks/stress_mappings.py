"""A long session in one process: many distinct programs, and the memory mappings they hold.

Fits random Gaussian mixtures and HMMs (random sizes, covariance types, restarts and
precision, so most fits compile new programs) with JAX's on-disk cache on and written for
every program, as the test suite has it, and prints after every fit the process's memory
mappings (/proc/self/maps; Linux allows 65,530). Each compiled CPU program holds about a
hundred: before emwidgets kept at most ``emwidgets.core.programs.MAX_LIVE`` of them, this died of a
segmentation fault near fit 325 ("LLVM compilation error: Cannot allocate memory"); now the
mappings plateau (about 14,000). Not in ``make bench``: minutes, and it measures no peer.

    python benchmarks/stress_mappings.py [fits=400] [seed=1]
"""

from __future__ import annotations

import faulthandler
import os
import sys
import tempfile
import time
import warnings


def _mappings() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def main(fits: int = 400, seed: int = 1):
    faulthandler.enable()
    cache = tempfile.mkdtemp(prefix="emwidgets-stress-cache-")
    import jax

    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    import numpy as np

    from emwidgets import GaussianHMM, GaussianMixture
    from emwidgets.core import programs as _programs

    warnings.simplefilter("ignore")
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for i in range(fits):
        d, k, n = int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(20, 3000))
        X = rng.normal(size=(n, d))
        with jax.enable_x64(bool(rng.integers(0, 2))):
            if rng.integers(0, 4) < 3:
                cov = ["full", "diag", "tied", "spherical"][int(rng.integers(0, 4))]
                GaussianMixture(k, covariance_type=cov, n_init=int(rng.integers(1, 9)),
                                max_iter=20, random_state=i).fit(X)
            else:
                GaussianHMM(k, n_init=int(rng.integers(1, 4)), n_iter=10, random_state=i).fit(X)
        print(f"fit {i + 1}: {time.perf_counter() - t0:.0f} s, {_mappings():,} mappings, "
              f"{_programs.live_programs()} live programs, {len(os.listdir(cache))} cache files",
              flush=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
