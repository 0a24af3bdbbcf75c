"""Wattkeeper head-end: FastAPI + SQLModel server, MQTT ingest, ledger, dashboard."""
