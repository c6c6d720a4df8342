"""The explorer of a model of your own (emwidgets.EM): a user's session, headless.

In JupyterLab it runs in notebook 11 (tests/test_browser_notebooks.py)."""

import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import wait_idle  # noqa: F401  (the explorers' shared fixtures)

from emwidgets import EM, EMExplorer, ModelExplorer, _compiles

sys.path.insert(0, str(Path(__file__).parent))
from test_general_em import (  # noqa: E402
    ABO,
    abo_e_step,
    abo_init,
    abo_log_likelihood,
    abo_m_step,
    censored_e_step,
    censored_init,
    censored_log_likelihood,
    censored_m_step,
)


def abo_model(**kw):
    return EM(abo_init, abo_e_step, abo_m_step, abo_log_likelihood,
              kinds={"alleles": "simplex"}, **kw)


def test_run_scrub_pick_and_hover_a_model_of_your_own():
    seen = []

    def view(ax, params, data):
        seen.append(np.asarray(params["alleles"]))
        ax.bar(["A", "B", "O"], params["alleles"])

    ex = EMExplorer(abo_model(), ABO, view=view, n_init=8, accelerate=None, random_state=0)
    assert isinstance(ex, ModelExplorer)  # EMExplorer(EM(...), data) is this explorer
    ex.run(block=True)
    assert ex.status_text.startswith("Done") and "restarts converged" in ex.status_text
    est = ex.estimator_
    alone = abo_model(n_init=8, accelerate=None, random_state=0, max_iter=1000,
                      tol=ex.controls["tol"].value).fit(ABO)  # batch = live
    np.testing.assert_allclose(est.params_["alleles"], alone.params_["alleles"], rtol=1e-12)
    np.testing.assert_allclose(seen[-1], est.params_["alleles"])
    assert ex.snapshot.solutions.group_of.max() == 0  # one optimum: every restart found it
    # the iteration slider replays iteration 1, compiling nothing; the view follows
    with _compiles.count() as c:
        ex.scrubber.value = 1
    assert c.compiled == 0, c
    first = abo_model(n_init=8, accelerate=None, random_state=0, max_iter=1).start(ABO)
    # ("best" stays the run's best restart while scrubbing)
    np.testing.assert_allclose(seen[-1], np.asarray(first.advance().snapshot().params[
        "params"]["alleles"][ex.snapshot.best]), rtol=1e-12)
    assert ex.status_text.startswith("Iteration 1 of")
    # another restart, at the end of the run
    ex.scrubber.value = ex.scrubber.max
    ex.restart_picker.value = 3
    np.testing.assert_allclose(seen[-1], est.restarts_.params["params"]["alleles"][3])
    # hover its bar: drawn out in the convergence plot too
    ex.highlight_restart(3)
    assert ex.convergence.highlighted == 3 == ex.parameters.highlighted


def test_a_failing_view_and_a_failing_model_are_sentences_and_the_result_stays():
    def bad_view(ax, params, data):
        raise KeyError("mu")

    ex = ModelExplorer(abo_model(), ABO, view=bad_view, n_init=2)
    ex.run(block=True)
    assert ex.status_text.startswith("Done")  # the explorer carries on
    assert ex.user_view.error.startswith("view(ax, params, data) failed: KeyError")
    before = ex.snapshot
    ex.template.set_params(m_step=lambda s, n: {"alleles": jnp.ones(2)})
    ex.run(block=True)
    assert "another structure or shape" in ex.status_text
    assert "previous result is kept" in ex.status_text and ex.snapshot is before
    with pytest.raises(ValueError, match="explores an emwidgets.EM model"):
        ModelExplorer(object(), ABO)


