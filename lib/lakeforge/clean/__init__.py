"""Bronze rows → clean rows: types, strings, spellings, derived columns, dedupe."""
