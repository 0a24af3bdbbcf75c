"""The REST API under /api: thin routes over the services, typed
dependencies (deps.py), domain errors as HTTP answers (errors.py)."""
