"""The thread pools follow the container's CPU quota (Binder), simulated with a temporary cgroup."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emwidgets import _threads
from emwidgets._threads import cap_threads, cgroup_cpu_limit, usable_cpus

ROOT = Path(__file__).resolve().parents[1]
VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "PJRT_NPROC", "NPROC",
        "XLA_FLAGS", "EMWIDGETS_NO_THREAD_CAP", "EMWIDGETS_CGROUP_ROOT")
MANY_CORES = pytest.mark.skipif(_threads.available_cpus() < 2,
                                reason="a cap below the affinity needs at least 2 CPUs here")


def v2(tmp_path, text):
    (tmp_path / "cpu.max").write_text(text + "\n")
    return str(tmp_path)


def v1(tmp_path, quota, period, sub="cpu,cpuacct"):
    d = tmp_path / sub
    d.mkdir()
    (d / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (d / "cpu.cfs_period_us").write_text(f"{period}\n")
    return str(tmp_path)


@pytest.mark.parametrize("text, limit", [("100000 100000", 1.0), ("150000 100000", 1.5),
                                         ("50000 100000", 0.5), ("max 100000", None),
                                         ("garbage", None)])
def test_cgroup_v2_quota(tmp_path, text, limit):
    assert cgroup_cpu_limit(v2(tmp_path, text), "/") == limit


@pytest.mark.parametrize("quota, period, limit", [(200000, 100000, 2.0), (-1, 100000, None),
                                                  (25000, 50000, 0.5)])
def test_cgroup_v1_quota(tmp_path, quota, period, limit):
    assert cgroup_cpu_limit(v1(tmp_path, quota, period), "/") == limit


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert cgroup_cpu_limit(str(tmp_path), "/") is None
    assert usable_cpus(str(tmp_path), "/") == _threads.available_cpus()


def test_the_smallest_quota_on_the_path_counts(tmp_path):
    v2(tmp_path, "400000 100000")
    child = tmp_path / "kubepods" / "pod1"
    child.mkdir(parents=True)
    (child / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(str(tmp_path), "/kubepods/pod1") == 1.5
    (tmp_path / "kubepods" / "cpu.max").write_text("100000 100000\n")
    assert cgroup_cpu_limit(str(tmp_path), "/kubepods/pod1") == 1.0
    # a path that does not exist below the root (no cgroup namespace): the root's quota
    assert cgroup_cpu_limit(str(tmp_path), "/elsewhere/x") == 4.0


@pytest.mark.parametrize("text, n", [("100000 100000", 1), ("150000 100000", 2),
                                     ("50000 100000", 1), ("max 100000", None)])
def test_usable_cpus_is_the_quota_rounded_up_and_bounded_by_the_affinity(
        tmp_path, monkeypatch, text, n):
    monkeypatch.setattr(_threads, "available_cpus", lambda: 64)
    root = v2(tmp_path, text)
    assert usable_cpus(root, "/") == (64 if n is None else n)
    monkeypatch.setattr(_threads, "available_cpus", lambda: 1)
    assert usable_cpus(root, "/") == 1


def test_cap_sets_only_what_the_user_left_unset(tmp_path, monkeypatch):
    monkeypatch.setattr(_threads, "available_cpus", lambda: 64)
    root = v2(tmp_path, "150000 100000")
    env = {"OMP_NUM_THREADS": "3", "XLA_FLAGS": "--xla_dump_to=/tmp/x"}
    assert cap_threads(env, root, "/") == 2
    assert env["OMP_NUM_THREADS"] == "3"
    assert env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["PJRT_NPROC"] == "2"
    assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x"  # eigen stays multi-threaded above 1 CPU

    env = {"NPROC": "5"}
    assert cap_threads(env, v2(tmp_path, "100000 100000"), "/") == 1
    assert "PJRT_NPROC" not in env  # jaxlib reads PJRT_NPROC before NPROC: the user's NPROC wins
    assert env["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=false"

    env = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true"}
    cap_threads(env, root, "/")
    assert env["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=true"


def test_no_cap_without_a_quota_below_the_affinity_or_when_opted_out(tmp_path, monkeypatch):
    monkeypatch.setattr(_threads, "available_cpus", lambda: 2)
    for text in ("max 100000", "200000 100000", "800000 100000"):
        env = {}
        assert cap_threads(env, v2(tmp_path, text), "/") is None
        assert env == {}
    env = {"EMWIDGETS_NO_THREAD_CAP": "1"}
    assert cap_threads(env, v2(tmp_path, "100000 100000"), "/") is None
    assert env == {"EMWIDGETS_NO_THREAD_CAP": "1"}


def test_env_var_names_the_root(tmp_path, monkeypatch):
    monkeypatch.setattr(_threads, "available_cpus", lambda: 8)
    env = {"EMWIDGETS_CGROUP_ROOT": v2(tmp_path, "300000 100000")}
    assert cap_threads(env, cgroup_path="/") == 3
    assert env["OMP_NUM_THREADS"] == "3"


PROBE = """
import json, os, collections
import emwidgets
import jax.numpy as jnp
x = jnp.ones((200, 200)); (x @ x).block_until_ready()
names = collections.Counter(open(f"/proc/self/task/{{t}}/comm").read().strip()
                            for t in os.listdir("/proc/self/task"))
