"""MLflow runs, logged inputs and the registry gate."""
