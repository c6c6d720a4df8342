"""LatentClassModel: latent class analysis (mixtures of categorical variables).

Each row is a respondent (or a slide, a patient) answering J items; item j has
L_j levels. Given its latent class, the answers are independent categorical
variables: p(x) = sum_k w_k prod_j theta_kj[x_j]. Binary items are the
two-level case (the classic LCA). A missing answer (NaN, None, pd.NA) is left
out of the product, which is EM over the observed answers: nothing is imputed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core import discrete, layout, starts
from . import information
from .mixture import FamilyMixture, Profile, SamplesRows
from .sequence import FamilyHMM

#: An item with more levels than this is refused (it is likely a number or an id).
MAX_LEVELS = 50


class LatentClassModel(SamplesRows, FamilyMixture):
    """Latent class analysis by EM, every restart at once.

    Parameters:
        n_components: number of latent classes.
        tol: stop a restart when the mean log-likelihood per row changes by less.
        max_iter: EM iterations at most.
        n_init: restarts, all run at once (latent class models have many local
            maxima: use several).
        init_params: ``'random'`` (response probabilities drawn uniformly from
            the simplex, as poLCA does) or ``'random_from_data'`` (halfway between
            a random row's answers and the items' marginal frequencies).
        weights_init, probabilities_init: a start of your own: (K,) class sizes
            and a list of (K, L_j) response probabilities, one per item.
        max_levels: refuse items with more levels than this.
        random_state: seed.

    ``fit(X)`` takes a DataFrame (or 2-D array) of answers: strings,
    categories, integers or booleans, one column per item.

    Fitted attributes: ``weights_`` (K,) class sizes, ``probabilities_`` (list
    of (K, L_j) arrays), ``categories_`` (list of each item's levels, sorted),
    ``n_iter_``, ``converged_``, ``lower_bound_``, ``restarts_``,
    ``n_features_in_``, ``feature_names_in_`` for a DataFrame.
    """

    init_methods = ("random", "random_from_data")
    data_kind = "categories"
    masks_components = True

    def __init__(self, n_components=2, *, tol=1e-10, max_iter=1000, n_init=10,
                 init_params="random", weights_init=None, probabilities_init=None,
                 max_levels=MAX_LEVELS, random_state=None, accelerate="squarem", convergence="gap",
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
        self.max_levels = max_levels
        self.random_state = random_state

    # -- encoding ---------------------------------------------------------------
    def _encode(self, X, reset: bool) -> np.ndarray:
        frame = _as_frame(X)
        names = [str(c) for c in frame.columns]
        if reset:
            given = getattr(self, "_given_levels", None)  # a streamed fit's, every chunk's
            if given is not None and len(given) != frame.shape[1]:
                raise ValueError(f"A chunk has {frame.shape[1]} items, the source's first pass "
                                 f"saw {len(given)}: every chunk must have the same columns.")
            categories = [_levels(frame[c] if given is None else pd.Series(given[j]), name,
                                  self.max_levels)
                          for j, (c, name) in enumerate(zip(frame.columns, names))]
            if given is not None:  # numbers read as floats: whole ones shown as codes 1, 2, ...
                categories = [np.asarray([int(v) for v in levels], object)
                              for levels in categories]
            self._features_seen = (frame.shape[1], np.asarray(names, dtype=object)
                                   if isinstance(X, pd.DataFrame) else None)
            self._categories_seen = categories
        else:
            self.__dict__.pop("_features_seen", None)
            self._check_fitted()
            if frame.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {frame.shape[1]} items, but this model was fitted on "
                                 f"{self.n_features_in_}; pass the same items.")
            categories = self.categories_
        blocks = []
        for c, name, levels in zip(frame.columns, names, categories):
            col = frame[c]
            missing = col.isna().to_numpy()
            codes = pd.Index(levels).get_indexer(col.where(~missing, levels[0]))
            unseen = (codes < 0) & ~missing
            if unseen.any():
                value = col[unseen].iloc[0]
                raise ValueError(f"Item {name!r} holds {value!r}, a level not seen in fit "
                                 f"({list(levels)}); map it to one of those or to missing.")
            onehot = np.zeros((len(col), len(levels)))
            onehot[np.flatnonzero(~missing), codes[~missing]] = 1.0
            blocks.append(onehot)
        return np.concatenate(blocks, axis=1)

    def _items(self, categories) -> np.ndarray:
        sizes = [len(c) for c in categories]
        return np.repeat(np.eye(len(sizes)), sizes, axis=0)  # (L, J)

    # -- hooks ------------------------------------------------------------------
    def _family(self):
        return discrete.categorical_family()

    def _hyper(self, n_components: int):
        return discrete.DiscreteHyper(items=layout.to_device(self._items(self._categories_seen),
                                                             layout.float_dtype()))

    def _program_log_joint(self):
        return discrete.categorical_log_joint, self._hyper(self.n_components)

    def _free_parts(self):
        return {"weights": information.Simplex(self.weights_),
                "probabilities": information.ItemSimplex(np.concatenate(self.probabilities_,
                                                                        axis=1),
                                                         [len(c) for c in self.categories_])}

    def _params_from(self, a):
        return discrete.CategoricalParams(a["weights"], a["probabilities"])

    def profile_of(self, params, names):
        """Response probabilities per class: P(last level) of a two-level item (the
        other is its complement), every level of an item with more."""
        categories = getattr(self, "_categories_seen", None) or self.categories_
        binary = all(len(levels) == 2 for levels in categories)
        positions, labels, groups, start = [], [], [], 0
        for name, levels in zip(names, categories):
            shown = range(1, 2) if len(levels) == 2 else range(len(levels))
            positions += [start + i for i in shown]
            labels += [f"{name}={levels[i]}" if binary else str(levels[i]) for i in shown]
            groups.append((str(name), len(shown)))
            start += len(levels)
        values = np.asarray(params["probabilities"], np.float64)[..., positions]
        return Profile(values, labels, "P(answer | class)", "Response probabilities per class",
                       ylim=(-0.02, 1.02), word="class", groups=None if binary else groups)

    def _initial_params(self, key_data, rows, weights, k):
        r = len(key_data)
        categories = self._categories_seen
        sizes = [len(c) for c in categories]
        edges = np.cumsum([0] + sizes)
        if self.probabilities_init is not None:
            probs = [np.asarray(p, np.float64) for p in self.probabilities_init]
            if len(probs) != len(sizes) or any(
                    p.shape != (k, s) or not np.isfinite(p).all() or (p < 0).any()
                    or np.abs(p.sum(1) - 1).max() > 1e-6 for p, s in zip(probs, sizes)):
                raise ValueError(
                    f"probabilities_init must be a list of {len(sizes)} arrays, item j's of shape "
                    f"({k}, levels of j) with rows summing to 1 (levels: {sizes}).")
            theta = np.broadcast_to(np.concatenate(probs, axis=1), (r, k, edges[-1]))
        elif self.init_params == "random":
            theta = np.stack([
                np.concatenate([g.dirichlet(np.ones(s), size=k) for s in sizes], axis=1)
                for g in (starts.generator(w, starts.STREAM_PARAMS) for w in key_data)])
        else:
            marginal = _per_item((weights[:, None] * rows).sum(0), edges)
            picked = rows[starts.distinct_rows(key_data, rows, k)]  # (R, K, L)
            # (an item the picked row left unanswered takes the marginal frequencies)
            theta = 0.5 * _per_item(picked, edges, fallback=marginal) + 0.5 * marginal
        w0 = np.full((r, k), 1.0 / k)
        if self.weights_init is not None:
            w = np.asarray(self.weights_init, np.float64)
            if w.shape != (k,) or (w < 0).any() or abs(w.sum() - 1) > 1e-6:
                raise ValueError(f"weights_init must be {k} non-negative numbers summing to 1.")
            w0 = np.broadcast_to(w, (r, k))
        return discrete.CategoricalParams(w0, theta)

    def _param_dict(self, params) -> dict:
        return {"weights": params.weights, "probabilities": params.probabilities}

    def _fitted(self, params: dict, best: int) -> dict:
        flat = params["probabilities"][best]
        edges = np.cumsum([0] + [len(c) for c in self._categories_seen])
        return {"categories_": self._categories_seen, "weights_": params["weights"][best],
                "probabilities_": [flat[:, a:b] for a, b in zip(edges[:-1], edges[1:])]}

    def _scoring(self, weights=None):
        dtype = layout.float_dtype()
        weights = self.weights_ if weights is None else weights
        params = discrete.CategoricalParams(layout.to_device(weights, dtype),
                                            layout.to_device(np.concatenate(self.probabilities_,
                                                                            1), dtype))
        hyper = discrete.DiscreteHyper(items=layout.to_device(self._items(self.categories_), dtype))
        return discrete.categorical_log_joint, params, hyper

    def n_parameters(self) -> int:
        k = len(self.probabilities_[0])
        return (k - 1) + k * sum(len(c) - 1 for c in self.categories_)

    def _sample_rows(self, labels, rng) -> pd.DataFrame:
        names = (list(self.feature_names_in_) if hasattr(self, "feature_names_in_")
                 else list(range(len(self.categories_))))
        cols = {}
        for name, levels, p in zip(names, self.categories_, self.probabilities_):
            p = np.asarray(p, np.float64)[labels]
            u = rng.random(len(labels))
            idx = np.minimum((u[:, None] > np.cumsum(p / p.sum(1, keepdims=True), 1)).sum(1),
                             len(levels) - 1)
            cols[name] = np.asarray(levels, dtype=object)[idx]
        return pd.DataFrame(cols)

    def profiles(self) -> pd.DataFrame:
        """The response probabilities as a table: one row per (item, level), one
        column per class; what a class-profile plot draws."""
        self._check_fitted()
        names = (list(self.feature_names_in_) if hasattr(self, "feature_names_in_")
                 else [str(j) for j in range(len(self.categories_))])
        index = pd.MultiIndex.from_tuples(
            [(n, lv) for n, levels in zip(names, self.categories_) for lv in levels],
            names=["item", "level"])
        return pd.DataFrame(np.concatenate(self.probabilities_, axis=1).T, index=index,
                            columns=[f"class {k}" for k in range(len(self.probabilities_[0]))])


def _per_item(counts, edges, fallback=None):
    """Normalise the last axis within each item's levels (edges[j]:edges[j+1]); an item
    with no count takes ``fallback``'s probabilities (uniform if None)."""
    out = np.empty_like(counts, dtype=np.float64)
    for a, b in zip(edges[:-1], edges[1:]):
        block = counts[..., a:b]
        total = block.sum(-1, keepdims=True)
        default = (np.full(b - a, 1.0 / (b - a)) if fallback is None else fallback[a:b])
        out[..., a:b] = np.where(total > 0, block / np.where(total > 0, total, 1.0), default)
    return out


def _as_frame(X) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    if X is None:
        raise ValueError("X is None; pass the answers as a DataFrame, one column per item.")
    arr = np.asarray(X, dtype=object)
    if arr.ndim != 2:
        raise ValueError(f"X has {arr.ndim} dimension(s); pass a 2-D table of answers, one "
                         "row per respondent and one column per item.")
    return pd.DataFrame(arr)


def _levels(col: pd.Series, name: str, max_levels: int) -> np.ndarray:
    """The sorted levels of one item, or a one-sentence ValueError."""
    observed = col.dropna()
    if observed.empty:
        raise ValueError(f"Item {name!r} has no answer at all; drop it.")
    if pd.api.types.is_float_dtype(observed) and (observed != np.round(observed)).any():
        value = observed[observed != np.round(observed)].iloc[0]
        raise ValueError(f"Item {name!r} holds numbers such as {value:g}, not categories; "
                         "bin it (pd.cut) or model it with GaussianMixture.")
    if isinstance(col.dtype, pd.CategoricalDtype):
        levels = np.asarray([c for c in col.cat.categories if (observed == c).any()], object)
    else:
        uniq = pd.unique(observed)
        try:
            levels = np.asarray(sorted(uniq), dtype=object)
        except TypeError:  # mixed types: sort by their text
            levels = np.asarray(sorted(uniq, key=str), dtype=object)
    if len(levels) < 2:
        raise ValueError(f"Item {name!r} has a single level ({levels[0]!r}): it says nothing "
                         "about the classes; drop it.")
    if len(levels) > max_levels:
        raise ValueError(f"Item {name!r} has {len(levels)} levels, more than max_levels="
                         f"{max_levels}: it looks like a number or an identifier; bin it, drop "
                         "it or raise max_levels.")
    return levels


class CategoricalHMM(FamilyHMM, LatentClassModel):
    """A hidden Markov model with categorical emissions (hmmlearn's ``CategoricalHMM``),
    every restart at once.

    Each step is one or more categorical answers (strings, categories or
    integers; hmmlearn allows one integer column); a missing answer is left out
    of that step's emission probability. Parameters as :class:`LatentClassModel`
    plus hmmlearn's ``n_iter``; ``tol`` is on the log-likelihood per step.
    ``fit(X, lengths)`` takes several sequences.

    Fitted attributes: ``startprob_``, ``transmat_``, ``probabilities_`` (list
    of (S, L_j) per column), ``emissionprob_`` (hmmlearn's, for one column),
    ``categories_``, ``n_iter_``, ``converged_``, ``lower_bound_``, ``restarts_``.
    """

    _emissions = discrete.CATEGORICAL

    def __init__(self, n_components=2, *, n_iter=1000, tol=1e-10, n_init=1, init_params="random",
                 probabilities_init=None, startprob_init=None, transmat_init=None,
                 max_levels=MAX_LEVELS, random_state=None, accelerate="squarem", convergence="gap",
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
        self.probabilities_init = probabilities_init
        self.max_levels = max_levels
        self.random_state = random_state

    weights_init = None

    @property
    def emissionprob_(self):
        """(S, L) emission probabilities of the one column (hmmlearn's attribute)."""
        if len(self.probabilities_) != 1:
            raise AttributeError("emissionprob_ is for one column; see probabilities_")
        return self.probabilities_[0]
