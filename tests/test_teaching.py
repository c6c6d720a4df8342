"""Taking a run apart (issue 16): an iteration scrubber that shows restart r at iteration t
exactly, E-step and M-step half steps, a chosen start, an atlas of restarts."""

import warnings

import jax
import numpy as np
import pytest
from _numerics import PLAIN_EM

from emwidgets import (
    GaussianHMM,
    GaussianMixture,
    LatentClassModel,
    MixtureModel,
    MultinomialMixture,
    PoissonHMM,
    PoissonMixture,
    StudentMixture,
    _compiles,
)


def _blobs(n=600, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(c, 0.8, (n // 3, 2)) for c in ([0, 0], [3, 1], [0, 4])])


def _families():
    rng = np.random.default_rng(1)
    X = _blobs()
    counts = rng.poisson(np.array([[1.0, 4.0], [6.0, 1.0]])[rng.choice(2, 500)]).astype(float)
    answers = (rng.random((400, 4)) < 0.2 + 0.6 * rng.choice(2, (400, 1))).astype(int)
    kw = dict(n_init=3, random_state=0, tol=1e-300, **PLAIN_EM)  # one iteration, one EM map
    return {
        "gaussian full": (lambda **k: GaussianMixture(3, **kw, **k), X),
        "gaussian diag, missing": (lambda **k: GaussianMixture(
            3, covariance_type="diag", missing="em", **kw, **k),
            np.where((rng.random(X.shape) < 0.1) & (np.arange(2) == rng.choice(2, (len(X), 1))),
                     np.nan, X)),
        "gaussian squarem": (lambda **k: GaussianMixture(3, **{**kw, "accelerate": "squarem"},
                                                         **k), X),
        "poisson": (lambda **k: PoissonMixture(2, **kw, **k), counts),
        "latent classes": (lambda **k: LatentClassModel(2, **kw, **k), answers),
        "student t": (lambda **k: StudentMixture(3, **kw, **k), X),
        "gaussian hmm": (lambda **k: GaussianHMM(3, n_init=3, random_state=0, tol=1e-300,
                                                 n_iter=k.pop("max_iter"), **PLAIN_EM, **k), X),
        "multinomial": (lambda **k: MultinomialMixture(2, **kw, **k), counts + 1),
        "a user's family": (lambda **k: MixtureModel(
            lambda t, x: -0.5 * ((x - t["m"]) ** 2).sum(),
            lambda g, X: {"m": X[g.integers(len(X))]}, n_components=3, **kw, **k), X),
        "poisson hmm": (lambda **k: PoissonHMM(2, n_init=3, random_state=0, tol=1e-300,
                                               n_iter=k.pop("max_iter"), **PLAIN_EM, **k),
                        counts),
    }


def _leaves(restarts):
    return [np.asarray(a, np.float64) for a in jax.tree.leaves(restarts.params)]


@pytest.mark.slow
@pytest.mark.parametrize("family", list(_families()))
def test_scrubbing_to_iteration_t_equals_a_fit_stopped_at_t(family):
    make, X = _families()[family]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        live = make(max_iter=40).start(X)
        while not live.done:
            live.advance(7)  # several checkpoints, none at the iterations scrubbed to
        for t in (0, 1, 5, 13, 40):
            with _compiles.count(this_thread=True) as c:
                frame = live.at(t).snapshot()
            assert c.compiled == 0 and c.loaded == 0, (family, t, c)
            fresh = make(max_iter=max(t, 1)).start(X)
            if t:
                fresh.advance()
            for a, b in zip(_leaves(frame), _leaves(fresh.snapshot())):
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=f"{family} {t}")
    # the original run is untouched by the replays
    np.testing.assert_array_equal(live.snapshot().n_iter, live.at(40).snapshot().n_iter)


def _explorer(**settings):
    from emwidgets.widgets import EMExplorer

    ex = EMExplorer(_blobs(), n_components=3, n_init=4, max_iter=30, tol=1e-300, **settings)
    ex.run(block=True)
    return ex


def test_the_explorer_scrubs_and_steps_exactly_without_compiling():
    ex = _explorer()
    s = ex.session
    last = s.iterations_run
    assert last == 30 and ex.scrubber.max == 30 and not ex.scrubber.disabled
    assert ex.e_step_button.disabled and ex.m_step_button.disabled  # at the run's end
    best = s.snapshot.best
    final_xy = ex.assignments.artists.ellipses[0].get_center()
    with _compiles.count(this_thread=True) as c:
        ex.scrubber.value = 3
        p3 = s.frame_at(3)
        ex.m_step()  # (p, q) = (4, 3): ellipses of iteration 4, colours of iteration 3
        moved = ex.frame
        ex.e_step()
        stepped = ex.frame
        ex.step_back()
        back = ex.frame
        ex.step_back()
        back2 = ex.frame
    assert c.compiled == 0 and c.loaded == 0, c
    assert (moved, stepped, back, back2) == ((4, 3), (4, 4), (4, 3), (3, 3))
    assert ex.scrubber.value == 3 and "iteration 3" in ex.step_note.value
    # the frame's parameters are a fresh fit's after 3 iterations, for every restart
    fresh = GaussianMixture(3, n_init=4, max_iter=3, tol=1e-300, random_state=0,
                            accelerate=None)  # (the explorer's checkbox: plain EM)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh.fit(ex.session.X)
    # (float32, and the explorer's program serves up to 10 components, masked: the same
    # iterations by other arithmetic, so to float32's precision; the engine's exactness is
    # test_scrubbing_to_iteration_t_equals_a_fit_stopped_at_t's)
    np.testing.assert_allclose(p3.restarts.params["means"], fresh.restarts_.params["means"],
                               rtol=0, atol=1e-5)
    # the drawn ellipses are the frame's (aligned to the final best's colours), not the end's
    perm = s.snapshot.solutions.permutations[best]
    centre = ex.assignments.artists.ellipses[0].get_center()
    w = ex.assignments._projection(p3)
    np.testing.assert_allclose(centre, (p3.restarts.params["means"][best] @ w)[perm][0])
    assert not np.allclose(centre, final_xy)
    assert ex.convergence.cursor.get_visible()
    ex.to_convergence()
    assert ex.frame is None and not ex.convergence.cursor.get_visible()
    np.testing.assert_allclose(ex.assignments.artists.ellipses[0].get_center(), final_xy)
    # the fitted models are one call away
    assert ex.estimator_ is s.estimator
    np.testing.assert_allclose(ex.restart(2).means_, s.estimator.restarts_.params["means"][2])


def test_scrub_then_change_an_axis_keeps_the_scrubbed_frame():
    """A user's sequence (issue 29's fourth defect): scrub to iteration 3, then swap the
    plotted axes. The views redraw the frame the controls say (iteration 3, in the new
    axes), not the run's end, and the slider and note still say 3."""
    ex = _explorer()
    s = ex.session
    ex.scrubber.value = 3
    p3 = s.frame_at(3)
    s.x_axis, s.y_axis = s.y_axis, s.x_axis
    assert ex.frame == (3, 3) and ex.scrubber.value == 3 and "iteration 3" in ex.step_note.value
    best = s.snapshot.best
    perm = s.snapshot.solutions.permutations[best]
    centre = ex.assignments.artists.ellipses[0].get_center()
    means = p3.restarts.params["means"][best] @ s.projection()  # (the new axes)
    np.testing.assert_allclose(centre, means[perm][0])
    assert "iteration 3" in ex.assignments.figure.axes[0].get_title()


def test_a_new_run_resets_the_scrubber_and_a_scrub_before_any_run_is_one_sentence():
    from emwidgets.widgets import EMExplorer

    ex = EMExplorer(_blobs(), n_components=3, n_init=4)
    assert ex.scrubber.disabled
    ex.show_iteration(3)
    assert "press Run first" in ex.step_note.value
    ex.run(block=True)
    assert ex.session.iterations_run > 1
    ex.scrubber.value = 1
    assert ex.frame == (1, 1)
    ex.session.n_components = 2
    ex.run(block=True)
    assert ex.frame is None and ex.scrubber.value == ex.session.iterations_run


@pytest.mark.slow
def test_a_run_in_progress_can_be_scrubbed_and_the_frame_stays_until_to_convergence():
    """Scrub while the run goes on: the frame is the run's after t iterations (the same as
    the finished run's frame t), live frames do not take it away, the scrubber grows with
    the run, nothing compiles; at the run's end the frame stays; To convergence leaves it."""
    import time

    from conftest import wait_idle

    from emwidgets.widgets import EMExplorer

    ex = EMExplorer(_blobs(30_000), n_components=6, n_init=8, max_iter=1000, tol=1e-300)
    ex.run()
    s, t = ex.session, time.monotonic()
    # (up to 300 s: the first chunk compiles, slowly beside the other worker in .ci/run)
    while (s.iterations_run < 6 or not s.running) and time.monotonic() - t < 300:
        time.sleep(0.02)
    assert s.running and not ex.scrubber.disabled, (
        "the run should be in progress", s.iterations_run, s.phase, s.status,
        f"{time.monotonic() - t:.0f} s")
    with _compiles.count(this_thread=True) as c:
        ex.scrubber.value = 3
        during = s.frame_at(3).restarts.params["means"]
    assert c.compiled == 0 and ex.frame == (3, 3) and "iteration 3" in ex.step_note.value
    seen, t = ex.scrubber.max, time.monotonic()
    while ex.scrubber.max <= seen and s.running and time.monotonic() - t < 60:
        time.sleep(0.02)  # more live frames come
    assert ex.frame == (3, 3) and ex.scrubber.value == 3 and ex.scrubber.max > seen
    s.stop()
    wait_idle(ex)
    assert ex.frame == (3, 3) and "Stopped" in s.status
    np.testing.assert_allclose(s.frame_at(3).restarts.params["means"], during, rtol=1e-6)
    ex.to_convergence()
    assert ex.frame is None and ex.scrubber.value == s.iterations_run


@pytest.mark.slow
def test_the_hmm_and_family_explorers_scrub_too():
    from emwidgets import datasets
    from emwidgets.widgets import FamilyExplorer, HMMExplorer

    hx = HMMExplorer(datasets.load_geyser(), n_init=4, n_iter=20)
    fx = FamilyExplorer(datasets.load_carcinoma(), LatentClassModel(3, n_init=4, random_state=0))
    for ex in (hx, fx):
        ex.run(block=True)
        before = {n: v._version for n, v in ex.views.items()}
        with _compiles.count(this_thread=True) as c:
            ex.scrubber.value = 1
            ex.m_step()
        assert c.compiled == 0 and c.loaded == 0, c
        assert ex.frame == (2, 1) and "M-step moved the parameters" in ex.step_note.value
        changed = {n for n, v in ex.views.items() if v._version != before[n]}
        assert changed == set(ex.views) - {"gallery"}, changed
        frame = ex.session.frame_at(2)
        np.testing.assert_array_equal(
            np.asarray(jax.tree.leaves(frame.restarts.params)[0]),
            np.asarray(jax.tree.leaves(ex.session._replay[1].at(2).snapshot().params)[0]))


def test_the_atlas_distances_map_and_words():
    from emwidgets import atlas as A

    rng = np.random.default_rng(0)
    truth = np.repeat([0, 1, 2, 3], 50)
    relabelled = np.array([2, 0, 3, 1])[truth]  # the same partition, other names
    merged = np.where(truth == 3, 2, truth)  # 2 and 3 merged ...
    merged_split = merged.copy()
    merged_split[truth == 0] = np.where(rng.random(50) < 0.5, 0, 3)  # ... and 0 split in two
    labels = np.array([truth, relabelled, merged_split, merged])
    d = A.partition_distances(labels)
    np.testing.assert_array_equal(d, d.T)
    np.testing.assert_array_equal(np.diag(d), 0.0)
    assert d[0, 1] == 0.0 and d[0, 2] > 0.2 and d[0, 3] > 0.1
    xy = A.classical_mds(d)
    assert np.allclose(xy[0], xy[1])  # the same optimum: one point
    # MDS keeps the distances where they are Euclidean (checked against brute force)
    brute = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))
    assert np.abs(brute - d).max() < 0.35 * d.max()
    assert A.describe(truth, relabelled).startswith("The same partition")
    assert A.describe(truth, merged) == "Merges the best's components 2 and 3 into one"
    assert A.describe(truth, merged_split) == (
        "Merges the best's components 2 and 3 into one; splits component 0 in two")
    c = A.consensus(labels)
    assert c.shape == (200, 200) and np.allclose(c, c.T) and np.allclose(np.diag(c), 1.0)
    assert c[50, 99] == 1.0 and c[150, 100] == 0.5  # 2 and 3 together in two restarts of four


