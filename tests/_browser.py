"""Shared parts of the browser tests: a JupyterLab server, headless Chromium, helpers.

JupyterLab runs on 127.0.0.1 with a token and its own settings (no autosave,
no news, no windowing) on a copy of the notebooks; Debian's Chromium is driven
by Playwright. Screenshots go to ``artifacts/`` (git-ignored). Each test module
that imports the fixtures gets its own server (``make test`` gives whole
modules to a worker), so the browser modules run side by side.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
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


@contextmanager
def jupyterlab(root: Path, scratch: Path):
    """A JupyterLab server on ``root`` (its own settings and workspaces in ``scratch``);
    yields (base_url, token, root)."""
    settings = scratch / "settings"
    for rel, value in SETTINGS.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    (scratch / "ws").mkdir(exist_ok=True)
    port, token = free_port(), "emwidgets-test-token"
    env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1", "MPLBACKEND": "module://ipympl.backend_nbagg"}
    log = open(root / "jupyter.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={settings}",
         f"--LabApp.workspaces_dir={scratch / 'ws'}"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except Exception:
                if proc.poll() is not None:
                    raise RuntimeError((root / "jupyter.log").read_text()) from None
                time.sleep(0.3)
        else:
            raise RuntimeError("JupyterLab did not start in 60 s")
        yield base, token, root
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def chromium():
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage"],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of the test notebooks; yields (base_url, token, root)."""
    root = tmp_path_factory.mktemp("lab")
    for nb in [*(ROOT / "tests" / "notebooks").glob("*.ipynb"),
               *(ROOT / "notebooks").glob("*.ipynb")]:
        shutil.copy(nb, root / nb.name)
    with jupyterlab(root, tmp_path_factory.mktemp("scratch")) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def open_notebook(browser, lab, name, viewport=(1500, 1100)):
    base, token, _ = lab
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
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



def run_all_and_wait(page, timeout_s=300):
    """Run every cell, then wait until each code cell has run and the kernel is idle."""
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(
        """() => { const w = window.jupyterapp.shell.currentWidget;
                   const cells = w.content.widgets.filter(c => c.model.type === 'code');
                   const k = w.sessionContext.session.kernel;
                   return cells.every(c => c.model.executionCount !== null &&
                                           !c.node.querySelector('.jp-InputArea-prompt')
                                              .innerText.includes('*')) &&
                          k.status === 'idle'; }""",
        timeout=timeout_s * 1000, polling=500)


KERNEL_EXEC = """async (code) => {
    const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
    let out = '';
    const future = k.requestExecute({code: code, store_history: false});
    future.onIOPub = (msg) => {
        const t = msg.header.msg_type;
        if (t === 'stream') { out += msg.content.text; }
        if (t === 'error') { out += 'ERROR ' + msg.content.ename + ': ' + msg.content.evalue; }
    };
    await future.done;
    return out;
}"""


def kernel(page, code: str) -> str:
    """Run ``code`` in the notebook's kernel (as a user typing it) and return what it printed."""
    out = page.evaluate(KERNEL_EXEC, code)
    assert "ERROR" not in out, out
    return out


CONTROL_SELECTOR = (".widget-hslider, .widget-dropdown, .widget-text, .widget-select-multiple, "
                    ".widget-hslider, .widget-checkbox, .widget-inline-hbox.widget-slider")


def visible_controls(page) -> list:
    """For each explorer on the page, how many of its controls are visible."""
    return page.eval_on_selector_all(
        ".emwidgets-explorer",
        """(els, sel) => els.map(e => Array.from(e.querySelectorAll(sel))
              .filter(c => c.offsetParent !== null && c.getBoundingClientRect().height > 0)
              .length)""", CONTROL_SELECTOR)


def statuses(page) -> list:
    return page.eval_on_selector_all(".emwidgets-status-text", "els => els.map(e => e.innerText)")
