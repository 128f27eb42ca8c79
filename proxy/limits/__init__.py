"""Rate, concurrency and spend limits: per API key, per model and per provider."""
