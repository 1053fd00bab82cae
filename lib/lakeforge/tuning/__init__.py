"""Cross-validated model search over the cluster."""
