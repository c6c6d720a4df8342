"""The explorer driven headlessly, as a user drives it: set controls, click, read the artists."""

import time

import numpy as np
import pytest
from conftest import wait_idle as wait_done

from emwidgets import EMExplorer, GaussianMixture, datasets
from emwidgets.compare import adjusted_rand_index, align_components, group_restarts
from emwidgets.widgets import AssignmentPlot, ConvergencePlot, RestartGallery


def test_click_run_and_read_the_views(faithful):
    ex = EMExplorer(faithful, n_init=8)
    ex.controls["n_components"].value = 3
    ex.controls["covariance_type"].value = "diag"
    ex.controls["random_state"].value = 4
    assert ex.session.n_components == 3 and ex.session.covariance_type == "diag"
    ex.run_button.click()
    wait_done(ex)
    assert "Done" in ex.status.value and "8 of 8 restarts converged" in ex.status.value
    gm = ex.session.estimator
    assert gm.covariance_type == "diag" and gm.n_components == 3
    # The convergence lines are the model's traces, restart by restart.
    lines = ex.convergence.artists.lines
    assert len(lines) == 8
    for r, line in enumerate(lines):
        x, y = line.get_data()
        expected = gm.restarts_.trace[r][: gm.restarts_.n_iter[r]]
        np.testing.assert_allclose(y, expected)
        np.testing.assert_array_equal(x, np.arange(1, len(expected) + 1))
    np.testing.assert_allclose(ex.convergence.artists.best_line.get_data()[1],
                               gm.restarts_.trace[gm.restarts_.best][: gm.n_iter_])
    # One ellipse per component, centred on the (aligned) means of the best restart.
    art = ex.assignments.artists
    assert len(art.ellipses) == 3
    centres = sorted(tuple(np.round(e.get_center(), 6)) for e in art.ellipses)
    assert centres == sorted(tuple(np.round(m, 6)) for m in gm.means_)
    # Each centre carries its component's number (from 0, as means_ and the sentences).
    assert [t.get_text() for t in art.numbers] == ["0", "1", "2"]
    for number, e in zip(art.numbers, art.ellipses):
        np.testing.assert_allclose(number.xy, e.get_center())
    assert len(art.points.get_offsets()) == len(faithful)
    # The ranking's order matches restarts_.
    ranking = ex.gallery.ranking
    expected_order = np.argsort(-gm.restarts_.objective, kind="stable")
    np.testing.assert_array_equal(ranking.order, expected_order)
    assert len(ranking.bars) == 8
    # The picker lists every restart, best first.
    assert [v for _, v in ex.restart_picker.options][:2] == [-1, int(expected_order[0])]


def test_selecting_a_restart_shows_it(faithful):
    ex = EMExplorer(faithful, n_components=3, n_init=6, init_params="random_from_data")
    ex.run(block=True)
    r = ex.session.snapshot.restarts
    worst = int(np.argmin(r.objective))
    ex.restart_picker.value = worst
    centres = sorted(tuple(np.round(e.get_center(), 5)) for e in ex.assignments.artists.ellipses)
    assert centres == sorted(tuple(np.round(m, 5)) for m in r.params["means"][worst])
    assert f"Restart {worst}" in ex.assignments.artists.ax.get_title()
    np.testing.assert_allclose(ex.convergence.artists.best_line.get_data()[1],
                               r.trace[worst][np.isfinite(r.trace[worst])])


