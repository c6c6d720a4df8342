"""The model-selection explorer as a user meets it (issue 11, defect 11): a label that is not
cut, a plot that a far-worse covariance type does not squash, Stop, and opening the chosen
model in an EMExplorer. Widgets are driven in Python, without a browser."""

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from emwidgets import EMExplorer, ModelSelectionExplorer, datasets, plotting


@pytest.fixture(scope="module")
def faithful():
    return datasets.load_faithful()


@pytest.fixture(scope="module")
def ran(faithful):
    """The whole grid, 3 x 4 models of 2 restarts, run to the end."""
    explorer = ModelSelectionExplorer(faithful, n_components=(1, 3), n_init=2)
    explorer.run(block=True)
    return explorer


def text(html_widget):
    return html_widget.value


def widget_tree(root):
    """Every widget reachable from root through widget-valued traits (children, toolbar...)."""
    seen, stack = {}, [root]
    while stack:
        w = stack.pop()
        if id(w) in seen:
            continue
        seen[id(w)] = w
        for name in w.keys:
            if name in ("layout", "style"):
                continue
            value = getattr(w, name, None)
            values = value if isinstance(value, (list, tuple)) else [value]
            stack.extend(v for v in values if isinstance(v, W.Widget))
    return list(seen.values())


def assert_nothing_shared(root):
    widgets = widget_tree(root)
    for attr in ("layout", "style"):
        owners = {}
        for w in widgets:
            obj = getattr(w, attr, None) if attr in w.keys else None
            if obj is not None:
                owners.setdefault(id(obj), []).append(w)
        shared = {k: v for k, v in owners.items() if len(v) > 1}
        assert not shared, f"{attr} shared by " + "; ".join(
            ", ".join(type(w).__name__ for w in v) for v in shared.values())
    return widgets


def test_before_the_first_run(faithful):
    ex = ModelSelectionExplorer(faithful, n_components=(1, 3), n_init=2)
    assert "Ready" in text(ex.status) and "272 rows" in text(ex.data_note)
    assert hasattr(ex.plot, "artists")  # empty axes with labels, not a blank area
    assert "BIC" in ex.plot.artists.ax.get_ylabel()
    assert ex.model_picker.disabled and ex.open_button.disabled and ex.stop_button.disabled
    with pytest.raises(ValueError, match="Run grid"):
        ex.open_best()


def test_the_labels_are_not_cut_and_no_widget_shares_a_layout_or_style(faithful):
    ex = ModelSelectionExplorer(faithful)
    for w in (ex.range, ex.n_init, ex.model_picker):
        width = w.style.description_width
        assert width.endswith("px") and int(width[:-2]) >= 8 * len(w.description), w.description
        assert w.layout.width.endswith("px")
    widgets = assert_nothing_shared(ex)
    assert ex.plot.canvas in widgets and ex.range in widgets and ex.open_button in widgets


@pytest.mark.slow
def test_the_grid_fills_the_table_and_names_the_best(ran):
    table = ran.result.table
    assert len(table) == 12 and set(table["covariance_type"]) == {"full", "tied", "diag",
                                                                  "spherical"}
    best = table.loc[table["bic"].idxmin()]
    key = (int(best["n_components"]), best["covariance_type"])
    assert ran.result.best_key == key
    status = text(ran.status)
    assert status.count("Done: 12 models.") == 1
    plural = "s" if key[0] != 1 else ""
    assert f"{key[0]} component{plural}, {key[1]} covariance (BIC {best['bic']:.1f})" in status
    # the picker offers every fitted model, lowest BIC first and chosen
    assert ran.model_picker.value == key and ran.model_picker.options[0][1] == key
    assert len(ran.model_picker.options) == 12 and not ran.open_button.disabled
    # mclust's names beside ours, in the menu and the plot's legend
    assert all(f"{key[1]} ({plotting.MCLUST_NAMES[key[1]]})" in label
               for label, key in ran.model_picker.options)
    legend = [t.get_text() for t in ran.plot.artists.ax.get_legend().get_texts()]
    assert {"full (VVV)", "tied (EEE)", "diag (VVI)", "spherical (VII)"} <= set(legend)
    assert ran.run_button.disabled is False and ran.stop_button.disabled is True


