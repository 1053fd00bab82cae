"""Raw files → typed rows with lineage, and the rows that cannot be parsed."""