def test_the_explorers_atlas_shows_every_restart_and_a_click_selects_one():
    from types import SimpleNamespace

    ex = _explorer()
    ex.atlas_toggle.value = True
    atlas = ex.atlas.atlas
    r = ex.session.snapshot.restarts
    assert atlas is not None and atlas.coords.shape == (r.n_restarts, 2)
    assert ex.atlas_box in ex.view_box.children and ex.atlas_box.children == (ex.atlas.canvas,)
    # restarts that reached the same solution coincide on the map
    for group in ex.session.snapshot.solutions.groups:
        assert np.abs(atlas.coords[group] - atlas.coords[group[0]]).max() < 1e-6
    other = next(i for i in range(r.n_restarts) if i != r.best)
    ex.atlas._on_pick(SimpleNamespace(artist=ex.atlas.points, ind=np.array([other])))
    assert ex.assignments.selected == other and ex.restart_picker.value == other
    assert ex.atlas.description.startswith(f"Restart {other}: ")
    # The co-assignment matrix's rows: those every restart labels alike are contiguous.
    snap = ex.session.snapshot
    aligned = np.array([np.argsort(snap.solutions.permutations[i])[snap.labels[i]]
                        for i in range(r.n_restarts)])
    ok = ex.atlas.atlas.group_of >= 0
    signature = [tuple(aligned[ok, j]) for j in ex.atlas.consensus_order]
    seen, previous = set(), None
    for s in signature:
        assert s == previous or s not in seen, "a partition's rows are split"
        seen.add(s)
        previous = s
    ex.atlas_toggle.value = False
    assert ex.atlas_box not in ex.view_box.children and "atlas" not in ex.views