def test_the_plot_shows_each_models_gap_to_the_lowest_bic(ran):
    table = ran.result.table
    for cov_type, line in ran.plot.artists.lines.items():
        rows = table[table["covariance_type"] == cov_type].sort_values("n_components")
        x, y = line.get_data()
        np.testing.assert_array_equal(x, [1, 2, 3])
        np.testing.assert_allclose(y, rows["bic"] - table["bic"].min())
    np.testing.assert_allclose(ran.plot.artists.best.get_offsets(),
                               [[ran.result.best_key[0], 0.0]])


def test_a_far_worse_covariance_type_does_not_squash_the_near_best_ones():
    ks = [1, 2, 3, 4]
    table = pd.DataFrame({
        "n_components": ks * 2, "covariance_type": ["full"] * 4 + ["spherical"] * 4,
        "bic": [5600.0, 5512.0, 5500.0, 5507.0, 7400.0, 6900.0, 6600.0, 6500.0]})
    fig, ax = plt.subplots()
    art = plotting.draw_selection(ax, table)
    to_pixels = ax.transData.transform
    bottom, top = (to_pixels([(1, v)])[0, 1] for v in ax.get_ylim())
    zero, ten = (to_pixels([(1, v)])[0, 1] for v in (0.0, 10.0))
    # the models within 10 of the best get a quarter of the axis or more, though spherical
    # lies 1,900 above: on a linear axis they would share 10 / 1900 of it
    assert (ten - zero) / (top - bottom) > 0.25
    assert ax.get_ylim()[1] >= 1900 and ax.get_ylim()[0] < 0  # every model on the axis
    assert "5500.0: 3 components, full" in ax.get_title()
    # a failed fit (no BIC) leaves a gap in its line, not an error
    failed = table.astype({"bic": float}).copy()
    failed.loc[1, "bic"] = np.nan
    plotting.update_selection(art, failed)
    assert np.isnan(art.lines["full"].get_data()[1][1])
    # A spurious model (every restart degenerate) is a grey cross off its line, and the
    # lowest is the lowest regular model, as SelectionResult.best_key chooses.
    degenerate = table.astype({"bic": float}).copy()
    degenerate["spurious"] = False
    degenerate.loc[3, ["bic", "spurious"]] = [5400.0, True]  # full, 4 components: lowest
    plotting.update_selection(art, degenerate)
    x, y = art.lines["full"].get_data()
    assert np.isnan(y[3]) and y[2] == 0.0
    np.testing.assert_allclose(art.spurious.get_offsets(), [[4, -100.0]])
    np.testing.assert_allclose(art.best.get_offsets(), [[3, 0.0]])
    assert "5500.0: 3 components, full" in ax.get_title() and ax.get_ylim()[0] < -100
    plt.close(fig)


def test_stop_keeps_the_models_fitted_so_far(faithful):
    ex = ModelSelectionExplorer(faithful, n_components=(1, 3), n_init=2)
    ex.types["tied"].value = ex.types["spherical"].value = False
    seen = []

    def click_stop_after_two(change):
        seen.append(change["new"])
        if "Fitted 2 of 6" in change["new"] and not ex.stop_button.disabled:
            ex.stop_button.click()  # runs on the worker, between two models

    ex.status.observe(click_stop_after_two, "value")
    ex.run(block=True)
    assert any("Stopping" in s for s in seen)
    status = text(ex.status)
    assert "Stopped after 2 of 6 models." in status and "Done" not in status
    assert len(ex.result.table) == 2 and len(ex.result.models) == 2
    key = ex.result.best_key
    plural = "s" if key[0] != 1 else ""
    assert f"The lowest BIC is {key[0]} component{plural}, {key[1]}" in status
    assert len(ex.model_picker.options) == 2 and ex.model_picker.value == key
    x, _ = ex.plot.artists.lines["full"].get_data()
    np.testing.assert_array_equal(x, [1, 2])
    assert ex.plot.artists.lines["diag"].get_data()[0].size == 0
    assert not ex.run_button.disabled and ex.stop_button.disabled
    # a new run starts afresh: Stop is not left set
    ex.status.unobserve(click_stop_after_two, "value")
    ex.range.value = (1, 1)
    ex.run(block=True)
    assert "Done: 2 models." in text(ex.status) and len(ex.result.table) == 2


