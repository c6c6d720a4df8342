"""The on-disk compilation cache: on by default, shared safely by kernels, and off on request."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FIT = r'''
import json, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import jax
    import emwidgets
    from emwidgets import _compiles, datasets
    X = datasets.load_faithful()
    with _compiles.count() as c:
        g = emwidgets.GaussianMixture(2, n_init=4, random_state=0).fit(X)
print(json.dumps({"dir": jax.config.jax_compilation_cache_dir, "compiled": c.compiled,
                  "loaded": c.loaded, "lower_bound": g.lower_bound_,
                  "warnings": [str(w.message) for w in caught]}))
'''

WHERE = ("import json, jax, emwidgets; "
         "print(json.dumps({'dir': jax.config.jax_compilation_cache_dir}))")


def env_without_cache(**extra):
    """The test's environment without the suite's own cache settings (conftest.py)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE", "EMWIDGETS_"))}
    env.update(extra)
    return env


def last_json(out):
    return json.loads(out.strip().splitlines()[-1])


def run(code, env):
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=300)
    assert "Error reading persistent compilation cache" not in out.stderr, out.stderr
    return last_json(out.stdout)


@pytest.mark.slow
def test_two_kernels_at_once_share_the_cache_and_a_third_compiles_nothing(tmp_path):
    cache = tmp_path / "cache"
    env = env_without_cache(EMWIDGETS_COMPILATION_CACHE=str(cache))
    # Two kernels fitting the same model at the same moment write the same entries.
    procs = [subprocess.Popen([sys.executable, "-c", FIT], env=env, cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert "Error reading persistent compilation cache" not in err, err
        results.append(last_json(out))
    for r in results:
        assert r["dir"] == str(cache)
        assert not [w for w in r["warnings"] if "cache" in w.lower()], r["warnings"]
        assert r["compiled"] + r["loaded"] > 0
    assert any(f.name.endswith("-cache") for f in cache.iterdir())
    # A later kernel loads every program and compiles none; the fit is the same.
    third = run(FIT, env)
    assert third["compiled"] == 0, third
    assert third["loaded"] > 0
    assert third["lower_bound"] == results[0]["lower_bound"]


def test_the_cache_is_on_by_default_in_the_users_cache_directory(tmp_path):
    out = run(WHERE, env_without_cache(XDG_CACHE_HOME=str(tmp_path)))
    assert out["dir"] == str(tmp_path / "emwidgets" / "jax")
    assert (tmp_path / "emwidgets" / "jax").is_dir()


@pytest.mark.slow
def test_the_cache_is_off_with_the_environment_variable(tmp_path):
    for off in ("0", "off"):
        out = run(WHERE, env_without_cache(XDG_CACHE_HOME=str(tmp_path),
                                           EMWIDGETS_COMPILATION_CACHE=off))
        assert out["dir"] is None
    assert not (tmp_path / "emwidgets").exists()


@pytest.mark.slow
def test_jaxs_own_cache_configuration_is_respected(tmp_path):
    mine = tmp_path / "mine"
    out = run(WHERE, env_without_cache(XDG_CACHE_HOME=str(tmp_path / "xdg"),
                                       JAX_COMPILATION_CACHE_DIR=str(mine)))
    assert out["dir"] == str(mine)
    assert not (tmp_path / "xdg").exists()


SESSION = r'''
import json, warnings
warnings.simplefilter("ignore")
import numpy as np
import emwidgets
from emwidgets import _compiles, datasets
from emwidgets.core import programs as _programs
exports = []
_export = _programs.StoredJit._export
def counted(self, *a, **k):
    exports.append(self.name)
    return _export(self, *a, **k)
_programs.StoredJit._export = counted
X = datasets.load_faithful().to_numpy()
Xm = X.copy(); Xm[::7, 1] = np.nan
with _compiles.count() as c:
    fits = {
        "gmm": emwidgets.GaussianMixture(2, n_init=4, random_state=0).fit(X).means_,
        "diag": emwidgets.GaussianMixture(3, covariance_type="diag", init_params="random",
                                          n_init=3, random_state=0).fit(X).means_,
        "missing": emwidgets.GaussianMixture(2, n_init=2, missing="em",
                                             random_state=0).fit(Xm).means_,
        "prior": emwidgets.GaussianMixture(2, n_init=2, prior="default",
                                           random_state=0).fit(X).means_,
        "kmeans": emwidgets.KMeans(3, n_init=4, random_state=0).fit(X).cluster_centers_,
        "hmm": emwidgets.GaussianHMM(2, n_init=4, random_state=0).fit(X).means_,
    }
print(json.dumps({"exports": exports, "compiled": c.compiled, "loaded": c.loaded,
                  "fits": {k: np.asarray(v).tolist() for k, v in fits.items()}}))
'''


@pytest.mark.slow
def test_a_later_kernel_traces_and_compiles_nothing_and_fits_the_same(tmp_path):
    """The traced programs are kept beside the compilation cache (emwidgets/core/programs.py):
    a new kernel neither traces nor compiles a configuration seen before, for every
    estimator, and its numbers are the first kernel's to the bit."""
    cache = tmp_path / "cache"
    env = env_without_cache(EMWIDGETS_COMPILATION_CACHE=str(cache))
    first = run(SESSION, env)
    assert first["exports"] and first["compiled"] > 0, first
    stored = sorted((cache / "emwidgets-programs").glob("*.jaxexport"))
    assert len(stored) >= len(set(first["exports"]))
    second = run(SESSION, env)
    assert second["exports"] == [] and second["compiled"] == 0, second
    assert second["loaded"] > 0
    assert second["fits"] == first["fits"]
    # A torn or foreign file is ignored and replaced, never an error.
    for path in stored:
        path.write_bytes(path.read_bytes()[:100])
    third = run(SESSION, env)
    assert sorted(set(third["exports"])) == sorted(set(first["exports"]))
    assert third["fits"] == first["fits"]
    fourth = run(SESSION, env)
    assert fourth["exports"] == [], fourth
