"""Standard errors of every estimator's fitted parameters, from the observed information.

The information is the negative Hessian of the observed-data log-likelihood at the
estimate (JAX autodiff, float64) in the free coordinates of the model's own
parametrisation (:class:`Free`, :class:`Simplex`, :class:`Symmetric`, ...: each part
knows its free coordinates and the entries held on a boundary); the delta method maps it
to the parameters as the estimator shows them. One path for every estimator
(:func:`family_standard_errors`), one result type (:class:`StandardErrors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

# ---------------------------------------------------------------------------
# The free coordinates of a model's own parametrisation
# ---------------------------------------------------------------------------

class Free:
    """An array whose entries are free coordinates (rates, means, locations), except
    those ``fixed`` (on a bound of the parameter space, such as degrees of freedom at
    their cap, where the likelihood is flat and no standard error exists)."""

    def __init__(self, value, fixed=None):
        self.value = np.asarray(value, np.float64)
        self.fixed = (np.zeros(self.value.shape, bool) if fixed is None
                      else np.asarray(fixed, bool))

    def vector(self) -> np.ndarray:
        return self.value[~self.fixed]

    def rebuild(self, v):
        import jax.numpy as jnp

        flat = jnp.ravel(jnp.asarray(self.value))  # (a 0-d value too: a scalar parameter)
        return flat.at[np.flatnonzero(~self.fixed)].set(v).reshape(self.value.shape)


class FreeTree:
    """A pytree of arrays (a user family's theta), every entry free."""

    def __init__(self, tree):
        import jax

        leaves, self._treedef = jax.tree.flatten(tree)
        self._leaves = [np.asarray(a, np.float64) for a in leaves]
        self.fixed = jax.tree.unflatten(self._treedef, [np.zeros(a.shape, bool)
                                                        for a in self._leaves])

    def vector(self) -> np.ndarray:
        return np.concatenate([a.ravel() for a in self._leaves])

    def rebuild(self, v):
        import jax
        import jax.numpy as jnp

        sizes = np.cumsum([a.size for a in self._leaves])[:-1]
        return jax.tree.unflatten(self._treedef, [c.reshape(a.shape) for c, a in
                                                  zip(jnp.split(v, sizes), self._leaves)])


class Simplex:
    """Rows of probabilities (the last axis sums to 1): each row's largest entry is
    1 minus the others, and entries at 0 (a class that never gives an answer) stay
    fixed there, on the boundary where no standard error exists; the rest are free."""

    TINY = 1e-7

    def __init__(self, value):
        self.value = np.asarray(value, np.float64)
        rows = self.value.reshape(-1, self.value.shape[-1])
        self._dependent = rows.argmax(1)
        free = rows > self.TINY
        free[np.arange(len(rows)), self._dependent] = False
        self._free = np.nonzero(free)
        self.fixed = (rows <= self.TINY).reshape(self.value.shape)

    def vector(self) -> np.ndarray:
        return self.value.reshape(-1, self.value.shape[-1])[self._free]

    def rebuild(self, v):
        import jax.numpy as jnp

        rows = jnp.asarray(self.value.reshape(-1, self.value.shape[-1]))
        rows = rows.at[self._free].set(v)
        at = (np.arange(len(self._dependent)), self._dependent)
        rows = rows.at[at].set(0.0)
        rows = rows.at[at].set(1.0 - rows.sum(1))
        return rows.reshape(self.value.shape)


class ItemSimplex:
    """A latent class model's (K, L) response probabilities: one simplex per item (a
    run of columns)."""

    def __init__(self, value, sizes):
        value = np.asarray(value, np.float64)
        edges = np.cumsum([0] + list(sizes))
        self.value = value
        self._parts = [Simplex(value[:, a:b]) for a, b in zip(edges[:-1], edges[1:])]
        self.fixed = np.concatenate([p.fixed for p in self._parts], axis=1)

    def vector(self) -> np.ndarray:
        return np.concatenate([p.vector() for p in self._parts])

    def rebuild(self, v):
        import jax.numpy as jnp

        sizes = np.cumsum([len(p.vector()) for p in self._parts])[:-1]
        return jnp.concatenate([p.rebuild(c) for p, c in zip(self._parts, jnp.split(v, sizes))],
                               axis=1)


class Symmetric:
    """(..., D, D) symmetric matrices: the upper triangle is free."""

    def __init__(self, value):
        self.value = np.asarray(value, np.float64)
        d = self.value.shape[-1]
        self._iu = np.triu_indices(d)
        self.fixed = np.zeros(self.value.shape, bool)

    def vector(self) -> np.ndarray:
        return self.value[..., self._iu[0], self._iu[1]].ravel()

    def rebuild(self, v):
        import jax.numpy as jnp

        d = self.value.shape[-1]
        lead = self.value.shape[:-2]
        upper = jnp.zeros(lead + (d, d)).at[..., self._iu[0], self._iu[1]].set(
            v.reshape(lead + (-1,)))
        return upper + jnp.swapaxes(upper, -1, -2) - upper * jnp.eye(d)


@dataclass
class StandardErrors:
    """Standard errors of a fitted model's parameters, by name (as in ``restarts_.params``).

    Attributes:
        estimates, errors: ``{name: array}``, each error shaped like its estimate;
            an entry on the boundary (a probability at 0, held fixed) has error 0,
            and the largest entry of each probability row is 1 minus the others.
            ``se.means`` is ``se.errors["means"]``, for every name.
        covariance: covariance matrix of all the estimates' entries, flattened in
            ``estimates``' order (delta method).
        fixed: ``{name: bool array}``, the entries held fixed on the boundary.
        n_free: number of free coordinates the information was computed over.
    """

    estimates: dict
    errors: dict
    covariance: np.ndarray
    fixed: dict
    n_free: int

    def __getattr__(self, name):
        errors = self.__dict__.get("errors", {})
        if name in errors:
            return errors[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _covariance_of(self, name: str) -> np.ndarray:
        """The covariance matrix of estimate ``name``'s entries (flattened), a block of
        :attr:`covariance`."""
        import jax

        start = 0
        for key, value in self.estimates.items():
            size = sum(np.size(a) for a in jax.tree.leaves(value))
            if key == name:
                return self.covariance[start:start + size, start:start + size]
            start += size
        raise KeyError(name)

    def mean_covariances(self) -> np.ndarray:
        """(K, D, D) the covariance matrix of each component's mean estimate."""
        if "means" not in self.estimates:
            raise ValueError(f"This model has no means (its parameters are "
                             f"{', '.join(self.estimates)}).")
        k, d = np.shape(self.estimates["means"])
        block = self._covariance_of("means")
        return np.stack([block[j * d:(j + 1) * d, j * d:(j + 1) * d] for j in range(k)])

    def intervals(self, level: float = 0.95) -> dict:
        """Wald intervals ``{name: (lower, upper)}`` (normal approximations: rough near
        a boundary or in small samples)."""
        import jax
        from scipy.stats import norm

        z = norm.ppf(0.5 + level / 2)
        return {name: (jax.tree.map(lambda e, s: e - z * s, est, self.errors[name]),
                       jax.tree.map(lambda e, s: e + z * s, est, self.errors[name]))
                for name, est in self.estimates.items()}


class FamilyModel(NamedTuple):
    """What the standard errors of a fitted family need from its estimator.

    Attributes:
        parts: {name: part} the fitted parameters in the program's units, each a
            :class:`Simplex`, :class:`Free`, ... that knows its free coordinates.
        log_likelihood: the model's parameters -> the observed-data log-likelihood of
            the data (a scalar, float64): a mixture's weighted log-sum-exp over its
            components, an HMM's forward algorithm over its sequences.
        params_from: {name: array} -> the model's parameters (program units).
        shown: the model's parameters -> {name: array} as ``restarts_.params`` shows them.
    """

    parts: dict
    log_likelihood: Callable
    params_from: Callable
    shown: Callable


def family_standard_errors(model: FamilyModel) -> StandardErrors:
    """Standard errors of a fitted model (float64): the observed information, the
    negative Hessian of ``model.log_likelihood`` in the free coordinates of
    ``model.parts``, inverted and mapped to the parameters of ``restarts_`` by the
    delta method (autodiff)."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        parts = model.parts  # {name: part}, in the program's units
        names = list(parts)
        v0 = np.concatenate([parts[n].vector() for n in names])
        splits = np.cumsum([parts[n].vector().size for n in names])[:-1]

        def params_of(v):
            pieces = jnp.split(v, splits)
            return model.params_from({n: parts[n].rebuild(p) for n, p in zip(names, pieces)})

        def loglik(v):
            return model.log_likelihood(params_of(v))

        def public(v):
            shown = model.shown(params_of(v))
            return jnp.concatenate([jnp.ravel(a) for a in jax.tree.leaves(shown)])

        v0 = jnp.asarray(v0)
        info = -np.asarray(jax.jit(jax.hessian(loglik))(v0), np.float64)
        # Judged on the information scaled to unit diagonal: its coordinates' units differ
        # by orders of magnitude (a variance of 0.006 next to a weight), not its rank.
        diag = np.diag(info)
        finite = np.isfinite(info).all()
        if finite and (diag <= 0).any():
            eig = np.array([diag.min()])
        else:
            scale = 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0))
            scaled = scale[:, None] * info * scale[None, :]
            eig = (np.linalg.eigvalsh(0.5 * (scaled + scaled.T)) if finite
                   else np.array([np.nan]))
        top = 1.0 if finite else np.inf
        if np.isfinite(top) and eig.min() < -1e-6 * top:
            raise ValueError(
                "The observed information matrix is not positive definite (smallest eigenvalue "
                f"{eig.min():.3g}): the estimate is no maximum of the likelihood (the fit stopped "
                "short of one, or two components coincide at a saddle); refit with a tighter tol "
                "and more iterations (in float64: jax.config.update('jax_enable_x64', True)), "
                "or reduce n_components.")
        if not np.isfinite(top) or eig.min() <= 1e-10 * top:
            raise ValueError(
                "The observed information matrix is singular (smallest eigenvalue "
                f"{eig.min():.3g}): two components may coincide or one may be empty, so standard "
                "errors do not exist here; reduce n_components or fit more data.")
        jac = np.asarray(jax.jit(jax.jacobian(public))(v0), np.float64)
        shown = model.shown(params_of(v0))
    cov = jac @ np.linalg.inv(info) @ jac.T
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    leaves, treedef = jax.tree.flatten(shown)
    sizes = np.cumsum([np.size(a) for a in leaves])[:-1]
    errors = jax.tree.unflatten(treedef, [s.reshape(np.shape(a)) for s, a in
                                          zip(np.split(se, sizes), leaves)])
    estimates = jax.tree.map(lambda a: np.asarray(a, np.float64), shown)
    fixed = {n: parts[n].fixed for n in names}
    return StandardErrors(dict(estimates), dict(errors), cov, fixed, int(v0.size))
