"""Every public estimator, once: the columns of the property list (tests/test_models.py).

A column is a name, a factory taking the estimator's own keyword arguments (so a row can
ask for ``accelerate="squarem"`` or ``devices="all"``), its data, and how a fit is called.
A new public estimator joins this list, and every row of tests/test_models.py then runs on
it or says, in that file, why it does not apply.
"""

from typing import Callable, NamedTuple

import numpy as np
from _numerics import PLAIN_EM


class Model(NamedTuple):
    make: Callable  # (**overrides) -> an unfitted estimator
    data: Callable  # () -> (X, fit keyword arguments)
    budget: str = "max_iter"  # the name of its iteration budget (hmmlearn's n_iter for HMMs)
    #: settings under which its M-step is an exact maximiser of the objective it reports
    exact: dict = {}
    #: how closely two fits that should be equal agree (a user's family is maximised by
    #: autodiff Newton steps, which amplify rounding: about 1e-9 here)
    rtol: float = 1e-10


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(c, 0.8, (80, 2)) for c in ([0, 0], [3, 1], [0, 4])])


def _holes():
    X = _blobs()
    rng = np.random.default_rng(1)
    X[(rng.random(len(X)) < 0.15), rng.integers(0, 2)] = np.nan
    return X


def _counts():
    rng = np.random.default_rng(2)
    return rng.poisson(np.array([[1.0, 4.0], [6.0, 1.0]])[rng.choice(2, 240)]).astype(float)


def _answers(missing=False):
    rng = np.random.default_rng(3)
    a = (rng.random((240, 4)) < 0.2 + 0.6 * rng.choice(2, (240, 1))).astype(float)
    if missing:
        a[rng.random(a.shape) < 0.08] = np.nan
    return a


def _factors():
    """Five columns driven by two factors, plus noise of its own in each."""
    rng = np.random.default_rng(8)  # (no Heywood case: every noise variance well above 0)
    load = rng.normal(size=(2, 5))
    return rng.normal(size=(200, 2)) @ load + rng.normal(size=(200, 5)) * 0.8


def _factor_groups():
    """Two groups in six columns, each driven by one factor of its own, plus noise."""
    rng = np.random.default_rng(9)
    a = rng.normal(size=(150, 1)) @ rng.normal(size=(1, 6)) * 2 + rng.normal(size=(150, 6))
    b = (rng.normal(size=(150, 1)) @ rng.normal(size=(1, 6)) * 2 + 6
         + rng.normal(size=(150, 6)) * 0.7)
    return np.concatenate([a, b])


def _chain(kind):
    """One sequence of 240 steps with long runs of two states."""
    rng = np.random.default_rng(4)
    states = np.repeat(rng.choice(2, 24), 10)
    if kind == "gaussian":
        return rng.normal(np.array([[0.0, 0.0], [3.0, 1.0]])[states], 1.0)
    if kind == "poisson":
        return rng.poisson(np.array([[1.0], [6.0]])[states]).astype(float)
    return (rng.random((240, 1)) < np.array([[0.15], [0.85]])[states]).astype(float)


def gaussian_log_prob(theta, x):
    """A user's component (module level, so a fitted MixtureModel pickles)."""
    return -0.5 * ((x - theta["m"]) ** 2).sum()


def gaussian_init(rng, X):
    return {"m": X[rng.integers(len(X))]}


def _mixture_init(key, X):
    """A user's model for EM (rows=True): a diagonal Gaussian mixture of 3, by hand."""
    import jax
    import jax.numpy as jnp

    idx = jax.random.choice(key, X.shape[0], (3,), replace=False)
    return {"w": jnp.full(3, 1 / 3), "mu": X[idx], "var": jnp.ones((3, X.shape[1]))
            * X.var(0)}


def _mixture_log_joint(p, x):
    import jax.numpy as jnp

    return jnp.log(p["w"]) - 0.5 * (jnp.log(2 * jnp.pi * p["var"])
                                    + (x - p["mu"]) ** 2 / p["var"]).sum(1)


def mixture_e_step(p, x):
    import jax

    r = jax.nn.softmax(_mixture_log_joint(p, x))
    return {"n": r, "sx": r[:, None] * x, "sxx": r[:, None] * x**2}