def test_live_updates_then_stop_keeps_a_result(faithful):
    # (tol=0: no restart converges, so the run outlasts the click however fast the machine:
    # at tol=1e-9 every restart converged within 494 iterations, 1.5 s on a quiet machine)
    ex = EMExplorer(faithful, n_components=4, n_init=32, init_params="random", tol=0.0,
                    max_iter=1000)
    ex.run()
    draws = []
    t = time.time()
    while ex.session.running and time.time() - t < 60:
        draws.append(ex.convergence.n_draws)
        if ex.convergence.n_draws >= 3:
            break
        time.sleep(0.01)
    assert ex.convergence.n_draws >= 3, "the convergence plot should update while the fit runs"
    at_click = ex.session.snapshot.iteration
    ex.stop_button.click()
    wait_done(ex)
    snap = ex.session.snapshot
    # Stopped within one chunk (at most 64 iterations) of the click, far from max_iter.
    assert snap.stopped and snap.done and at_click <= snap.iteration <= at_click + 64 < 1000
    assert f"Stopped at iteration {snap.iteration}" in ex.status.value
    # The estimator is the model where the run stopped: the same restarts as the views.
    gm = ex.session.estimator
    np.testing.assert_array_equal(gm.restarts_.objective, snap.restarts.objective)
    # (With frames paced, the kept restart may have converged before the click; the run
    # had not: snap.stopped.)
    assert gm.converged_ == snap.restarts.converged[snap.best]
    assert gm.n_iter_ == snap.restarts.n_iter[snap.best]
    assert len(ex.restart_picker.options) == 1 + snap.restarts.n_restarts


def test_error_is_a_sentence_and_the_previous_result_survives(faithful):
    ex = EMExplorer(faithful, n_components=2, n_init=4)
    ex.run(block=True)
    before = ex.session.snapshot
    ex.session.n_components = 10
    ex.session.set_data(faithful.iloc[:5])  # fewer samples than components
    ex.run(block=True)
    assert ex.session.error.startswith("Expected n_samples >= n_components")
    assert "previous result is kept" in ex.status.value and "b00020" in ex.status.value
    assert ex.session.snapshot is before
    # and the explorer is ready again (a failed run after a finished one once raised in its
    # thread's cleanup and left the session "running", phase "compiling", for good)
    wait_done(ex, timeout=30)
    assert ex.session.phase == "idle"


def test_a_column_with_no_observed_value_is_left_out_and_named():
    import pandas as pd

    df = pd.DataFrame({"a": [np.nan] * 6, "b": [1.0, 2.0, 1.5, 8.0, 9.0, 8.5]})
    for missing in ("drop", "em"):
        ex = EMExplorer(df, n_components=2, n_init=2, missing=missing)
        assert ex.session.columns == ["b"]
        assert "left out a (no observed value)" in ex.data_note.value
        ex.run(block=True)
        assert ex.session.error == "" and ex.session.estimator.means_.shape == (2, 1)


def test_no_usable_row_is_a_sentence_that_names_a_shown_control():
    import pandas as pd

    df = pd.DataFrame({"a": [np.nan, 1.0], "b": [1.0, np.nan]})
    ex = EMExplorer(df, n_components=1, missing="drop")
    assert ex.controls["missing"].layout.display != "none"  # the control the message names
    ex.run(block=True)
    assert ex.session.error.startswith("There is no complete row to fit")
    assert "set missing to EM" in ex.session.error
    assert ex.session.status.endswith("Nothing was fitted.")


@pytest.mark.slow
def test_axis_choice_and_principal_components():
    iris = datasets.load_iris()
    ex = EMExplorer(iris, n_components=3, n_init=4)
    assert ex.controls["x_axis"].options[-2:] == ("PC1", "PC2")
    ex.controls["x_axis"].value = "Petal.Length"
    ex.controls["y_axis"].value = "Petal.Width"
    ex.run(block=True)
    xy = ex.assignments.artists.points.get_offsets()
    np.testing.assert_allclose(xy[:, 0], iris["Petal.Length"].to_numpy())
    assert ex.assignments.artists.ax.get_xlabel() == "Petal.Length"
    ex.controls["x_axis"].value = "PC1"
    ex.controls["y_axis"].value = "PC2"
    xy = ex.assignments.artists.points.get_offsets()
    # Principal components are uncorrelated.
    assert abs(np.corrcoef(xy[:, 0], xy[:, 1])[0, 1]) < 1e-6


