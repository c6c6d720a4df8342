"""Plain numerical references shared by the tests."""

import numpy as np


def finite_difference_hessian(f, v, h=1e-4) -> np.ndarray:
    """Central differences of a scalar function at v (h=1e-4: rounding and truncation errors
    both near 1e-6 for the log-likelihoods of the tests)."""
    v = np.asarray(v, np.float64)
    n = len(v)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            e_i, e_j = np.eye(n)[i] * h, np.eye(n)[j] * h
            out[i, j] = out[j, i] = (f(v + e_i + e_j) - f(v + e_i - e_j) - f(v - e_i + e_j)
                                     + f(v - e_i - e_j)) / (4 * h * h)
    return out


#: Plain EM stopped by scikit-learn's rule (the change of the objective below tol), the
#: estimators' defaults before issue 28: what a test comparing iteration by iteration with a
#: reference EM (scikit-learn, hmmlearn, NumPy EM written in a test) passes.
PLAIN_EM = {"accelerate": None, "convergence": "change"}
