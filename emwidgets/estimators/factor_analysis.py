"""FactorAnalysis: maximum likelihood factor analysis by EM (Rubin & Thayer 1982), written
on :class:`~emwidgets.EM` (the model any user could write), with scikit-learn's names.

x = W z + mean + e, z ~ N(0, I_k), e ~ N(0, diag(psi)). The hidden values are the factors
z: the E-step gives each row's E[z | x] = G W' Psi^-1 (x - mean) and E[z z' | x] = G +
E[z] E[z]', with G = (I + W' Psi^-1 W)^-1; the M-step regresses the rows on them,
W = (sum x E[z]') (sum E[z z'])^-1 and psi = diag(S - W sum E[z] x' / n). Summed over the
rows, both steps need only the rows' covariance S and count n (computed once).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import validation
from .base import _Estimator
from .general import EM
from .mixture import check_sample_weight

#: The smallest noise variance, as a share of its column's variance (a Heywood case, a
#: column explained entirely by the factors, would otherwise send it to 0).
MIN_NOISE = 1e-6


def _g(p):
    """(k, k) G = (I + W' Psi^-1 W)^-1 and W' Psi^-1 (k, d)."""
    w, psi = p["w"], p["psi"]
    wp = (w / psi[:, None]).T
    g = jnp.linalg.inv(jnp.eye(w.shape[1], dtype=w.dtype) + wp @ w)
    return g, wp


# The data are summarised once by their covariance S (the rows centred) and count n: each
# iteration then costs O(d^2 k), whatever the number of rows.
def fa_init(key, data, n_factors: int = 1):
    """A start: loadings drawn at the data's scale, every column's variance as noise."""
    var = jnp.diagonal(data["S"])
    w = (jax.random.normal(key, (var.shape[0], n_factors), var.dtype)
         * jnp.sqrt(var)[:, None] * 0.5)
    return {"w": w, "psi": var}


def fa_e_step(p, data):
    """sum_i x_i E[z_i]' = n S beta' and sum_i E[z_i z_i'] = n (G + beta S beta'), where
    E[z | x] = beta x, beta = G W' Psi^-1."""
    g, wp = _g(p)
    beta = g @ wp
    s, n = data["S"], data["n"]
    return {"xz": n * s @ beta.T, "zz": n * (g + beta @ s @ beta.T)}


def fa_m_step(stats, data):
    s, n = data["S"], data["n"]
    w = stats["xz"] @ jnp.linalg.inv(stats["zz"])
    psi = jnp.diagonal(s) - jnp.sum(w * stats["xz"], axis=1) / n
    return {"w": w, "psi": jnp.maximum(psi, MIN_NOISE * jnp.diagonal(s))}


def fa_log_likelihood(p, data):
    """The total log-likelihood of the rows, -n/2 (log det C + tr(C^-1 S) + d log 2 pi)."""
    s, n = data["S"], data["n"]
    cov = p["w"] @ p["w"].T + jnp.diag(p["psi"])
    chol = jnp.linalg.cholesky(cov)
    inv_s = jax.scipy.linalg.cho_solve((chol, True), s)
    d = s.shape[0]
    return -0.5 * n * (2 * jnp.log(jnp.diagonal(chol)).sum() + jnp.trace(inv_s)
                       + d * jnp.log(2 * jnp.pi))


class FactorAnalysis(_Estimator):
    """Factor analysis by EM, every restart at once; scikit-learn's names and results.

    Parameters:
        n_components: the number of factors k.
        n_init, tol, max_iter, random_state, accelerate, convergence, dtype: as for
            :class:`GaussianMixture` (SQUAREM and the gap rule by default; the objective
            is the total log-likelihood of the standardised rows, ``tol`` on it).

    Fitted attributes: ``components_`` (k, d) the loadings, ``noise_variance_`` (d,),
    ``mean_``, ``loglike_`` (every iteration's total log-likelihood, the best restart's),
    ``n_iter_``, ``converged_``, ``restarts_`` (of the :class:`~emwidgets.EM` it ran, on
    the standardised rows' covariance). ``transform`` gives E[z | x];
    ``score``/``score_samples`` the log-likelihood; ``get_covariance`` W W' + diag(psi);
    ``replay(X, r)`` restart r alone. The loadings are unique up to a rotation.
    """

    def __init__(self, n_components=1, *, n_init=4, tol=1e-10, max_iter=1000,
                 random_state=None, accelerate="squarem", convergence="gap", dtype=None):
        self.n_components = n_components
        self.n_init = n_init
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.accelerate = accelerate
        self.convergence = convergence
        self.dtype = dtype

    def _model(self) -> EM:
        return EM(functools.partial(fa_init, n_factors=int(self.n_components)), fa_e_step,
                  fa_m_step, fa_log_likelihood,
                  kinds={"w": "free", "psi": "log"}, n_init=self.n_init, tol=self.tol,
                  max_iter=self.max_iter, random_state=self.random_state,
                  accelerate=self.accelerate, convergence=self.convergence, dtype=self.dtype)

    def fit(self, X, y=None, sample_weight=None):
        """Fit every restart and keep the best (highest log-likelihood). ``sample_weight``
        (one per row, non-negative): a row of weight w counts as w copies of it (the mean,
        the columns' scales and the covariance weighted; ``n`` their total)."""
        return self._fit(X, sample_weight=sample_weight)

    def replay(self, X, restart: int):
        """Restart ``restart`` of the last fit alone, from its own key (a new estimator)."""
        self._check_fitted()
        key = jax.random.wrap_key_data(np.asarray(self.restarts_.keys[restart]))
        return type(self)(**{**self.get_params(), "n_init": 1})._fit(
            X, keys=key[None], sample_weight=getattr(self, "_sample_weight", None))

    def _fit(self, X, keys=None, sample_weight=None):
        Xa = self._validate_X(X, reset=True)
        rows, d = Xa.shape
        w = (np.ones(rows) if sample_weight is None
             else np.asarray(check_sample_weight(sample_weight, rows), np.float64))
        n = float(w.sum())
        validation.check_int("n_components", self.n_components, 1)
        if self.n_components > d:
            raise ValueError(f"n_components={self.n_components} factors for {d} features; "
                             "choose at most as many factors as features.")
        if n < 2 or (w > 0).sum() < 2:
            raise ValueError("Factor analysis needs at least 2 rows (of positive weight).")
        self.mean_ = np.average(Xa, axis=0, weights=w)
        # Fitted to standardised columns (the model is equivariant under each column's
        # scale: columns of 1e3 beside 1e-1 made W W' + diag(psi) ill-conditioned), then
        # mapped back: W by the columns' scales, psi by their squares.
        sd = np.sqrt(np.average((Xa - self.mean_) ** 2, axis=0, weights=w))
        if (sd == 0).any():
            raise ValueError(f"Column {int(np.flatnonzero(sd == 0)[0])} of X is constant: it "
                             "has no variance for the factors to explain; drop it.")
        model = self._model()
        z = (Xa - self.mean_) / sd
        self._n_rows = n
        model.start({"S": (z * w[:, None]).T @ z / n, "n": np.float64(n)}, keys=keys).finish()
        self._em = model
        self._sample_weight = sample_weight
        self.components_ = (np.asarray(model.params_["w"], np.float64) * sd[:, None]).T
        self.noise_variance_ = np.asarray(model.params_["psi"], np.float64) * sd**2
        r = model.restarts_
        self.restarts_ = r  # (the total log-likelihood of the standardised rows)
        self.n_iter_, self.converged_ = model.n_iter_, model.converged_
        trace = r.trace[r.best]
        self.loglike_ = list(trace[np.isfinite(trace)] - n * np.log(sd).sum())
        self._set_features(self.__dict__.pop("_features_seen", None))
        return self

    def get_covariance(self) -> np.ndarray:
        self._check_fitted()
        w = self.components_.T
        return w @ w.T + np.diag(self.noise_variance_)

    def get_precision(self) -> np.ndarray:
        return np.linalg.inv(self.get_covariance())

    def score_samples(self, X) -> np.ndarray:
        """(n,) each row's log-likelihood."""
        self._check_fitted()
        Xa = self._validate_X(X, reset=False)
        # By the Cholesky factor (scipy's logpdf refuses the ill-conditioned covariances of
        # near-Heywood fits, a column all but explained by the factors).
        chol = np.linalg.cholesky(self.get_covariance())
        z = np.linalg.solve(chol, (Xa - self.mean_).T)
        d = Xa.shape[1]
        return -0.5 * ((z**2).sum(0) + d * np.log(2 * np.pi)) - np.log(np.diag(chol)).sum()

    def score(self, X, y=None) -> float:
        """The mean log-likelihood per row (scikit-learn's)."""
        return float(np.mean(self.score_samples(X)))

    def transform(self, X) -> np.ndarray:
        """(n, k) E[z | x], the factors' posterior means."""
        self._check_fitted()
        Xa = self._validate_X(X, reset=False)
        w = self.components_.T
        wp = (w / self.noise_variance_[:, None]).T
        g = np.linalg.inv(np.eye(w.shape[1]) + wp @ w)
        return (Xa - self.mean_) @ (g @ wp).T

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)