def mixture_m_step(s, _):
    mu = s["sx"] / s["n"][:, None]
    return {"w": s["n"] / s["n"].sum(), "mu": mu, "var": s["sxx"] / s["n"][:, None] - mu**2}


def mixture_log_likelihood(p, x):
    import jax

    return jax.scipy.special.logsumexp(_mixture_log_joint(p, x))


MIXTURE_KINDS = {"w": "simplex", "mu": "free", "var": "log"}


def _kw(**extra):
    return dict(n_init=3, random_state=0, tol=1e-10, **extra)


def _em(**extra):
    """The property list's EM estimators run plain EM by scikit-learn's rule (the defaults
    before issue 28): each property is the algorithm's; SQUAREM and the gap rule are rows of
    their own, and tests/test_right_answers.py holds the defaults to their references."""
    return _kw(**PLAIN_EM, **extra)


def _models():
    from emwidgets import (
        EM,
        CategoricalHMM,
        FactorAnalysis,
        GaussianHMM,
        GaussianMixture,
        KMeans,
        LatentClassModel,
        MixtureModel,
        MultinomialMixture,
        PoissonHMM,
        PoissonMixture,
        StudentMixture,
    )

    return {
        "GaussianMixture": Model(lambda **k: GaussianMixture(3, **{**_em(max_iter=40), **k}),
                                 lambda: (_blobs(), {})),
        "GaussianMixture(missing)": Model(
            lambda **k: GaussianMixture(3, covariance_type="diag", missing="em",
                                        **{**_em(max_iter=40), **k}),
            lambda: (_holes(), {})),
        "GaussianMixture(factor)": Model(
            lambda **k: GaussianMixture(2, covariance_type="factor", n_factors=1,
                                        **{**_em(max_iter=40), **k}),
            lambda: (_factor_groups(), {})),
        "KMeans": Model(lambda **k: KMeans(3, **{**_kw(max_iter=40), **k}),
                        lambda: (_blobs(), {})),
        "GaussianHMM": Model(lambda **k: GaussianHMM(2, **{**_em(n_iter=40), **k}),
                             lambda: (_chain("gaussian"), {}), "n_iter",
                             # hmmlearn's min_covar floor (default 1e-3) is added after the
                             # M-step and is no prior in the objective: with it, the float64
                             # log-likelihood falls by up to 1.5e-8 per sample near the end.
                             {"min_covar": 1e-9}),
        "PoissonMixture": Model(
            lambda **k: PoissonMixture(2, **{**_em(max_iter=40, init_params="random"), **k}),
            lambda: (_counts(), {})),
        "MultinomialMixture": Model(
            lambda **k: MultinomialMixture(2, **{**_em(max_iter=40, init_params="random"),
                                                 **k}),
            lambda: (_counts() + 1, {})),
        "LatentClassModel": Model(lambda **k: LatentClassModel(2, **{**_em(max_iter=40), **k}),
                                  lambda: (_answers(), {})),
        "PoissonHMM": Model(lambda **k: PoissonHMM(2, **{**_em(n_iter=40), **k}),
                            lambda: (_chain("poisson"), {}), "n_iter"),
        "CategoricalHMM": Model(lambda **k: CategoricalHMM(2, **{**_em(n_iter=40), **k}),
                                lambda: (_chain("categorical"), {}), "n_iter"),
        "StudentMixture": Model(
            lambda **k: StudentMixture(3, covariance_type="diag", **{**_em(max_iter=40), **k}),
            lambda: (_blobs(), {})),
        "MixtureModel": Model(
            lambda **k: MixtureModel(gaussian_log_prob, gaussian_init, n_components=3,
                                     **{**_em(max_iter=25), **k}),
            lambda: (_blobs()[::2], {}), rtol=1e-7),
        "FactorAnalysis": Model(
            lambda **k: FactorAnalysis(2, **{**_em(max_iter=40), **k}),
            lambda: (_factors(), {})),
        "EM": Model(
            lambda **k: EM(_mixture_init, mixture_e_step, mixture_m_step,
                           mixture_log_likelihood, rows=True, kinds=MIXTURE_KINDS,
                           **{**_em(max_iter=40), **k}),
            lambda: (_blobs(), {})),
    }


MODELS = _models()
