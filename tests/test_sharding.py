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
import emwidgets.core.layout as dm
assert jax.device_count() == N_DEVICES, jax.devices()
# MODE "rows": the rows sharded whatever their count; "restarts": the restarts spread
# over the devices (each holds every row), as fits of fewer than 100,000 rows are.
dm.SPREAD_RESTARTS_BELOW = 0 if "MODE" == "rows" else 10**9
PARTS = "PARTS"  # which cases this run adds (each device count and layout runs its own)
# Plain EM by scikit-learn's rule unless a case asks for SQUAREM: the layouts must agree to
# rounding, which SQUAREM's extrapolations amplify into other paths.
PLAIN = dict(accelerate=None, convergence="change")
rng = np.random.default_rng(0)

def layout(live):
    """How a started fit is laid out: (axis the restarts' objectives are split over,
    devices the data's weights are on, whether those are split)."""
    spec = live.run._device.objective.sharding.spec
    w = live.run.data.w.sharding
    return {"restart_axis": spec[0] if len(spec) else None, "devices": w.num_devices,
            "rows_split": not w.is_fully_replicated}

# 5,001 rows (not a multiple of any device count: zero-weight padding), and 40,003 rows,
# several blocks a device.
small = np.r_[rng.normal(0, 1, (3001, 3)), rng.normal(3, 1, (2000, 3))]
big = np.r_[rng.normal(0, 1, (25003, 4)), rng.normal(2, 1, (15000, 4))]
holes = small.copy()
holes[rng.random(len(holes)) < 0.2, 1] = np.nan
weights = rng.integers(0, 3, len(small)).astype(float)
out = []
GAUSSIAN = [
    ("full", small, dict(covariance_type="full"), {}),
    ("diag, missing", holes, dict(covariance_type="diag", missing="em"), {}),
    ("tied, several blocks", big, dict(covariance_type="tied"), {}),
    ("spherical, SQUAREM", small, dict(covariance_type="spherical", accelerate="squarem"), {}),
    ("full, weights", small, dict(covariance_type="full"), {"sample_weight": weights})]
# Which Gaussian cases a run adds: all; the first two; the uneven padding (5,001 rows) and
# several blocks a device.
PICK = {"gaussian": slice(None), "gaussian2": slice(0, 2), "gaussian-padding": slice(0, 3, 2)}
picked = [GAUSSIAN[PICK[p]] for p in PARTS.split() if p in PICK]
for name, X, kw, fit_kw in (picked[0] if picked else []):
    one = GaussianMixture(3, n_init=4, random_state=0, tol=1e-8, **{**PLAIN, **kw}).fit(
        X, **fit_kw)
    many = GaussianMixture(3, n_init=4, random_state=0, tol=1e-8, devices="all",
                           **{**PLAIN, **kw}).fit(X, **fit_kw)
    a, b = one.restarts_, many.restarts_
    finite = np.isfinite(a.trace)
    out.append({"case": name, "same_iterations": bool((a.n_iter == b.n_iter).all()),
                "trace": float(np.abs(a.trace - b.trace)[finite].max()),
                "means": float(np.abs(one.means_ - many.means_).max()),
                "layout": layout(many.start(X, **fit_kw))})
# Every family's estimator takes devices= too (the driver owns the reduction).
import jax.numpy as jnp
from emwidgets import LatentClassModel, MixtureModel, PoissonMixture, StudentMixture
counts = rng.poisson(np.array([[1.0, 4.0], [6.0, 1.0]])[rng.choice(2, 3001)]).astype(float)
answers = (rng.random((2001, 4)) < 0.3 + 0.4 * rng.choice(2, (2001, 1))).astype(float)
answers[rng.random(answers.shape) < 0.05] = np.nan
for name, make, X in [("poisson", PoissonMixture, counts),
                      ("latent classes, missing answers", LatentClassModel, answers),
                      ("student t", StudentMixture, small),
                      ("a user's family (autodiff M-step)", lambda *a, **k: MixtureModel(
                          lambda t, x: -0.5 * ((x - t["m"]) ** 2).sum(),
                          lambda g, X: {"m": X[g.integers(len(X))]}, n_components=a[0], **k),
                       small[:1500])][:0 if "families" not in PARTS else None]:
    one = make(2, n_init=4, random_state=0, tol=1e-8, max_iter=60, **PLAIN).fit(X)
    many = make(2, n_init=4, random_state=0, tol=1e-8, max_iter=60, devices="all",
                **PLAIN).fit(X)
    a, b = one.restarts_, many.restarts_
    finite = np.isfinite(a.trace)
    out.append({"case": name, "same_iterations": bool((a.n_iter == b.n_iter).all()),
                "trace": float(np.abs(a.trace - b.trace)[finite].max()),
                "means": float(max(np.nanmax(np.abs(np.asarray(u, float) - np.asarray(v, float)))
                                   for u, v in zip(jax.tree.leaves(a.params),
                                                   jax.tree.leaves(b.params)))),
                "layout": layout(many.start(X)),
                # (Newton steps on autodiff derivatives amplify the sums' rounding)
                "loose": name.startswith("a user's")})
