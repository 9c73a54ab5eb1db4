"""HTTP API (FastAPI) and dashboard for the operations center, planners and the planning commission."""
