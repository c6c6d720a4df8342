"""EM sharded over devices: the samples split over a mesh's "rows" axis, every device
summing its own rows' statistics and one collective adding them (em.block_sum). On this
CPU the devices are forced (XLA_FLAGS=--xla_force_host_platform_device_count), in a
subprocess so that the rest of the suite keeps one device."""

import json
import os
import subprocess
import sys

import pytest

CHILD = r'''
import json, warnings
warnings.simplefilter("ignore")
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
from emwidgets import GaussianMixture
assert jax.device_count() == N_DEVICES, jax.devices()
rng = np.random.default_rng(0)
# 5,001 rows (not a multiple of any device count: zero-weight padding), and 40,003 rows,
# several blocks a device.
small = np.r_[rng.normal(0, 1, (3001, 3)), rng.normal(3, 1, (2000, 3))]
big = np.r_[rng.normal(0, 1, (25003, 4)), rng.normal(2, 1, (15000, 4))]
holes = small.copy()
holes[rng.random(len(holes)) < 0.2, 1] = np.nan
weights = rng.integers(0, 3, len(small)).astype(float)
out = []
for name, X, kw, fit_kw in [
        ("full", small, dict(covariance_type="full"), {}),
        ("diag, missing", holes, dict(covariance_type="diag", missing="em"), {}),
        ("tied, several blocks", big, dict(covariance_type="tied"), {}),
        ("spherical, SQUAREM", small, dict(covariance_type="spherical",
                                           accelerate="squarem"), {}),
        ("full, weights", small, dict(covariance_type="full"), {"sample_weight": weights})]:
    one = GaussianMixture(3, n_init=4, random_state=0, tol=1e-8, **kw).fit(X, **fit_kw)
    many = GaussianMixture(3, n_init=4, random_state=0, tol=1e-8, devices="all",
                           **kw).fit(X, **fit_kw)
    a, b = one.restarts_, many.restarts_
    finite = np.isfinite(a.trace)
    out.append({"case": name, "same_iterations": bool((a.n_iter == b.n_iter).all()),
                "trace": float(np.abs(a.trace - b.trace)[finite].max()),
                "means": float(np.abs(one.means_ - many.means_).max()),
                "sharded": many.start(X, **fit_kw).run.data.w.sharding.num_devices})
print(json.dumps(out))
'''


@pytest.mark.parametrize("n_devices", [2, 4])
def test_sharded_over_devices_equals_one_device(n_devices):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_devices}",
           "EMWIDGETS_COMPILATION_CACHE": "0"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", CHILD.replace("N_DEVICES", str(n_devices))],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    for case in json.loads(out.stdout.strip().splitlines()[-1]):
        assert case["sharded"] == n_devices, case
        assert case["same_iterations"], case
        assert case["trace"] < 1e-10 and case["means"] < 1e-8, case


def test_devices_is_checked_in_one_sentence():
    import numpy as np

    from emwidgets import GaussianMixture

    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="devices=9, but 1 device is available"):
        GaussianMixture(2, devices=9).fit(X)
    with pytest.raises(ValueError, match="Invalid value for 'devices'"):
        GaussianMixture(2, devices="gpu").fit(X)
    one = GaussianMixture(2, devices=1, random_state=0).fit(X)  # one device: as before
    np.testing.assert_array_equal(one.means_, GaussianMixture(2, random_state=0).fit(X).means_)
