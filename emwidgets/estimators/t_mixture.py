"""StudentMixture: mixtures of multivariate t distributions, robust to outliers."""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import solve_triangular

from ..core import layout, starts, student
from ..core.covariance import COVARIANCE_TYPES
from . import information, validation
from .mixture import FamilyMixture, SamplesRows


class StudentMixture(SamplesRows, FamilyMixture):
    """A mixture of multivariate t distributions, fitted by ECM, every restart at once.

    Heavy tails make each component robust: an outlier gets a small weight
    u in its component's mean and scale instead of pulling them (or taking a
    component of its own, as it does in a Gaussian mixture).

    Parameters:
        n_components, covariance_type ('full', 'tied', 'diag', 'spherical'),
        tol, reg_covar, max_iter, n_init, random_state: as
            :class:`GaussianMixture`.
        dof: starting degrees of freedom of every component (default 10).
        fix_dof: keep ``dof`` fixed instead of estimating one per component.
        init_params: ``'random_from_data'`` (means at distinct random rows, every
            scale matrix the data's covariance).
        means_init: (K, D) a start of your own for the means.

    The data are standardised inside (EM is equivariant); attributes are in
    data units. Fitted attributes: ``weights_``, ``means_``, ``covariances_``
    (scale matrices; a t's covariance is ``dof / (dof - 2)`` times it),
    ``dof_`` (K,), ``n_iter_``, ``converged_``, ``lower_bound_``, ``restarts_``.
    """

    init_methods = ("random_from_data",)
    plane_view = True

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-10, reg_covar=1e-6,
                 max_iter=1000, n_init=1, init_params="random_from_data", dof=10.0,
                 fix_dof=False, means_init=None, random_state=None, accelerate="squarem",
                 convergence="gap",
                 devices=None, dtype=None):
        self.dtype = dtype
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.accelerate = accelerate
        self.convergence = convergence
        self.devices = devices
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.dof = dof
        self.fix_dof = fix_dof
        self.means_init = means_init
        self.random_state = random_state

    def _encode(self, X, reset: bool) -> np.ndarray:
        x = self._validate_X(X, reset=reset)
        if reset:
            validation.check_in("covariance_type", self.covariance_type, tuple(COVARIANCE_TYPES))
            validation.check_positive("reg_covar", self.reg_covar, allow_zero=True)
            validation.check_positive("dof", self.dof)
            # (A streamed fit gives the whole data's scaling: _start_stream.)
            scaling = getattr(self, "_given_scaling", None) or layout.fit_scaling(x)
            validation.check_scale(scaling.scale)
            self._scaling_seen = layout.floor_scale(scaling, self.reg_covar)
            s = self._scaling_seen
        else:
            s = self._scaling
        return (x - s.shift) / s.scale

    def _features_per_row(self, p: int) -> int:
        return COVARIANCE_TYPES[self.covariance_type].n_quad(p) + p + 1  # phi(x)

    def _family(self):
        return student.student_family(self.covariance_type, not self.fix_dof)

    def _hyper(self, n_components: int):
        s = self._scaling_seen
        return student.StudentHyper(layout.to_device(self.reg_covar / s.scale**2,
                                                     layout.float_dtype()))

    def _initial_params(self, key_data, rows, weights, k):
        r, d = len(key_data), rows.shape[1]
        if self.means_init is not None:
            m = (np.asarray(self.means_init, np.float64) - self._scaling_seen.shift) / (
                self._scaling_seen.scale)
            if m.shape != (k, d) or not np.isfinite(m).all():
                raise ValueError(f"means_init has shape {m.shape}; ({k}, {d}) finite values "
                                 "are expected.")
            means = np.broadcast_to(m, (r, k, d))
        else:
            means = rows[starts.distinct_rows(key_data, rows, k)]
        wn = weights / weights.sum()
        centred = rows - wn @ rows
        full = (wn[:, None] * centred).T @ centred + self.reg_covar / self._scaling_seen.scale**2 \
            * np.eye(d)
        one = {"full": np.broadcast_to(full, (k, d, d)), "tied": full,
               "diag": np.broadcast_to(np.diag(full), (k, d)),
               "spherical": np.full(k, np.trace(full) / d)}[self.covariance_type]
        covariances = np.broadcast_to(one, (r,) + np.shape(one))
        pc = _precision_cholesky(self.covariance_type, np.asarray(one))
        return student.StudentParams(np.full((r, k), 1.0 / k), np.asarray(means), covariances,
                                     np.broadcast_to(pc, (r,) + pc.shape),
                                     np.full((r, k), float(self.dof)))

    def _param_dict(self, params) -> dict:
        s = self._scaling_seen
        return {"weights": params.weights, "means": params.means * s.scale + s.shift,
                "covariances": params.covariances * s.scale**2, "dof": params.dof}

    def _fitted(self, params: dict, best: int) -> dict:
        return {"_scaling": self._scaling_seen, "weights_": params["weights"][best],
                "means_": params["means"][best], "covariances_": params["covariances"][best],
                "dof_": params["dof"][best]}

    def _program_log_joint(self):
        return student.bound_log_joint(self.covariance_type), None

    def _free_parts(self):
        s = self._scaling
        covs = np.asarray(self.covariances_, np.float64) / s.scale**2
        parts = {"weights": information.Simplex(self.weights_),
                 "means": information.Free((np.asarray(self.means_,
                                                       np.float64) - s.shift) / s.scale),
                 "covariances": (information.Symmetric(covs)
                                 if COVARIANCE_TYPES[self.covariance_type].matrices
                                 else information.Free(covs))}
        if not self.fix_dof:  # (at a bound, a t is held there: near DOF_MAX it is Gaussian)
            dof = np.asarray(self.dof_, np.float64)
            parts["dof"] = information.Free(dof, fixed=(dof <= 1.001 * student.DOF_MIN) | (
                dof >= 0.999 * student.DOF_MAX))
        return parts

    def _params_from(self, a):
        import jax.numpy as jnp

        cov = COVARIANCE_TYPES[self.covariance_type]
        dof = a["dof"] if "dof" in a else jnp.asarray(self.dof_, jnp.float64)
        return student.StudentParams(a["weights"], a["means"], a["covariances"],
                                     cov.precision_cholesky(a["covariances"]), dof)

    def _objective_offset(self, fitted: bool = False) -> float:
        s = self._scaling if fitted else self._scaling_seen
        return -len(s.shift) * math.log(s.scale)

    def _scoring(self, weights=None):
        dtype = layout.float_dtype()
        s = self._scaling
        covs = np.asarray(self.covariances_) / s.scale**2
        params = student.StudentParams(
            layout.to_device(self.weights_ if weights is None else weights, dtype),
            layout.to_device((self.means_ - s.shift) / s.scale, dtype), layout.to_device(covs,
                                                                                         dtype),
            layout.to_device(_precision_cholesky(self.covariance_type, covs), dtype),
            layout.to_device(self.dof_, dtype))
        return student.bound_log_joint(self.covariance_type), params, None

    def _sample_rows(self, labels, rng):
        """t draws: mean + N(0, scale matrix) / sqrt(u), u ~ Gamma(nu/2, 2/nu)."""
        k, d = self.means_.shape
        c = np.asarray(self.covariances_, np.float64)
        dense = {"full": lambda: c, "tied": lambda: np.broadcast_to(c, (k, d, d)),
                 "diag": lambda: np.stack([np.diag(v) for v in c]),
                 "spherical": lambda: c[:, None, None] * np.eye(d)}[self.covariance_type]()
        z = np.einsum("nij,nj->ni", np.linalg.cholesky(dense)[labels],
                      rng.standard_normal((len(labels), d)))
        nu = np.asarray(self.dof_, np.float64)[labels]
        u = rng.gamma(nu / 2, 2 / nu)
        return np.asarray(self.means_, np.float64)[labels] + z / np.sqrt(u)[:, None]

    def n_parameters(self) -> int:
        k, d = self.means_.shape
        cov = COVARIANCE_TYPES[self.covariance_type]
        return (k - 1) + k * d + cov.n_parameters(k, d) + (0 if self.fix_dof else k)


def _precision_cholesky(cov_type: str, covariances: np.ndarray) -> np.ndarray:
    """scikit-learn's precisions_cholesky, on the host in float64."""
    if cov_type in ("diag", "spherical"):
        return 1.0 / np.sqrt(covariances)
    mats = covariances if cov_type == "full" else covariances[None]
    out = np.stack([solve_triangular(np.linalg.cholesky(c), np.eye(len(c)), lower=True).T
                    for c in mats])
    return out if cov_type == "full" else out[0]