def test_views_work_alone_on_a_fitted_model(faithful):
    X = faithful.to_numpy()
    gm = GaussianMixture(2, n_init=5, random_state=0).fit(X)
    conv = ConvergencePlot.from_estimator(gm, X)
    assign = AssignmentPlot.from_estimator(gm, X)
    gallery = RestartGallery.from_estimator(gm, X)
    assert len(conv.artists.lines) == 5 and len(assign.artists.ellipses) == 2
    assert len(gallery.solution_axes) >= 1
    assert "5 of 5" in gallery.solution_axes[0].get_title()
    for view in (conv, assign, gallery):
        view.figure.canvas.draw()  # renders with Agg


def test_restart_grouping_is_label_invariant():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, 200)
    perm = np.array([2, 0, 1])
    assert adjusted_rand_index(a, perm[a]) == pytest.approx(1.0)
    assert abs(adjusted_rand_index(a, rng.integers(0, 3, 200))) < 0.05
    means = rng.normal(size=(3, 2))
    p = align_components(means, means[[1, 2, 0]])
    np.testing.assert_allclose(means[[1, 2, 0]][p], means)
    labels = np.stack([a, perm[a], rng.integers(0, 3, 200)])
    sol = group_restarts(labels, np.array([-1.0, -1.0, -2.0]), np.stack([means] * 3))
    assert sol.groups == [[0, 1], [2]] and sol.counts == [2, 1]


def test_explorer_draws_with_the_ipympl_canvas(faithful):
    ex = EMExplorer(faithful)
    from ipympl.backend_nbagg import Canvas

    assert isinstance(ex.convergence.canvas, Canvas)
    assert ex.convergence.canvas in ex.children[3].children[1].children[0].children


def test_explorer_fits_incomplete_rows_and_draws_them_hollow():
    air = datasets.load_airquality()[["Ozone", "Solar.R", "Wind", "Temp"]]
    ex = EMExplorer(air, n_components=2, n_init=4)
    assert ex.controls["missing"].layout.display != "none"
    assert len(ex.session.X) == 153 and ex.session.n_dropped == 0
    ex.run(block=True)
    snap = ex.session.snapshot
    assert "42 incomplete rows fitted by EM" in ex.status.value
    assert snap.filled.shape == (4, 153, 4) and not np.isnan(snap.filled).any()
    observed = ~snap.missing
    assert snap.missing.sum() == air.isna().sum().sum()
    for filled in snap.filled:  # every restart keeps the observed values where they are
        np.testing.assert_array_equal(filled[observed], snap.X[observed])
    np.testing.assert_allclose(snap.X[observed], air.to_numpy()[observed], rtol=1e-6)
    # The best restart's positions are the fitted model's conditional expectations.
    np.testing.assert_allclose(snap.filled[snap.best], ex.session.estimator.impute(air),
                               rtol=1e-3, atol=1e-2)
    # Hollow points: the rows whose plotted coordinates (Ozone, Solar.R) were imputed.
    hollow = np.asarray(ex.assignments.artists.points.get_linewidths()) > 1
    assert hollow.sum() == air[["Ozone", "Solar.R"]].isna().any(axis=1).sum()
    assert ex.assignments.artists.imputed is not None  # the legend entry
    ex.controls["x_axis"].value = "Wind"
    ex.controls["y_axis"].value = "Temp"  # both complete: nothing drawn hollow
    assert not (np.asarray(ex.assignments.artists.points.get_linewidths()) > 1).any()
    ex.controls["missing"].value = "drop"
    ex.run(block=True)
    assert len(ex.session.X) == 111 and ex.session.n_dropped == 42
    assert ex.session.snapshot.filled is None and "incomplete" not in ex.status.value


