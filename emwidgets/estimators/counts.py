"""Counts: PoissonMixture (independent Poisson counts per component), PoissonHMM, and
MultinomialMixture (count vectors such as documents' word counts)."""

from __future__ import annotations

import numpy as np

from ..core import discrete, layout, starts
from . import information
from .mixture import FamilyMixture, Profile, SamplesRows
from .sequence import FamilyHMM


class PoissonMixture(SamplesRows, FamilyMixture):
    """A mixture of Poisson distributions: one rate per component and column.

    Each row is a vector of counts (non-negative integers), independent given
    its component. Parameters follow :class:`GaussianMixture` where they apply;
    ``fit`` takes ``sample_weight`` (a row of counts seen w times, e.g. the
    frequency column of a table).

    Parameters:
        n_components: number of components.
        tol: stop a restart when the mean log-likelihood per row changes by less.
        max_iter: EM iterations at most.
        n_init: restarts, all run at once.
        init_params: ``'random_from_data'`` (each component's rates halfway between
            a random row and the mean) or ``'random'`` (the mean times uniform
            factors in [0.5, 1.5]).
        weights_init, rates_init: a start of your own ((K,) and (K, D)); every
            restart then starts there.
        random_state: seed.

    Fitted attributes: ``weights_`` (K,), ``rates_`` (K, D), ``n_iter_``,
    ``converged_``, ``lower_bound_``, ``restarts_``, ``n_features_in_``.
    """

    init_methods = ("random_from_data", "random")
    data_kind = "counts"
    masks_components = True

    def __init__(self, n_components=1, *, tol=1e-10, max_iter=1000, n_init=1,
                 init_params="random_from_data", weights_init=None, rates_init=None,
                 random_state=None, accelerate="squarem", convergence="gap",
                 devices=None, dtype=None):
        self.dtype = dtype
        self.n_components = n_components
        self.tol = tol
        self.accelerate = accelerate
        self.convergence = convergence
        self.devices = devices
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.rates_init = rates_init
        self.random_state = random_state

    _model_words = "a Poisson mixture"

    def _encode(self, X, reset: bool) -> np.ndarray:
        return _check_counts(self._validate_X(X, reset=reset,
                                              nan_hint="drop or impute those rows."),
                             self._model_words)

    def _family(self):
        return discrete.poisson_family()

    def _hyper(self, n_components: int):
        return discrete.DiscreteHyper()

    def _initial_params(self, key_data, rows, weights, k):
        r = len(key_data)
        mean = (weights[:, None] * rows).sum(0) / weights.sum()
        if self.rates_init is not None:
            rates = np.asarray(self.rates_init, np.float64)
            if rates.shape != (k, rows.shape[1]) or not np.isfinite(rates).all() or (
                    rates <= 0).any():
                raise ValueError(f"rates_init has shape {rates.shape}; ({k}, {rows.shape[1]}) "
                                 "positive rates are expected.")
            rates = np.broadcast_to(rates, (r, k, rows.shape[1]))
        elif self.init_params == "random_from_data":
            idx = starts.distinct_rows(key_data, rows, k)
            rates = 0.5 * (rows[idx] + mean)
        else:
            u = np.stack([starts.generator(w, starts.STREAM_PARAMS).uniform(0.5, 1.5, (k, 1))
                          for w in key_data])
            rates = u * mean
        w0 = np.full((r, k), 1.0 / k)
        if self.weights_init is not None:
            w0 = np.broadcast_to(_check_weights(self.weights_init, k), (r, k))
        return discrete.PoissonParams(w0, rates)

    def _param_dict(self, params) -> dict:
        return {"weights": params.weights, "rates": params.rates}

    def _fitted(self, params: dict, best: int) -> dict:
        return {"weights_": params["weights"][best], "rates_": params["rates"][best]}

    def _program_log_joint(self):
        return discrete.poisson_log_joint, discrete.DiscreteHyper()

    def _free_parts(self):
        return {"weights": information.Simplex(self.weights_),
                "rates": information.Free(self.rates_)}

    def _params_from(self, a):
        return discrete.PoissonParams(a["weights"], a["rates"])

    def profile_of(self, params, names):
        rates = np.asarray(params["rates"], np.float64)
        positive = rates[np.isfinite(rates) & (rates > 0)]
        log = positive.size > 0 and positive.max() > 20 * positive.min()  # rates span decades
        return Profile(rates, list(names), "rate (mean count)", "Rates per component",
                       log=bool(log))

    def _scoring(self, weights=None):
        dtype = layout.float_dtype()
        weights = self.weights_ if weights is None else weights
        return (discrete.poisson_log_joint,
                discrete.PoissonParams(layout.to_device(weights, dtype),
                                       layout.to_device(self.rates_, dtype)),
                                       discrete.DiscreteHyper())

    def n_parameters(self) -> int:
        k, d = self.rates_.shape
        return (k - 1) + k * d

    def _sample_rows(self, labels, rng):
        return rng.poisson(np.asarray(self.rates_, np.float64)[labels])


