"""The contract between a model and the EM driver (:mod:`em`), and what a restart's
status can be. Both the driver and its iteration policies (:mod:`accel`) read these; the
driver's loop is in :mod:`em`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

# Status codes of a restart, recorded per restart.
RUNNING, CONVERGED, MAX_ITER, DEGENERATE, NONFINITE, PADDING = 0, 1, 2, 3, 4, 5
STATUS_NAMES = {
    RUNNING: "running",
    CONVERGED: "converged",
    MAX_ITER: "max_iter reached",
    DEGENERATE: "degenerate",
    NONFINITE: "non-finite objective",
    PADDING: "padding",  # a slot that only fills the program's restart bucket; never reported
}


class Data(NamedTuple):
    """Samples padded to a multiple of the block size.

    Attributes:
        x: (n_padded, n_features) samples; padding rows are zeros. (Missing-data
            EM passes a pytree of per-row arrays instead, see :mod:`missing`.)
        w: (n_padded,) weight of each row: 1 for a sample, 0 for padding.
    """

    x: Any
    w: Any


class Health(NamedTuple):
    """What a step says about the parameters it produced.

    Attributes:
        ok: scalar bool, the new parameters are usable.
        component: scalar int, the first offending component (-1 if none).
    """

    ok: Any
    component: Any


class Family(NamedTuple):
    """A model family as pure functions of one restart (the driver vmaps them).

    Attributes:
        prepare: (params, hyper) -> ctx, what every block of the E-step shares
            (natural parameters, conditionals...); it holds ``params`` too.
        e_step: (ctx, x_block, w_block) -> stats, a pytree of **sums over the
            block's rows** (weighted by ``w_block``) of sufficient statistics,
            log-likelihood and counts included. The driver adds them up.
        m_step: (ctx, stats, hyper) -> (new_params, :class:`Health`).
        objective: (ctx, stats, hyper) -> scalar: the mean per-sample objective
            (log-likelihood, log posterior, negative inertia) of the parameters
            ``ctx`` was prepared from.
        converged: (prev_objective, objective, params, new_params, tol) -> bool.
        name: a stable name ("gmm/full"): the driver's traced program is kept on
            disk under it (:mod:`emwidgets.core.programs`). Unnamed families are
            traced per process.
        m_step_reads_data: the M-step has no closed form in summed statistics
            and needs more passes over the data (a user's family maximised by
            autodiff): it is called as ``m_step(ctx, stats, hyper, reduce)``,
            where ``reduce(fn, *operands)`` sums ``fn(x_block, w_block, *operands)``
            over the blocks (the driver's reduction, like the E-step's; arrays
            ``fn`` needs come as operands, see :func:`block_sum`).
        vector_form: an :class:`accel.VectorForm`, the parameters' unconstrained
            form, which accelerated EM extrapolates in (None: not accelerable).
    """

    prepare: Callable
    e_step: Callable
    m_step: Callable
    objective: Callable
    converged: Callable
    name: str = ""
    m_step_reads_data: bool = False
    vector_form: Any = None


class Component(NamedTuple):
    """What a mixture and a hidden Markov model over the same components share: the
    unit a model is made of (Gaussian, Poisson, multinomial, categorical).
    :func:`markov.markov_family` makes an HMM of any component.

    Attributes:
        log_joint: (params, hyper, x) -> (B, K) log w_k + log p(x | k); with
            weights 1 it is the emission log-density of state k. Components not
            ``hyper.active`` (a masked program's) get -inf.
        m_step: (ctx, MixtureStats, hyper) -> (params, Health) from the
            responsibility-weighted sums of ``features(x)`` (ctx = (params, hyper)).
        name: stable name of the component (the programs on disk are kept under it).
        kinds: ((field, kind), ...) of the unconstrained form (core/accel.py); a tuple,
            not a dict, so that a Component stays hashable (the HMM family is cached by it).
        complete: ``(params, hyper) -> params`` after an extrapolation, or None.
        features: x (B, D) -> (B, P) the sufficient statistics of one row, its count
            last; None for [x, 1] (the linear components).
    """

    log_joint: Callable
    m_step: Callable
    name: str
    kinds: Optional[tuple] = None
    complete: Optional[Callable] = None
    features: Optional[Callable] = None
