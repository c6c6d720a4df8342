"""Every notebook run as a user runs it: in JupyterLab, in headless Chromium, all cells.

Asserts what the user should see: no error output, every explorer's controls
visible, no explorer in an error or stale state, and the status each notebook
promises. A full-page screenshot of each goes to ``artifacts/``.
"""

from __future__ import annotations

import pytest
from _browser import (  # noqa: F401
    ARTIFACTS,
    ROOT,
    error_outputs,
    open_notebook,
    pytestmark,
    run_all_and_wait,
    statuses,
    visible_controls,
)

NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))

#: What the status line of each explorer a notebook shows should start with.
EXPECTED_STATUS = {
    "01_quickstart.ipynb": ["Done"],
    "05_hmm.ipynb": ["Done", "Done"],  # one sequence, then two
    "06_missing_data.ipynb": ["Ready"],
    # latent classes, counts and a t mixture in FamilyExplorer
    "08_beyond_gaussians.ipynb": ["Done", "Done", "Done"],
    "09_slow_convergence.ipynb": ["Done"],
    "10_teaching_em.ipynb": ["Done", "Done", "Done"],
    "11_em_for_any_model.ipynb": ["Done"],  # the ABO model in its explorer
}

#: Controls a family's explorer shows at least (no covariance, missing or axis
#: controls for latent classes and counts: they are drawn by their profile).
FAMILY_CONTROLS = 8
#: ... and a model of your own's (restarts, max iter, tolerance, seed, SQUAREM, the restart
#: menu, the iteration slider).
MODEL_CONTROLS = 7


#: Warnings a notebook may show on purpose (they are part of what it teaches).
SHOWN_ON_PURPOSE = ("SpuriousSolutionWarning", "ConvergenceWarning")


def unexpected_outputs(page) -> list:
    """Error outputs, and stderr other than the warnings emwidgets gives on purpose."""
    out = []
    for text in error_outputs(page):
        warnings = [line for line in text.splitlines() if "Warning:" in line]
        if not warnings or not all(any(w in line for w in SHOWN_ON_PURPOSE)
                                   for line in warnings):
            out.append(text)
    return out


def _check_profiles(page):
    """The class-profile plots (latent classes, then counts) are drawn, not blank."""
    import io

    import numpy as np
    from PIL import Image

    profiles = page.locator(".emwidgets-profile")
    assert profiles.count() == 2, profiles.count()
    for i, what in enumerate(("latent-class", "poisson")):
        # An explorer a cell ran before displaying it (the counts) gets its first frame
        # when the page's canvas asks the kernel for it, which under Run All waits for
        # the later cells: poll for the frame (20 s at most) rather than one screenshot.
        for _ in range(40):
            png = profiles.nth(i).screenshot()
            pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
            # lines in the palette's colours: blue (class 0) and orange (class 1) at least
            blue = (np.abs(pixels.astype(int) - (31, 119, 180)).sum(1) < 60).sum()
            orange = (np.abs(pixels.astype(int) - (255, 127, 14)).sum(1) < 60).sum()
            if blue > 30 and orange > 30:
                break
            page.wait_for_timeout(500)
        (ARTIFACTS / f"notebook-08-{what}-profile.png").write_bytes(png)
        assert blue > 30 and orange > 30, (what, blue, orange)
    page.locator(".emwidgets-family-explorer").first.screenshot(
        path=str(ARTIFACTS / "notebook-08-latent-class-explorer.png"))


def _take_the_model_apart(page, model):
    """Notebook 11's ABO explorer: Home on the iteration slider, then M-step and E-step
    with the mouse; the note says which half step is shown and the view redraws (the
    frequencies move to the outlined E-step counts)."""
    view = model.locator(".emwidgets-view canvas").first
    note = model.locator(".emwidgets-step-note-text")

    def changed(before):
        for _ in range(80):
            if view.screenshot() != before:
                return True
            page.wait_for_timeout(250)
        return False

    model.locator(".widget-slider", has_text="iteration").locator(".noUi-handle").focus()
    before = view.screenshot()
    page.keyboard.press("Home")
    note.wait_for(timeout=30_000)
    assert "iteration 0" in note.inner_text() and changed(before)
    before = view.screenshot()
    model.locator("button", has_text="M-step").click()
    page.wait_for_function("() => document.querySelector('.emwidgets-model-explorer "
                           ".emwidgets-step-note-text').innerText.includes('E-step next')",
                           timeout=30_000)
    assert "M-step moved the parameters" in note.inner_text() and changed(before)
    model.locator("button", has_text="E-step").click()
    page.wait_for_function("() => document.querySelector('.emwidgets-model-explorer "
                           ".emwidgets-step-note-text').innerText.includes('M-step next')",
                           timeout=30_000)
    page.wait_for_timeout(1000)
    model.screenshot(path=str(ARTIFACTS / "notebook-11-half-steps.png"))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_as_a_user_runs_it(browser, lab, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page = open_notebook(browser, lab, name)
    try:
        run_all_and_wait(page)
        page.wait_for_timeout(1000)  # the last frames reach the canvases
    finally:
        page.screenshot(path=str(ARTIFACTS / f"notebook-{name[:-6]}.png"), full_page=True)
    assert unexpected_outputs(page) == []
    texts = statuses(page)
    expected = EXPECTED_STATUS.get(name, [])
    assert len(texts) == len(expected) and all(
        t.startswith(e) for t, e in zip(texts, expected)), texts
    kinds = page.eval_on_selector_all(
        ".emwidgets-explorer",
        "els => els.map(e => e.classList.contains('emwidgets-family-explorer') ? 'family' : "
        "e.classList.contains('emwidgets-model-explorer') ? 'model' : 'mixture')")
    least = {"family": FAMILY_CONTROLS, "model": MODEL_CONTROLS, "mixture": 12}
    assert all(n >= least[k] for n, k in zip(visible_controls(page), kinds)
               ), visible_controls(page)
    if name == "01_quickstart.ipynb":
        page.locator(".emwidgets-explorer").first.screenshot(
            path=str(ARTIFACTS / "quickstart-explorer.png"))
    if name == "08_beyond_gaussians.ipynb":
        _check_profiles(page)
    if name == "05_hmm.ipynb":  # two sequences: the menu shows the second one's series
        two = page.locator(".emwidgets-explorer").nth(1)
        menu = two.locator(".emwidgets-sequence select")
        assert menu.is_visible() and menu.locator("option").count() == 2
        series = two.locator(".emwidgets-series canvas").first
        before = series.screenshot()
        menu.select_option(index=1)
        for _ in range(60):
            if series.screenshot() != before:
                break
            page.wait_for_timeout(250)
        assert series.screenshot() != before, "the series view should show sequence 2"
        two.screenshot(path=str(ARTIFACTS / "notebook-05-two-sequences.png"))
    if name == "11_em_for_any_model.ipynb":
        model = page.locator(".emwidgets-model-explorer").first
        model.screenshot(path=str(ARTIFACTS / "notebook-11-model-explorer.png"))
        _take_the_model_apart(page, model)
    if name == "10_teaching_em.ipynb":  # the atlas of the last explorer is drawn
        atlas = page.locator(".emwidgets-atlas")
        assert atlas.count() == 1 and atlas.first.is_visible()
        page.locator(".emwidgets-explorer").nth(2).screenshot(
            path=str(ARTIFACTS / "notebook-10-atlas.png"))
    stale = page.locator(".emwidgets-stale")
    assert stale.count() == 0 or not stale.first.is_visible()
    page.close()
