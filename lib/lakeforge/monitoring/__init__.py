"""Drift of features and predictions, and the retrain signal."""
