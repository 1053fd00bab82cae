"""One module per job; the only place that wires storage to the pure packages."""
