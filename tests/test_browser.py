"""The explorer in a real JupyterLab, in headless Chromium (Debian's), driven by Playwright.

Starts JupyterLab on 127.0.0.1 with a token and its own settings (no autosave,
no news, no windowing), opens a notebook that shows the explorer, runs it,
clicks Run, and checks that the convergence canvas changes while the fit runs,
that the status ends in "Done" and that no error output appears. Screenshots
go to ``artifacts/`` (git-ignored).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason="Debian's chromium is not installed (.ci/run installs it)"),
]

SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of the test notebooks; yields (base_url, token, root)."""
    root = tmp_path_factory.mktemp("lab")
    for nb in (ROOT / "tests" / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, root / nb.name)
    shutil.copy(ROOT / "notebooks" / "01_quickstart.ipynb", root / "01_quickstart.ipynb")
    settings = tmp_path_factory.mktemp("settings")
    for rel, value in SETTINGS.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    port, token = free_port(), "emwidgets-test-token"
    env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1", "MPLBACKEND": "module://ipympl.backend_nbagg"}
    log = open(root / "jupyter.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={settings}",
         f"--LabApp.workspaces_dir={tmp_path_factory.mktemp('ws')}"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except Exception:
            if proc.poll() is not None:
                raise RuntimeError((root / "jupyter.log").read_text())
            time.sleep(0.3)
    else:
        proc.terminate()
        raise RuntimeError("JupyterLab did not start in 60 s")
    yield base, token, root
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage"],
        )
        yield b
        b.close()


def open_notebook(browser, lab, name):
    base, token, _ = lab
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    # ?reset: a fresh workspace, so only this notebook is open and current.
    page.goto(f"{base}/lab/tree/{name}?reset&token={token}")
    page.wait_for_function(
        """(name) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                       return w && w.context && w.context.path.endsWith(name); }""",
        arg=name, timeout=60_000)
    # Wait for the kernel to be ready before running cells.
    page.wait_for_function(
        """() => { const w = window.jupyterapp.shell.currentWidget;
                   return w && w.sessionContext && w.sessionContext.session &&
                          w.sessionContext.session.kernel &&
                          w.sessionContext.session.kernel.connectionStatus === 'connected'; }""",
        timeout=60_000)
    return page


def error_outputs(page) -> list:
    return page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'],"
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']",
        "els => els.map(e => e.innerText)")


def status_text(page) -> str:
    loc = page.locator(".emwidgets-status-text")
    return loc.inner_text() if loc.count() else ""


def test_explorer_runs_live_in_jupyterlab(browser, lab):
    ARTIFACTS.mkdir(exist_ok=True)
    page = open_notebook(browser, lab, "browser_explorer.ipynb")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    canvas = page.locator(".emwidgets-convergence canvas").first
    canvas.wait_for(state="visible", timeout=90_000)
    assert "Ready" in status_text(page)
    page.screenshot(path=str(ARTIFACTS / "explorer-ready.png"))

    page.locator(".emwidgets-explorer button", has_text="Run").click()
    hashes, seen_running = set(), False
    deadline = time.time() + 180
    while time.time() < deadline:
        text = status_text(page)
        if text.startswith("Running"):
            seen_running = True
            hashes.add(hashlib.sha1(canvas.screenshot()).hexdigest())
            if len(hashes) == 3:
                page.screenshot(path=str(ARTIFACTS / "explorer-running.png"))
        elif text.startswith("Done") or text.startswith("Error"):
            break
        time.sleep(0.2)
    text = status_text(page)
    assert text.startswith("Done"), text
    assert seen_running and len(hashes) >= 3, (
        f"the convergence canvas should change while the fit runs (saw {len(hashes)} frames)")
    time.sleep(1.0)  # let the last frame reach the canvas
    page.screenshot(path=str(ARTIFACTS / "explorer-done.png"))
    assert "48 restarts" in text or "of 48 restarts" in text
    assert error_outputs(page) == []
    page.close()


def test_quickstart_notebook_runs_in_jupyterlab(browser, lab):
    page = open_notebook(browser, lab, "01_quickstart.ipynb")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    try:
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.jp-OutputArea-output'))"
            ".some(e => e.innerText.includes('restarts converged'))", timeout=120_000)
    finally:
        page.screenshot(path=str(ARTIFACTS / "quickstart-page.png"), full_page=True)
    page.locator(".emwidgets-assignments canvas").first.wait_for(state="visible", timeout=30_000)
    time.sleep(1.5)
    explorer = page.locator(".emwidgets-explorer").first
    explorer.screenshot(path=str(ARTIFACTS / "quickstart-explorer.png"))
    assert status_text(page).startswith("Done")
    assert error_outputs(page) == []
    page.close()


def test_explorer_with_missing_values_in_jupyterlab(browser, lab):
    """Air quality with its gaps: fitted by EM, imputed points hollow; then dropped instead."""
    page = open_notebook(browser, lab, "browser_missing.ipynb")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    canvas = page.locator(".emwidgets-assignments canvas").first
    canvas.wait_for(state="visible", timeout=90_000)
    missing = page.locator(".emwidgets-explorer .widget-dropdown", has_text="missing")
    assert missing.is_visible()
    before = hashlib.sha1(canvas.screenshot()).hexdigest()

    def run_until_done():
        previous = status_text(page)
        page.locator(".emwidgets-explorer button", has_text="Run").click()
        page.wait_for_function(
            "(previous) => { const e = document.querySelector('.emwidgets-status-text');"
            " return e && e.innerText !== previous &&"
            " (e.innerText.startsWith('Done') || e.innerText.startsWith('Error')); }",
            arg=previous, timeout=120_000)
        time.sleep(1.0)  # let the last frame reach the canvas
        return status_text(page)

    text = run_until_done()
    assert text.startswith("Done") and "42 incomplete rows fitted by EM" in text, text
    assert hashlib.sha1(canvas.screenshot()).hexdigest() != before
    page.locator(".emwidgets-explorer").first.screenshot(path=str(ARTIFACTS / "explorer-missing.png"))
    missing.locator("select").select_option(label="drop incomplete rows")
    text = run_until_done()
    assert text.startswith("Done") and "incomplete" not in text, text
    page.locator(".emwidgets-explorer").first.screenshot(path=str(ARTIFACTS / "explorer-dropped.png"))
    assert error_outputs(page) == []
    page.close()
