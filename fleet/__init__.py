"""Domain model, store, API, CLI and orchestration of the bessfleet platform."""
