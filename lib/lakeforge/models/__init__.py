"""The estimator catalogue and how candidates become Spark ML estimators."""
