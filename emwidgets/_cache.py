"""JAX's on-disk compilation cache, on by default.

A fit compiles its programs the first time a configuration (shapes, covariance
type, initialisation) is seen; on a CPU that is most of a first fit's time.
With the cache, a new kernel loads the programs a previous kernel compiled.

Rules, applied once when emwidgets is imported:

* ``EMWIDGETS_COMPILATION_CACHE=0`` (or ``off``, ``false``, ``no``) leaves JAX
  untouched: no cache.
* If the user configured JAX's own cache (``JAX_COMPILATION_CACHE_DIR`` or
  ``jax.config.update("jax_compilation_cache_dir", ...)`` before importing
  emwidgets), that configuration is respected as it is.
* Otherwise the cache lives in ``EMWIDGETS_COMPILATION_CACHE`` if that names a
  directory, else in the user's cache directory (``$XDG_CACHE_HOME`` or
  ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on
  Windows) under ``emwidgets/jax``.

Every program is cached (JAX's default skips those compiling in under a second,
which on a CPU are most of ours), and the cache is bounded (``MAX_BYTES``,
least recently used entries evicted). A bound also makes JAX take a file lock
around every read and write, so kernels sharing the directory never read an
entry another one is half-way through writing (without it, a torn entry stays
on disk and every later kernel recompiles that program, with a warning).
"""

from __future__ import annotations

import os
import sys

#: The environment variable: ``0``/``off`` disables the cache, a path chooses its directory.
ENV = "EMWIDGETS_COMPILATION_CACHE"
#: The cache's size bound (least recently used programs are evicted beyond it).
MAX_BYTES = 2 * 1024**3
_OFF = {"0", "off", "false", "no"}


def default_directory() -> str:
    """``<user cache directory>/emwidgets/jax``."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser(r"~\AppData\Local")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "emwidgets", "jax")


def configure(directory: str | None = None, force: bool = False) -> str | None:
    """Turn the cache on (see the module's rules); returns its directory, or None if off.

    ``force`` (what :func:`emwidgets.enable_compilation_cache` passes) turns
    it on whatever ``EMWIDGETS_COMPILATION_CACHE`` says; a ``directory`` given
    replaces a cache directory configured before.
    """
    import jax

    setting = os.environ.get(ENV, "").strip()
    if not force and setting.lower() in _OFF:
        return None
    configured = jax.config.jax_compilation_cache_dir
    if configured and directory is None:
        return configured  # the user's own JAX configuration wins
    directory = directory or (setting if setting and setting.lower() not in _OFF
                              else default_directory())
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return None  # a read-only home: fits still work, they compile each time
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    try:
        import filelock  # noqa: F401  (JAX's eviction and locking need it)

        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    except ImportError:
        pass
    # A program compiled before this (JAX used before emwidgets was imported)
    # made JAX decide "no cache" for the process; let it decide again.
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()
    return directory
