"""Restarts grouped into solutions: one optimum reached from different starts is one
solution, distinct optima are not; the gallery shows every solution and its gap."""

import warnings

import numpy as np
import pytest
from _numerics import PLAIN_EM
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from emwidgets import GaussianMixture, datasets
from emwidgets.compare import group_restarts, mean_distance, solutions_of
from emwidgets.widgets import RestartGallery, views
from emwidgets.widgets.session import snapshot_from_estimator


@pytest.fixture(scope="module")
def iris():
    return datasets.load_iris().drop(columns="Species").to_numpy()


def test_grouping_tolerances_on_synthetic_restarts():
    rng = np.random.default_rng(0)
    sd = np.array([1.0, 10.0])
    means = rng.normal(size=(3, 2)) * sd * 3
    labels = rng.integers(0, 3, (6, 50))
    perm = [2, 0, 1]
    stack = np.stack([
        means,                                   # 0: the best
        (means + 0.05 * sd)[perm],               # 1: 0.05 sd off, numbered differently
        means + [0.2, 0.0] * sd,                 # 2: 0.2 sd off: another optimum
        means,                                   # 3: same means, objective 0.02 lower
        means,                                   # 4: same means, but spurious
        means,                                   # 5: failed
    ])
    objective = np.array([-1.0, -1.005, -1.0001, -1.02, -0.5, 3.0])
    spurious = np.array([False, False, False, False, True, False])
    usable = np.array([True] * 5 + [False])
    sol = group_restarts(labels, objective, stack, usable, spurious=spurious, scale=sd, tol=1e-3,
                         order=[0, 2, 1, 3, 4])
    assert sol.tol_objective == pytest.approx(1e-2) and sol.tol_means == pytest.approx(0.1)
    assert sol.groups == [[0, 1], [2], [3], [4]] and sol.group_of[5] == -1
    np.testing.assert_allclose(sol.gap, [0.0, -1e-4, -0.02, 0.5])
    np.testing.assert_allclose(sol.distance, [0.0, 0.2, 0.0, 0.0], atol=1e-12)
    np.testing.assert_array_equal(sol.spurious, [False, False, False, True])
    np.testing.assert_allclose(stack[1][sol.permutations[1]], means + 0.05 * sd)
    # A looser tolerance merges the 0.2 sd one, a tighter objective splits restart 1 off.
    assert group_restarts(labels, objective, stack, usable, spurious=spurious, scale=sd,
                          tol_means=0.3).groups[0] == [0, 2, 1]
    assert group_restarts(labels, objective, stack, usable, spurious=spurious, scale=sd,
                          tol_objective=1e-3).groups[:3] == [[0], [2], [1]]


