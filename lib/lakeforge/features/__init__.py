"""Feature stages built from config, and custom Spark ML stages."""
