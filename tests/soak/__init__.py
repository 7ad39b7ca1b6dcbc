"""The soak test: the API, workers and PostgreSQL under random lifecycle operations and faults."""