def _mouse(canvas, name, ax, xy, button=1):
    from matplotlib.backend_bases import MouseEvent

    x, y = ax.transData.transform(xy)
    event = MouseEvent(name, canvas, x, y, button=button)
    canvas.callbacks.process(name, event)


def test_a_dragged_start_is_the_means_init_of_a_batch_fit():
    ex = _explorer()
    canvas, ax = ex.assignments.canvas, ex.start.axes()
    ex.start_toggle.value = True  # the shown restart's own start appears, to drag
    assert len(ex.start.points) == 3
    grabbed = np.array(ex.start.points[1])
    _mouse(canvas, "button_press_event", ax, grabbed)
    _mouse(canvas, "motion_notify_event", ax, grabbed + [0.5, 0.5])
    _mouse(canvas, "button_release_event", ax, [3.2, 1.1])
    np.testing.assert_allclose(ex.start.points[1], [3.2, 1.1], atol=1e-6)
    start = ex.start_means
    np.testing.assert_allclose(start[1], [3.2, 1.1], atol=1e-6)  # 2-D data: the plane
    assert "Your start" in ex.status.value
    ex.run(block=True)
    est = ex.estimator_
    np.testing.assert_allclose(est.means_init, start)
    assert est.n_init == 1 and ex.session.snapshot.restarts.n_restarts == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = GaussianMixture(3, means_init=start, n_init=1, max_iter=30, tol=1e-300,
                                random_state=0, accelerate=None).fit(ex.session.X)
    np.testing.assert_allclose(est.means_, batch.means_, rtol=0, atol=1e-5)
    # the run started from it: iteration 0 is the dragged start, exactly
    np.testing.assert_allclose(ex.session.frame_at(0).restarts.params["means"][0], start,
                               atol=1e-5)


