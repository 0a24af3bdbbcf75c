"""MQTT ingest, independent of any MQTT client library.

    Ingest(session_factory).handle(topic, payload) -> [(topic, payload), ...]

returns the downlink messages to publish (already sealed), built inside the
same transaction as the data and returned only after it committed: an `ack`
therefore always means "stored". handle() never raises: a bad message is
logged, counted (Ingest.stats) and dropped.

    envelope.py     topic, signature, replay, key rotation
    status.py       hello and status messages
    records.py      journal records: readings and events, the ack
    billing_run.py  charging new readings through concentrator.tariff
    service.py      Ingest: one transaction per message
"""
from .service import Ingest  # noqa: F401
