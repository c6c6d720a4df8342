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
    "05_hmm.ipynb": ["Done"],
    "06_missing_data.ipynb": ["Ready"],
}


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
    assert all(n >= 12 for n in visible_controls(page)), visible_controls(page)
    if name == "01_quickstart.ipynb":
        page.locator(".emwidgets-explorer").first.screenshot(
            path=str(ARTIFACTS / "quickstart-explorer.png"))
    stale = page.locator(".emwidgets-stale")
    assert stale.count() == 0 or not stale.first.is_visible()
    page.close()
