"""Comparing restarts: are they one optimum or many, and is each a real maximum?

**Spurious maxima.** The likelihood of a Gaussian mixture is unbounded: a
component sitting on a few points (or on tied values, or a constant column) can
shrink its covariance until only ``reg_covar`` holds it up, and the
log-likelihood then grows without saying anything about the data.
:func:`spurious_report` flags a restart when one of its components

* **sits at the covariance floor**: the smallest eigenvalue of its covariance is
  at most ``FLOOR_FACTOR`` (10) times ``reg_covar`` (what the M-step adds to every
  variance, in data units), or the smallest eigenvalue of its covariance with each
  column divided by that column's own standard deviation in the data is at most
  ``FLOOR_FACTOR`` times the rounding level of the fit (``ROUNDING_ULPS`` = 10 machine
  epsilons of its float type: in float32 a covariance that collapsed with
  ``reg_covar=0`` ends near 1e-7 of the column's variance instead of at zero). Each
  column at its own scale: on scikit-learn's wine data, proline's variance (99,000)
  made the mean variance 7,600, and a cultivar's 0.009 along a column of variance 0.01
  looked collapsed beside it; or
* **holds no more points than dimensions its covariance needs**: nk <= d (full:
  with d points or fewer a sample covariance is singular), nk < 2 (diag, spherical:
  one point has no spread), nk < 1 (tied: its means only), nk being the summed
  responsibilities (state occupancy for HMMs). Such a component is determined by its
  starting point and the floor, not by the data. (A component with fewer points than
  its covariance's d(d+1)/2 parameters is estimable: the wine cultivars hold 48-71
  rows against 104 parameters, and scikit-learn's and mclust's fits agree on them.)

**Distinct solutions.** Restarts that end on one optimum stop at slightly
different points (each stops once an iteration gains less than ``tol``), and
number their components differently. :func:`group_restarts` puts two restarts
in the same solution when

* their objectives differ by at most ``tol_objective`` (default 10 x the fit's
  ``tol``: EM converges linearly, so a restart that stopped when an iteration
  gained ``tol`` is typically within ``tol * rho / (1 - rho)`` of its optimum,
  under 10 ``tol`` for convergence rates rho up to 0.9; and never below
  ``TOL_OBJECTIVE_FLOOR``, 1e-4 nats per sample, for restarts on a flat optimum
  that stop apart even at a tight ``tol``), and
* after Hungarian alignment of their components, no mean differs by more than
  ``tol_means`` (default 0.1) standard deviations of the data along any feature
  (near an optimum the per-sample objective is quadratic in a mean,
  w delta^2 / (2 sigma^2): a 0.1 sd move of a component's mean costs far more
  than ``tol`` unless the optimum is flat), and
* both are regular or both spurious.

Partitions alone (the adjusted Rand index) are reported, not used: restarts
that stopped on a flat ridge can agree on every mean within a few percent yet
split boundary points differently, and distinct optima of equal likelihood (a
mirror image) have different partitions and different means. Components are
aligned to the best restart, so the same cluster gets the same colour in every
view. Pure NumPy/SciPy.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

#: A component is at the floor when its smallest covariance eigenvalue is at
#: most this many times (reg_covar + rounding level).
FLOOR_FACTOR = 10.0
#: The rounding level of a fitted covariance, in machine epsilons of the fit's
#: float type, relative to the data's mean variance.
ROUNDING_ULPS = 10.0
#: Default grouping tolerances (see the module docstring).
TOL_OBJECTIVE_PER_TOL = 10.0
#: ... and never below this many nats per sample: restarts on one flat optimum (a latent
#: class model's ridge) stop 1e-5 apart with parameters within 0.002 of each other even at
#: tol=1e-10, and 10 tol split one solution into eight.
TOL_OBJECTIVE_FLOOR = 1e-4
TOL_MEANS = 0.1


def adjusted_rand_index(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index between two labelings of the same samples (1 = identical)."""
    a = np.asarray(a)
    b = np.asarray(b)
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(table, (ai, bi), 1)
    comb = lambda v: (v * (v - 1) / 2.0).sum()  # noqa: E731
    n = len(a)
    sum_ij = comb(table)
    sum_a = comb(table.sum(1))
    sum_b = comb(table.sum(0))
    expected = sum_a * sum_b / (n * (n - 1) / 2.0) if n > 1 else 0.0
    maximum = 0.5 * (sum_a + sum_b)
    if maximum == expected:
        return 1.0
    return float((sum_ij - expected) / (maximum - expected))


