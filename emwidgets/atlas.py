"""An atlas of restarts: is this one optimum or many, and how do they differ?

Every restart's partition of the rows is compared with every other's (1 - the adjusted
Rand index: 0 for the same partition whatever the labels' order), the restarts are laid
out in the plane by classical (Torgerson) multidimensional scaling of those distances, and
each distinct solution is described against the best in words: which of the best's
components it merges into one and which it splits. Mixture local optima are of that kind
(Chen, Song, Xi & Zhang, "Local minima structures in Gaussian mixture models",
IEEE Trans. Inf. Theory 2024: a local optimum merges some true components and splits
others). The co-assignment (consensus) matrix says, for every pair of rows, in what share
of the restarts they share a component.

Pure NumPy, no UI: the explorer's atlas view draws :func:`restart_atlas`'s result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .compare import adjusted_rand_index

#: A component of one partition counts as holding a share of another's component when it
#: holds at least this fraction of its rows.
SHARE = 0.2


def partition_distances(labels: np.ndarray) -> np.ndarray:
    """(R, R) 1 - adjusted Rand index between every two restarts' labels (R, n):
    symmetric, zero on the diagonal and between partitions equal up to relabelling."""
    labels = np.asarray(labels)
    r = len(labels)
    d = np.zeros((r, r))
    for i in range(r):
        for j in range(i + 1, r):
            d[i, j] = d[j, i] = 1.0 - adjusted_rand_index(labels[i], labels[j])
    return np.clip(d, 0.0, None)


def classical_mds(distances: np.ndarray, dims: int = 2) -> np.ndarray:
    """(R, dims) coordinates whose Euclidean distances approximate ``distances``
    (Torgerson's scaling: the top eigenvectors of the double-centred squared distances;
    zeros where the distances need fewer dimensions)."""
    d2 = np.asarray(distances, np.float64) ** 2
    r = len(d2)
    centre = np.eye(r) - 1.0 / r
    b = -0.5 * centre @ d2 @ centre
    values, vectors = np.linalg.eigh((b + b.T) / 2)
    order = np.argsort(values)[::-1][:dims]
    coords = vectors[:, order] * np.sqrt(np.clip(values[order], 0.0, None))
    if coords.shape[1] < dims:
        coords = np.pad(coords, ((0, 0), (0, dims - coords.shape[1])))
    return coords


def consensus(labels: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """(n, n) share of the restarts (rows of ``labels``) in which rows i and j share a
    component; ``order`` reorders the rows (the best restart's components, say)."""
    labels = np.asarray(labels)
    if order is not None:
        labels = labels[:, order]
    k = int(labels.max()) + 1
    onehot = np.eye(k)[labels]  # (R, n, K)
    return np.einsum("rik,rjk->ij", onehot, onehot) / len(labels)


def describe(best: np.ndarray, other: np.ndarray, names=None) -> str:
    """One sentence on how partition ``other`` differs from ``best`` (labels of the same
    rows): which of the best's components it merges into one, which it splits, or that
    it is the same partition. ``names``: the best's components' names (default 0, 1...,
    as the plots number them and the estimator's arrays index them)."""
    best, other = np.asarray(best), np.asarray(other)
    kb, ko = int(best.max()) + 1, int(other.max()) + 1
    names = [str(i) for i in range(kb)] if names is None else [str(n) for n in names]
    table = np.zeros((kb, ko))
    np.add.at(table, (best, other), 1)
    sizes = table.sum(1)
    present = np.flatnonzero(sizes > 0)
    share = np.divide(table, sizes[:, None], out=np.zeros_like(table), where=sizes[:, None] > 0)
    home = share.argmax(1)  # where most of each best component's rows went
    merges, splits = [], []
    for o in range(ko):
        into = [b for b in present if home[b] == o and share[b, o] >= 0.5]
        if len(into) > 1:
            merges.append(into)
    for b in present:
        parts = np.flatnonzero(share[b] >= SHARE)
        if len(parts) > 1:
            splits.append((b, len(parts)))
    if not merges and not splits:
        ari = adjusted_rand_index(best, other)
        return (f"The same partition as the best (ARI {ari:.2f})" if ari > 0.99 else
                f"No component merged or split, but rows moved (ARI {ari:.2f} with the best)")
    words = {2: "two", 3: "three", 4: "four", 5: "five"}
    parts = []
    for into in merges:
        listed = ", ".join(names[b] for b in into[:-1]) + f" and {names[into[-1]]}"
        parts.append(f"merges the best's components {listed} into one")
    for b, n in splits:
        parts.append(f"splits component {names[b]} in {words.get(n, str(n))}")
    sentence = "; ".join(parts)
    return sentence[0].upper() + sentence[1:]


@dataclass
class Atlas:
    """Every restart placed by how its partition differs from the others'.

    Attributes (R restarts):
        distances: (R, R) 1 - ARI between partitions.
        coords: (R, 2) classical MDS of ``distances``.
        group_of: (R,) the distinct solution each restart reached (-1: failed).
        counts: (R,) how many restarts reached the solution of each.
        objective: (R,) final objective of each.
        best: the best restart.
        descriptions: one sentence per solution (by group), against the best.
    """

    distances: np.ndarray
    coords: np.ndarray
    group_of: np.ndarray
    counts: np.ndarray
    objective: np.ndarray
    best: int
    descriptions: list


def restart_atlas(labels: np.ndarray, restarts, solutions) -> Atlas:
    """The atlas of a fit's restarts from their labels (R, n) of the same rows, the
    :class:`~emwidgets.Restarts` and their :class:`~emwidgets.compare.Solutions`."""
    labels = np.asarray(labels)
    distances = partition_distances(labels)
    group_of = np.asarray(solutions.group_of)
    sizes = np.array([len(g) for g in solutions.groups])
    counts = np.where(group_of >= 0, sizes[np.maximum(group_of, 0)], 1)
    best = int(restarts.best)
    descriptions = []
    for g, members in enumerate(solutions.groups):
        lead = members[0]
        descriptions.append("The best solution" if g == 0 else
                            describe(labels[best], labels[lead]))
    return Atlas(distances, classical_mds(distances), group_of, counts,
                 np.asarray(restarts.objective, np.float64), best, descriptions)


@dataclass
class BasinMap:
    """Which optimum EM reaches from every start of one mean on a grid (2-D data).

    Attributes (G x G grid, S distinct optima):
        xs, ys: (G,) the grid's coordinates (data units).
        solution: (G, G) the optimum reached from the start at (ys[i], xs[j]), 0 the best,
            -1 where the restart failed (degenerate or not finite).
        means: (S, K, 2) each optimum's means (its best restart's, in that restart's order).
        objective: (S,) each optimum's mean log-likelihood.
        counts: (S,) starts that reached it.
        component: the mean moved over the grid; fixed: (K, 2) the start's other means.
    """

    xs: np.ndarray
    ys: np.ndarray
    solution: np.ndarray
    means: np.ndarray
    objective: np.ndarray
    counts: np.ndarray
    component: int
    fixed: np.ndarray


def group_optima(means: np.ndarray, objective: np.ndarray, tol: float):
    """Group restarts by the optimum they reached: the same when their means, matched
    component to component (Hungarian, as the explorer's solutions), all lie within
    ``tol``. ``means`` (R, K, D); ``objective`` (R,), -inf for a failed restart (-1).

    Returns (solution (R,) 0 = the best optimum, leads: each optimum's best restart,
    key (R, K, D): each restart's means in its optimum's leader's component order).
    Matching, not sorting by a coordinate: two components with nearly equal first
    coordinates swap places in a sort from one restart to the next."""
    from scipy.optimize import linear_sum_assignment

    key = np.array(means, np.float64)
    solution = np.full(len(key), -1)
    leads: list[int] = []
    for i in np.argsort(-objective, kind="stable"):
        if not np.isfinite(objective[i]):
            break
        for g, lead in enumerate(leads):
            cost = np.abs(key[lead][:, None, :] - key[i][None, :, :]).max(-1)  # (K, K)
            rows, cols = linear_sum_assignment(cost)
            if cost[rows, cols].max() <= tol:
                solution[i] = g
                key[i] = key[i][cols]
                break
        else:
            solution[i] = len(leads)
            leads.append(int(i))
    return solution, leads, key


def basin_map(X, means, component: int = 0, grid: int = 30, extent=None, tol_means=0.1,
              **settings) -> BasinMap:
    """Start mean ``component`` at every point of a ``grid`` x ``grid`` lattice over the
    data (or ``extent`` = (x0, x1, y0, y1)), the other means where ``means`` (K, 2) puts
    them, and colour each start by the optimum EM reaches from it: one vmapped batch
    of G² restarts (``GaussianMixture(means_init=...)`` with one start a restart).
    ``settings``: the estimator's (covariance_type, tol, max_iter...). Two restarts reach
    the same optimum when their means, sorted, agree within ``tol_means`` of the data's
    standard deviation."""
    from .estimators.gaussian_mixture import GaussianMixture

    X = np.asarray(X, np.float64)
    means = np.asarray(means, np.float64)
    if X.ndim != 2 or X.shape[1] != 2 or means.shape[1:] != (2,):
        raise ValueError("A basin map is for 2-D data: pass two columns and means of shape "
                         f"(n_components, 2); got X {X.shape} and means {means.shape}.")
    k = len(means)
    if extent is None:
        lo, hi = X.min(0), X.max(0)
        pad = 0.05 * (hi - lo)
        extent = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
    xs = np.linspace(extent[0], extent[1], grid)
    ys = np.linspace(extent[2], extent[3], grid)
    gx, gy = np.meshgrid(xs, ys)
    starts = np.repeat(means[None], grid * grid, axis=0)
    starts[:, component] = np.c_[gx.ravel(), gy.ravel()]
    kw = {**dict(tol=1e-6, max_iter=500, random_state=0), **settings}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(k, n_init=len(starts), means_init=starts, **kw).fit(X)
    r = gm.restarts_
    final = np.asarray(r.params["means"], np.float64)  # (R, K, 2)
    ok = ~np.asarray(r.failed) & np.isfinite(r.objective)
    scale = float(X.std(0).max()) or 1.0
    solution, leads, key = group_optima(final, np.where(ok, r.objective, -np.inf),
                                        tol_means * scale)
    counts = np.bincount(solution[solution >= 0], minlength=len(leads))
    return BasinMap(xs, ys, solution.reshape(grid, grid),
                    key[leads], np.asarray(r.objective)[leads],
                    counts, component, np.delete(means, component, axis=0))