def test_views_of_a_model_fitted_with_missing_values():
    air = datasets.load_airquality()[["Ozone", "Solar.R", "Wind", "Temp"]]
    gm = GaussianMixture(2, missing="em", n_init=3, random_state=0).fit(air)
    view = AssignmentPlot.from_estimator(gm, air)
    assert view.snapshot.filled.shape == (3, 153, 4)
    assert (np.asarray(view.artists.points.get_linewidths()) > 1).sum() == 42
    RestartGallery.from_estimator(gm, air)


def test_a_view_asks_again_until_the_browser_renders_its_latest_update(faithful, monkeypatch):
    """ipympl's page drops a draw request that arrives while it waits for a frame: a view
    whose latest update has not been rendered asks again (a few times), and stops once it
    has been, or when no browser ever renders it."""
    import threading

    from emwidgets.widgets import views

    monkeypatch.setattr(views, "RENDER_RETRY_SECONDS", 0.01)
    gm = GaussianMixture(2, n_init=4, random_state=0).fit(faithful)
    view = ConvergencePlot.from_estimator(gm, faithful)
    asked, enough = [], threading.Event()

    def draw_idle():
        asked.append(view._version)
        if len(asked) >= 3:
            enough.set()

    monkeypatch.setattr(view.canvas, "draw_idle", draw_idle)
    view.update(view.snapshot)  # the page was busy: this request is lost
    assert enough.wait(10), asked  # ... so the view asks again
    view.canvas.draw()  # the browser renders the latest update
    n = len(asked)
    deadline = time.monotonic() + 10
    while view._watching and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not view._watching
    assert len(asked) <= n + 1  # at most the check already under way
    # A canvas no browser shows stops asking after RENDER_RETRIES tries.
    asked.clear()
    view.update(view.snapshot)
    deadline = time.monotonic() + 10
    while view._watching and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not view._watching and len(asked) == 1 + views.RENDER_RETRIES


@pytest.mark.slow
def test_large_data_are_drawn_as_a_density_of_every_row():
    """Above DENSITY_ROWS rows the assignments view draws every row: responsibilities summed
    per cell of the plotted plane (here checked against predict_proba binned in NumPy) and
    blended by colour; points are hidden; the picker and the axes recompute it; small data
    keep their markers."""
    from emwidgets import EMExplorer, datasets

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 1.0, (12_000, 3)) for c in (-3.0, 0.0, 3.0)])
    ex = EMExplorer(X, n_components=3, n_init=4, max_iter=50, random_state=0)
    ex.run(block=True)
    s, view = ex.session, ex.assignments
    assert s.density_mode and view.density_image is not None
    assert not view.artists.points.get_visible()
    snap, est = s.snapshot, s.estimator
    g = s.DENSITY_BINS
    x0, x1, y0, y1 = snap.density_extent
    xy = X @ s.projection()
    cx = np.clip(((xy[:, 0] - x0) / (x1 - x0) * g).astype(int), 0, g - 1)
    cy = np.clip(((xy[:, 1] - y0) / (y1 - y0) * g).astype(int), 0, g - 1)
    reference = np.zeros((g, g, 3))
    np.add.at(reference, (cy, cx), est.predict_proba(X))
    np.testing.assert_allclose(snap.density[snap.best], reference, atol=2e-3)
    assert snap.density[snap.best].sum() == pytest.approx(len(X), rel=1e-5)
    other = (snap.best + 1) % 4
    ex.restart_picker.value = other
    assert other in snap.density and f"Restart {other}" in view.artists.ax.get_title()
    ex.controls["x_axis"].value = "x2"
    assert snap.density_extent[:2] != (x0, x1) and view.density_image is not None
    # Scrubbed frames draw their own density, and the run's end keeps its image afterwards
    # (each snapshot its own source: one shared slot lost the end's after a scrub).
    ex.scrubber.value = 1
    assert view.density_image is not None and not view.artists.points.get_visible()
    ex.restart_picker.value = (other + 1) % 4  # a restart the end has not drawn yet
    ex.to_convergence()
    assert view.density_image is not None and not view.artists.points.get_visible()
    assert (other + 1) % 4 in snap.density

    small = EMExplorer(datasets.load_faithful(), n_components=2, n_init=4)
    small.run(block=True)
    assert not small.session.density_mode and small.assignments.density_image is None
    assert small.assignments.artists.points.get_visible()