def test_stop_keeps_what_the_run_reached():
    """Stop as the first frame is drawn (a slow view holds the run there): the status says
    Stopped, and the model where it stopped is kept, not converged."""
    import time

    rng = np.random.default_rng(0)
    life, seen = rng.exponential(2.0, 2000), rng.uniform(0, 0.5, 2000)
    rows = np.column_stack([np.minimum(life, seen), (life <= seen).astype(float)])
    model = EM(censored_init, censored_e_step, censored_m_step, censored_log_likelihood,
               rows=True, kinds={"rate": "log"}, convergence="change")

    def slow_view(ax, params, data):
        time.sleep(0.3)
        ax.axvline(float(params["rate"]))

    ex = ModelExplorer(model, rows, view=slow_view, n_init=4, accelerate=None,
                       max_iter=100_000, tol=1e-12)
    ex.run()
    for _ in range(1200):  # the first frame
        if ex.snapshot is not None:
            break
        time.sleep(0.05)
    ex.stop()
    assert ex.runner.wait(60)
    assert ex.status_text.startswith("Stopped"), ex.status_text
    assert ex.estimator_ is not None and not ex.estimator_.converged_
    assert ex.estimator_.n_iter_ < 50 and np.isfinite(ex.estimator_.params_["rate"])
    # Run, then Stop at once (while it compiles or at its first chunk): nothing breaks
    before = ex.estimator_
    ex.run()
    ex.stop()
    assert ex.runner.wait(60)
    assert ex.status_text.startswith("Stopped"), ex.status_text
    assert ex.estimator_ is not None and (ex.estimator_ is before
                                          or not ex.estimator_.converged_)


def test_half_steps_hand_the_view_the_e_steps_statistics_and_the_m_step_uses_them():
    """E-step, M-step, Step back on a model of your own: the view written with a fourth
    argument is given the shown restart's E-step statistics (each row's, with rows=True);
    after an M-step they are the previous iteration's, and the user's own m_step of their
    sum is the parameters shown (EM's two halves, replayed: nothing compiles)."""
    rng = np.random.default_rng(1)
    life, seen = rng.exponential(2.0, 300), rng.uniform(0, 2.0, 300)
    rows = np.column_stack([np.minimum(life, seen), (life <= seen).astype(float)])
    model = EM(censored_init, censored_e_step, censored_m_step, censored_log_likelihood,
               rows=True, kinds={"rate": "log"}, convergence="change")
    got = []

    def view(ax, params, data, stats):
        got.append((float(params["rate"]), {k: np.asarray(v) for k, v in stats.items()}))
        ax.hist(stats["time"], bins=20)

    ex = ModelExplorer(model, rows, view=view, n_init=3, accelerate=None, random_state=2,
                       tol=1e-12)
    assert ex.e_step_button.disabled and ex.m_step_button.disabled  # nothing to take apart
    ex.run(block=True)
    assert ex.status_text.startswith("Done"), ex.status_text
    rate, stats = got[-1]
    assert stats["time"].shape == (300,)  # each row's expected lifetime
    # at the end: the E-step of the fitted rate, row by row, as the user's function says
    np.testing.assert_allclose(stats["time"], np.where(rows[:, 1] > 0, rows[:, 0],
                                                       rows[:, 0] + 1 / rate), rtol=1e-12)
    with _compiles.count() as c:
        ex.scrubber.value = 2
        assert ex.step_note.value == "" or "iteration 2" in ex.step_note.value
        ex.m_step_button.click()  # parameters of iteration 3, statistics still of 2
        assert ex.scrub.frame == (3, 2) and "E-step next" in ex.step_note.value
    assert c.compiled == 0, c
    rate3, stats2 = got[-1]
    rate2_only = float(got[-2][0])
    np.testing.assert_allclose(stats2["time"], np.where(rows[:, 1] > 0, rows[:, 0],
                                                        rows[:, 0] + 1 / rate2_only), rtol=1e-12)
    np.testing.assert_allclose(rate3, len(rows) / stats2["time"].sum(), rtol=1e-10)  # m_step
    ex.e_step_button.click()
    assert ex.scrub.frame == (3, 3) and "M-step next" in ex.step_note.value
    np.testing.assert_allclose(got[-1][1]["time"], np.where(rows[:, 1] > 0, rows[:, 0],
                                                            rows[:, 0] + 1 / rate3), rtol=1e-12)
    ex.back_button.click()
    assert ex.scrub.frame == (3, 2)
    ex.back_button.click()
    assert ex.scrub.frame == (2, 2) and ex.scrubber.value == 2
    ex.end_button.click()  # the run's own frame again, the buttons as at the end
    assert ex.scrub.frame is None and ex.step_note.value == ""
    np.testing.assert_allclose(got[-1][0], float(ex.estimator_.params_["rate"]))
    # a new Run forgets the old run's frame: its end is shown, the slider at its end
    ex.scrubber.value = 1
    ex.controls["random_state"].value = 5
    ex.run(block=True)
    assert ex.scrub.frame is None and ex.scrubber.value == ex.scrubber.max > 1
    np.testing.assert_allclose(got[-1][0], float(ex.estimator_.params_["rate"]))
