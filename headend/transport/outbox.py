"""The downlink outbox (models.Downlink): sealed messages written in the
transaction of what caused them, published afterwards by the MQTT service's
dispatcher (transport.mqtt) in counter order, and marked sent. A message
whose transaction rolled back was never queued; one queued while the broker
is down waits."""
from sqlalchemy import update
from sqlmodel import select

from concentrator import protocol

from ..models import Concentrator, Downlink, now_s
from .downlink import counter_of

MAX_BATCH = 500


def queue(session, msgs):
    """Add sealed messages [(topic, payload)] to the outbox (in the caller's
    transaction)."""
    if not msgs:
        return []
    devs = {protocol.device_of_topic(topic) for topic, _ in msgs}
    ids = dict(session.exec(select(Concentrator.dev, Concentrator.id).where(Concentrator.dev.in_(sorted(devs)))).all())
    rows = [Downlink(concentrator_id=ids[protocol.device_of_topic(topic)], n=counter_of(payload), topic=topic,
                     payload=bytes(payload)) for topic, payload in msgs]
    session.add_all(rows)
    return rows


def pending(session, limit=MAX_BATCH, dev=None, below=None):
    """Unsent messages, oldest counter first per board (of board `dev`
    only, with a counter below `below`, when given)."""
    q = select(Downlink).where(Downlink.sent.is_(None))
    if dev is not None:
        q = q.where(Downlink.concentrator_id.in_(select(Concentrator.id).where(Concentrator.dev == dev)))
    if below is not None:
        q = q.where(Downlink.n < below)
    return session.exec(q.order_by(Downlink.concentrator_id, Downlink.n).limit(limit)).all()


def mark_sent(session, ids):
    if ids:
        session.execute(update(Downlink).where(Downlink.id.in_(ids)).values(sent=now_s())
                        .execution_options(synchronize_session=False))
