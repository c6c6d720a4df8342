"""MixtureModel: a mixture of a component density of your own, written in JAX."""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..core import layout, starts, user_family
from . import information
from .mixture import FamilyMixture, Profile


class MixtureModel(FamilyMixture):
    """A mixture of any component density, fitted by EM with an autodiff M-step.

    Parameters:
        log_prob: ``log_prob(theta, x) -> scalar``, the log-density of one row
            ``x`` (shape (D,)) under one component's parameters ``theta`` (a dict
            or tuple of arrays, unconstrained: a scale as its log, say). Written
            with ``jax.numpy`` so that it can be differentiated.
        init: ``init(rng, X) -> theta`` for one component, on the host: ``rng``
            is a ``numpy.random.Generator`` (one per restart and component), ``X``
            the data; e.g. a random row as the location.
        n_components, tol, max_iter, n_init, random_state: as for
            :class:`GaussianMixture`.
        newton_steps: damped Newton steps per M-step (each at the best of a grid
            of step lengths that includes 0, so the log-likelihood never drops).

    Fitted attributes: ``weights_`` (K,), ``params_`` (``theta`` with a leading
    axis K), ``n_iter_``, ``converged_``, ``lower_bound_``, ``restarts_``.

    Example (a mixture of von Mises distributions on angles)::

        def log_prob(theta, x):
            kappa = jnp.exp(theta["log_kappa"])
            return (kappa * jnp.cos(x[0] - theta["mu"]) - jnp.log(2 * jnp.pi)
                    - jnp.log(jax.scipy.special.i0e(kappa)) - kappa)
        init = lambda rng, X: {"mu": rng.choice(X[:, 0]), "log_kappa": 0.0}
        MixtureModel(log_prob, init, n_components=2, n_init=8).fit(angles[:, None])
    """

    init_methods = ("user",)

    def __init__(self, log_prob: Callable = None, init: Callable = None, *, n_components=1,
                 tol=1e-10, max_iter=1000, n_init=4, newton_steps=3, random_state=None,
                 accelerate="squarem", convergence="gap",
                 devices=None, dtype=None):
        self.dtype = dtype
        self.log_prob = log_prob
        self.init = init
        self.n_components = n_components
        self.tol = tol
        self.accelerate = accelerate
        self.convergence = convergence
        self.devices = devices
        self.max_iter = max_iter
        self.n_init = n_init
        self.newton_steps = newton_steps
        self.random_state = random_state

    init_params = "user"

    def _encode(self, X, reset: bool) -> np.ndarray:
        if not callable(self.log_prob) or not callable(self.init):
            raise ValueError("MixtureModel needs log_prob(theta, x) and init(rng, X) functions; "
                             "see its docstring for an example.")
        return self._validate_X(X, reset=reset)

    def _family(self):
        return user_family.user_family(self.log_prob, int(self.newton_steps))

    def _hyper(self, n_components: int):
        return None

    def _initial_params(self, key_data, rows, weights, k):
        thetas = []
        for words in key_data:
            rng = starts.generator(words, starts.STREAM_PARAMS)
            thetas.append([self.init(rng, rows) for _ in range(k)])
        try:
            theta = jax.tree.map(lambda *a: np.stack([np.asarray(v, np.float64) for v in a]),
                                 *[jax.tree.map(lambda *c: np.stack(
                                     [np.asarray(v, np.float64) for v in c]), *t) for t in thetas])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"init returned parameters of different structures or shapes "
                             f"({exc}); return the same dict or tuple of arrays every time."
                             ) from None
        self._check_log_prob(jax.tree.map(lambda a: a[0, 0], theta), rows[0])
        return user_family.UserParams(np.full((len(key_data), k), 1.0 / k), theta)

    def _check_log_prob(self, theta, row):
        try:
            value = np.asarray(self.log_prob(jax.tree.map(jnp.asarray, theta), jnp.asarray(row)))
        except Exception as exc:  # the user's function: say what failed, in one sentence
            raise ValueError(f"log_prob(theta, x) failed on the first row with the initial "
                             f"parameters: {type(exc).__name__}: {exc}") from None
        if value.shape != ():
            raise ValueError(f"log_prob(theta, x) returned shape {value.shape}; it must return one "
                             "number, the log-density of one row under one component.")
        if not np.isfinite(value):
            raise ValueError(f"log_prob(theta, x) returned {float(value)} on the first row with "
                             "the initial parameters; make init start where the density is "
                             "positive.")

    def _param_dict(self, params) -> dict:
        return {"weights": params.weights, "theta": params.theta}

    def _fitted(self, params: dict, best: int) -> dict:
        return {"weights_": params["weights"][best],
                "params_": jax.tree.map(lambda a: a[best], params["theta"])}

    def _program_log_joint(self):
        return _bound(self.log_prob), None

    def _free_parts(self):
        return {"weights": information.Simplex(self.weights_),
                "theta": information.FreeTree(self.params_)}

    def _params_from(self, a):
        return user_family.UserParams(a["weights"], a["theta"])

    def profile_of(self, params, names):
        """Every component parameter (each entry of theta's arrays) side by side."""
        leaves = jax.tree_util.tree_flatten_with_path(params["theta"])[0]
        values, labels = [], []
        for path, leaf in leaves:
            leaf = np.asarray(leaf, np.float64)
            flat = leaf.reshape(leaf.shape[0], leaf.shape[1], -1)
            name = jax.tree_util.keystr(path).strip("[]'\"") or "theta"
            labels += [name] if flat.shape[2] == 1 else [f"{name}[{i}]"
                                                       for i in range(flat.shape[2])]
            values.append(flat)
        return Profile(np.concatenate(values, axis=-1), labels, "parameter (unconstrained)",
                       "Component parameters")

    def _scoring(self, weights=None):
        dtype = layout.float_dtype()
        params = user_family.UserParams(
            layout.to_device(self.weights_ if weights is None else weights, dtype),
            jax.tree.map(lambda a: layout.to_device(a, dtype), self.params_))
        return _bound(self.log_prob), params, None

    def n_parameters(self) -> int:
        k = len(self.weights_)
        per = sum(int(np.prod(np.shape(a)[1:])) for a in jax.tree.leaves(self.params_))
        return (k - 1) + k * per


@functools.lru_cache(maxsize=None)
def _bound(log_prob):
    """(params, hyper, x) -> (B, K) log joint of ``log_prob``, one function per log_prob."""
    return lambda params, hyper, x: user_family.log_joint(log_prob, params, x)
