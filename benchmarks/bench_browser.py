"""Drawing in the browser: a warm explorer run in JupyterLab against the same run headless.

Issue 12's budget: a warm run shown in a real browser takes at most 1.5x its
headless time. Each explorer (EMExplorer on Old Faithful with 16 restarts,
HMMExplorer on the geyser with 3 states and 32 restarts) runs once to compile,
waits for the background compilation of the other choices, then makes
``REPEATS`` warm runs with a new seed each: in headless Chromium (JupyterLab,
ipympl; wall time from the Run click to the status saying Done, read on the
page) and in a plain Python process (``run(block=True)``, the same seeds).
The kernel also reports how long matplotlib spent drawing each figure.
Needs Debian's chromium (``.ci/run`` installs it).

    python benchmarks/bench_browser.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import nbformat  # noqa: E402
from _browser import chromium, jupyterlab, kernel, open_notebook, run_all_and_wait  # noqa: E402

REPEATS = 6
SETUP = """\
from emwidgets import EMExplorer, HMMExplorer, datasets
em = EMExplorer(datasets.load_faithful(), n_components=2, n_init=16, random_state=0)
hmm = HMMExplorer(datasets.load_geyser(), n_components=3, n_init=32, random_state=0)
"""
EXPLORERS = ("em", "hmm")

HEADLESS = SETUP + """
import json, time
out = {}
for name in %r:
    ex = globals()[name]
    ex.run(block=True)  # compiles
    while ex.session.warming:  # then the other choices compile in the background
        time.sleep(0.05)
    times = []
    for seed in range(1, %d + 1):
        ex.controls["random_state"].value = seed
        t = time.perf_counter()
        ex.run(block=True)
        times.append(time.perf_counter() - t)
        assert ex.session.status.startswith("Done"), ex.session.status
    out[name] = times
print(json.dumps(out))
""" % (EXPLORERS, REPEATS)

# Every text the status shows, as the page shows it (a warm run's "Done" can read exactly
# as the previous one's: the end of a run is a final text after one that is not).
WATCH = """(i) => {
    const root = document.querySelectorAll('.emwidgets-explorer')[i];
    window.__texts = [];
    window.__watch && window.__watch.disconnect();
    window.__watch = new MutationObserver(() => {
        const s = root.querySelector('.emwidgets-status-text');
        const t = s ? s.innerText : '';
        if (t !== window.__texts[window.__texts.length - 1]) window.__texts.push(t);
    });
    window.__watch.observe(root, {childList: true, subtree: true, characterData: true,
                                  attributes: true});
}"""
WAIT_DONE = """() => {
    const t = window.__texts, final = /^(Done|Stopped|Error)/;
    const started = t.findIndex(x => !final.test(x));
    return started >= 0 && t.slice(started).some(x => final.test(x));
}"""


# Time matplotlib spends drawing figures in the kernel (ipympl renders on request).
PROFILE = """
import time
from matplotlib.backends.backend_agg import FigureCanvasAgg
_drawn = [0, 0.0]
_draw = FigureCanvasAgg.draw
def _timed(self, *a, **k):
    t = time.perf_counter()
    try:
        return _draw(self, *a, **k)
    finally:
        _drawn[0] += 1
        _drawn[1] += time.perf_counter() - t
FigureCanvasAgg.draw = _timed
"""


# Seconds from the Run to the end of the last view's render of the final frame (kernel
# clocks), or null while a view has not rendered its latest update.
RENDERED = """
import json
_v = list({0}.views.values())
print(json.dumps(max(v.rendered_at for v in _v) - {0}.session.run_started_at
                 if all(v._rendered == v._version for v in _v) else None))
"""


def rendered_seconds(page, name: str, timeout: float = 30.0) -> float:
    """Poll the kernel a short cell at a time (it renders between cells)."""
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        value = json.loads(kernel(page, RENDERED.format(name)))
        if value is not None:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{name}: a view never rendered its last update")


def headless() -> dict:
    out = subprocess.run([sys.executable, "-c", HEADLESS], check=True, capture_output=True,
                         text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def in_browser() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "lab"
        root.mkdir()
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": {
            "name": "python3", "display_name": "Python 3", "language": "python"}})
        nb.cells = [nbformat.v4.new_code_cell(SETUP + "display(em)"),
                    nbformat.v4.new_code_cell("hmm")]
        nbformat.write(nb, root / "bench.ipynb")
        with jupyterlab(root, tmp) as lab, chromium() as browser:
            page = open_notebook(browser, lab, "bench.ipynb")
            run_all_and_wait(page)
            page.locator(".emwidgets-explorer").nth(1).wait_for(state="visible")
            kernel(page, PROFILE)
            out, drawn = {}, {}
            for i, name in enumerate(EXPLORERS):
                explorer = page.locator(".emwidgets-explorer").nth(i)
                times, rendered = [], []
                for seed in range(REPEATS + 1):
                    if seed:
                        kernel(page, f"{name}.controls['random_state'].value = {seed}")
                    page.evaluate(WATCH, i)
                    t = time.perf_counter()
                    explorer.locator("button", has_text="Run").click()
                    try:
                        page.wait_for_function(WAIT_DONE, timeout=120_000,
                                               polling=20)
                    except Exception:
                        print("the status showed:", page.evaluate("window.__texts"))
                        raise
                    if seed:  # the first run compiles
                        times.append(time.perf_counter() - t)
                        rendered.append(rendered_seconds(page, name))
                    else:  # and then the other choices, in the background
                        kernel(page, f"import time\nwhile {name}.session.warming: time.sleep(0.05)"
                                     "\n_drawn[:] = [0, 0.0]")
                    status = page.locator(".emwidgets-status-text").nth(i).inner_text()
                    assert status.startswith("Done"), status
                out[name] = (times, rendered)
                drawn[name] = json.loads(kernel(page, "import json; print(json.dumps(_drawn))"))
            page.close()
    return out, drawn


def main():
    quiet = headless()
    shown, drawn = in_browser()
    print(f"Warm runs, median of {REPEATS} (a new seed each), headless vs in JupyterLab "
          "(headless Chromium):")
    print(f"{'explorer':28s} {'headless':>9s} {'browser':>9s} {'ratio':>6s}"
          "   (browser: from the Run click to the page's status saying Done)")
    labels = {"em": "EMExplorer, Faithful, 16", "hmm": "HMMExplorer, geyser, 32"}
    for name in EXPLORERS:
        times, rendered = shown[name]
        a, b, c = statistics.median(quiet[name]), statistics.median(times), statistics.median(
            rendered)
        n, seconds = drawn[name]
        print(f"{labels[name]:28s} {a:8.2f}s {b:8.2f}s {b / a:5.1f}x"
              f"   (browser {min(times):.2f}-{max(times):.2f} s; per run "
              f"{n / REPEATS:.1f} figure draws, {seconds / REPEATS:.2f} s drawing; the last "
              f"figure rendered {c:.2f} s after the Run, {c / a:.1f}x)")


if __name__ == "__main__":
    main()