def test_the_intervals_box_draws_the_means_confidence_ellipses_and_takes_them_away():
    """Tick *95% intervals of the means* after a run: the standard errors are computed on a
    thread and one ellipse per mean appears on the main view; untick: they go."""
    ex = EMExplorer(datasets.load_faithful(), n_components=2, n_init=4)
    ex.run(block=True)
    ex.confidence.box.value = True
    deadline = time.monotonic() + 120
    while not ex.assignments.interval_patches and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(ex.assignments.interval_patches) == 2 and ex.confidence.note == ""
    ex.confidence.box.value = False
    assert not ex.assignments.interval_patches


def test_the_convergence_axis_shows_the_climb_after_a_far_random_start(faithful):
    # Notebook 10's first lesson: random points as means start orders of magnitude below
    # where the restarts end; the axis must show the climb, not the first iteration.
    ex = EMExplorer(faithful, n_components=2, n_init=4, init_params="random_from_data",
                    tol=1e-6, random_state=1)
    ex.run(block=True)
    gm = ex.session.estimator
    traces = [t[:n] for t, n in zip(gm.restarts_.trace, gm.restarts_.n_iter)]
    first = min(t[0] for t in traces)
    finals = [t[-1] for t in traces]
    lo, hi = ex.convergence.artists.ax.get_ylim()
    assert lo <= min(finals) and max(finals) <= hi  # every restart's end is on the axis
    # The climb fills the axis: the shown range is a few times the restarts' climb after
    # their first iteration, not the first iteration's depth.
    climb = max(max(finals) - min(t[1] for t in traces if len(t) > 1), 1e-3)
    assert hi - lo < 5 * climb, (lo, hi, climb, first)
    if first < max(finals) - 100 * climb:  # the far start is off the axis
        assert lo > first


def test_the_convergence_axis_keeps_every_iteration_of_a_quick_climb(faithful):
    # k-means starts converge in a few iterations whose gains shrink a hundredfold each:
    # no iteration is cut off the axis (a rule cutting at a large ratio between gaps did).
    ex = EMExplorer(faithful, n_components=2, n_init=8, random_state=0)
    ex.run(block=True)
    gm = ex.session.estimator
    values = np.concatenate([t[:n] for t, n in zip(gm.restarts_.trace, gm.restarts_.n_iter)])
    lo, hi = ex.convergence.artists.ax.get_ylim()
    assert lo <= values.min() and values.max() <= hi, (lo, hi, values.min(), values.max())


def test_draw_fit_draws_a_fit_in_progress_on_any_axes(faithful):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emwidgets import plotting

    X = faithful.to_numpy()
    est = GaussianMixture(2, n_init=2, random_state=0)
    live = est.start(X)
    live.advance(3)
    fig, ax = plt.subplots()
    art = plotting.draw_fit(ax, live, est, restart=1, xlabel="eruptions", ylabel="waiting")
    means = live.snapshot().params["means"][1]
    np.testing.assert_allclose(art.centres.get_offsets(), means)
    assert len(art.points.get_offsets()) == len(X) and ax.get_xlabel() == "eruptions"
    plt.close(fig)


