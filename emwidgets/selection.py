"""Choosing the number of components and the covariance type (mclust-style BIC grid).

Every (n_components, covariance_type) pair is fitted with its restarts batched;
the programs are compiled once per covariance type, for the largest number of
components, and reused for every smaller one (the extra components are
masked out), so a 9 x 4 grid compiles 4 programs, not 36.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import numpy as np
import pandas as pd

from .core.stream import Chunks, is_source
from .estimators.base import SpuriousSolutionWarning
from .estimators.gaussian_mixture import GaussianMixture, check_parameters
from .estimators.priors import resolve as resolve_prior
from .estimators.validation import ConvergenceWarning, as_2d_float, check_in, seed_from

COLUMNS = ["n_components", "covariance_type", "log_likelihood", "n_parameters", "bic", "aic",
           "icl", "converged", "spurious", "message"]


@dataclass
class SelectionResult:
    """The grid of fitted mixtures.

    Attributes:
        table: one row per (n_components, covariance_type): total
            ``log_likelihood``, ``n_parameters``, ``bic``, ``aic``, ``icl``
            (all three lower is better, scikit-learn's sign), ``converged``
            and a ``message`` when the fit failed. ``spurious`` marks a model
            whose every restart ended on a spurious maximum (a component at the
            covariance floor or on fewer points than its parameters): its
            likelihood is the collapse's, so ``best`` passes it over, as mclust
            leaves such a model out of its BIC table.
        models: the fitted GaussianMixture of each pair, keyed by
            ``(n_components, covariance_type)``.
        criterion: the column that chose ``best``.
    """

    table: pd.DataFrame
    models: dict = field(default_factory=dict)
    criterion: str = "bic"

    @property
    def best_key(self):
        ok = self.table.dropna(subset=[self.criterion])
        regular = ok[ok["spurious"] != True]  # noqa: E712 (NaN for failed fits)
        ok = regular if not regular.empty else ok
        if ok.empty:
            return None
        row = ok.loc[ok[self.criterion].idxmin()]
        return int(row["n_components"]), str(row["covariance_type"])

    @property
    def best(self) -> Optional[GaussianMixture]:
        """The fitted mixture with the lowest criterion (BIC by default)."""
        key = self.best_key
        return None if key is None else self.models[key]


def icl(gm: GaussianMixture, X) -> float:
    """Integrated completed likelihood criterion, lower is better.

    BIC plus twice the classification entropy of the hard assignments, as mclust
    computes it (BIC - 2 sum_n log max_k r_nk, in scikit-learn's sign).
    """
    resp = gm.predict_proba(X)
    return float(gm.bic(X) - 2.0 * np.log(np.clip(resp.max(axis=1), 1e-300, None)).sum())


def _check_mixture_params(Xa, k_max, covariance_types, n_init, random_state, mixture_params):
    """Every parameter of the grid's mixtures checked before the first fit, so a bad one
    is one error, not a table of failed fits."""
    valid = set(GaussianMixture().get_params()) - {"n_components", "covariance_type", "n_init",
                                                   "random_state"}
    unknown = sorted(set(mixture_params) - valid)
    if unknown:
        raise ValueError(f"Invalid parameter {unknown[0]!r} for select_model; pass n_components, "
                         "covariance_types, n_init, random_state or one of "
                         f"{', '.join(sorted(valid))}.")
    seed_from(random_state)
    for cov_type in covariance_types:
        gm = GaussianMixture(k_max, covariance_type=cov_type, n_init=n_init, **mixture_params)
        check_in("missing", gm.missing, ("raise", "em"))
        check_parameters(gm, Xa)
        if gm.prior is not None:
            resolve_prior(gm.prior, Xa, cov_type, k_max)


def select_model(X, n_components: Iterable[int] = range(1, 10),
                 covariance_types: Iterable[str] = GaussianMixture.covariance_types,
                 n_init: int = 8, criterion: str = "bic", random_state=0,
                 callback: Optional[Callable[[SelectionResult], None]] = None,
                 estimator=None, **mixture_params) -> SelectionResult:
    """Fit a Gaussian mixture for every pair of the grid and rank them.

    With ``estimator`` (an unfitted LatentClassModel, PoissonMixture,
    StudentMixture, MixtureModel, PoissonHMM or CategoricalHMM, with its own
    settings), that family is fitted for every number of components instead
    (``covariance_type`` in the table names the family).

    Args:
        X: (n_samples, n_features) data (array or DataFrame), or a source read chunk
            by chunk (:class:`emwidgets.Chunks`, a path to Parquet data): every model
            is fitted by streamed EM and scored in one more pass.
        n_components: the numbers of components to try.
        covariance_types: the covariance types to try.
        n_init: restarts per fit (batched).
        criterion: ``"bic"``, ``"aic"`` or ``"icl"``; chooses ``best``.
        callback: called with the partial result after each fit (live plots).
        **mixture_params: passed to every GaussianMixture (tol, max_iter,
            ``missing='em'`` for data with NaN, ``prior`` ...).
    Returns:
        a :class:`SelectionResult`.
    """
    if not isinstance(criterion, str) or criterion not in ("bic", "aic", "icl"):
        raise ValueError(f"Invalid criterion {criterion!r}; choose 'bic', 'aic' or 'icl'.")
    if estimator is not None:
        if mixture_params:
            raise ValueError(f"With an estimator, set its own parameters (not "
                             f"{sorted(mixture_params)[0]!r} here): e.g. "
                             "select_model(X, estimator=LatentClassModel(n_init=16, tol=1e-8)).")
        return _select_family(X, _components(n_components), estimator, criterion, callback)
    chunks = _as_chunks(X)
    if chunks is not None:  # streamed: the first chunk checks the settings, passes fit
        Xa = next(iter(chunks))[0]
    else:
        Xa, _ = as_2d_float(X, allow_nan=mixture_params.get("missing") == "em", nan_hint=(
            "pass missing='em' to fit every model by EM over the observed values, or drop "
            "those rows."))
    ks = _components(n_components)
    covariance_types = [covariance_types] if isinstance(covariance_types, str) else \
        list(covariance_types)
    if not covariance_types:
        raise ValueError("covariance_types is empty; pass some of 'full', 'tied', 'diag', "
                         "'spherical'.")
    if chunks is None and ks[-1] > len(Xa):
        raise ValueError(f"The grid goes up to {ks[-1]} components but X has only {len(Xa)} "
                         "samples; lower the largest n_components.")
    _check_mixture_params(Xa, ks[-1], covariance_types, n_init, random_state, mixture_params)
    result = SelectionResult(pd.DataFrame(columns=COLUMNS), {}, criterion)
    rows = []
    for cov_type in covariance_types:
        for k in ks:
            gm = GaussianMixture(k, covariance_type=cov_type, n_init=n_init,
                                 random_state=random_state, **mixture_params)
            gm.compile_for(ks[-1])
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    warnings.simplefilter("ignore", SpuriousSolutionWarning)  # in the table
                    gm.fit(Xa if chunks is None else chunks)
            except ValueError as exc:
                rows.append({"n_components": k, "covariance_type": cov_type, "converged": False,
                             "message": str(exc)})
            else:
                rows.append({
                    "n_components": k, "covariance_type": cov_type, **_criteria(gm, Xa, chunks),
                    "converged": gm.converged_, "spurious": bool(gm.restarts_.spurious[
                        gm.restarts_.best]),
                    "message": (gm.restarts_.messages[gm.restarts_.best]
                                if gm.restarts_.spurious[gm.restarts_.best] else ""),
                })
                result.models[(k, cov_type)] = gm
            result.table = pd.DataFrame(rows, columns=COLUMNS)
            if callback is not None:
                callback(result)
    return result


def _components(n_components) -> list:
    try:
        given = list(n_components)
    except TypeError:
        given = [n_components]
    whole = [isinstance(k, numbers.Integral) and not isinstance(k, bool) for k in given]
    if not given or not all(whole) or min(given) < 1:
        raise ValueError(f"Invalid value for 'n_components': {n_components!r}; pass whole numbers "
                         ">= 1 (e.g. range(1, 10)).")
    return sorted({int(k) for k in given})


def _family_label(estimator) -> str:
    cov = getattr(estimator, "covariance_type", None)
    name = type(estimator).__name__
    return f"{name} ({cov})" if cov else name


def _as_chunks(X) -> Optional[Chunks]:
    """X as :class:`Chunks` when it is read chunk by chunk (a path, Chunks, a function),
    else None."""
    if not is_source(X):
        return None
    return X if isinstance(X, Chunks) else Chunks(X)


def _criteria(model, Xa, chunks: Optional[Chunks]) -> dict:
    """A fitted mixture's log-likelihood, parameters, BIC, AIC and ICL on the data: in
    memory, or summed over one more pass of a streamed source (weighted rows count as
    their weights; n is the summed weight)."""
    p = model.n_parameters()
    if chunks is None:
        return {"log_likelihood": model.score(Xa) * len(Xa), "n_parameters": p,
                "bic": model.bic(Xa), "aic": model.aic(Xa), "icl": icl(model, Xa)}
    loglik = hard = total = 0.0
    for x, w in chunks:
        w = np.ones(len(x)) if w is None else w
        loglik += float(w @ model.score_samples(x))
        hard += float(w @ np.log(np.clip(model.predict_proba(x).max(axis=1), 1e-300, None)))
        total += float(w.sum())
    bic = -2 * loglik + p * np.log(total)
    return {"log_likelihood": loglik, "n_parameters": p, "bic": bic,
            "aic": -2 * loglik + 2 * p, "icl": bic - 2 * hard}


def _select_family(X, ks, estimator, criterion, callback) -> SelectionResult:
    """select_model over one family's numbers of components."""
    from .estimators.mixture import FamilyMixture

    chunks = _as_chunks(X)

    if not isinstance(estimator, FamilyMixture):
        raise ValueError(f"estimator must be an emwidgets family estimator (LatentClassModel, "
                         f"PoissonMixture, ...), not {type(estimator).__name__}; for Gaussian "
                         "mixtures pass covariance_types.")
    label = _family_label(estimator)
    result = SelectionResult(pd.DataFrame(columns=COLUMNS), {}, criterion)
    rows = []
    for k in ks:
        est = type(estimator)(**{**estimator.get_params(), "n_components": k})
        if est.masks_components:
            est.compile_for(max(ks))  # one program for the grid (the rest masked)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                est.fit(X if chunks is None else chunks)
        except ValueError as exc:
            if k == ks[0]:
                raise  # the data or the settings, not this K: one sentence, as for a fit
            rows.append({"n_components": k, "covariance_type": label, "converged": False,
                         "message": str(exc)})
        else:
            if chunks is not None:
                scores = _criteria(est, None, chunks)
            else:
                n = len(est.predict_proba(X))
                loglik = est.score(X)
                loglik = loglik if hasattr(est, "transmat_") else loglik * n  # HMM: a total
                scores = {"log_likelihood": loglik, "n_parameters": est.n_parameters(),
                          "bic": est.bic(X), "aic": est.aic(X), "icl": icl(est, X)}
            rows.append({"n_components": k, "covariance_type": label, **scores,
                         "converged": est.converged_, "spurious": False, "message": ""})
            result.models[(k, label)] = est
        result.table = pd.DataFrame(rows, columns=COLUMNS)
        if callback is not None:
            callback(result)
    return result
