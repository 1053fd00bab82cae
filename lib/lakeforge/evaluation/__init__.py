"""Metrics on the full test split, and plots."""
