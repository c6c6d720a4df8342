"""Taking a run apart (issue 16): an iteration scrubber that shows restart r at iteration t
exactly, E-step and M-step half steps, a chosen start, an atlas of restarts."""

import warnings

import jax
import numpy as np
import pytest

from emwidgets import (
    GaussianHMM,
    GaussianMixture,
    LatentClassModel,
    PoissonMixture,
    StudentMixture,
    _compiles,
)


def _blobs(n=600, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(c, 0.8, (n // 3, 2)) for c in ([0, 0], [3, 1], [0, 4])])


def _families():
    rng = np.random.default_rng(1)
    X = _blobs()
    counts = rng.poisson(np.array([[1.0, 4.0], [6.0, 1.0]])[rng.choice(2, 500)]).astype(float)
    answers = (rng.random((400, 4)) < 0.2 + 0.6 * rng.choice(2, (400, 1))).astype(int)
    kw = dict(n_init=3, random_state=0, tol=1e-300)
    return {
        "gaussian full": (lambda **k: GaussianMixture(3, **kw, **k), X),
        "gaussian diag, missing": (lambda **k: GaussianMixture(
            3, covariance_type="diag", missing="em", **kw, **k),
            np.where((rng.random(X.shape) < 0.1) & (np.arange(2) == rng.choice(2, (len(X), 1))),
                     np.nan, X)),
        "gaussian squarem": (lambda **k: GaussianMixture(3, accelerate="squarem", **kw, **k), X),
        "poisson": (lambda **k: PoissonMixture(2, **kw, **k), counts),
        "latent classes": (lambda **k: LatentClassModel(2, **kw, **k), answers),
        "student t": (lambda **k: StudentMixture(3, **kw, **k), X),
        "gaussian hmm": (lambda **k: GaussianHMM(3, n_init=3, random_state=0, tol=1e-300,
                                                 n_iter=k.pop("max_iter"), **k), X),
    }


def _leaves(restarts):
    return [np.asarray(a, np.float64) for a in jax.tree.leaves(restarts.params)]


@pytest.mark.parametrize("family", list(_families()))
def test_scrubbing_to_iteration_t_equals_a_fit_stopped_at_t(family):
    make, X = _families()[family]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        live = make(max_iter=40).start(X)
        while not live.done:
            live.advance(7)  # several checkpoints, none at the iterations scrubbed to
        for t in (0, 1, 5, 13, 40):
            with _compiles.count(this_thread=True) as c:
                frame = live.at(t).snapshot()
            assert c.compiled == 0 and c.loaded == 0, (family, t, c)
            fresh = make(max_iter=max(t, 1)).start(X)
            if t:
                fresh.advance()
            for a, b in zip(_leaves(frame), _leaves(fresh.snapshot())):
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=f"{family} {t}")
    # the original run is untouched by the replays
    np.testing.assert_array_equal(live.snapshot().n_iter, live.at(40).snapshot().n_iter)
