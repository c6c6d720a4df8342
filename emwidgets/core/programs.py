"""Traced programs kept on disk, so a new kernel skips tracing as well as compiling.

JAX's compilation cache (:mod:`emwidgets._cache`) saves XLA's work, but a new
process still traces and lowers every program before it can look the cache up:
on a CPU that was 0.35 s of a 0.45 s first fit of Old Faithful with the cache
warm (tracing 0.16 s, lowering 0.19 s, loading 0.06 s). :class:`StoredJit`
keeps each traced program as a serialised :mod:`jax.export` module beside the
compilation cache; a later process reads it back and calls it under
``jax.jit``, which lowers a one-line wrapper and finds the compiled program in
the cache.

Every call goes through the exported module, stored or not (the one path: a
first process and a later one run the same program, and give the same
numbers). A program is keyed by its name, its static arguments, the abstract
signature of its array arguments (tree structure, shapes, dtypes), the
compiler options, the JAX/jaxlib versions, the backend and a fingerprint of
emwidgets' own source, so a changed program is never read back. Files are
written atomically (a temporary file renamed), and one that cannot be read is
ignored and rewritten, so kernels sharing the directory never see a torn one.

The directory is ``emwidgets-programs`` inside JAX's compilation-cache
directory (JAX's own eviction only touches its ``*-cache`` files); with the
cache off (``EMWIDGETS_COMPILATION_CACHE=0`` or no JAX cache configured)
programs are exported in memory only. Arguments that are tracers (a call from
inside another traced function) go to plain ``jax.jit``.

A process keeps at most :data:`MAX_LIVE` compiled programs (all StoredJits
together), the least recently called evicted first: every compiled CPU program
holds its machine code in about a hundred memory mappings, and Linux allows a
process 65,530 (``vm.max_map_count``). Before the bound, a kernel that had
compiled some 600 programs (an afternoon of exploring, or a test worker) had
LLVM fail to map memory and died of a segmentation fault. An evicted program
comes back from the on-disk caches (milliseconds, counted as loaded, not
compiled) the next time it is called.

A file holds the serialised module (``Exported.serialize``, which needs the
``flatbuffers`` package) and the pickled tree structure of the outputs. Like
JAX's own cache entries, files in the directory are trusted: it is the user's.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import threading
import weakref
from collections import OrderedDict
from pathlib import Path

import jax

#: Stored programs beyond this many bytes in all: the least recently used are deleted.
MAX_BYTES = 256 * 1024**2
SUFFIX = ".jaxexport"
#: Compiled programs a process keeps at once (module doc: memory mappings).
MAX_LIVE = 128
_lock = threading.RLock()  # re-entrant: a weak reference's callback may run under it
#: One thread at a time computes with JAX through emwidgets (every public estimator method
#: holds it: :func:`emwidgets.estimators.base.in_precision`; the explorers' views too).
#: Two threads executing programs at once on the CPU client (an explorer's Run beside its
#: background warm-up) hung for ever about once in a dozen runs of a digits explorer: both
#: waited in ``BlockUntilReady`` for results that never came, XLA's threads idle. A
#: StoredJit lets it go while it traces and compiles (:func:`_while_compiling`): a Run then
#: waits for the warm-up's current iteration, not for its compilation (1.5 s with it held).
executing = threading.RLock()


class _while_compiling:
    """Context: this thread lets ``executing`` go (every level it holds) while it prepares a
    program, and takes it back after, with no program's lock held: the lock order stays
    ``executing``, then a program's, so a thread that executes and then waits for a program
    another thread compiles never waits on a thread that waits for it."""

    def __enter__(self):
        self._state = executing._release_save() if executing._is_owned() else None

    def __exit__(self, *exc):
        if self._state is not None:
            executing._acquire_restore(self._state)
# (id of a StoredJit, key) -> weak reference to it, least recently called first.
_live: OrderedDict = OrderedDict()


def live_programs() -> int:
    """How many compiled programs the StoredJits hold now (at most MAX_LIVE)."""
    with _lock:
        return len(_live)


def _used(owner: "StoredJit", key) -> None:
    """Mark a program as just called, and evict the least recently called beyond MAX_LIVE."""
    evicted = []
    with _lock:
        slot = (id(owner), key)
        if slot in _live:
            _live.move_to_end(slot)
        else:
            _live[slot] = weakref.ref(owner, lambda _, s=slot: _forget(s))
        while len(_live) > MAX_LIVE:
            (_, old), ref = _live.popitem(last=False)
            evicted.append((ref(), old))
    for other, old in evicted:  # outside the lock: dropping a program frees its code
        if other is not None:
            other.drop(old)


def _forget(slot) -> None:
    with _lock:
        _live.pop(slot, None)


@functools.lru_cache(maxsize=1)
def _source_fingerprint() -> str:
    """A hash of emwidgets' own Python files (a changed program is never read back)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def directory() -> Path | None:
    """Where programs are stored: beside JAX's compilation cache, or None (memory only)."""
    base = jax.config.jax_compilation_cache_dir
    return None if not base else Path(base) / "emwidgets-programs"


