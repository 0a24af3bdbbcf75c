"""Domain services: take a Session, raise domain errors (services.errors),
never import FastAPI. Functions add and flush; the caller commits (a route,
the CLI, a worker), so one request is one transaction."""