@pytest.mark.slow
def test_one_optimum_from_different_initialisations_is_one_solution(iris):
    """Three initialisations, 8 restarts each, scikit-learn's rule at its tol=1e-3: the
    restarts that reach the usual iris optimum stop at slightly different points
    (differences of order tol) and number their components differently; they must be one
    solution."""
    objective, means, labels, spurious, failed = [], [], [], [], []
    for init in ("kmeans", "k-means++", "random_from_data"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm = GaussianMixture(3, init_params=init, n_init=8, random_state=0, tol=1e-3,
                                 **PLAIN_EM).fit(iris)
        snap = snapshot_from_estimator(gm, iris)
        r = gm.restarts_
        objective.append(r.objective)
        means.append(r.params["means"])
        labels.append(snap.labels)
        spurious.append(r.spurious)
        failed.append(r.failed)
    objective, means, labels, spurious, failed = map(np.concatenate, (objective, means, labels,
                                                                      spurious, failed))
    sol = group_restarts(labels, objective, means, ~failed, spurious=spurious,
                         scale=iris.std(0), tol=1e-3)
    # Independent reference: scikit-learn's optimum from its own k-means start.
    sk = SkGaussianMixture(3, n_init=4, random_state=0, tol=1e-6, max_iter=1000).fit(iris)
    near = np.flatnonzero(np.abs(objective - sk.lower_bound_) < 1e-3)
    assert len(near) >= 12 and {int(i) // 8 for i in near} == {0, 1, 2}
    assert np.ptp(objective[near]) > 1e-5  # they really stopped at different points
    assert len({int(sol.group_of[i]) for i in near}) == 1
    assert sol.groups[0][0] in near
    # Their means are scikit-learn's within 0.1 sd.
    lead = sol.groups[0][0]
    assert mean_distance(sk.means_, means[lead], iris.std(0))[0] < 0.1


def merge_starts(sizes, seed=0):
    """Three unit clusters on a line at -6, 0, 6, and for K=2 the two merges (left pair,
    right pair) as complete starting points (weights, means, precisions of each merge):
    two distinct local optima."""
    rng = np.random.default_rng(seed)
    parts = [rng.normal(size=(n, 2)) + [c, 0.0] for n, c in zip(sizes, (-6.0, 0.0, 6.0))]
    X = np.concatenate(parts)
    starts = []
    for merge in (([0, 1], [2]), ([0], [1, 2])):
        sets = [np.concatenate([parts[i] for i in m]) for m in merge]
        starts.append(dict(weights_init=np.array([len(s) for s in sets]) / len(X),
                           means_init=np.array([s.mean(0) for s in sets]),
                           precisions_init=np.array([np.linalg.inv(np.cov(s.T)) for s in sets])))
    return X, starts


@pytest.mark.parametrize("sizes", [(100, 100, 100), (120, 100, 80)])
def test_distinct_optima_are_distinct_solutions(sizes):
    """Equal sizes: mirror-image optima whose log-likelihoods differ by less than the
    objective tolerance (only the means tell them apart); unequal: different ones."""
    X, starts = merge_starts(sizes)
    fits = [GaussianMixture(2, **start).fit(X) for start in starts]
    for fit, start in zip(fits, starts):  # the same optima as scikit-learn's
        sk = SkGaussianMixture(2, tol=1e-6, max_iter=1000, **start).fit(X)
        assert fit.lower_bound_ == pytest.approx(sk.lower_bound_, abs=1e-3)
        assert mean_distance(sk.means_, fit.means_, X.std(0))[0] < 0.02
    objective = np.array([f.lower_bound_ for f in fits])
    means = np.stack([f.means_ for f in fits])
    labels = np.stack([f.predict(X) for f in fits])
    sol = group_restarts(labels, objective, means, scale=X.std(0), tol=1e-3)
    assert len(sol.groups) == 2, (objective, means)
    assert sol.distance[1] > 0.5
    np.testing.assert_allclose(sol.gap[1], objective.min() - objective.max())
    if sizes[0] == sizes[2]:
        assert abs(sol.gap[1]) < sol.tol_objective
    else:
        assert sol.gap[1] < -0.05


def test_the_gallery_shows_every_solution_with_its_gap(iris, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(3, init_params="random_from_data", n_init=16, random_state=0,
                             max_iter=300).fit(iris)
    gallery = RestartGallery.from_estimator(gm, iris)
    snap = gallery.snapshot
    sol = snap.solutions
    r = gm.restarts_
    assert sol.groups[0][0] == r.best
    n = len(sol.groups)
    assert n >= 2 and len(gallery.solution_axes) == min(n, views.MAX_SOLUTIONS)
    titles = [ax.get_title() for ax in gallery.solution_axes]
    assert titles[0].startswith(f"#1: {len(sol.groups[0])} of 16") and "best" in titles[0]
    assert f"{abs(sol.gap[1]):.2g} below best" in titles[1]
    assert f"means {sol.distance[1]:.2g} sd away" in titles[1]
    # Bars: every restart's gap to the best, on a symlog axis.
    art = gallery.ranking
    heights = np.array([b.get_height() for b in art.bars])
    np.testing.assert_allclose(heights, r.objective[art.order] - r.objective[r.best])
    np.testing.assert_array_equal(art.order, r.ranking())
    assert art.ax.get_yscale() == "symlog" and "gap to best" in art.ax.get_ylabel()
    hatched = [bool(b.get_hatch()) for b in art.bars]
    assert hatched == list(r.spurious[art.order])
    # Fewer thumbnails than solutions: a line says how many are not shown.
    monkeypatch.setattr(views, "MAX_SOLUTIONS", 1)
    gallery.update(snap)
    assert len(gallery.solution_axes) == 1
    assert gallery.hidden_text.get_text().startswith(f"+{n - 1} more solution")
    gallery.figure.canvas.draw()
    # solutions_of is what the views use: the same grouping.
    assert solutions_of(r, snap.labels).groups == sol.groups


def test_grouping_at_the_start_of_a_run_warns_nothing():
    """Before the first iteration every objective is -inf: no NaN gap, no RuntimeWarning."""
    import warnings

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(3, 20))
    means = rng.normal(size=(3, 2, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = group_restarts(labels, np.full(3, -np.inf), means)
    assert np.all(sol.gap == 0)


def test_restarts_on_one_flat_optimum_are_one_solution_even_at_a_tight_tol():
    # A latent class ridge: eight restarts 1e-5 nats per sample apart, parameters within
    # 0.002 of each other, all converged at tol=1e-10: one solution (10 tol split them into
    # eight). Two optima 1e-3 apart stay two.
    rng = np.random.default_rng(0)
    means = np.array([[[0.0, 0.0], [3.0, 3.0]]]) + 0.002 * rng.random((8, 2, 2))
    labels = np.tile(np.repeat([0, 1], 50), (8, 1))
    objective = -4.0 - 1e-5 * rng.random(8)
    sol = group_restarts(labels, objective, means, tol=1e-10)
    assert len(sol.groups) == 1 and sol.tol_objective == 1e-4
    objective[4:] -= 1e-3
    assert len(group_restarts(labels, objective, means, tol=1e-10).groups) == 2
    # a looser tol keeps its own 10 x tol
    assert group_restarts(labels, objective, means, tol=1e-3).tol_objective == 1e-2