if "hmms" in PARTS:  # HMMs spread their restarts (their rows are sequences)
    from emwidgets import GaussianHMM, PoissonHMM
    states = np.repeat(rng.choice(2, 60), 25)  # two sequences, long runs of each state
    obs = rng.normal(np.array([[0.0, 0.0], [3.0, 1.0]])[states], 1.0)
    lengths = [900, 600]
    for name, make, X in [("gaussian hmm", lambda **k: GaussianHMM(2, **k), obs),
                          ("poisson hmm", lambda **k: PoissonHMM(2, **k),
                           rng.poisson(np.array([[1.0], [5.0]])[states]).astype(float))]:
        kw = dict(n_init=3, random_state=0, tol=1e-8, n_iter=60, **PLAIN)
        one, many = make(**kw).fit(X, lengths), make(devices="all", **kw).fit(X, lengths)
        a, b = one.restarts_, many.restarts_
        finite = np.isfinite(a.trace)
        out.append({"case": name, "same_iterations": bool((a.n_iter == b.n_iter).all()),
                    "trace": float(np.abs(a.trace - b.trace)[finite].max()),
                    "means": float(max(np.nanmax(np.abs(np.asarray(u, float)
                                                        - np.asarray(v, float)))
                                       for u, v in zip(jax.tree.leaves(a.params),
                                                       jax.tree.leaves(b.params)))),
                    "layout": layout(many.start(X, lengths))})
print(json.dumps(out))
'''


@pytest.mark.slow
@pytest.mark.parametrize("n_devices, mode, parts", [
    (2, "rows", "gaussian families"),  # every estimator's rows over two devices
    (4, "rows", "gaussian-padding"),  # four: uneven padding, several blocks a device
    # The restarts spread: every estimator does so in the property list's devices row
    # (tests/test_models.py, small data); here the layout and the HMMs' sequences.
    (2, "restarts", "gaussian2 hmms"),
])
def test_sharded_over_devices_equals_one_device(n_devices, mode, parts):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_devices}",
           "EMWIDGETS_COMPILATION_CACHE": "0"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    child = (CHILD.replace("N_DEVICES", str(n_devices)).replace("MODE", mode)
             .replace('"PARTS"', repr(parts)))
    out = subprocess.run([sys.executable, "-c", child],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    for case in json.loads(out.stdout.strip().splitlines()[-1]):
        assert case["layout"] == ({"restart_axis": None, "devices": n_devices,
                                   "rows_split": True} if mode == "rows" else
                                  {"restart_axis": "restarts", "devices": n_devices,
                                   "rows_split": False}), case
        assert case["same_iterations"], case
        scale = 100 if case.get("loose") else 1
        assert case["trace"] < 1e-10 * scale and case["means"] < 1e-8 * scale, case


FLOAT32_BLOCKS = r'''
import json, warnings
warnings.simplefilter("ignore")
import numpy as np
from emwidgets import GaussianMixture
rng = np.random.default_rng(0)
centres = rng.normal(0, 3, (5, 8))
X = centres[rng.integers(0, 5, 300_000)] + rng.normal(size=(300_000, 8))
kw = dict(n_init=2, tol=1e-300, max_iter=4, random_state=0, accelerate=None, convergence="change")
one, many = GaussianMixture(5, **kw), GaussianMixture(5, devices="all", **kw)
live = many.start(X)
per_device = live.run.data.w.shape[0] // N_DEVICES
one.fit(X), live.finish()
print(json.dumps({"blocks_per_device": per_device,
                  "trace": np.abs(one.restarts_.trace - many.restarts_.trace).max()}))
'''


@pytest.mark.slow
@pytest.mark.parametrize("n_devices", [2])
def test_float32_with_several_blocks_a_device(n_devices):
    """300,000 x 8 rows in float32: every device scans several blocks of its rows (the
    carry of the block sum must vary over the devices, as the sums do)."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_devices}",
           "EMWIDGETS_COMPILATION_CACHE": "0"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c",
                          FLOAT32_BLOCKS.replace("N_DEVICES", str(n_devices))],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["trace"] < 1e-5, got  # float32 sums in another order


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


DISTRIBUTED = r'''
import json, sys, warnings
warnings.simplefilter("ignore")
process, port = int(sys.argv[1]), sys.argv[2]
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                           process_id=process)
jax.config.update("jax_enable_x64", True)
import numpy as np
from emwidgets import GaussianMixture
assert jax.device_count() == 2 and jax.local_device_count() == 1
rng = np.random.default_rng(0)
X = np.r_[rng.normal(0, 1, (3001, 3)), rng.normal(3, 1, (2000, 3))]
g = GaussianMixture(3, n_init=4, random_state=0, tol=1e-8, devices="all",
                    accelerate=None, convergence="change").fit(X)
print(json.dumps({"means": g.means_.tolist(), "trace": np.nan_to_num(g.restarts_.trace).tolist()}))
'''


@pytest.mark.slow
def test_two_processes_under_jax_distributed_equal_one_process(x64):
    """The launch the README gives for several hosts (one process per host,
    jax.distributed.initialize, devices='all'), as two processes on 127.0.0.1 with one CPU
    device each: both get the single-process fit."""
    import socket

    import numpy as np

    from emwidgets import GaussianMixture

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "EMWIDGETS_COMPILATION_CACHE": "0"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.pop("XLA_FLAGS", None)
    procs = [subprocess.Popen([sys.executable, "-c", DISTRIBUTED, str(i), str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (3001, 3)), rng.normal(3, 1, (2000, 3))]
    one = GaussianMixture(3, n_init=4, random_state=0, tol=1e-8, accelerate=None,
                          convergence="change").fit(X)
    for out, _ in outs:
        got = json.loads(out.strip().splitlines()[-1])
        np.testing.assert_allclose(got["means"], one.means_, atol=1e-8)
        np.testing.assert_allclose(got["trace"], np.nan_to_num(one.restarts_.trace), atol=1e-10)