SETTINGS = ("n_components", "covariance_type", "n_init", "random_state", "tol", "reg_covar",
            "max_iter", "init_params", "convergence")


def test_open_in_explorer_gives_an_explorer_of_the_chosen_model(ran, faithful):
    key = (2, "diag")
    assert key != ran.result.best_key
    ran.model_picker.value = key
    ran.open_button.click()
    ex = ran.explorer
    ex.session.wait(120)  # (it runs at once)
    assert isinstance(ex, EMExplorer) and ex in ran.explorer_box.children
    model = ran.result.models[key]
    params = model.get_params()
    for name in SETTINGS:
        assert getattr(ex.session, name) == params[name], name
    np.testing.assert_array_equal(ex.session.X, ran.X)
    # It shows the model the grid fitted: run again from the grid's seeds, the same fit.
    assert "Done" in ex.status.value, ex.status.value
    fitted = ex.estimator_
    np.testing.assert_allclose(fitted.means_, model.means_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fitted.weights_, model.weights_, rtol=1e-6, atol=1e-8)
    assert fitted.restarts_.n_restarts == model.restarts_.n_restarts

    best = ran.open_best(run=False)
    assert best.session.snapshot is None  # run=False: opened, not fitted
    assert (best.session.n_components, best.session.covariance_type) == ran.result.best_key
    assert ran.explorer_box.children[-1] is best  # replaces the previous one
    assert_nothing_shared(ran)  # the opened explorer's widgets included


def test_the_tree_walk_finds_a_shared_layout():
    shared = W.Layout(width="90px")
    box = W.VBox([W.Button(layout=shared), W.HBox([W.Checkbox(layout=shared)])])
    with pytest.raises(AssertionError, match="layout shared by Button, Checkbox|Checkbox, Button"):
        assert_nothing_shared(box)


def test_one_component_is_singular_in_the_title(faithful):
    """A grid stopped after its first model (1 component) says '1 component', not '1 components'."""
    import pandas as pd

    from emwidgets import plotting
    from emwidgets.widgets.views import make_canvas

    fig, _ = make_canvas((4, 3))
    table = pd.DataFrame({"n_components": [1], "covariance_type": ["full"], "bic": [2607.6]})
    art = plotting.draw_selection(fig.add_subplot(), table, "bic")
    assert art.ax.get_title() == "Lowest BIC 2607.6: 1 component, full"


@pytest.mark.slow
def test_the_grid_runs_accelerated_and_the_explorer_it_opens_too(faithful):
    """The accelerate checkbox: every model of the grid fitted by SQUAREM (the table equals
    select_model's with accelerate='squarem'), and the explorer opened from it accelerated."""
    from emwidgets import select_model

    sel = ModelSelectionExplorer(faithful, n_components=(1, 3), n_init=4)
    for name, box in sel.types.items():
        box.value = name in ("full", "diag")
    sel.accelerate.value = True
    sel.run(block=True)
    models = sel.result.models
    assert all(m.accelerate == "squarem" and m.restarts_.accepted is not None
               for m in models.values())
    ref = select_model(sel.X, range(1, 4), ("full", "diag"), n_init=4, random_state=0,
                       accelerate="squarem")
    np.testing.assert_allclose(sel.result.table["bic"], ref.table["bic"], rtol=1e-6)
    ex = sel.open_best()
    assert ex.session.accelerate and ex.controls["accelerate"].value