def test_a_bad_start_puts_every_mean_in_a_corner_and_runs():
    ex = _explorer()
    ex.bad_start(run=False)
    start = ex.start_means
    lo = ex.session.X.min(0)
    span = np.ptp(ex.session.X, 0)
    assert (start - lo < 0.06 * span).all() and len(np.unique(start, axis=0)) == 3
    ex.run(block=True)
    np.testing.assert_allclose(ex.session.frame_at(0).restarts.params["means"][0], start,
                               atol=1e-5)
    # A user then toggles Choose the start off: the start stays on the plot and the note
    # says how to move it (it hid, and later clicks did nothing, without a word).
    assert ex.start.toggle.value
    ex.start.toggle.value = False
    crosses = ex.start._artist
    assert crosses is not None and crosses in ex.assignments.artists.ax.lines
    assert len(crosses.get_xdata()) == 3 and "Turn Choose the start on" in ex.start.note
    ex.forget_start()
    assert ex.start._artist is None
    assert ex.session.settings()["n_init"] == 4 and "means_init" not in ex.session.settings()


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gaussian full", "gaussian diag, missing", "poisson",
                                    "latent classes", "gaussian hmm"])
def test_an_e_step_then_an_m_step_is_one_em_iteration(x64, family):
    make, X = _families()[family]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        live = make(max_iter=12).start(X)
        live.advance()
    for t in (0, 4, 9):
        before, after = live.at(t), live.at(t + 1)
        stats = before.e_step()
        new = before.m_step(stats)
        running = np.asarray(after.run.state.n_iter) > t  # (restarts still iterating at t)
        assert running.any()
        for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(after.run.state.params)):
            np.testing.assert_allclose(np.asarray(a)[running], np.asarray(b)[running],
                                       rtol=1e-10, atol=1e-12, err_msg=f"{family} {t}")