def _check_counts(x: np.ndarray, model: str) -> np.ndarray:
    if (x < 0).any():
        r, c = np.argwhere(x < 0)[0]
        raise ValueError(f"X holds a negative count ({x[r, c]:g} in row {r}, column {c}); "
                         f"{model} models counts 0, 1, 2, ...")
    if (x != np.round(x)).any():
        r, c = np.argwhere(x != np.round(x))[0]
        raise ValueError(f"X holds a non-integer count ({x[r, c]:g} in row {r}, column {c}); "
                         f"{model} models counts: round them, or use GaussianMixture for "
                         "measurements.")
    return x


class MultinomialMixture(SamplesRows, FamilyMixture):
    """A mixture of multinomials: each row a vector of counts over D categories (a
    document's word counts), drawn from its component's category probabilities.

    The number of trials is each row's own total (not a parameter): a long and a
    short document about the same topic belong to the same component. Rows of
    zeros carry no information about their component.

    Parameters:
        n_components, tol, max_iter, n_init, random_state: as for
            :class:`PoissonMixture`.
        init_params: ``'random_from_data'`` (each component halfway between a random
            row's proportions and the overall proportions) or ``'random'``
            (Dirichlet(1) draws).
        weights_init, probabilities_init: a start of your own ((K,) and (K, D) with
            rows summing to 1); every restart then starts there.

    Fitted attributes: ``weights_`` (K,), ``probabilities_`` (K, D), ``n_iter_``,
    ``converged_``, ``lower_bound_``, ``restarts_``, ``n_features_in_``.
    ``sample`` draws rows of the fitted data's mean total (rounded).
    """

    init_methods = ("random_from_data", "random")
    data_kind = "counts"
    masks_components = True

    def __init__(self, n_components=1, *, tol=1e-10, max_iter=1000, n_init=1,
                 init_params="random_from_data", weights_init=None, probabilities_init=None,
                 random_state=None, accelerate="squarem", convergence="gap",
                 devices=None, dtype=None):
        self.dtype = dtype
        self.n_components = n_components
        self.tol = tol
        self.accelerate = accelerate
        self.convergence = convergence
        self.devices = devices
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.probabilities_init = probabilities_init
        self.random_state = random_state

    def _encode(self, X, reset: bool) -> np.ndarray:
        x = _check_counts(self._validate_X(X, reset=reset, nan_hint="drop or impute those rows."),
                          "a multinomial mixture")
        if reset:
            if x.shape[1] < 2:
                raise ValueError("A multinomial mixture needs at least 2 count columns (the "
                                 "categories); for one count column use PoissonMixture.")
            if x.sum() == 0:
                raise ValueError("Every count is 0: there is nothing to fit.")
            self._mean_total = float(x.sum(1).mean())
        return x

    def _family(self):
        return discrete.multinomial_family()

    def _hyper(self, n_components: int):
        return discrete.DiscreteHyper()

    def _initial_params(self, key_data, rows, weights, k):
        r, d = len(key_data), rows.shape[1]
        overall = (weights[:, None] * rows).sum(0)
        overall = overall / overall.sum()
        if self.probabilities_init is not None:
            p = np.asarray(self.probabilities_init, np.float64)
            if p.shape != (k, d) or not np.isfinite(p).all() or (p < 0).any() or np.abs(
                    p.sum(1) - 1).max() > 1e-6:
                raise ValueError(f"probabilities_init must be ({k}, {d}) non-negative numbers "
                                 "with rows summing to 1.")
            probs = np.broadcast_to(p, (r, k, d))
        elif self.init_params == "random_from_data":
            picked = rows[starts.distinct_rows(key_data, rows, k)]  # (R, K, D)
            totals = picked.sum(-1, keepdims=True)
            share = np.where(totals > 0, picked / np.where(totals > 0, totals, 1), overall)
            probs = 0.5 * share + 0.5 * overall
        else:
            probs = np.stack([starts.generator(w, starts.STREAM_PARAMS).dirichlet(np.ones(d),
                                                                                  size=k)
                              for w in key_data])
        w0 = np.full((r, k), 1.0 / k)
        if self.weights_init is not None:
            w0 = np.broadcast_to(_check_weights(self.weights_init, k), (r, k))
        return discrete.MultinomialParams(w0, probs)

    def _param_dict(self, params) -> dict:
        return {"weights": params.weights, "probabilities": params.probabilities}

    def _fitted(self, params: dict, best: int) -> dict:
        return {"weights_": params["weights"][best],
                "probabilities_": params["probabilities"][best],
                "n_trials_": max(1, int(round(self._mean_total)))}

    def _program_log_joint(self):
        return discrete.multinomial_log_joint, discrete.DiscreteHyper()

    def _free_parts(self):
        return {"weights": information.Simplex(self.weights_),
                "probabilities": information.Simplex(self.probabilities_)}

    def _params_from(self, a):
        return discrete.MultinomialParams(a["weights"], a["probabilities"])

    def profile_of(self, params, names):
        probs = np.asarray(params["probabilities"], np.float64)
        positive = probs[np.isfinite(probs) & (probs > 0)]
        log = positive.size > 0 and positive.max() > 50 * positive.min()
        return Profile(probs, list(names), "P(category | component)",
                       "Category probabilities per component", log=bool(log))

    def _scoring(self, weights=None):
        dtype = layout.float_dtype()
        weights = self.weights_ if weights is None else weights
        return (discrete.multinomial_log_joint,
                discrete.MultinomialParams(layout.to_device(weights, dtype),
                                           layout.to_device(self.probabilities_, dtype)),
                discrete.DiscreteHyper())

    def n_parameters(self) -> int:
        k, d = self.probabilities_.shape
        return (k - 1) + k * (d - 1)

    def _sample_rows(self, labels, rng):
        p = np.asarray(self.probabilities_, np.float64)[labels]
        return np.stack([rng.multinomial(self.n_trials_, q / q.sum()) for q in p])


