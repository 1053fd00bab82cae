"""Data-quality rules from config: row-level checks and table-level validation."""
