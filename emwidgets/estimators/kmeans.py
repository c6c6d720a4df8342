"""KMeans: Lloyd's algorithm as hard EM, every restart at once, with
scikit-learn's parameter names, defaults and fitted attributes, plus ``restarts_``."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..core import em, gmm, hard_em, host_kmeans, layout, starts, stream
from . import validation
from .base import LiveFit, Restarts, _padded_key_data, _restarts_from_state
from .mixture import MixtureEstimator, Problem, ProgramPlan, check_sample_weight

# Restart grouping (em.group_size_for), from measurements on a 2-core CPU:
# a Lloyd iteration is light and memory-bound, so batching restarts gains little
# once N x K reaches about 2**20 while waiting for the slowest restart costs 2-4x;
# a mixture iteration is two wide matrix products that batching speeds up.
KMEANS_GROUP_TARGET = 2.0**20


def _kmeans_layout(n_restarts: int, n_padded: int, block_size: int, k: int, d: int):
    """(group size, block size) for k-means restarts on data padded to n_padded rows."""
    group = em.group_size_for(n_restarts, n_padded * k, KMEANS_GROUP_TARGET)
    block = layout.coarser_block(n_padded, block_size, group * (2 * k) + d + 1)
    return group, block

# ---------------------------------------------------------------------------
# K-means
# ---------------------------------------------------------------------------

@em.sized_jit()
def _final_assignment(centers, data: em.Data):
    """Inertia (sum of squared distances) and labels (R, N) of each restart's final centres."""
    def one(c):
        d2 = hard_em.squared_distances(data.x, c)
        return (d2.min(axis=1) * data.w).sum(), jnp.argmin(d2, axis=1)
    return jax.vmap(one)(centers)


@em.sized_jit(static_argnames=("n_clusters", "method"))
def _kmeans_start(draws: starts.InitDraws, data: em.Data, tol, given, n_real, *, n_clusters: int,
                  method: str):
    """The initial state of every restart and the scaled tolerance, in one program.

    ``method`` is ``k-means++`` (from ``draws.uniforms``), ``random``
    (the samples ``draws.indices``) or ``given`` (the (R, K, D) ``given`` centres).
    """
    if method == "given":
        centers = given
    elif method == "k-means++":
        centers = jax.vmap(lambda u: hard_em.kmeans_plusplus(u, data.x, data.w, n_clusters)[0])(
            draws.uniforms)
    else:
        centers = data.x[draws.indices]
    return (em.init_state(hard_em.KMeansParams(centers), n_real=n_real),
            gmm.kmeans_tol_scaled(data, tol))


