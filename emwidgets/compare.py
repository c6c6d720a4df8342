"""Comparing restarts: are they one optimum or many?

Two restarts found the same solution when their partitions of the data agree
(adjusted Rand index near 1) — a measure blind to how each restart numbered its
components. Components are then aligned to a reference by Hungarian matching
of their means, so the same cluster gets the same colour in every view.
Pure NumPy/SciPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


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


def align_components(reference_means: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Permutation ``p`` with ``means[p]`` matched to ``reference_means`` (Hungarian).

    Returns p such that component ``p[j]`` of ``means`` plays the role of
    component ``j`` of the reference.
    """
    cost = ((reference_means[:, None, :] - means[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(len(rows), dtype=int)
    perm[rows] = cols
    return perm


@dataclass
class Solutions:
    """Restarts grouped into distinct solutions.

    Attributes:
        groups: lists of restart indices, best solution first; within a group,
            the best restart first (its representative).
        group_of: (R,) the group index of each restart (-1 for failed restarts).
        permutations: (R, K) for each restart, the permutation aligning its
            components to the overall best restart's.
    """

    groups: list
    group_of: np.ndarray
    permutations: np.ndarray

    @property
    def counts(self) -> list:
        return [len(g) for g in self.groups]


def group_restarts(labels: np.ndarray, objective: np.ndarray, means: np.ndarray,
                   usable: np.ndarray | None = None, threshold: float = 0.95) -> Solutions:
    """Group restarts whose partitions agree (ARI >= threshold).

    Args:
        labels: (R, N) hard assignments of each restart (a subsample is enough).
        objective: (R,) final objective; better restarts lead their group.
        means: (R, K, D) component means, for the alignment.
        usable: (R,) bool, restarts to group (failed ones get group -1).
    """
    n_restarts = len(objective)
    usable = np.ones(n_restarts, bool) if usable is None else np.asarray(usable, bool)
    order = [int(i) for i in np.argsort(-np.where(usable, objective, -np.inf), kind="stable")
             if usable[i]]
    groups: list[list[int]] = []
    group_of = np.full(n_restarts, -1)
    for r in order:
        for g, members in enumerate(groups):
            if adjusted_rand_index(labels[members[0]], labels[r]) >= threshold:
                members.append(r)
                group_of[r] = g
                break
        else:
            group_of[r] = len(groups)
            groups.append([r])
    k = means.shape[1]
    perms = np.tile(np.arange(k), (n_restarts, 1))
    if order:
        ref = means[order[0]]
        for r in order:
            perms[r] = align_components(ref, means[r])
    return Solutions(groups, group_of, perms)