keys = {keys}
print(json.dumps({{"env": {{k: os.environ.get(k) for k in keys}},
                  "xla_pool": names.get("tf_XLAEigen", 0)}}))
"""


def probe(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k not in VARS}
    out = subprocess.run([sys.executable, "-c", PROBE.format(keys=list(VARS))], cwd=tmp_path,
                         env={**base, **env}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@MANY_CORES
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_import_emwidgets_caps_jax_and_blas_to_a_simulated_quota(tmp_path):
    root = v2(tmp_path, "100000 100000")
    capped = probe(tmp_path, EMWIDGETS_CGROUP_ROOT=root)
    assert capped["env"]["OMP_NUM_THREADS"] == capped["env"]["OPENBLAS_NUM_THREADS"] == "1"
    assert capped["env"]["MKL_NUM_THREADS"] == capped["env"]["PJRT_NPROC"] == "1"
    assert capped["env"]["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=false"

    free = probe(tmp_path, EMWIDGETS_CGROUP_ROOT=root, EMWIDGETS_NO_THREAD_CAP="1")
    assert free["env"]["OMP_NUM_THREADS"] is None and free["env"]["PJRT_NPROC"] is None
    if free["xla_pool"] == 0:
        pytest.skip("this jaxlib names its CPU pool differently: pool size not checked")
    # XLA's pool: one thread per CPU of the affinity, one under the quota
    assert free["xla_pool"] == _threads.available_cpus()
    assert capped["xla_pool"] == 1


@pytest.mark.slow
@MANY_CORES
def test_the_users_own_settings_are_respected_at_import(tmp_path):
    root = v2(tmp_path, "100000 100000")
    got = probe(tmp_path, EMWIDGETS_CGROUP_ROOT=root, OMP_NUM_THREADS="2", NPROC="2")
    assert got["env"]["OMP_NUM_THREADS"] == "2"
    assert got["env"]["OPENBLAS_NUM_THREADS"] == "1"
    assert got["env"]["PJRT_NPROC"] is None
    if got["xla_pool"]:
        assert got["xla_pool"] == 2


def test_the_thread_cap_runs_before_anything_imports_numpy_or_jax():
    source = (ROOT / "emwidgets" / "__init__.py").read_text()
    code = [line for line in source.splitlines()
            if line.strip() and not line.startswith("#") and not line.startswith('"""')]
    assert code[0].startswith("from ._threads import")
    assert code[1] == "_cap_threads()"
    tree = ast.parse((ROOT / "emwidgets" / "_threads.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or ".").split(".")[0])
    assert imported <= {"__future__", "math", "os"}, imported
