"""FamilyExplorer: the explorer for every mixture family beyond the Gaussian.

Latent class models and Poisson mixtures are drawn by their parameters: a
**class-profile plot** (response probabilities per item and answer, rates per
column, one line per class) takes the place of the ellipses, and the restart
gallery shows every distinct solution's profile. Student t mixtures are drawn in
the data's plane like Gaussians (scale matrices as ellipses). The controls,
live convergence, Stop, stale results and error sentences are the Gaussian
explorer's (:class:`~emwidgets.widgets.session.FitSession`)::

    FamilyExplorer(datasets.load_carcinoma(), LatentClassModel(3, n_init=16))
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import traitlets

from .. import plotting
from .._table import listed
from ..estimators.mixture import FamilyMixture, check_sample_weight
from ..estimators.sequence import FamilyHMM
from .explorer import EMExplorer
from .session import MAX_DISPLAY_POINTS, FitSession, Snapshot, family_solutions
from .views import AssignmentPlot, ConvergencePlot, RestartGallery, _View

#: The settings a family's estimator may take, each a control of the explorer.
_SETTINGS = ("n_components", "covariance_type", "init_params", "tol", "max_iter", "n_init",
             "random_state", "reg_covar", "accelerate")


def _template(estimator) -> FamilyMixture:
    """The estimator whose parameters the explorer starts from (a class or an instance)."""
    est = estimator() if isinstance(estimator, type) else estimator
    if isinstance(est, FamilyHMM):
        raise ValueError(f"{type(est).__name__} is a hidden Markov model: FamilyExplorer "
                         "explores mixtures (use HMMExplorer for Gaussian HMMs).")
    if not isinstance(est, FamilyMixture):
        raise ValueError(
            f"FamilyExplorer explores LatentClassModel, PoissonMixture, StudentMixture or "
            f"MixtureModel, not {type(est).__name__}; use EMExplorer for GaussianMixture.")
    return type(est)(**est.get_params())


class FamilySession(FitSession):
    """A FitSession whose model is any family's mixture estimator (see the module).

    The data are categorical answers for a latent class model (every column an
    item, strings, categories or integers; a missing answer is left out of the
    likelihood) and numeric columns otherwise (rows with a missing or infinite
    value are dropped, and said so). ``sample_weight`` (one per row of the data)
    follows the rows kept.
    """

    supports_start = False  # (a chosen start: Gaussian mixtures' means only)

    init_params = traitlets.Unicode("random")
    supports_missing = False
    supports_standardize = False  # (GaussianMixture's option)
    parameter_distance_words = "of the spread of the components' parameters"

    def __init__(self, data, estimator, columns=None, sample_weight=None, **settings):
        self.template = _template(estimator)
        self.init_options = tuple(self.template.init_methods)
        self._sample_weight_all = (None if sample_weight is None
                                   else np.asarray(sample_weight, np.float64).reshape(-1))
        params = self.template.get_params()
        start = {name: params[name] for name in _SETTINGS
                 if params.get(name) is not None}
        if "accelerate" in start:  # the estimator's "squarem": the session's checkbox
            start["accelerate"] = start["accelerate"] == "squarem"
        start.setdefault("init_params", self.init_options[0])
        super().__init__(data, columns=columns, **{**start, **settings})

    @property
    def categorical(self) -> bool:
        return self.template.data_kind == "categories"

    @property
    def word(self) -> str:
        return "class" if self.categorical else "component"

    # -- data -------------------------------------------------------------------
    def set_data(self, data, columns=None, sample_weight=None):
        """As :meth:`FitSession.set_data`; a latent class model takes every column as an
        item (categories, strings, integers) unless ``columns`` picks some."""
        if sample_weight is not None:
            self._sample_weight_all = np.asarray(sample_weight, np.float64).reshape(-1)
        if self.categorical:
            self._table = _as_frame(data)
            self._use_items(columns)
        else:
            super().set_data(data, columns)

    def set_columns(self, columns):
        if self.categorical:
            self._use_items(columns)
        else:
            super().set_columns(columns)

    def _weights_for(self, kept: np.ndarray):
        w = self._sample_weight_all
        if w is None:
            return None
        return check_sample_weight(w, len(kept))[kept]

    def _use_columns(self, table, columns):
        if columns is None and self.template.data_kind == "counts":
            columns = table.numeric  # small integer counts are not codes here
        super()._use_columns(table, columns)
        self._weights = self._weights_for(np.isfinite(table.values(self.columns)).all(axis=1))
        if not self.template.plane_view:  # drawn by profile: no scatter to speak of
            self.data_note = self.data_note.replace(
                "; one feature: the scatter plots it against itself", "")
        self._note_weights()

    def _note_weights(self):
        if self._weights is not None:
            self.data_note = (self.data_note[:-1] + "; rows weighted by sample_weight (total "
                              f"{self._weights.sum():,.4g}).")

    def _use_items(self, columns):
        frame = self._table
        names = [str(c) for c in frame.columns]
        chosen = names if columns is None else [str(c) for c in columns]
        unknown = [c for c in chosen if c not in names]
        if unknown:
            raise ValueError(f"Column {unknown[0]!r} is not a column of the data; choose among "
                             f"{', '.join(map(repr, names))}.")
        if not chosen:
            raise ValueError("No item to fit: choose at least one column.")
        self.available_columns = names
        self.columns = chosen
        items = frame.iloc[:, [names.index(c) for c in chosen]]
        answered = items.notna().any(axis=1).to_numpy()
        self.X = items[answered].reset_index(drop=True)
        self._weights = self._weights_for(answered)
        self.n_dropped = int((~answered).sum())
        self.has_missing = False
        n = len(self.X)
        rng = np.random.default_rng(0)
        self._display = (np.sort(rng.choice(n, MAX_DISPLAY_POINTS, replace=False))
                         if n > MAX_DISPLAY_POINTS else np.arange(n))
        levels = [self.X[c].dropna().nunique() for c in self.X.columns]
        note = (f"Data: {n:,} rows × {len(chosen)} item{'s' if len(chosen) != 1 else ''} "
                f"({', '.join(f'{c}: {k} levels' for c, k in zip(chosen, levels))})")
        unanswered = int(self.X.isna().to_numpy().sum())
        if unanswered:
            note += (f"; {unanswered} missing answer{'s' if unanswered != 1 else ''} left out of "
                     "the likelihood (EM over the observed answers)")
        if self.n_dropped:
            plural = "s" if self.n_dropped != 1 else ""
            note += f"; {self.n_dropped} row{plural} with no answer dropped"
        words = [c for c in chosen if not isinstance(self.X[c].dtype, pd.CategoricalDtype)
                 and self.X[c].dropna().map(lambda v: isinstance(v, str)).any()]
        if words:  # a scale's answers as text: sorted, not in the scale's order
            note += (f"; the levels of {listed(words, most=3)} are in alphabetical order: for a "
                     "scale's own order pass ordered categories, e.g. "
                     "df.astype(pd.CategoricalDtype([...], ordered=True))")
        self.data_note = note + "."
        self._note_weights()
        self.data_version += 1
        self.x_axis = self.y_axis = chosen[0]

    @property
    def axis_choices(self) -> list:
        return list(self.columns) if self.categorical else super().axis_choices

    # -- running ----------------------------------------------------------------
    def settings(self) -> dict:
        own = self.template.get_params()
        out = {name: getattr(self, name) for name in _SETTINGS if name in own}
        if "accelerate" in out:
            out["accelerate"] = "squarem" if out["accelerate"] else None
        return out

    def _start_fit(self, est):
        return est.start(self.X, sample_weight=self._weights)

    def _make_estimator(self):
        est = type(self.template)(**{**self.template.get_params(), **self.settings()})
        k_program = self.program_components()
        if k_program > self.n_components:
            est.compile_for(k_program)  # the extra components are masked
        return est

    def program_components(self) -> int:
        """The slider's maximum on small data for the families whose components can be
        masked (counts, count vectors, latent classes: the components slider then compiles
        nothing), else exactly ``n_components`` (see :meth:`FitSession.program_components`)."""
        if not self.template.masks_components:
            return self.n_components
        k_max = max(self.MAX_COMPONENTS, self.n_components)
        width = (sum(int(self.X[c].nunique()) for c in self.X.columns) if self.categorical
                 else self.X.shape[1])
        work = FamilyMixture.program_work(len(self.X), width, k_max, self.n_init)
        return k_max if work <= self.MASK_COMPONENTS_WORK else self.n_components

    def _alternatives(self) -> list:
        # A family starts on the host (any initialisation, one program) and masks its
        # components where it can; a t mixture's covariance types are exact-size programs
        # of real work, left to the user's choice. Exact-size families: the neighbours.
        more, fewer = self._neighbouring_restarts()
        toggle = ([("plain EM" if self.accelerate else "SQUAREM",
                    {"accelerate": None if self.accelerate else "squarem"})]
                  if "accelerate" in self.template.get_params() else [])
        return self._neighbouring_components() + more + toggle + fewer

    def _describe_run(self) -> str:
        k = self.n_components
        plural = "classes" if self.word == "class" else "components"
        text = f"{k} {self.word if k == 1 else plural}"
        if "covariance_type" in self.settings():
            text += f", {self.covariance_type} scale matrices"
        return f"{text}, {self.n_init} restarts"

    def _snapshot(self, live, est, elapsed, done) -> Snapshot:
        restarts = live.snapshot()
        proba = est.live_view(live, "probabilities", self._display)
        labels, unc = proba.argmax(-1), 1.0 - proba.max(-1)
        if isinstance(self.X, pd.DataFrame):
            X = np.zeros((len(self._display), 0))  # answers are drawn through the profile
        else:
            X = np.asarray(self.X, np.float64)[self._display]
        return Snapshot(restarts, getattr(est, "covariance_type", ""), X, labels, unc,
                        family_solutions(restarts, labels), live.iteration, done, elapsed,
                        profile=est.profile_of(restarts.params, self.columns))


def _as_frame(data) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        if data.shape[0] == 0 or data.shape[1] == 0:
            raise ValueError("The data have no row or no column; pass a table of answers.")
        return data
    X = np.asarray(data, dtype=object)
    if X.ndim != 2:
        raise ValueError(f"Pass the answers as a table (rows, items), not an array of {X.ndim} "
                         f"dimension{'s' if X.ndim != 1 else ''}.")
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])


class ProfilePlot(_View):
    """The shown restart's components by their parameters: one line per class over the
    items' answers (or the columns' rates), colours aligned with the best restart,
    class sizes in the legend. Updated in place while a run is live."""

    figsize = (4.2, 3.0)  # beside the convergence plot: the two span the gallery's width
    locked_render = True

    def _update(self, snap: Snapshot):
        r = self.shown_restart(snap)
        pr = snap.profile
        if r < 0 or pr is None:
            return
        perm = snap.solutions.permutations[r]
        values = np.asarray(pr.values[r])[perm]
        weights = np.asarray(snap.restarts.params["weights"][r])[perm]
        key = (values.shape, tuple(pr.labels), pr.log, pr.ylim)
        if getattr(self, "artists", None) is None or self._key != key:
            self.figure.clear()
            self.artists = plotting.draw_profile(self.figure.add_subplot(), values, pr.labels,
                                                 weights,
                                                 pr.ylabel, pr.ylim, pr.log, pr.word,
                                                 groups=pr.groups)
            self._key = key
        else:
            plotting.update_profile(self.artists, values, weights, pr.ylim, pr.log)
        who = f"best restart ({r})" if r == snap.best else f"restart {r}"
        self.artists.ax.set_title(f"{pr.title}: {who}", fontsize="medium")

    def message(self, text: str):
        self.__dict__.pop("artists", None)
        super().message(text)


class FamilyExplorer(EMExplorer):
    """Fit any family's mixture interactively: latent classes, counts, t, your own.

    Args:
        data: a DataFrame. For a :class:`~emwidgets.LatentClassModel` every column
            is an item (strings, categories, integers; missing answers allowed);
            for the others the numeric columns are the features (every numeric
            column for a :class:`~emwidgets.PoissonMixture`).
        estimator: the model to explore, a class or an instance whose parameters
            the controls start from (``LatentClassModel(3, n_init=32)``).
        columns: the items or features to start with.
        sample_weight: one weight per row of ``data`` (a frequency column).
        **settings: initial control values (``n_components``, ``init_params``,
            ``tol``, ``max_iter``, ``n_init``, ``random_state``; ``covariance_type``
            and ``reg_covar`` for a StudentMixture).

    ``explorer.session.estimator`` is the fitted model of the shown run.
    """

    step_words = ("parameters", "rows")
    offers_intervals = False  # (standard errors: the explorer draws them for Gaussians)
    offers_pairs = False  # (a family is drawn by its parameters, not ellipses)

    session_class = FamilySession

    def __init__(self, data, estimator, columns=None, sample_weight=None, **settings):
        self._session_args = dict(estimator=estimator, sample_weight=sample_weight)
        super().__init__(data, columns=columns, **settings)
        s = self.session
        own = s.settings()
        for name in ("covariance_type", "reg_covar", "init_params", "accelerate"):
            if name not in own:
                self.controls[name].layout.display = "none"
        self.controls["missing"].layout.display = "none"
        if self.by_profile:
            for name in ("x_axis", "y_axis"):
                self.controls[name].layout.display = "none"
        if s.word == "class":
            self.controls["n_components"].description = "classes"
        self.add_class("emwidgets-family-explorer")

    def _new_session(self, data, columns, settings):
        return self.session_class(data, columns=columns, **self._session_args, **settings)

    @property
    def by_profile(self) -> bool:
        """The family is drawn by its parameters (a profile), not in the data's plane."""
        return not self.session.template.plane_view

    def _make_views(self, projection, labels) -> dict:
        self.convergence = ConvergencePlot()
        self.gallery = RestartGallery(projection=projection, on_select=self._select)
        if self.by_profile:
            self.profile = ProfilePlot()
            self.main_view_name = "profile"
            return {"convergence": self.convergence, "profile": self.profile,
                    "gallery": self.gallery}
        self.assignments = AssignmentPlot(projection=projection, axis_labels=labels)
        return {"convergence": self.convergence, "assignments": self.assignments,
                "gallery": self.gallery}

    def _preview(self, force: bool = False):
        s = self.session
        if not self.by_profile:
            return super()._preview(force)
        if s.snapshot is not None and not force:
            return
        what = ("the response probabilities of\nevery class" if s.word == "class"
                else "every component's parameters")
        self.profile.message(f"{len(s.X):,} rows: press Run,\nand {what} appear here")
        self.convergence.message("Press Run: the log-likelihood of\nevery restart appears here")
        self.gallery.message("The restarts, grouped into the distinct solutions they reach,\n"
                             "appear here after a run")