def test_compare_with_a_left_out_label_gives_the_adjusted_rand_index_and_the_table():
    from sklearn.metrics import adjusted_rand_score

    penguins = datasets.load_penguins()
    ex = EMExplorer(penguins, n_components=3, random_state=0)
    menu = ex.comparison.menu
    assert [v for _, v in menu.options] == ["", "species", "island", "sex", "year"]
    menu.value = "species"
    assert ex.compare_note.value == ""  # nothing fitted yet: nothing to compare
    ex.run(block=True)
    wait_done(ex)
    rows = penguins.dropna(subset=["bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                                   "body_mass_g"])
    predicted = ex.estimator_.predict(rows)
    expected = adjusted_rand_score(rows["species"], predicted)  # an independent reference
    assert ex.comparison.ari == pytest.approx(expected, abs=1e-12) and expected > 0.8
    table = ex.comparison.table
    assert table.to_numpy().sum() == len(rows) and list(table.index) == sorted(
        rows["species"].unique())
    assert f"adjusted Rand index <b>{expected:.2f}</b>" in ex.compare_note.value
    # sex has missing values: compared on the rows where it is known
    menu.value = "sex"
    known = rows["sex"].notna().to_numpy()
    assert ex.comparison.table.to_numpy().sum() == known.sum()
    assert ex.comparison.ari == pytest.approx(
        adjusted_rand_score(rows["sex"][known], predicted[known]), abs=1e-12)
    # Other columns: the shown model was fitted on other data; nothing compared until Run.
    ex.column_picker.value = ("bill_length_mm", "bill_depth_mm")
    assert not ex.session.shown_data_is_current and ex.compare_note.value == ""
    assert menu.value == "sex"  # (the choice stays for the next run)
    menu.value = ""
    assert ex.compare_note.value == ""


def test_save_writes_the_model_and_every_view(faithful, tmp_path, monkeypatch):
    import pickle

    ex = EMExplorer(faithful, n_init=4, random_state=0)
    with pytest.raises(ValueError, match="press Run first"):
        ex.save(tmp_path / "early")
    ex.run(block=True)
    paths = ex.save(tmp_path / "saved")
    assert sorted(p.name for p in paths) == sorted(
        ["model.pkl"] + [f"{name}.png" for name in ex.views])
    with open(tmp_path / "saved" / "model.pkl", "rb") as f:
        model = pickle.load(f)
    np.testing.assert_array_equal(model.predict(faithful), ex.estimator_.predict(faithful))
    for p in paths[1:]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The button: a new folder in the working directory, and a sentence saying where.
    monkeypatch.chdir(tmp_path)
    ex.save_button.click()
    assert "Saved the model and 3 figures in emwidgets-" in ex.save_note.value
    assert len(list(tmp_path.glob("emwidgets-*/model.pkl"))) == 1


def test_a_run_that_stopped_short_is_advised_in_the_explorers_controls(faithful):
    # The estimator's advice names parameters (convergence='gap') the explorer has no
    # control for: the explorer's names its controls.
    ex = EMExplorer(faithful, n_components=3, tol=1e-2, n_init=4, random_state=0)
    ex.run(block=True)
    status = ex.session.status
    assert "short of its limit" in status, status
    assert "lower the tolerance slider, or tick accelerate (SQUAREM)" in status
    assert "convergence=" not in status


def test_the_pairs_view_shows_the_shown_restart_in_every_pair_of_columns():
    penguins = datasets.load_penguins()
    ex = EMExplorer(penguins, n_components=3, n_init=4, random_state=0)
    ex.run(block=True)
    ex.pairs_toggle.value = True
    assert ex.pairs_box in ex.view_box.children and "pairs" in ex.views
    axes = ex.pairs.axes
    assert axes.shape == (4, 4)
    gm, snap = ex.estimator_, ex.session.snapshot
    perm = snap.solutions.permutations[snap.best]
    # Panel (row 2, column 0): flipper length against bill length, the best's ellipses
    # centred on its means in that plane.
    centres = np.array([e.get_center() for e in axes[2, 0].patches[:3]])
    np.testing.assert_allclose(centres, gm.means_[perm][:, [0, 2]], rtol=1e-9)
    # The diagonal: each component's histogram of that column, every displayed row once.
    heights = sum(p.get_height() for p in axes[1, 1].patches)
    assert heights == len(snap.X)
    assert axes[3, 1].get_xlabel() == "bill_depth_mm" and axes[1, 0].get_ylabel() == \
        "bill_depth_mm"
    # Another restart shown: the pairs follow it; toggled off, the view leaves.
    other = next(i for i in range(snap.restarts.n_restarts) if i != snap.best)
    ex.restart_picker.value = other
    assert ex.pairs.figure.texts[0].get_text().startswith(f"Restart {other}:")
    ex.pairs_toggle.value = False
    assert ex.pairs_box not in ex.view_box.children and "pairs" not in ex.views


def test_hovering_a_point_names_its_row_and_responsibilities(faithful):
    from types import SimpleNamespace

    ex = EMExplorer(faithful, n_components=2, n_init=4, random_state=0)
    ex.run(block=True)
    view = ex.assignments
    ax = view.artists.ax
    i = 17
    x, y = ax.transData.transform(view.artists.points.get_offsets()[i])
    view._hovered_at = 0.0
    view._on_hover(SimpleNamespace(inaxes=ax, x=x + 2, y=y - 1))
    assert view.hovered == i
    text = view._hover_note.get_text()
    row = faithful.iloc[int(ex.session._display[i])]
    assert text.startswith(f"row {row.name}\neruptions {row['eruptions']:.4g}, "
                           f"waiting {row['waiting']:.4g}")
    p = ex.estimator_.predict_proba(row.to_frame().T)[0]
    perm = ex.session.snapshot.solutions.permutations[ex.session.snapshot.best]
    expected = ", ".join(f"{j}: {q:.2f}" for j, q in enumerate(p[perm]) if q >= 0.005)
    assert text.endswith(f"\nP(component): {expected}")
    # Away from the points the note hides; events come at most every HOVER_SECONDS.
    view._hovered_at = 0.0
    view._on_hover(SimpleNamespace(inaxes=None, x=None, y=None))
    assert view.hovered is None and not view._hover_note.get_visible()


def test_standardise_columns_fits_the_standardised_model_and_reports_it_in_data_units():
    """A user's session: Run, tick *standardise columns* (the shown result goes stale),
    Run again, pick spherical (one sentence, the result kept), then diag."""
    import warnings

    from emwidgets import FamilyExplorer, StudentMixture

    penguins = datasets.load_penguins()  # grams beside millimetres
    ex = EMExplorer(penguins, n_components=3, n_init=4, random_state=0)
    box = ex.controls["standardize"]
    assert box.layout.display is None and not box.value
    ex.run(block=True)
    wait_done(ex)
    raw = ex.estimator_
    box.value = True
    assert ex.session.stale
    ex.run(block=True)
    wait_done(ex)
    est = ex.estimator_
    assert est.standardize and not ex.session.stale
    rows = penguins[list(ex.session.columns)].dropna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = GaussianMixture(**ex.session.settings()).fit(rows)
    assert alone.standardize
    np.testing.assert_allclose(est.means_, alone.means_, rtol=1e-10)
    np.testing.assert_allclose(est.covariances_, alone.covariances_, rtol=1e-10)
    # in data units: each mean inside its column's range, predict takes the frame as is
    lo, hi = rows.min().to_numpy(), rows.max().to_numpy()
    assert ((est.means_ > lo) & (est.means_ < hi)).all()
    assert (est.predict(rows) == alone.predict(rows)).all()
    assert not np.allclose(est.means_, raw.means_, rtol=1e-3)  # another start, another fit
    before = ex.session.snapshot
    ex.controls["covariance_type"].value = "spherical"
    ex.run(block=True)
    wait_done(ex)
    assert "not spherical in data units" in ex.session.error
    assert "previous result is kept" in ex.status.value and ex.session.snapshot is before
    ex.controls["covariance_type"].value = "diag"
    ex.run(block=True)
    wait_done(ex)
    assert ex.session.error == "" and ex.estimator_.covariance_type == "diag"
    # where the model has no such option the box is not shown
    family = FamilyExplorer(penguins.select_dtypes("number"), StudentMixture)
    assert family.controls["standardize"].layout.display == "none"


def test_hovering_a_trace_or_a_bar_draws_that_restart_out_everywhere(faithful):
    """A user's session: Run, hover one restart's trace, open the atlas, hover a bar of the
    ranking, leave the figure, Run again."""
    from matplotlib.backend_bases import MouseEvent

    from emwidgets.widgets.views import HIGHLIGHT_COLOUR

    def hover(view, x, y):
        event = MouseEvent("motion_notify_event", view.canvas, x, y)
        view.canvas.callbacks.process("motion_notify_event", event)

    ex = EMExplorer(faithful, n_components=3, n_init=8, random_state=0,
                    init_params="random_from_data")
    ex.run(block=True)
    wait_done(ex)
    snap = ex.session.snapshot
    conv, gallery = ex.convergence, ex.gallery
    # a restart whose trace is its own somewhere: its middle point, away from the others
    trace = np.asarray(snap.restarts.trace, float)
    r = next(i for i in snap.restarts.ranking()[::-1]
             if np.isfinite(trace[i]).sum() > 3 and i != snap.best)
    n = int(np.isfinite(trace[r]).sum())
    ax = conv.artists.ax
    x, y = ax.transData.transform((1 + n // 2, trace[r, n // 2]))
    hover(conv, x, y)
    hit = ex.highlighted
    assert hit is not None and conv.highlighted == gallery.highlighted == hit
    assert conv._hl_line.get_visible() and conv._hl_line.get_color() == HIGHLIGHT_COLOUR
    np.testing.assert_array_equal(conv._hl_line.get_ydata(),
                                  trace[hit][np.isfinite(trace[hit])])
    assert conv._hl_note.get_text().startswith(f"restart {hit}")
    assert f"{snap.restarts.objective[hit]:.4f}" in conv._hl_note.get_text()
    position = list(gallery.ranking.order).index(hit)
    band = gallery._hl_band  # (a Rectangle over the bar's column)
    assert abs(band.get_x() + band.get_width() / 2 - position) < 1e-9
    g = snap.solutions.group_of[hit]
    if g < len(gallery.solution_axes):
        assert gallery.solution_axes[g].title.get_color() == HIGHLIGHT_COLOUR
    # the atlas, opened now, rings the same restart
    ex.show_atlas(True)
    wait_done(ex)
    atlas = ex.atlas
    assert atlas.highlighted == hit
    np.testing.assert_allclose(atlas._hl_ring.get_offsets()[0],
                               atlas.points.get_offsets()[hit])
    # another restart's bar in the ranking: every view follows
    other = int(gallery.ranking.order[0 if position else 1])
    rank_ax = gallery.ranking.ax
    bx, by = rank_ax.transData.transform((list(gallery.ranking.order).index(other), 0.0))
    hover(gallery, bx, by)
    assert ex.highlighted == other == conv.highlighted == atlas.highlighted
    assert conv._hl_note.get_text().startswith(f"restart {other}")
    # leaving the figure takes the highlight away everywhere
    gallery.canvas.callbacks.process("figure_leave_event", MouseEvent(
        "figure_leave_event", gallery.canvas, 0, 0))
    assert ex.highlighted is None and not conv._hl_line.get_visible()
    assert atlas._hl_ring is None and gallery._hl_band is None
    # a highlight kept across a new run is drawn on its frames (or dropped if out of range)
    ex.highlight_restart(2)
    ex.session.n_init = 2
    ex.run(block=True)
    wait_done(ex)
    assert conv.highlighted == 2 and not conv._hl_line.get_visible()
