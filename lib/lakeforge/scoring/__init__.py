"""Batch scoring with lineage columns."""
