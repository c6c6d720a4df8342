"""Old pipeline = new pipeline, on the same seeds (issue 27: prove it before deleting the old).

    git stash / checkout OLD;  python benchmarks/pipeline_equivalence.py save /tmp/old.npz
    git checkout NEW;          python benchmarks/pipeline_equivalence.py compare /tmp/old.npz

Fits every column of tests/_models.py and the variants a refactor of the fitting pipelines
can break (each covariance type and initialisation, given starts, priors, weights, missing
values, masked programs, SQUAREM, the gap rule, a streamed source, replay) in float64, and
stores every restart's trace, iteration count, status and parameters. ``compare`` prints the
largest difference of each case and exits 1 if any trace differs by more than 1e-10
(relative) or any iteration count or status differs.
"""

import sys
import warnings
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
warnings.simplefilter("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _models import MODELS  # noqa: E402

import emwidgets as E  # noqa: E402


def cases():
    blobs = MODELS["GaussianMixture"].data()[0]
    holes = MODELS["GaussianMixture(missing)"].data()[0]
    w = np.random.default_rng(7).integers(0, 4, len(blobs)).astype(float)
    for name, m in MODELS.items():
        X, kw = m.data()
        yield name, lambda m=m, X=X, kw=kw: m.make().fit(X, **kw)
        if name not in ("KMeans",):
            yield name + " squarem", lambda m=m, X=X, kw=kw: m.make(accelerate="squarem").fit(
                X, **kw)
    kw = dict(n_init=4, random_state=3, tol=1e-9, max_iter=60)
    for cov in ("full", "tied", "diag", "spherical"):
        for init in ("kmeans", "k-means++", "random", "random_from_data"):
            yield f"gmm {cov} {init}", lambda c=cov, i=init: E.GaussianMixture(
                3, covariance_type=c, init_params=i, **kw).fit(blobs)
        yield f"gmm {cov} missing", lambda c=cov: E.GaussianMixture(
            3, covariance_type=c, missing="em", **kw).fit(holes)
        yield f"gmm {cov} prior", lambda c=cov: E.GaussianMixture(
            3, covariance_type=c, prior="default", **kw).fit(blobs)
        yield f"gmm {cov} weights", lambda c=cov: E.GaussianMixture(
            3, covariance_type=c, **kw).fit(blobs, sample_weight=w)
    yield "gmm means_init", lambda: E.GaussianMixture(
        3, means_init=blobs[:3], **kw).fit(blobs)
    yield "gmm gap rule", lambda: E.GaussianMixture(3, convergence="gap", **kw).fit(blobs)
    yield "gmm gap rule squarem", lambda: E.GaussianMixture(
        3, convergence="gap", accelerate="squarem", **kw).fit(blobs)
    yield "poisson gap rule streamed", lambda: E.PoissonMixture(2, convergence="gap", **kw).fit(
        E.Chunks(MODELS["PoissonMixture"].data()[0], chunk_rows=70, progress=False))
    yield "poisson hmm gap rule squarem", lambda: MODELS["PoissonHMM"].make(
        convergence="gap", accelerate="squarem").fit(MODELS["PoissonHMM"].data()[0])
    yield "gmm streamed", lambda: E.GaussianMixture(3, **kw).fit(
        E.Chunks(blobs, chunk_rows=70, progress=False))
    yield "gmm streamed missing", lambda: E.GaussianMixture(3, missing="em", **kw).fit(
        E.Chunks(holes, chunk_rows=70, progress=False))
    yield "gmm replay", lambda: E.GaussianMixture(3, **kw).fit(blobs).replay(blobs, 2)
    yield "gmm masked program", lambda: _masked(E.GaussianMixture(2, **kw), blobs)
    yield "poisson masked program", lambda: _masked(
        E.PoissonMixture(2, **kw), MODELS["PoissonMixture"].data()[0])
    yield "poisson weights", lambda: E.PoissonMixture(2, **kw).fit(
        MODELS["PoissonMixture"].data()[0], sample_weight=w)
    yield "poisson streamed", lambda: E.PoissonMixture(2, **kw).fit(
        E.Chunks(MODELS["PoissonMixture"].data()[0], chunk_rows=70, progress=False))
    for init in ("k-means++", "random"):
        yield f"kmeans {init}", lambda i=init: E.KMeans(3, init=i, n_init=4, random_state=1,
                                                        max_iter=60).fit(blobs)
    chain = MODELS["GaussianHMM"].data()[0]
    lengths = [len(chain) // 3, len(chain) // 3, len(chain) - 2 * (len(chain) // 3)]
    hkw = dict(n_init=4, random_state=3, tol=1e-9, n_iter=60, min_covar=1e-9)
    for cov in ("full", "tied", "diag", "spherical"):
        for init in ("kmeans", "random"):
            yield f"hmm {cov} {init} lengths", lambda c=cov, i=init: E.GaussianHMM(
                2, covariance_type=c, init_params=i, **hkw).fit(chain, lengths)
    yield "hmm masked program", lambda: E.GaussianHMM(2, **hkw).compile_for(4).fit(chain)
    yield "hmm squarem lengths", lambda: E.GaussianHMM(2, accelerate="squarem", **hkw).fit(
        chain, lengths)
    yield "hmm replay", lambda: E.GaussianHMM(2, **hkw).fit(chain).replay(chain, 1)
    for name in ("PoissonHMM", "CategoricalHMM"):
        X = MODELS[name].data()[0]
        yield f"{name} lengths", lambda n=name, X=X: MODELS[n].make(n_init=4).fit(
            X, [len(X) // 2, len(X) - len(X) // 2])
    yield "kmeans given", lambda: E.KMeans(3, init=blobs[:3], n_init=1).fit(blobs)


def _masked(est, X):
    return est.compile_for(5).fit(X)  # the explorers' masked program


def record(est) -> dict:
    r = est.restarts_
    out = {"trace": np.asarray(r.trace, np.float64), "n_iter": np.asarray(r.n_iter),
           "status": np.asarray([str(s) for s in r.status])}
    for i, leaf in enumerate(jax.tree.leaves(r.params)):
        out[f"param{i}"] = np.asarray(leaf, np.float64)
    return out


def main():
    mode, path = sys.argv[1], sys.argv[2]
    results = {}
    for name, fit in cases():
        for key, value in record(fit()).items():
            results[f"{name}|{key}"] = value
    if mode == "save":
        np.savez(path, **results)
        print(f"saved {len(results)} arrays of {len({k.split('|')[0] for k in results})} cases")
        return
    old = np.load(path)
    bad = 0
    for case in sorted({k.split("|")[0] for k in results}):
        keys = [k for k in results if k.startswith(case + "|")]
        worst, message = 0.0, ""
        for k in keys:
            a, b = results[k], old[k] if k in old else None
            if b is None or a.shape != b.shape:
                message = f"{k}: shape {None if b is None else b.shape} -> {a.shape}"
                break
            if a.dtype.kind in "US" or k.endswith("n_iter"):
                if not np.array_equal(a, b):
                    message = f"{k} differs"
                    break
                continue
            finite = np.isfinite(b)
            if not np.array_equal(finite, np.isfinite(a)):
                message = f"{k}: NaN pattern differs"
                break
            if finite.any():
                rel = np.abs(a[finite] - b[finite]) / np.maximum(np.abs(b[finite]), 1e-300)
                worst = max(worst, float(rel.max()))
        ok = not message and worst <= 1e-10
        bad += not ok
        print(f"{'ok  ' if ok else 'DIFF'} {case:32s} max relative difference {worst:.1e} "
              f"{message}")
    print(f"{bad} of {len({k.split('|')[0] for k in results})} cases differ")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
