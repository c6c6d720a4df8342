"""Pure drawing functions: each draws onto a given Axes and returns its artists.

The ``draw_*`` functions create artists; the matching ``update_*`` functions
change their data in place (``set_data``, ``set_offsets``...), which is what the
live widgets call between EM chunks. Both serve notebooks and static reports
and test under the Agg backend. No JAX here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.patches import Ellipse
from matplotlib.ticker import FuncFormatter, MaxNLocator

PALETTE = [mcolors.to_rgba(c) for c in (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)]
RESTART_GREY = (0.55, 0.55, 0.55, 0.6)
BEST_COLOUR = (0.84, 0.15, 0.16, 1.0)


def component_colours(n: int) -> np.ndarray:
    return np.array([PALETTE[i % len(PALETTE)] for i in range(n)])


# ---------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------

_TO_FULL = {
    "full": lambda c, k, d: np.asarray(c),
    "tied": lambda c, k, d: np.broadcast_to(c, (k, d, d)),
    "diag": lambda c, k, d: np.asarray(c)[:, :, None] * np.eye(d)[None],
    "spherical": lambda c, k, d: np.asarray(c)[:, None, None] * np.eye(d)[None],
}


def full_covariances(cov_type: str, covariances, n_components: int, n_features: int):
    """Covariances of any type as (K, D, D) matrices."""
    return _TO_FULL[cov_type](covariances, n_components, n_features)


def projection_matrix(n_features: int, axes) -> np.ndarray:
    """(D, 2) matrix for ``axes``: a pair of column indices, or a (D, 2) array."""
    if isinstance(axes, np.ndarray) and axes.ndim == 2:
        return axes
    w = np.zeros((n_features, 2))
    w[axes[0], 0] = 1.0
    w[axes[1], 1] = 1.0
    return w


def principal_axes(X: np.ndarray) -> np.ndarray:
    """(D, 2) projection onto the first two principal components (of standardised data)."""
    Z = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1.0)
    _, _, vt = np.linalg.svd(Z, full_matrices=False)
    w = vt[:2].T / np.where(X.std(0) > 0, X.std(0), 1.0)[:, None]
    return w if w.shape[1] == 2 else np.column_stack([w, np.zeros(len(w))])


def ellipse_geometry(cov2: np.ndarray, n_std: float = 2.0):
    """(width, height, angle in degrees) of the n_std ellipse of a 2x2 covariance."""
    vals, vecs = np.linalg.eigh(cov2)
    vals = np.maximum(vals, 0.0)
    angle = np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1]))
    return 2 * n_std * np.sqrt(vals[1]), 2 * n_std * np.sqrt(vals[0]), angle


# ---------------------------------------------------------------------------
# Convergence: log-likelihood against iteration, one line per restart
# ---------------------------------------------------------------------------

@dataclass
class ConvergenceArtists:
    lines: list
    ends: object  # scatter of the converged restarts' last points
    best_line: object
    ax: object = None
    #: EM maps per trace entry: 1 for plain EM (the x axis counts iterations), 3 for
    #: SQUAREM (a cycle is three maps: the x axis counts EM maps, so plain and
    #: accelerated runs share one axis).
    maps_per_step: int = 1


def _finite_xy(trace, maps_per_step: int = 1):
    y = np.asarray(trace, dtype=float)
    x = 1 + maps_per_step * np.arange(len(y))
    keep = np.isfinite(y)
    return x[keep], y[keep]


def draw_convergence(ax, traces: np.ndarray, converged: np.ndarray, best: int,
                     ylabel: str = "mean log-likelihood",
                     maps_per_step: int = 1) -> ConvergenceArtists:
    """One line per restart (grey), converged restarts' end points marked, best in red.

    ``maps_per_step``: EM maps per trace entry (3 under SQUAREM): the x axis then
    counts EM maps instead of iterations."""
    lines = [ax.plot([], [], color=RESTART_GREY, lw=1.0)[0] for _ in range(len(traces))]
    best_line = ax.plot([], [], color=BEST_COLOUR, lw=2.2, label="best restart")[0]
    ends = ax.scatter([], [], s=18, facecolor="white", edgecolor="k", zorder=6,
                      label="converged")  # (above the legend: it hid the marker)
    ax.set_xlabel("iteration" if maps_per_step == 1 else "EM maps (SQUAREM: 3 a cycle)")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))  # no 2.5, no "90105120"
    ax.set_ylabel(ylabel)
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_title("Convergence of every restart", fontsize="medium")
    ax.grid(alpha=0.3)
    artists = ConvergenceArtists(lines, ends, best_line, ax, maps_per_step)
    update_convergence(artists, traces, converged, best)
    ax.legend(loc="lower right", fontsize="small", framealpha=0.6).set_zorder(5)
    return artists


def _robust_ylim(traces):
    """y limits that show the restarts' climb, whatever their first iterations.

    A start far from any optimum (a random point as a mean, a spike) begins orders of
    magnitude below where the restarts end: -1e6 per sample before a climb from -4.6 to
    -4.2. Values more than ``FAR_BELOW`` times max(1, |best value|) below the best (that
    is, more than 10 nats per sample below it, or ten times the log-likelihood's own size)
    are left off the axis, unless a restart ended there; the rest of the climb fills it."""
    traces = np.asarray(traces, dtype=float)
    vals = traces[np.isfinite(traces)]
    if vals.size == 0:
        return None
    top = vals.max()
    finals = np.array([t[np.isfinite(t)][-1] for t in traces if np.isfinite(t).any()])
    far = top - max(FAR_BELOW * max(abs(top), 1.0), top - finals.min())
    low = vals[vals >= far].min()
    span = max(top - low, 1e-6 * max(abs(top), 1.0))
    return low - 0.08 * span, top + 0.05 * span


#: See :func:`_robust_ylim`.
FAR_BELOW = 10.0


def update_convergence(artists: ConvergenceArtists, traces, converged, best):
    traces = np.asarray(traces, dtype=float)
    ends = []
    for r, (line, trace) in enumerate(zip(artists.lines, traces)):
        x, y = _finite_xy(trace, artists.maps_per_step)
        line.set_data(x, y)
        if converged[r] and len(x):
            ends.append((x[-1], y[-1]))
    if 0 <= best < len(traces):
        artists.best_line.set_data(*_finite_xy(traces[best], artists.maps_per_step))
    else:
        artists.best_line.set_data([], [])
    artists.ends.set_offsets(np.array(ends).reshape(-1, 2))
    ax = artists.ax
    if ax is not None:
        n = max((np.isfinite(t).sum() for t in traces), default=1)
        last = 1 + artists.maps_per_step * (max(n, 2) - 1)
        ax.set_xlim(0.5, last + 0.5)
        ylim = _robust_ylim(traces)
        if ylim is not None:
            ax.set_ylim(*ylim)
    return artists


# ---------------------------------------------------------------------------
# Cluster assignments: points coloured by component, sized by uncertainty
# ---------------------------------------------------------------------------

@dataclass
class AssignmentArtists:
    points: object
    ellipses: list
    centres: object
    ax: object = None
    imputed: object = None  # the legend entry for imputed points, once drawn
    numbers: list = field(default_factory=list)  # each centre's component number


def point_style(labels, uncertainty, n_components):
    """Face colours by component and sizes growing with uncertainty (mclust style)."""
    cols = component_colours(n_components)[np.asarray(labels) % len(PALETTE)]
    u = np.clip(np.asarray(uncertainty, dtype=float), 0, 1)
    sizes = 8.0 + 90.0 * u
    return cols, sizes


def draw_assignments(ax, xy, labels, uncertainty, means2, covs2, xlabel="", ylabel="",
                     n_std: float = 2.0, imputed=None) -> AssignmentArtists:
    """Scatter of the data coloured by component, 2-sigma ellipses, centres.

    ``imputed`` (n,) bool marks points with a plotted coordinate filled in by
    imputation: they are drawn hollow (edge in the component's colour), with
    a legend entry.
    """
    k = len(means2)
    cols, sizes = point_style(labels, uncertainty, k)
    points = ax.scatter(xy[:, 0], xy[:, 1], c=cols, s=sizes, linewidths=0.3, edgecolors="k",
                        alpha=0.8)
    ellipses = []
    for colour in component_colours(k):
        e = Ellipse((0, 0), 1, 1, angle=0, fill=False, lw=2, color=colour)
        ax.add_patch(e)
        ellipses.append(e)
    centres = ax.scatter(means2[:, 0], means2[:, 1], marker="X", s=120, c=component_colours(k),
                         edgecolors="k", linewidths=1.2, zorder=4)
    # Each centre carries its component's number, the one the sentences use (from 0, as
    # the estimator's arrays: means_[0] is component 0).
    numbers = [ax.annotate(str(j), (0, 0), xytext=(7, 7), textcoords="offset points",
                           fontsize="small", fontweight="bold", color=colour, zorder=5,
                           bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none",
                                     alpha=0.75))
               for j, colour in enumerate(component_colours(k))]
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("Assignments (point size = uncertainty)")
    artists = AssignmentArtists(points, ellipses, centres, ax, numbers=numbers)
    update_assignments(artists, xy, labels, uncertainty, means2, covs2, n_std, imputed)
    pad = 0.05 * (xy.max(0) - xy.min(0) + 1e-9)
    ax.set_xlim(xy[:, 0].min() - pad[0], xy[:, 0].max() + pad[0])
    ax.set_ylim(xy[:, 1].min() - pad[1], xy[:, 1].max() + pad[1])
    return artists


def draw_fit(ax, live, estimator, restart: int = 0, columns=(0, 1), xlabel: str = "",
             ylabel: str = "") -> AssignmentArtists:
    """One restart of a Gaussian mixture's fit in progress on a matplotlib ``ax``, as the
    explorer draws it: the rows coloured by their most responsible component, sized by
    their uncertainty, each component's 2-sd ellipse and its numbered centre.

    ``live``: ``estimator.start(X)`` (advanced or not; ``live.at(t)`` for an earlier
    iteration). ``columns``: the two features plotted (indices). Returns the artists."""
    # (the estimator's own live views: a drawing function imports nothing above it)
    params = live.snapshot().params
    rows = estimator.live_view(live, "assignments", np.arange(live.n_rows or live.n_samples))
    k, d = params["means"].shape[1:]
    w = projection_matrix(d, columns)
    covs = full_covariances(estimator.covariance_type, params["covariances"][restart], k, d)
    return draw_assignments(ax, rows["X"] @ w, rows["labels"][restart],
                            rows["uncertainty"][restart], params["means"][restart] @ w,
                            np.einsum("di,kde,ej->kij", w, covs, w), xlabel, ylabel)


def density_rgba(counts, colours) -> np.ndarray:
    """(G, G, K) responsibilities summed per bin -> (G, G, 4) an image: each bin the
    responsibility-weighted blend of the components' colours, its opacity the log of
    how many rows it holds (0 where none)."""
    counts = np.asarray(counts, np.float64)
    total = counts.sum(-1)
    rgb = counts @ np.asarray(colours, np.float64)[:, :3] / np.maximum(total, 1e-300)[..., None]
    alpha = np.log1p(total) / max(np.log1p(total.max()), 1e-300)
    return np.concatenate([rgb, (0.15 + 0.85 * alpha)[..., None] * (total > 0)[..., None]], -1)


IMPUTED_FACE = (1.0, 1.0, 1.0, 0.9)


def draw_points(ax, xy, xlabel="", ylabel=""):
    """The data alone (grey), before a fit colours them."""
    xy = np.asarray(xy, dtype=float)
    points = ax.scatter(xy[:, 0], xy[:, 1], s=10, color="0.5", alpha=0.7, linewidths=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return points


def update_assignments(artists: AssignmentArtists, xy, labels, uncertainty, means2, covs2,
                       n_std: float = 2.0, imputed=None):
    k = len(artists.ellipses)
    cols, sizes = point_style(labels, uncertainty, k)
    artists.points.set_offsets(xy)
    if imputed is None or not np.any(imputed):
        artists.points.set_facecolors(cols)
        artists.points.set_edgecolors("k")
        artists.points.set_linewidths(0.3)
    else:
        imputed = np.asarray(imputed, bool)
        artists.points.set_facecolors(np.where(imputed[:, None], IMPUTED_FACE, cols))
        artists.points.set_edgecolors(np.where(imputed[:, None], cols, (0.0, 0.0, 0.0, 1.0)))
        artists.points.set_linewidths(np.where(imputed, 1.4, 0.3))
        if artists.imputed is None and artists.ax is not None:
            from matplotlib.lines import Line2D

            proxy = Line2D([], [], ls="", marker="o", mfc="w", mec="0.25", mew=1.4,
                           label="imputed (hollow)")
            artists.imputed = artists.ax.legend(handles=[proxy], loc="best", fontsize="x-small",
                                                framealpha=0.7)
    artists.points.set_sizes(sizes)
    for e, m, c in zip(artists.ellipses, means2, covs2):
        w, h, angle = ellipse_geometry(c, n_std)
        e.set_center(tuple(m))
        e.width, e.height, e.angle = w, h, angle
    artists.centres.set_offsets(means2)
    for number, m in zip(artists.numbers, means2):
        number.xy = tuple(m)
    return artists


def imputed_in_plane(missing, projection) -> np.ndarray:
    """(n,) bool: a point's plotted position depends on an imputed value.

    ``missing`` is the (n, D) mask of missing entries, ``projection`` the (D, 2)
    map to the plotted plane.
    """
    uses = np.abs(np.asarray(projection)) > 0
    return (np.asarray(missing, bool)[:, :, None] & uses[None]).any(axis=(1, 2))


# ---------------------------------------------------------------------------
# Restart comparison: ranking and small multiples of distinct solutions
# ---------------------------------------------------------------------------

@dataclass
class RankingArtists:
    bars: object
    order: np.ndarray
    ax: object = None


def solution_colours(group_of):
    """A colour per solution group (grey for failed restarts)."""
    return np.array([PALETTE[g % len(PALETTE)] if g >= 0 else RESTART_GREY for g in group_of])


SPURIOUS_HATCH = "////"


def draw_ranking(ax, objective, group_of, selected: int, ylabel="log-lik gap to best (per sample)",
                 *, order=None, spurious=None, best=None, tol_objective=None) -> RankingArtists:
    """Bars of every restart's gap to the best (objective - best objective), ranked.

    The best restart's bar is at 0 and every other bar hangs below it by its
    gap, on a symlog axis that is linear within ``tol_objective`` (restarts
    closer than that count as one optimum, shaded) and logarithmic beyond, so a
    gap of 1e-5 and one of 1 are both readable. Bars are coloured by solution;
    spurious restarts are hatched and grey-edged (a spurious one may stand above
    the best: its higher log-likelihood is the collapse's); failed ones are grey.

    Args:
        objective: (R,) final objectives; group_of: (R,) solution of each restart.
        selected: the restart to outline.
        order: restart indices best first (default: by objective, spurious last).
        spurious: (R,) bool; best: the reference restart (default ``order[0]``).
        tol_objective: the grouping tolerance (default 1e-3).
    """
    from .compare import rank_restarts

    objective = np.asarray(objective, dtype=float)
    n = len(objective)
    spurious = np.zeros(n, bool) if spurious is None else np.asarray(spurious, bool)
    group_of = np.asarray(group_of)
    if order is None:
        order = rank_restarts(objective, ~np.isfinite(objective), spurious)
    order = np.asarray(order)
    best = int(order[0]) if best is None or best < 0 else int(best)
    tol = 1e-3 if tol_objective is None or not np.isfinite(tol_objective) else float(tol_objective)
    gap = objective[order] - objective[best]
    finite = np.isfinite(gap)
    heights = np.where(finite, gap, 0.0)
    colours = solution_colours(group_of[order])
    bars = ax.bar(np.arange(n), heights, bottom=0.0, color=colours, edgecolor="k", lw=0.5)
    for bar, sp in zip(bars, spurious[order]):
        if sp:
            bar.set_hatch(SPURIOUS_HATCH)
            bar.set_edgecolor((0.35, 0.35, 0.35, 1.0))
            bar.set_alpha(0.75)
    # The axis is linear within the tolerance, but not below a billionth of the objective
    # (float noise): with tol=1e-300 the axis once spanned 300 decades of nothing.
    ref = abs(float(objective[best])) if n and np.isfinite(objective[best]) else 1.0
    ax.set_yscale("symlog", linthresh=max(tol, 1e-9 * max(1.0, ref)), linscale=0.6)
    low = min(float(heights.min()) if n else 0.0, -tol)
    high = max(float(heights.max()) if n else 0.0, 0.0)
    ax.set_ylim(low * 1.6 if low < -tol else -1.5 * tol, high * 1.6 if high > tol else 0.3 * tol)
    ax.axhspan(-tol, 0, color="0.85", zorder=0, lw=0)
    ax.axhline(0, color="k", lw=0.8)
    # A tick at each bar's end: a gap far inside the band still shows where it is.
    ax.scatter(np.arange(n)[finite], heights[finite], marker="_", s=40, c=colours[finite],
               linewidths=1.5, zorder=3)
    step = max(1, -(-n // 12))  # at most 12 tick labels
    ticks = np.arange(0, n, step)
    ax.set_xticks(ticks, [str(i) for i in order[ticks]], fontsize="x-small")
    ax.tick_params(axis="y", labelsize="x-small")
    # What the band and the hatching mean, under the axis (a legend on it covered bars).
    key = f"grey: within {tol:.2g} (same optimum)"
    if spurious.any():
        key += "; hatched: spurious"
    ax.set_xlabel(f"restart (ranked)\n{key}", fontsize="x-small", linespacing=1.3)
    ax.set_ylabel(ylabel, fontsize="small")
    ax.set_title("Restarts ranked, coloured by solution", fontsize="small")
    art = RankingArtists(bars, order, ax)
    highlight_restart(art, selected)
    return art


def highlight_restart(art: RankingArtists, selected: int):
    for idx, bar in zip(art.order, art.bars):
        bar.set_linewidth(2.5 if idx == selected else 0.5)
    return art


def draw_solution(ax, xy, labels, means2, covs2, title="", imputed=None, spurious=False):
    """A small multiple: one solution's assignments and ellipses, no axes text.

    A ``spurious`` solution is drawn on a hatched grey background."""
    art = draw_assignments(ax, xy, labels, np.zeros(len(xy)), means2, covs2, imputed=imputed)
    if art.imputed is not None:
        art.imputed.remove()  # no room for a legend in a thumbnail
    for number in art.numbers:  # (nor for the centres' numbers: the colours say it)
        number.remove()
    art.numbers = []
    art.points.set_sizes(np.full(len(xy), 4.0))
    for e in art.ellipses:
        e.set_linewidth(1.2)
    art.centres.set_sizes(np.full(len(means2), 30.0))
    ax.set_title(title, fontsize="small")
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.set_xticks([])
    ax.set_yticks([])
    if spurious:
        ax.set_facecolor((0.9, 0.9, 0.9, 1.0))
        ax.patch.set_hatch(SPURIOUS_HATCH)
        ax.patch.set_edgecolor((0.75, 0.75, 0.75, 1.0))
    return art


# ---------------------------------------------------------------------------
# Component profiles: families drawn by their parameters, not in the data's plane
# (latent classes: response probabilities per item; counts: rates per column)
# ---------------------------------------------------------------------------

@dataclass
class ProfileArtists:
    lines: list
    ax: object = None
    n_labels: int = 0
    index: object = None  # position drawn at each plotted x (-1: a break between groups)


def _profile_legend(weights) -> list:
    return [f"{i} ({100 * w:.0f}%)" for i, w in enumerate(weights)]


def _profile_x(m: int, groups):
    """x of each position, and the NaN breaks between groups: (x (M,), plotted x, index)."""
    if not groups:
        x = np.arange(m, dtype=float)
        return x, x, np.arange(m)
    x, plotted, index, at, i = [], [], [], 0.0, 0
    for g, (_, count) in enumerate(groups):
        if g:
            plotted.append(at - 0.75)  # a gap between items: the line breaks there
            index.append(-1)
        for _ in range(count):
            x.append(at)
            plotted.append(at)
            index.append(i)
            at += 1.0
            i += 1
        at += 0.5
    return np.array(x), np.array(plotted), np.array(index)


def _profile_y(values, index):
    """(K, plotted) values with NaN where the line breaks between groups."""
    values = np.asarray(values, np.float64)
    out = values[:, np.maximum(index, 0)]
    out[:, index < 0] = np.nan
    return out


def _shared_scale(labels, groups):
    """The levels every item shares, in order, when there are several items, all with the
    same levels and one of them is a word (a Likert scale); else None."""
    if not groups or len(groups) < 2:
        return None
    runs, start = [], 0
    for _, count in groups:
        runs.append(tuple(labels[start:start + count]))
        start += count
    if len(set(runs)) != 1 or not any(len(v) > 3 for v in runs[0]):
        return None
    return list(runs[0])


def draw_profile(ax, values, labels, weights, ylabel="", ylim=None, log=False, word="class",
                 linewidth=1.8, legend=True, groups=None) -> ProfileArtists:
    """One line per component over the profile's positions (items x levels, columns).

    ``values`` (K, M); ``labels`` (M,) tick labels; ``weights`` (K,) the sizes,
    named in the legend. ``ylim`` fixes the y range (probabilities: (0, 1)); ``log``
    puts the y axis on a log scale (rates spanning decades). ``groups``: (name,
    count) runs of positions drawn as separate segments, named under the axis.
    """
    values = np.asarray(values, np.float64)
    k, m = values.shape
    x, xp, index = _profile_x(m, groups)
    y = _profile_y(values, index)
    colours = component_colours(k)
    lines = [ax.plot(xp, y[j], color=colours[j], lw=linewidth, marker="o", ms=4,
                     label=name)[0]
             for j, name in enumerate(_profile_legend(weights))]
    if log:
        ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    labels = [str(v) for v in labels]
    key = _shared_scale(labels, groups)
    if key is not None:  # every item on one scale: its levels numbered, named once below
        labels = [str(1 + i) for _, count in groups for i in range(count)]
        ax.set_xlabel("levels: " + ", ".join(f"{i + 1} {v}" for i, v in enumerate(key)),
                      fontsize="x-small", labelpad=16)
    elif groups and max(map(len, labels), default=0) > 3:  # upright, they ran together
        labels = [v if len(v) <= 10 else v[:9] + "…" for v in labels]
    slanted = (m > 6 and not groups) or (groups and key is None
                                         and max(map(len, labels), default=0) > 3)
    ax.set_xticks(x, labels, rotation=(90 if groups else 60) if slanted else 0,
                  ha="right" if slanted and not groups else "center",
                  fontsize="x-small" if groups else "small")
    ax.set_xlim(x[0] - 0.5, x[-1] + 0.5)
    if groups:
        start = 0
        for name, count in groups:
            centre = x[start:start + count].mean()
            if name:
                ax.annotate(name, (centre, 0), xycoords=("data", "axes fraction"),
                            xytext=(0, -14), textcoords="offset points", ha="center",
                            va="top", fontsize="small", fontweight="bold")
            start += count
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if legend:  # beside the plot: inside, it covered the lines
        ax.legend(title=f"{word} (size)", fontsize="x-small", title_fontsize="x-small",
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
                  ncol=2 if k > 12 else 1, framealpha=0.6)
    art = ProfileArtists(lines, ax, m, index)
    if ylim is None:
        _rescale_profile(art, values, log)
    return art


def _rescale_profile(art: ProfileArtists, values, log: bool):
    finite = values[np.isfinite(values)]
    if log:
        finite = finite[finite > 0]
    if finite.size == 0:
        return
    lo, hi = float(finite.min()), float(finite.max())
    if log:
        art.ax.set_ylim(lo / 1.5, hi * 1.5)
    else:
        pad = 0.08 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.1
        art.ax.set_ylim(lo - pad, hi + pad)


def update_profile(art: ProfileArtists, values, weights, ylim=None, log=False):
    """New values and sizes for the same components and positions, in place."""
    values = np.asarray(values, np.float64)
    for line, v, name in zip(art.lines, _profile_y(values, art.index), _profile_legend(weights)):
        line.set_ydata(v)
        line.set_label(name)
    legend = art.ax.get_legend()
    if legend is not None:
        for text, name in zip(legend.get_texts(), _profile_legend(weights)):
            text.set_text(name)
    if ylim is None:
        _rescale_profile(art, values, log)


def draw_profile_solution(ax, values, weights, title="", ylim=None, log=False, spurious=False,
                          groups=None):
    """A small multiple of one solution's profile (no tick labels, no legend)."""
    art = draw_profile(ax, values, [""] * np.shape(values)[1], weights, ylim=ylim, log=log,
                       linewidth=1.2, legend=False, groups=[("", c) for _, c in groups or []])
    for line in art.lines:
        line.set_markersize(2)
    ax.set_title(title, fontsize="small")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.minorticks_off()
    if spurious:
        ax.set_facecolor((0.9, 0.9, 0.9, 1.0))
        ax.patch.set_hatch(SPURIOUS_HATCH)
        ax.patch.set_edgecolor((0.75, 0.75, 0.75, 1.0))
    return art


# ---------------------------------------------------------------------------
# Model selection: BIC against the number of components (mclust style)
# ---------------------------------------------------------------------------

MARKERS = {"full": "o", "tied": "s", "diag": "^", "spherical": "D"}
#: mclust's names of the covariance types (volume, shape, orientation: Varying, Equal,
#: Identity), shown beside ours where models are compared.
MCLUST_NAMES = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}


@dataclass
class SelectionArtists:
    lines: dict
    best: object
    ax: object = None
    band: object = None
    spurious: object = None  # the spurious models' markers (off the lines)


#: A model more than 10 above the lowest BIC has "very strong" evidence against it
#: (Kass & Raftery, 1995); the plot shades the band of models closer than that.
CLOSE_TO_BEST = 10.0


def _spurious_rows(table) -> np.ndarray:
    """(rows,) bool: models whose every restart ended on a spurious maximum."""
    if not len(table) or "spurious" not in table:
        return np.zeros(len(table), bool)
    return (table["spurious"] == True).to_numpy(bool)  # noqa: E712 (NaN for failed fits)


def criterion_gaps(table, criterion: str = "bic"):
    """The criterion minus the lowest value of a regular model (NaN for failed fits), and
    that model's row (or None). A spurious model (its every restart on a spurious maximum)
    is never the lowest, as :attr:`SelectionResult.best_key` never chooses it, unless
    every model is spurious."""
    values = table[criterion].to_numpy(float) if len(table) else np.zeros(0)
    if not np.isfinite(values).any():
        return values, None
    regular = np.where(_spurious_rows(table), np.nan, values)
    pool = regular if np.isfinite(regular).any() else values
    best = int(np.nanargmin(pool))
    return values - values[best], table.iloc[best]


def draw_selection(ax, table, criterion: str = "bic") -> SelectionArtists:
    """The criterion against the number of components, one line per covariance type.

    The y-axis is the gap to the lowest value (0 = the chosen model) on a symlog
    scale: linear up to 1, logarithmic above, so a covariance type that is far
    worse (often spherical) no longer squashes the near-best models into a band.
    """
    lines = {}
    for i, cov_type in enumerate(MARKERS):  # (one per covariance type)
        lines[cov_type] = ax.plot([], [], marker=MARKERS[cov_type], color=PALETTE[i],
                                  label=f"{cov_type} ({MCLUST_NAMES[cov_type]})")[0]
    band = ax.axhspan(0, CLOSE_TO_BEST, color="0.5", alpha=0.18, lw=0,
                      label=f"within {CLOSE_TO_BEST:g} of the best")
    best = ax.scatter([], [], s=220, facecolor="none", edgecolor="k", linewidths=2, zorder=5,
                      label="lowest")
    # Degenerate models (every restart spurious) are not points of the lines: a grey cross
    # where their value would be, named in the legend (mclust shows NA).
    spurious = ax.scatter([], [], marker="x", s=50, color="0.45", linewidths=1.5, zorder=4,
                          label="spurious (not a fit)")
    name = criterion.upper()
    ax.set_yscale("symlog", linthresh=1.0, linscale=0.5)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of components")
    ax.set_ylabel(f"{name} − lowest {name} (symlog)")
    ax.set_xlim(0.5, 6.5)
    ax.set_ylim(-0.5, 1000.0)
    ax.grid(alpha=0.3)
    art = SelectionArtists(lines, best, ax, band, spurious)
    update_selection(art, table, criterion)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return art


def update_selection(art: SelectionArtists, table, criterion: str = "bic"):
    gaps, best = criterion_gaps(table, criterion)
    name = criterion.upper()
    bad = _spurious_rows(table)
    ks_all = table["n_components"].to_numpy(float) if len(table) else np.zeros(0)
    for cov_type, line in art.lines.items():
        rows = np.flatnonzero((table["covariance_type"] == cov_type).to_numpy()) if len(
            table) else np.zeros(0, int)
        rows = rows[np.argsort(ks_all[rows], kind="stable")]
        line.set_data(ks_all[rows], np.where(bad[rows], np.nan, gaps[rows]))
    if art.spurious is not None:
        shown = bad & np.isfinite(gaps)
        art.spurious.set_offsets(np.c_[ks_all[shown], gaps[shown]].reshape(-1, 2))
    if best is None:
        art.best.set_offsets(np.zeros((0, 2)))
        art.ax.set_title(f"{name} of every model (lower is better)", fontsize="medium")
        return art
    art.best.set_offsets([[float(best["n_components"]), 0.0]])
    k = int(best["n_components"])
    art.ax.set_title(f"Lowest {name} {float(best[criterion]):.1f}: {k} "
                     f"component{'s' if k != 1 else ''}, {best['covariance_type']}",
                     fontsize="medium")
    ks = table["n_components"].to_numpy(float)
    art.ax.set_xlim(np.nanmin(ks) - 0.5, np.nanmax(ks) + 0.5)
    top = max(np.nanmax(gaps), CLOSE_TO_BEST)
    low = min(np.nanmin(gaps), 0.0)  # (a spurious model can lie below the lowest regular one)
    art.ax.set_ylim(min(-0.5, 2.0 * low), top * 2.0)
    return art


def draw_mean_intervals(ax, means2, mean_covs2, level: float = 0.95, colours=None):
    """Confidence ellipses of the component means in the plotted plane."""
    from scipy.stats import chi2

    n_std = float(np.sqrt(chi2.ppf(level, df=2)))
    colours = component_colours(len(means2)) if colours is None else colours
    patches = []
    for m, c, colour in zip(means2, mean_covs2, colours):
        w, h, angle = ellipse_geometry(c, n_std)
        e = Ellipse(tuple(m), w, h, angle=angle, fill=True, alpha=0.35, color=colour, lw=1.5,
                    ec="k", zorder=5)
        ax.add_patch(e)
        patches.append(e)
    return patches


#: Optima of a basin map with a colour of their own (the most reached); the rest share one.
BASIN_COLOURS = 8
OTHER_BASINS = "#efe3c8"  # pale sand: apart from the palette (whose grey is left out here)


def draw_basin_map(ax, bm, X=None, xlabel: str = "", ylabel: str = ""):
    """A basin map (:func:`emwidgets.atlas.basin_map`): every start of the moved mean
    coloured by the optimum it reaches (the best first in the palette, grey where a
    restart failed), the data as small dots, the fixed means as black crosses."""
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Patch

    # The BASIN_COLOURS optima with most starts get a colour each (the best among them
    # first); the rest share one, counted in one legend entry (22 entries covered half the
    # map, and colours repeated after ten).
    n_opt = len(bm.objective)
    counts = np.asarray(bm.counts)
    coloured = [0] + [g for g in np.argsort(-counts, kind="stable") if g != 0]
    coloured = coloured[:BASIN_COLOURS] if n_opt > BASIN_COLOURS else coloured
    palette = [c for c in PALETTE if c != mcolors.to_rgba("#7f7f7f")]  # (grey: "failed")
    colour_of = {int(g): palette[i] for i, g in enumerate(coloured)}
    rgba = np.zeros(bm.solution.shape + (4,))
    rgba[:] = to_rgba("0.8")
    for g in range(n_opt):
        rgba[bm.solution == g] = to_rgba(colour_of.get(g, OTHER_BASINS), 0.55)
    dx, dy = bm.xs[1] - bm.xs[0], bm.ys[1] - bm.ys[0]
    ax.imshow(rgba, origin="lower", aspect="auto", interpolation="nearest",
              extent=(bm.xs[0] - dx / 2, bm.xs[-1] + dx / 2, bm.ys[0] - dy / 2,
                      bm.ys[-1] + dy / 2))
    if X is not None:
        ax.scatter(X[:, 0], X[:, 1], s=4, color="0.25", alpha=0.6, linewidths=0)
    ax.scatter(bm.fixed[:, 0], bm.fixed[:, 1], marker="P", s=140, color="black",
               edgecolors="white", zorder=4)
    best = float(bm.objective[0])
    handles = []
    for g in sorted(colour_of, key=lambda g: -bm.objective[g]):
        gap = "best" if g == 0 else f"{bm.objective[g] - best:+.2g}"
        handles.append(Patch(color=colour_of[g], alpha=0.55,
                             label=f"ll {bm.objective[g]:.4f} ({gap}): {counts[g]} starts"))
    others = [g for g in range(n_opt) if g not in colour_of]
    if others:
        handles.append(Patch(color=OTHER_BASINS, alpha=0.55,
                             label=f"{len(others)} other optima: {counts[others].sum()} starts"))
    if (bm.solution < 0).any():
        handles.append(Patch(color="0.8", label="failed"))
    # Beside the map, not on it.
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="x-small",
              framealpha=0.85, title="optimum reached", title_fontsize="x-small")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"Where EM goes from each start of mean {bm.component}",
                 fontsize="medium")
    return ax
