"""scikit-learn's own estimator checks, run on our estimators."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from emwidgets import GaussianMixture, KMeans

EXPECTED_FAILURES = {
    # Our NotFittedError is a ValueError and AttributeError like scikit-learn's,
    # but not its subclass: emwidgets does not import scikit-learn at run time.
    "check_estimators_unfitted": "NotFittedError is emwidgets' own (no sklearn import at run time)",
}


@pytest.mark.slow
@parametrize_with_checks(
    [GaussianMixture(n_init=2), KMeans(n_clusters=3)],
    expected_failed_checks=lambda est: EXPECTED_FAILURES,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
