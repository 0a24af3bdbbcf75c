"""MQTT ingest, independent of any MQTT client library.

    Ingest(session_factory).handle(topic, payload) -> [(topic, payload), ...]
    Ingest(session_factory).handle_batch([(topic, payload), ...]) -> [[(topic, payload), ...], ...]

returns the downlink messages to publish (already sealed), built inside the
same transaction as the data and returned only after it committed: an `ack`
therefore always means "stored". handle() never raises: a bad message is
logged, counted (Ingest.stats) and dropped.

    envelope.py     topic, signature, replay, key rotation
    status.py       hello and status messages
    records.py      journal records: readings and events, the ack (set-based)
    billing_run.py  charging new readings through concentrator.tariff, in memory
    store.py        the set-wise reads and writes (a handful of statements per batch)
    service.py      Ingest: handle() one message in one transaction;
                    handle_batch() several queued messages (several boards) in
                    one transaction, each checked before it writes, the batch
                    handled again one by one when it fails; outbox=True
                    (several workers on a shared subscription): the replies are
                    queued in the outbox in that transaction, published in
                    counter order
"""
from .service import Ingest  # noqa: F401