@pytest.mark.slow
def test_the_user_familys_half_steps_read_the_data(x64):
    """A user's family has no closed-form M-step (its Newton steps sum over the rows): its
    m_step reads the data, and an E-step then an M-step is still one EM iteration."""
    from emwidgets import MixtureModel

    X = _blobs()
    mm = MixtureModel(lambda t, x: -0.5 * ((x - t["m"]) ** 2).sum(),
                      lambda g, X: {"m": X[g.integers(len(X))]}, n_components=3, n_init=2,
                      max_iter=6, tol=1e-300, random_state=0, **PLAIN_EM)
    live = mm.start(X)
    live.advance()
    new = live.at(2).m_step()
    after = live.at(3).run.state.params
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(after)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)


def test_the_basin_map_splits_where_symmetry_says(x64):
    """Three equal clusters on a line, two components, the second mean fixed at the middle
    cluster: a start of the first mean left of the middle takes the left cluster alone
    (the other mean the middle and right ones), a start right of it the right cluster alone.
    The two optima are mirror images (equal likelihood), the map mirror-symmetric; a start
    on the mirror line itself stays symmetric and ends at a lower stationary point."""
    from emwidgets.atlas import basin_map

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal([c, 0.0], 0.7, (150, 2)) for c in (-4.0, 0.0, 4.0)])
    X = np.r_[X, X * [-1, 1]]  # exactly mirror-symmetric data
    bm = basin_map(X, [[0.0, 0.0], [0.0, 0.0]], component=0, grid=9,
                   extent=(-6, 6, -2, 2), covariance_type="spherical")
    assert len(bm.objective) == 3 and abs(bm.objective[0] - bm.objective[1]) < 1e-9
    assert bm.objective[2] < bm.objective[0] - 0.1
    assert (bm.solution[:, bm.xs == 0] == 2).all()  # on the mirror line
    left, right = bm.xs < -1, bm.xs > 1
    first_mean_x = bm.means[:2, :, 0].min(-1)  # the leftmost mean of each optimum
    take_left = int(np.argmin(first_mean_x))  # the optimum with a mean alone on the left
    assert (bm.solution[:, left] == take_left).all()
    assert (bm.solution[:, right] == 1 - take_left).all()
    assert bm.counts.sum() == 81
    with pytest.raises(ValueError, match="2-D data"):
        basin_map(np.c_[X, X[:, :1]], [[0.0, 0.0, 0.0]] * 2)


def test_optima_are_grouped_by_matched_components_not_by_a_sort():
    """Two components with nearly equal x: a sort by x orders them differently from one
    restart to the next (the map called one optimum two); matching does not."""
    from emwidgets.atlas import group_optima

    a = np.array([[0.0, 0.0], [1e-3, 5.0], [4.0, 1.0]])
    b = a[[1, 0, 2]] + [[-2e-3, 0.01], [2e-3, -0.01], [0.0, 0.0]]  # x order flips
    c = a + [[0.0, 3.0], [0.0, 0.0], [0.0, 0.0]]  # a mean elsewhere: another optimum
    solution, leads, key = group_optima(np.stack([b, a, c, a]),
                                        np.array([-1.0, -0.5, -2.0, -np.inf]), tol=0.1)
    assert list(solution) == [0, 0, 1, -1] and leads == [1, 2]
    np.testing.assert_allclose(key[0], a, atol=0.02)  # b in a's component order


