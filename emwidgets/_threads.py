"""Size the CPU thread pools to the container's CPU quota, before JAX and NumPy start them.

Binder (and Kubernetes) run the kernel in a container with a CPU *quota* of about one CPU on a
host with dozens of cores, while its CPU affinity still lists every core. XLA sizes its
intra-op pool (the ``tf_XLAEigen`` threads) and OpenBLAS / MKL / OpenMP size theirs from the
affinity, so they start one thread per host core and the kernel is throttled
(jax-ml/jax#27028). :func:`cap_threads` reads the quota from the cgroup (v2 ``cpu.max``, v1
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), and when it allows fewer CPUs than the affinity
lists, sets, each only where the user has not set it:

* ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` (read when the library
  loads);
* ``PJRT_NPROC``, the size of XLA's CPU pool (read when JAX creates its CPU backend; jaxlib
  reads ``PJRT_NPROC`` then ``NPROC``, so neither is touched when either is set);
* with a quota of one CPU, ``--xla_cpu_multi_thread_eigen=false`` appended to ``XLA_FLAGS``
  (unless ``XLA_FLAGS`` already names that flag).

XLA has no ``intra_op_parallelism_threads`` flag: ``XLA_FLAGS=--intra_op_parallelism_threads=1``
aborts the process ("Unknown flag"), and the form without dashes, often quoted, is ignored
after another flag, or taken for a file name on its own; it is therefore never set here.

``import emwidgets`` calls :func:`cap_threads` first of all. If JAX or NumPy were imported before,
the variables are still set (and inherited by child processes), but a pool already started keeps
its size: XLA's is started with the first computation, not at ``import jax``; NumPy's OpenBLAS
pool when NumPy is imported. Nothing is warned. ``EMWIDGETS_NO_THREAD_CAP=1`` turns it all off;
``EMWIDGETS_CGROUP_ROOT`` names another cgroup root (for tests).
"""

from __future__ import annotations

import math
import os

CGROUP_ROOT = "/sys/fs/cgroup"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_V1_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except (OSError, ValueError):
        return None


def _own_cgroups(proc_cgroup: str = "/proc/self/cgroup") -> tuple[str, str]:
    """This process's cgroup path: (v2 path, v1 path of the cpu controller), "/" if unknown."""
    v2, v1 = "/", "/"
    for line in (_read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            v2 = path or "/"
        elif "cpu" in controllers.split(","):
            v1 = path or "/"
    return v2, v1


def _ancestors(base: str, path: str) -> list[str]:
    """base/path, then each parent directory up to base itself (deepest first)."""
    parts = [p for p in path.strip("/").split("/") if p and p != ".."]
    return [os.path.join(base, *parts[:i]) for i in range(len(parts), -1, -1)]


def _quota_v2(text: str | None) -> float | None:
    # "quota period" or "max period"
    fields = (text or "").split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _quota_v1(quota: str | None, period: str | None) -> float | None:
    try:
        q, p = int(quota or ""), int(period or "")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None  # a quota of -1 means none


def cgroup_cpu_limit(root: str = CGROUP_ROOT, cgroup_path: str | None = None) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (1.5 for "150000 100000"), or None.

    ``root`` is the cgroup mount (``/sys/fs/cgroup``). ``cgroup_path`` is the process's cgroup
    below it (default: read from ``/proc/self/cgroup``); the quota of every ancestor counts, as
    the kernel applies the smallest. Both cgroup v2 and v1 layouts are read.
    """
    if cgroup_path is None:
        v2_path, v1_path = _own_cgroups()
    else:
        v2_path = v1_path = cgroup_path
    limits = []
    for directory in _ancestors(root, v2_path):
        limits.append(_quota_v2(_read(os.path.join(directory, "cpu.max"))))
    for sub in _V1_DIRS:
        for directory in _ancestors(os.path.join(root, sub), v1_path):
            limits.append(_quota_v1(_read(os.path.join(directory, "cpu.cfs_quota_us")),
                                    _read(os.path.join(directory, "cpu.cfs_period_us"))))
    # cgroup v1 mounted as the root itself (rare: a bare cpu controller mount)
    limits.append(_quota_v1(_read(os.path.join(root, "cpu.cfs_quota_us")),
                            _read(os.path.join(root, "cpu.cfs_period_us"))))
    limits = [x for x in limits if x is not None]
    return min(limits) if limits else None


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity), what the thread pools size themselves to."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def usable_cpus(root: str = CGROUP_ROOT, cgroup_path: str | None = None) -> int:
    """ceil(quota / period), bounded by the affinity; the affinity when there is no quota."""
    available = available_cpus()
    limit = cgroup_cpu_limit(root, cgroup_path)
    if limit is None:
        return available
    return max(1, min(available, math.ceil(limit - 1e-9)))


def cap_threads(environ=None, root: str | None = None,
                cgroup_path: str | None = None) -> int | None:
    """Cap the thread pools to the cgroup's CPU quota; return the cap, or None if none was needed.

    Sets only the variables the user has not set (see the module's docstring). ``environ``
    defaults to ``os.environ``; ``root`` to ``$EMWIDGETS_CGROUP_ROOT`` or ``/sys/fs/cgroup``.
    """
    env = os.environ if environ is None else environ
    if env.get("EMWIDGETS_NO_THREAD_CAP", "").strip() not in ("", "0"):
        return None
    if root is None:
        root = env.get("EMWIDGETS_CGROUP_ROOT") or CGROUP_ROOT
    try:
        n = usable_cpus(root, cgroup_path)
    except Exception:  # never let a strange /sys stop the import
        return None
    if n >= available_cpus():
        return None
    for name in THREAD_VARS:
        env.setdefault(name, str(n))
    if "PJRT_NPROC" not in env and "NPROC" not in env:
        env["PJRT_NPROC"] = str(n)
    flags = env.get("XLA_FLAGS", "")
    if n == 1 and "xla_cpu_multi_thread_eigen" not in flags:
        env["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    return n
