"""The operator API and dashboard (FastAPI)."""