def _check_weights(weights, k: int) -> np.ndarray:
    w = np.asarray(weights, np.float64)
    if w.shape != (k,) or not np.isfinite(w).all() or (w < 0).any() or abs(w.sum() - 1) > 1e-6:
        raise ValueError(f"weights_init must be {k} non-negative numbers summing to 1.")
    return w


class PoissonHMM(FamilyHMM, PoissonMixture):
    """A hidden Markov model with Poisson emissions (hmmlearn's ``PoissonHMM``), every
    restart at once.

    Parameters as :class:`PoissonMixture` (the start of the emissions:
    ``init_params``, ``rates_init``) plus hmmlearn's ``n_iter``; the start and
    transition probabilities start from Dirichlet(1/S) draws, as hmmlearn's.
    ``tol`` is on the log-likelihood per step (hmmlearn's, on the total, is
    ``tol * n_samples``). ``fit(X, lengths)`` takes several sequences as
    hmmlearn does.

    Fitted attributes: ``startprob_``, ``transmat_``, ``rates_`` (S, D) and
    ``lambdas_`` (the same, hmmlearn's name), ``n_iter_``, ``converged_``,
    ``lower_bound_`` (per step), ``restarts_``.
    """

    _emissions = discrete.POISSON

    def __init__(self, n_components=1, *, n_iter=1000, tol=1e-10, n_init=1,
                 init_params="random_from_data", rates_init=None, startprob_init=None,
                 transmat_init=None, random_state=None, accelerate="squarem", convergence="gap",
                 devices=None, dtype=None):
        self.dtype = dtype
        self.n_components = n_components
        self.startprob_init = startprob_init
        self.transmat_init = transmat_init
        self.n_iter = n_iter
        self.tol = tol
        self.accelerate = accelerate
        self.convergence = convergence
        self.devices = devices
        self.n_init = n_init
        self.init_params = init_params
        self.rates_init = rates_init
        self.random_state = random_state

    weights_init = None

    @property
    def lambdas_(self):
        return self.rates_