def _environment() -> tuple:
    import jaxlib

    backend = jax.default_backend()
    device = jax.devices()[0]
    return (jax.__version__, jaxlib.__version__, backend,
            getattr(device, "device_kind", ""), bool(jax.config.jax_enable_x64),
            _source_fingerprint())


def _evict(folder: Path) -> None:
    """Keep the folder under MAX_BYTES, deleting the least recently used files first."""
    try:
        files = [(p.stat(), p) for p in folder.glob(f"*{SUFFIX}")]
    except OSError:
        return
    total = sum(st.st_size for st, _ in files)
    for st, path in sorted(files, key=lambda f: f[0].st_mtime):
        if total <= MAX_BYTES:
            break
        try:
            path.unlink()
            total -= st.st_size
        except OSError:
            pass


def _aval(x):
    """(shape, dtype, weak_type) of an array, a Python or NumPy scalar, or a ShapeDtypeStruct."""
    if isinstance(x, jax.ShapeDtypeStruct):
        return tuple(x.shape), str(x.dtype), bool(x.weak_type)
    a = jax.typeof(x)
    return tuple(a.shape), str(a.dtype), bool(getattr(a, "weak_type", False))


class StoredJit:
    """``jax.jit(fun, static_argnames=...)`` whose traced programs persist (module doc).

    Call it as the function: static arguments by keyword (their values must be
    hashable and have a stable ``repr``), the rest as arrays or pytrees of them.
    :meth:`lower` also takes ``jax.ShapeDtypeStruct`` in place of arrays.
    """

    def __init__(self, fun, *, name: str | None = None, static_argnames=(),
                 compiler_options: dict | None = None, key_extra: tuple = (),
                 persist: bool = True):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.name = name or fun.__name__
        self.static_argnames = tuple(static_argnames)
        self.compiler_options = compiler_options
        self.key_extra = key_extra  # what the program depends on beyond its arguments
        self.persist = persist
        self._plain = jax.jit(fun, static_argnames=self.static_argnames,
                              compiler_options=compiler_options)
        self._exported: dict = {}  # key -> (jitted wrapper of the exported module, out tree)
        self._compiled: dict = {}  # key -> (compiled program, out tree); see MAX_LIVE
        self._pending: dict = {}  # key -> lock held while one thread prepares it

    def cache_size(self) -> int:
        return len(self._compiled) + self._plain._cache_size()

    def _split(self, args, kwargs):
        kwargs = dict(kwargs)
        static = {k: kwargs.pop(k) for k in self.static_argnames if k in kwargs}
        leaves, in_tree = jax.tree.flatten((args, kwargs))
        signature = tuple(map(_aval, leaves))
        return (tuple(sorted(static.items())), in_tree, signature), static, leaves

    def __call__(self, *args, **kwargs):
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((args, kwargs))):
            return self._plain(*args, **kwargs)
        key, static, leaves = self._split(args, kwargs)
        entry = self._compiled.get(key) or self._compile(key, static)
        _used(self, key)
        compiled, out_tree = entry
        # (The compiled program is called directly: as quick as jit's dispatch, and
        # it never compiles a second time while it is live.)
        return jax.tree.unflatten(out_tree, compiled(*leaves))

    def lower(self, *args, **kwargs):
        """The lowered program for these arguments (arrays or ShapeDtypeStructs)."""
        key, static, _ = self._split(args, kwargs)
        wrapper, _ = self._export_once(key, static)
        return wrapper.lower(*self._specs(key))

    @staticmethod
    def _specs(key):
        return [jax.ShapeDtypeStruct(s, d, weak_type=w) for s, d, w in key[2]]

    def _locked(self, key):
        # One thread prepares a program; another asking for it (a Run while the
        # explorer's warm-up prepares the same one) waits for it, not prepares it too.
        with _lock:
            return self._pending.setdefault(key, threading.RLock())

    def _compile(self, key, static):
        with _while_compiling(), self._locked(key):  # (others execute meanwhile)
            entry = self._compiled.get(key)
            if entry is None:
                wrapper, out_tree = self._export_once(key, static)
                entry = (wrapper.lower(*self._specs(key)).compile(), out_tree)
                self._compiled[key] = entry
        return entry

    def drop(self, key) -> None:
        """Evicted (MAX_LIVE): forget the compiled program and the wrapper whose
        jit caches hold it too, so its code is unmapped; both come back on demand."""
        with self._locked(key):
            self._compiled.pop(key, None)
            self._exported.pop(key, None)

    def _export_once(self, key, static):
        with self._locked(key):
            entry = self._exported.get(key)
            if entry is None:
                entry = self._exported[key] = self._program(key, static)
        return entry

    def _file_key(self, key) -> str:
        text = repr((self.name, self.key_extra, key[0], str(key[1]), key[2],
                     sorted((self.compiler_options or {}).items()), _environment()))
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    def _program(self, key, static):
        folder = directory() if self.persist else None
        path = None
        if folder is not None:
            path = folder / f"{self.name}-{self._file_key(key)}{SUFFIX}"
            loaded = self._load(path)
            if loaded is not None:
                return self._wrap(*loaded)
        exported, out_tree = self._export(key, static)
        if path is not None:
            self._save(path, exported, out_tree)
        return self._wrap(exported, out_tree)

    def _export(self, key, static):
        out_tree = []
        fun, in_tree = self.fun, key[1]

        def flat(*flat_args):
            args, kwargs = jax.tree.unflatten(in_tree, flat_args)
            out, tree = jax.tree.flatten(fun(*args, **kwargs, **static))
            out_tree.append(tree)
            return out

        flat.__name__ = self.name
        exported = jax.export.export(jax.jit(flat))(*self._specs(key))
        return exported, out_tree[0]

    def _wrap(self, exported, out_tree):
        def program(*flat_args):
            return exported.call(*flat_args)

        program.__name__ = self.name
        wrapper = jax.jit(program, compiler_options=self.compiler_options)
        wrapper.exported = exported
        return wrapper, out_tree

    @staticmethod
    def _load(path: Path):
        try:
            blob = path.read_bytes()
            os.utime(path)  # recently used: evicted last
        except OSError:
            return None
        try:
            tree_bytes, module = pickle.loads(blob)
            return jax.export.deserialize(bytearray(module)), pickle.loads(tree_bytes)
        except Exception:  # a torn or foreign file: export again and replace it
            return None

    @staticmethod
    def _save(path: Path, exported, out_tree) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            blob = pickle.dumps((pickle.dumps(out_tree), bytes(exported.serialize())))
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_bytes(blob)
            os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one
            with _lock:
                _evict(path.parent)
        except (OSError, ImportError):
            # A read-only or full disk, or no flatbuffers (JAX's serialisation needs
            # it): the program still runs, it is not kept.
            pass