@pytest.mark.slow
def test_the_hmm_explorer_fits_several_sequences_and_shows_one_at_a_time():
    from emwidgets import datasets
    from emwidgets.widgets import HMMExplorer

    geyser = datasets.load_geyser()
    lengths = [120, len(geyser) - 120]
    ex = HMMExplorer(geyser, lengths=lengths, n_init=4, n_iter=30, random_state=0)
    assert ex.sequence_picker.layout.display is None and len(ex.sequence_picker.options) == 2
    ex.run(block=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = GaussianHMM(2, covariance_type="full", init_params="random", n_init=4, n_iter=30,
                          tol=ex.session.tol, min_covar=ex.session.reg_covar,
                          random_state=0).fit(ex.session.X, lengths)
    np.testing.assert_allclose(ex.estimator_.score(ex.session.X, lengths),
                               ref.score(ex.session.X, lengths), rtol=1e-5)
    first = len(ex.series.points.get_offsets())
    ex.sequence_picker.value = 1
    second = len(ex.series.points.get_offsets())
    assert (first, second) == tuple(lengths)
    ex.scrubber.value = 2  # the scrubber shows the chosen sequence too
    assert len(ex.series.points.get_offsets()) == lengths[1]
    other = (ex.session.snapshot.restarts.best + 1) % 4
    np.testing.assert_allclose(ex.restart(other).means_,
                               ex.estimator_.restarts_.params["means"][other])
    with pytest.raises(ValueError, match="sum to the data's"):
        HMMExplorer(geyser, lengths=[10, 20])


def test_the_explorer_draws_a_basin_map_of_the_shown_restart():
    ex = _explorer()
    ex.BASIN_GRID = 6
    ex.basin_map(block=True)
    bm = ex.basins.basins
    assert bm.solution.shape == (6, 6) and bm.component == 0 and bm.counts.sum() == 36
    shown = ex.session.snapshot.best
    np.testing.assert_allclose(bm.fixed, ex.session.snapshot.restarts.params["means"][shown][1:])
    assert ex.basins.canvas in ex.view_box.children and "Basin map of mean 0" in \
        ex.step_note.value
    ex.basin_map(block=True)  # the next mean
    assert ex.basins.basins.component == 1


def test_a_basin_map_of_many_optima_keeps_its_legend_short_and_off_the_map():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from emwidgets import plotting
    from emwidgets.atlas import BasinMap

    rng = np.random.default_rng(0)
    n_opt, g = 22, 12
    solution = rng.integers(0, n_opt, (g, g))
    solution[0, 0] = -1  # a failed start
    counts = np.bincount(solution[solution >= 0], minlength=n_opt)
    objective = -3.7761 - np.r_[0.0, np.sort(rng.random(n_opt - 1))]
    bm = BasinMap(**{**{f: None for f in BasinMap.__dataclass_fields__},
                     "solution": solution, "objective": objective, "counts": counts,
                     "xs": np.linspace(0, 1, g), "ys": np.linspace(0, 1, g),
                     "fixed": np.zeros((1, 2)), "component": 0})
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    plotting.draw_basin_map(ax, bm)
    fig.canvas.draw()
    legend = ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    # The 8 most reached optima (the best among them), one entry for the other 14, failed.
    assert len(labels) == plotting.BASIN_COLOURS + 2, labels
    assert labels[0].startswith("ll -3.7761 (best)")
    assert labels[-2].startswith(f"{n_opt - plotting.BASIN_COLOURS} other optima: ")
    assert labels[-1] == "failed"
    # Every start that reached an optimum is counted once in the legend.
    starts = [int(t.split(": ")[-1].split()[0]) for t in labels[:-1]]
    assert sum(starts) == counts.sum()
    # Beside the map: the legend does not overlap the axes.
    box, axes = legend.get_window_extent(), ax.get_window_extent()
    assert box.x0 >= axes.x1 - 1, (box, axes)
    # No two coloured optima share a colour.
    colours = [tuple(h.get_facecolor()) for h in legend.legend_handles[:-2]]
    assert len(set(colours)) == len(colours)
