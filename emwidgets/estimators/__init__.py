"""The scikit-learn-style estimators, one module each, over the core."""
