"""Deterministic train/validation/test splits and cross-validation folds."""