def align_components(reference_means: np.ndarray, means: np.ndarray,
                     scale: np.ndarray | None = None) -> np.ndarray:
    """Permutation ``p`` with ``means[p]`` matched to ``reference_means`` (Hungarian).

    Returns p such that component ``p[j]`` of ``means`` plays the role of
    component ``j`` of the reference. ``scale`` (D,) divides each feature first.
    """
    s = 1.0 if scale is None else np.asarray(scale)
    cost = (((reference_means[:, None, :] - means[None, :, :]) / s) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(len(rows), dtype=int)
    perm[rows] = cols
    return perm


# ---------------------------------------------------------------------------
# Spurious maxima
# ---------------------------------------------------------------------------

#: Points a component needs for its covariance to be estimable (its mean aside): more
#: than d for a full covariance, two for a variance, one for a tied covariance's mean.
POINTS_NEEDED = {
    "full": lambda d: d + 1,
    "diag": lambda d: 2,
    "spherical": lambda d: 2,
    "tied": lambda d: 1,
}


def dense_covariances(cov_type: str, covariances, n_components: int, n_features: int):
    """(..., K, D, D) matrices from covariances of any type (leading axes kept)."""
    c = np.asarray(covariances, dtype=np.float64)
    k, d = n_components, n_features
    if cov_type == "full":
        return c
    if cov_type == "tied":
        return np.broadcast_to(c[..., None, :, :], c.shape[:-2] + (k, d, d))
    if cov_type == "diag":
        return c[..., :, None] * np.eye(d)
    return c[..., :, None, None] * np.eye(d)


def smallest_eigenvalues(cov_type: str, covariances, n_components: int, n_features: int):
    """(..., K) smallest eigenvalue of each component's covariance, and (..., K) the
    feature that eigenvector lies along (-1 where it mixes features)."""
    c = np.asarray(covariances, dtype=np.float64)
    if cov_type == "spherical":
        return c, np.full(c.shape, -1)
    if cov_type == "diag":
        return c.min(-1), c.argmin(-1)
    dense = dense_covariances(cov_type, c, n_components, n_features)
    dense = np.where(np.isfinite(dense), dense, 0.0)
    values, vectors = np.linalg.eigh(dense)
    first = np.abs(vectors[..., :, 0])
    along = np.where(first.max(-1) > 0.99, first.argmax(-1), -1)
    return values[..., 0], along


@dataclass
class SpuriousReport:
    """Which restarts ended on a spurious maximum, and why.

    Attributes (R restarts, K components):
        spurious: (R,) bool.
        component: (R,) the offending component (-1 where none).
        at_floor, few_points: (R, K) bool, each rule per component.
        smallest_eigenvalue: (R, K) in data units; nk: (R, K) points held.
        floor: the covariance floor in data units (reg_covar + rounding level).
        reasons: R strings ('' where regular).
    """

    spurious: np.ndarray
    component: np.ndarray
    at_floor: np.ndarray
    few_points: np.ndarray
    smallest_eigenvalue: np.ndarray
    nk: np.ndarray
    floor: float
    reasons: list = field(default_factory=list)

    @classmethod
    def none(cls, n_restarts: int) -> "SpuriousReport":
        z = np.zeros((n_restarts, 0))
        return cls(np.zeros(n_restarts, bool), np.full(n_restarts, -1), z.astype(bool),
                   z.astype(bool), z, z, 0.0, [""] * n_restarts)


def spurious_report(cov_type: str, nk, covariances, n_features: int, reg_covar: float,
                    data_variance, eps: float, floor_name: str = "reg_covar",
                    feature_names=None) -> SpuriousReport:
    """Flag restarts with a component at the covariance floor or on too few points.

    Args:
        cov_type: 'full', 'tied', 'diag' or 'spherical'.
        nk: (R, K) points each component holds (summed responsibilities).
        covariances: (R, ...) covariances of each restart in data units.
        n_features: D.
        reg_covar: what the M-step adds to every variance, in data units (0 with
            a prior, which keeps covariances proper by itself).
        data_variance: (D,) each column's variance in the data (a scalar: one for all),
            in data units: the scale of each column's rounding.
        eps: machine epsilon of the fit's float type.
        floor_name: the parameter that sets the floor, for the messages.
        feature_names: (D,) names for the messages (default 'feature j').
    """
    nk = np.asarray(nk, dtype=np.float64)
    n_restarts, k = nk.shape
    d = int(n_features)
    smallest, along = smallest_eigenvalues(cov_type, covariances, k, d)
    sd = np.sqrt(np.broadcast_to(np.asarray(data_variance, np.float64), (d,)))
    sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
    relative, _ = smallest_eigenvalues(
        "full", dense_covariances(cov_type, covariances, k, d) / np.outer(sd, sd), k, d)
    floor = float(reg_covar)
    rounding = ROUNDING_ULPS * eps
    # (NaN counts as collapsed)
    at_floor = ~(smallest > FLOOR_FACTOR * floor) | ~(relative > FLOOR_FACTOR * rounding)
    needed = POINTS_NEEDED[cov_type](d)
    few = nk < needed
    bad = at_floor | few
    spurious = bad.any(axis=1)
    # Report the component at the floor first, else the one with fewest points.
    score = np.where(at_floor, -1.0, np.where(few, nk, np.inf))
    component = np.where(spurious, score.argmin(axis=1), -1)
    reasons = []
    for r in range(n_restarts):
        c = int(component[r])
        if c < 0:
            reasons.append("")
            continue
        parts = [f"component {c} holds {nk[r, c]:.1f} points"]
        if few[r, c]:
            parts[0] += f", fewer than the {needed} its {cov_type} covariance needs"
        if at_floor[r, c]:
            where = ""
            if along[r, c] >= 0 and cov_type != "spherical":
                j = int(along[r, c])
                name = feature_names[j] if feature_names is not None else f"feature {j}"
                where = f" along {name}"
            if relative[r, c] > FLOOR_FACTOR * rounding:
                parts.append(f"its covariance is at the {floor_name} floor{where} (smallest "
                             f"eigenvalue {smallest[r, c]:.2g}, under 10 x the floor "
                             f"{floor:.2g})")
            else:
                parts.append(f"its covariance collapsed{where} (smallest eigenvalue "
                             f"{relative[r, c]:.2g} of the columns' variances, under 10 x "
                             f"the rounding level {rounding:.2g})")
        reasons.append(" and ".join(parts))
    return SpuriousReport(spurious, component, at_floor, few, smallest, nk, floor, reasons)


#: Parameters that are not a component's own (shared, or derived from others).
NOT_PER_COMPONENT = ("weights", "startprob", "transmat", "precisions_cholesky")
#: Two components coincide when every parameter of theirs agrees to this relative tolerance.
COINCIDE_RTOL = 1e-6


def coinciding_components(params: dict, shared=()) -> np.ndarray:
    """(R, 2) for each restart the first pair of components whose parameters are the same
    (every entry to :data:`COINCIDE_RTOL`), or (-1, -1). ``params``: ``{name: (R, K, ...)}``
    as ``restarts_.params`` (a pytree per name is fine); the names in
    :data:`NOT_PER_COMPONENT` and ``shared`` (a tied covariance) are left out.

    Two coinciding components are one component counted twice: a fixed point EM cannot
    leave (the E-step splits their points evenly and the M-step gives both the same
    parameters), reached from a symmetric start or where the data hold fewer clusters."""
    import jax

    lead = params.get("weights", params.get("startprob"))
    r, k = np.shape(lead)
    leaves = [np.asarray(a, np.float64).reshape(r, k, -1)
              for name, value in params.items() if name not in NOT_PER_COMPONENT + tuple(shared)
              for a in jax.tree.leaves(value) if np.ndim(a) >= 2 and np.shape(a)[:2] == (r, k)]
    out = np.full((r, 2), -1)
    if not leaves or k < 2:
        return out
    flat = np.concatenate(leaves, axis=2)  # (R, K, P)
    tiny = 1e-12 * np.nanmax(np.abs(flat), axis=(1, 2))[:, None]
    for i, j in itertools.combinations(range(k), 2):  # (pair by pair: memory R x P)
        a, b = flat[:, i], flat[:, j]
        same = (np.abs(a - b) <= COINCIDE_RTOL * np.maximum(np.abs(a), np.abs(b)) + tiny).all(-1)
        out[same & (out[:, 0] < 0)] = (i, j)
    return out


def with_coinciding(report: SpuriousReport, pairs: np.ndarray) -> SpuriousReport:
    """``report`` with the restarts whose components coincide (``pairs``:
    :func:`coinciding_components`) flagged as well, and why."""
    hit = pairs[:, 0] >= 0
    if not hit.any():
        return report
    reasons = list(report.reasons)
    for r in np.flatnonzero(hit):
        i, j = (int(c) for c in pairs[r])
        text = (f"components {i} and {j} coincide (the same parameters): one component counted "
                "twice, a fixed point EM cannot leave")
        reasons[r] = f"{reasons[r]} and {text}" if reasons[r] else text
    return dataclasses.replace(report, spurious=report.spurious | hit,
                               component=np.where(report.component >= 0, report.component,
                                                  np.where(hit, pairs[:, 1], -1)),
                               reasons=reasons)


def _gap(a: float, b: float) -> float:
    """a - b, with equal values (-inf at the start of a run too) no gap rather than NaN."""
    return 0.0 if a == b else a - b


def rank_restarts(objective, failed, spurious=None, spurious_last: bool = True) -> np.ndarray:
    """Restart indices best first: regular restarts by objective, then spurious ones
    (when ``spurious_last``), then failed ones."""
    objective = np.asarray(objective, dtype=np.float64)
    failed = np.asarray(failed, bool)
    spurious = np.zeros(len(objective), bool) if spurious is None else np.asarray(spurious, bool)
    value = np.where(np.isfinite(objective), objective, -np.inf)
    tier = np.where(failed, 2, np.where(spurious & spurious_last, 1, 0))
    return np.lexsort((-value, tier))


# ---------------------------------------------------------------------------
# Distinct solutions
# ---------------------------------------------------------------------------

@dataclass
class Solutions:
    """Restarts grouped into distinct solutions.

    Attributes (G solutions, R restarts):
        groups: lists of restart indices, best solution first (regular before
            spurious); within a group, the best restart first (its
            representative, the lead).
        group_of: (R,) the group index of each restart (-1 for failed restarts).
        permutations: (R, K) for each restart, the permutation aligning its
            components to the overall best restart's.
        gap: (G,) objective of each solution's lead minus the best solution's
            (<= 0 for regular solutions; a spurious one may be above).
        distance: (G,) largest difference of an aligned mean from the best
            solution's, in standard deviations of the data.
        agreement: (G,) adjusted Rand index of the lead's partition with the best's.
        spurious: (G,) bool, the solution is a spurious maximum.
        tol_objective, tol_means: the tolerances the grouping used.
    """

    groups: list
    group_of: np.ndarray
    permutations: np.ndarray
    gap: np.ndarray = None
    distance: np.ndarray = None
    agreement: np.ndarray = None
    spurious: np.ndarray = None
    tol_objective: float = np.nan
    tol_means: float = TOL_MEANS

    @property
    def counts(self) -> list:
        return [len(g) for g in self.groups]


def mean_distance(means_a, means_b, scale=None) -> tuple:
    """(largest aligned mean difference in units of ``scale``, permutation of b onto a)."""
    s = 1.0 if scale is None else np.asarray(scale)
    perm = align_components(means_a, means_b, scale)
    return float(np.abs((means_b[perm] - means_a) / s).max()), perm


def group_restarts(labels: np.ndarray, objective: np.ndarray, means: np.ndarray,
                   usable: np.ndarray | None = None, threshold: float | None = None, *,
                   order=None, spurious=None, scale=None, tol: float = 1e-3,
                   tol_objective: float | None = None, tol_means: float = TOL_MEANS) -> Solutions:
    """Group restarts that reached the same optimum (see the module docstring).

    Args:
        labels: (R, N) hard assignments of each restart (a subsample is enough).
        objective: (R,) final objective (mean log-likelihood per sample).
        means: (R, K, D) component means.
        usable: (R,) bool, restarts to group (failed ones get group -1).
        threshold: optional extra requirement, adjusted Rand index >= threshold.
        order: restart indices best first (e.g. regular before spurious);
            default: usable restarts by objective.
        spurious: (R,) bool, spurious restarts only group with spurious ones.
        scale: (D,) the data's standard deviation per feature (default: the
            spread of the best restart's means, 1 where it has none).
        tol: the fit's tol; ``tol_objective`` defaults to max(10 x tol, 1e-4).
        tol_means: largest aligned mean difference, in units of ``scale``.
    """
    objective = np.asarray(objective, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    n_restarts = len(objective)
    usable = np.ones(n_restarts, bool) if usable is None else np.asarray(usable, bool)
    spurious = np.zeros(n_restarts, bool) if spurious is None else np.asarray(spurious, bool)
    if order is None:
        order = rank_restarts(objective, ~usable, spurious)
    order = [int(i) for i in order if usable[i]]
    if tol_objective is None:
        tol_objective = max(TOL_OBJECTIVE_PER_TOL * tol, TOL_OBJECTIVE_FLOOR)
    if scale is None and order:
        spread = means[order[0]].std(axis=0)
        scale = np.where(spread > 0, spread, 1.0)
    groups: list[list[int]] = []
    group_of = np.full(n_restarts, -1)
    for r in order:
        for g, members in enumerate(groups):
            lead = members[0]
            if spurious[lead] != spurious[r]:
                continue
            if not abs(_gap(objective[lead], objective[r])) <= tol_objective:
                continue
            if mean_distance(means[lead], means[r], scale)[0] > tol_means:
                continue
            if threshold is not None and adjusted_rand_index(labels[lead], labels[r]) < threshold:
                continue
            members.append(r)
            group_of[r] = g
            break
        else:
            group_of[r] = len(groups)
            groups.append([r])
    k = means.shape[1]
    perms = np.tile(np.arange(k), (n_restarts, 1))
    gap, distance, agreement = (np.zeros(len(groups)) for _ in range(3))
    if order:
        ref = order[0]
        for r in order:
            perms[r] = align_components(means[ref], means[r], scale)
        for g, members in enumerate(groups):
            lead = members[0]
            gap[g] = _gap(objective[lead], objective[ref])
            distance[g] = mean_distance(means[ref], means[lead], scale)[0]
            agreement[g] = adjusted_rand_index(labels[ref], labels[lead])
    return Solutions(groups, group_of, perms, gap, distance, agreement,
                     np.array([bool(spurious[m[0]]) for m in groups], bool),
                     float(tol_objective), float(tol_means))


def solutions_of(restarts, labels: np.ndarray, **kwargs) -> Solutions:
    """:func:`group_restarts` for a :class:`~emwidgets.Restarts`: its ranking (regular
    before spurious), its spurious flags, the data's scale and the fit's tol."""
    scale = getattr(restarts, "feature_scale", None)
    options = dict(order=restarts.ranking(), spurious=restarts.spurious, scale=scale,
                   tol=getattr(restarts, "tol", 1e-3))
    options.update(kwargs)
    return group_restarts(labels, restarts.objective, restarts.params["means"], ~restarts.failed,
                          **options)