class KMeans(MixtureEstimator):
    """K-means (Lloyd) as hard EM, every restart at once.

    Parameters follow :class:`sklearn.cluster.KMeans`: ``init`` is
    ``'k-means++'``, ``'random'`` or an (n_clusters, n_features) array;
    ``n_init='auto'`` means 1 restart for k-means++ and for an array, 10 for
    random; ``tol`` is relative to the mean feature variance. An empty cluster
    keeps its centre (scikit-learn moves it to a far point).

    ``devices`` (``"all"`` or a list of JAX devices): the restarts (small data) or the rows
    spread over several devices, as for :class:`~emwidgets.GaussianMixture`.

    Fitted attributes: ``cluster_centers_``, ``labels_``, ``inertia_``,
    ``n_iter_``, ``n_features_in_``, ``restarts_`` (objective = minus the
    mean squared distance to the nearest centre).
    """

    _estimator_type = "clusterer"

    def __init__(self, n_clusters=8, *, init="k-means++", n_init="auto", max_iter=300, tol=1e-4,
                 random_state=None, devices=None, dtype=None):
        self.dtype = dtype
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.devices = devices

    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type="clusterer", target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(), input_tags=InputTags())

    def _n_restarts(self) -> int:
        if self.n_init == "auto":
            return 10 if isinstance(self.init, str) and self.init == "random" else 1
        validation.check_int("n_init", self.n_init, 1)
        return int(self.n_init)

    def _n_fitted(self) -> int:
        return self.n_clusters

    # The hooks of MixtureEstimator.start (the one fitting pipeline).
    def _check_settings(self):
        validation.check_int("n_clusters", self.n_clusters, 1)
        validation.check_int("max_iter", self.max_iter, 1)
        validation.check_positive("tol", self.tol, allow_zero=True)
        if isinstance(self.init, str):
            validation.check_in("init", self.init, ("k-means++", "random"))

    def _problem(self, X, sample_weight) -> Problem:
        """Standardised rows (scikit-learn's ``tol`` is relative to the data's variance;
        EM is equivariant), and a given ``init`` checked against them."""
        Xa = self._validate_X(X, reset=True)
        n, d = Xa.shape
        k = self.n_clusters
        if n < k:
            raise ValueError(f"n_samples={n} should be >= n_clusters={k}; reduce n_clusters or "
                             "pass more samples.")
        if not isinstance(self.init, str):
            c = np.asarray(self.init, dtype=np.float64)
            if c.shape != (k, d) or not np.isfinite(c).all():
                raise ValueError(f"'init' array has shape {c.shape}; ({k}, {d}) finite values "
                                 "are expected.")
        weights = None if sample_weight is None else check_sample_weight(sample_weight, n)
        # (A streamed fit gives the whole source's scaling: MixtureEstimator._start_stream.)
        scaling = getattr(self, "_given_scaling", None) or layout.fit_scaling(Xa, weights)
        validation.check_scale(scaling.scale)
        return Problem((Xa - scaling.shift) / scaling.scale, weights, scaling, d + 1,
                       n if weights is None else float(weights.sum()), {})

    def _block_width(self, problem: Problem, n_restarts: int, n_components: int) -> int:
        return 3 * n_components + problem.rows.shape[1] + 1

    def _plan(self, problem: Problem, n_restarts: int) -> ProgramPlan:
        plan = super()._plan(problem, n_restarts)
        group, block = _kmeans_layout(plan.n_restarts, plan.n_padded, plan.block_size,
                                      plan.n_components, problem.rows.shape[1])
        return plan._replace(block_size=block, group_size=group)

    def _check_plan(self, problem: Problem, plan: ProgramPlan):
        """Refuse up front a fit whose restarts would exhaust memory (one sentence, before a
        key is drawn): every restart's centres a few times over, its trace and key, the
        padded data, one block's distances."""
        d = problem.rows.shape[1]
        k, r = plan.n_components, plan.n_restarts
        numbers = (4.0 * r * k * d + r * (self.max_iter + 4) + 2.0 * plan.n_padded * (d + 1)
                   + 3.0 * plan.block_size * (k + d + 1))
        validation.check_memory(numbers * np.dtype(layout.float_dtype()).itemsize,
                                f"A k-means fit of {k} clusters with {self._n_restarts()} restarts",
                                "reduce n_init, n_clusters or max_iter")

    def _initial_state(self, problem: Problem, plan: ProgramPlan, data: em.Data, keys):
        (n, d), k, r_program = problem.rows.shape, self.n_clusters, plan.n_restarts
        dtype = data.x.dtype
        given, method = None, self.init
        if not isinstance(self.init, str):
            s = problem.scaling
            given = layout.to_device(np.broadcast_to(
                (np.asarray(self.init, np.float64) - s.shift) / s.scale, (r_program, k, d)),
                dtype)
            method = "given"
        draws = starts.for_method({"random": "random_samples"}.get(method, method),
                                  _padded_key_data(keys, r_program), n, data.x.shape[0], k, dtype)
        if method == "k-means++" and plan.quick:  # small data: seeded on the host
            given = layout.to_device(host_kmeans.kmeans_seeds(draws.uniforms, data.x, data.w, k),
                                     dtype)
            draws, method = starts.InitDraws(), "given"
        # (the tolerance scaled by the data's variance, in the same program)
        return _kmeans_start(draws, data, layout.to_device(self.tol, dtype), given,
                             np.int32(len(keys)), n_clusters=k, method=method, quick=plan.quick)

    def _model(self, problem: Problem, plan: ProgramPlan, data: em.Data):
        return hard_em.kmeans_family(), None, data

    def _stream_model(self, first, init, live0):
        scaling, d = live0.scaling, first.sample.shape[1]
        width = 3 * live0.run.state.status.shape[0] * self.n_clusters + d + 1

        def encode(x, w, rows, dtype):
            xp, wp = stream.pad_chunk((x - scaling.shift) / scaling.scale, w, rows, dtype)
            return em.Data(layout.to_device(xp), layout.to_device(wp))

        return hard_em.kmeans_family(), None, width, encode

    def _restarts(self, state, scaling, keys, objective=None, n_samples=None) -> Restarts:
        s2 = scaling.scale**2
        centers = (np.asarray(state.params.centers, np.float64)[:len(keys)] * scaling.scale
                   + scaling.shift)
        params = {"cluster_centers": centers}
        res = _restarts_from_state(state, params, keys, 0.0, objective=objective)
        res.objective = res.objective * s2
        res.trace = res.trace * s2
        res.gap = res.gap * s2
        return res

    def _finish(self, live: LiveFit):
        state, centers = live.run.state, live.run.state.params.centers
        if isinstance(live.run, stream.StreamRun):  # one more pass over the source
            inertia_std, labels = 0.0, []
            for x, w in live.run.chunks:
                one, lab = _final_assignment(centers, live.run.prepare_chunk(x, w))
                inertia_std = inertia_std + np.asarray(one, np.float64)
                labels.append(np.asarray(lab)[:, :len(x)])
            labels = np.concatenate(labels, axis=1)
        else:
            data = live.run.data
            sharding = getattr(data.x, "sharding", None)
            if sharding is not None and len(sharding.device_set) > 1:
                # (a fit over several devices: the last pass on one, as a fit on one would)
                data, centers = jax.tree.map(np.asarray, (data, centers))
            inertia_std, labels = _final_assignment(centers, data, quick=live.run.quick)
        inertia_std = np.asarray(inertia_std, np.float64)[:len(live.keys)]
        restarts = self._restarts(state, live.scaling, live.keys,
                                  objective=-inertia_std / live.n_samples)
        b = restarts.best
        self.cluster_centers_ = restarts.params["cluster_centers"][b]
        self.inertia_ = float(-restarts.objective[b] * live.n_samples)
        self.n_iter_ = int(restarts.n_iter[b])
        self.restarts_ = restarts
        self._scaling = live.scaling
        self.labels_ = np.asarray(labels)[b, : live.n_rows]
        return self

    def transform(self, X):
        """(N, K) distances to each centre."""
        Xa = self._validate_X(X, reset=False)
        c = self.cluster_centers_
        d2 = (Xa * Xa).sum(1)[:, None] - 2 * Xa @ c.T + (c * c).sum(1)[None, :]
        return np.sqrt(np.maximum(d2, 0.0))

    def fit_transform(self, X, y=None, sample_weight=None):
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def predict(self, X):
        return self.transform(X).argmin(axis=1)

    def fit_predict(self, X, y=None, sample_weight=None):
        return self.fit(X, sample_weight=sample_weight).labels_

    def score(self, X, y=None):
        """Minus the inertia of X under the fitted centres (scikit-learn's sign)."""
        return -float((self.transform(X).min(axis=1) ** 2).sum())
