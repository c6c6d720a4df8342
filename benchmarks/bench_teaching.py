"""Taking a run apart (issue 16): what a scrub, a half step, the atlas and a basin map cost.

EMExplorer on Old Faithful (3 components, 16 random restarts, max_iter 100, tol 1e-6),
headless (Agg), after one Run and its background warm-up: every position of the
iteration scrubber, timed from setting the slider to the views it updates drawn
(``canvas.draw()``), with the XLA programs compiled or loaded meanwhile
(emwidgets/_compiles.py: counted, never timed); E-step, M-step and Step back the same
way; the atlas of restarts; then basin maps of mean 1 over a 20 x 20 grid of starts
(400 restarts in one vmapped batch), first and again.

    python benchmarks/bench_teaching.py
"""

from __future__ import annotations

import statistics
import time
import warnings


def _drawn(ex):
    """Render the views a frame updates (Agg), as the page asks for them: all but the
    gallery, which keeps the run's solutions while scrubbing (explorer.show_iteration)."""
    for name, view in ex.views.items():
        figure = getattr(view, "figure", None)
        if figure is not None and name != "gallery":
            figure.canvas.draw()


def main():
    warnings.simplefilter("ignore")
    from emwidgets import _compiles, datasets
    from emwidgets.widgets import EMExplorer

    X = datasets.load_faithful()
    ex = EMExplorer(X, n_components=3, n_init=16, init_params="random", max_iter=100,
                    tol=1e-6, random_state=0)
    t = time.perf_counter()
    ex.run(block=True)
    print(f"Run (first, compiles included): {time.perf_counter() - t:.2f} s, "
          f"{ex.session.iterations_run} iterations")
    # A user reads the plot while the explorer compiles the other choices in the background.
    t = time.perf_counter()
    while ex.session.warming and time.perf_counter() - t < 300:
        time.sleep(0.05)
    print(f"background warm-up after the Run: {time.perf_counter() - t:.1f} s more")

    frames = []
    with _compiles.count() as c:
        for it in range(1, ex.session.iterations_run + 1):
            t = time.perf_counter()
            ex.scrubber.value = it
            _drawn(ex)
            frames.append(time.perf_counter() - t)
    print(f"scrub, {len(frames)} positions: median {1e3 * statistics.median(frames):.0f} ms, "
          f"worst {1e3 * max(frames):.0f} ms; programs compiled {c.compiled}, loaded {c.loaded}")

    ex.scrubber.value = 3
    steps = []
    with _compiles.count() as c:
        for action in (ex.m_step, ex.e_step, ex.step_back, ex.step_back, ex.m_step):
            t = time.perf_counter()
            action()
            _drawn(ex)
            steps.append(time.perf_counter() - t)
    print(f"E-step / M-step / Step back: median {1e3 * statistics.median(steps):.0f} ms, "
          f"worst {1e3 * max(steps):.0f} ms; compiled {c.compiled}, loaded {c.loaded}")
    ex.to_convergence()

    t = time.perf_counter()
    ex.show_atlas(True)
    ex.atlas.figure.canvas.draw()
    print(f"atlas of 16 restarts shown and drawn: {1e3 * (time.perf_counter() - t):.0f} ms")

    ex.BASIN_GRID = 20
    for which in ("first", "again"):
        with _compiles.count() as c:
            t = time.perf_counter()
            ex.basin_map(component=0, block=True)
            ex.basins.figure.canvas.draw()
            dt = time.perf_counter() - t
        print(f"basin map 20 x 20 (400 starts), {which}: {dt:.2f} s; compiled {c.compiled}, "
              f"loaded {c.loaded}; {ex.step_note.value}")


if __name__ == "__main__":
    main()
