"""The downlink outbox (models.Downlink): sealed messages written in the
transaction of what caused them, published afterwards by the MQTT service's
dispatcher (transport.mqtt) in counter order, and marked sent. A message
whose transaction rolled back was never queued; one queued while the broker
is down waits."""
from sqlalchemy import func, insert, update
from sqlmodel import select

from concentrator import protocol

from ..core import bulk
from ..models import Concentrator, Downlink, now_s
from .downlink import counter_of

MAX_BATCH = 500
DISPATCH_LOCK = 7281        # pg advisory lock class: (DISPATCH_LOCK, board id) = "dispatching this board"


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


def queue_own(session, conc_id, dev, msgs):
    """queue() for an ingest's replies: those to its own board in one INSERT
    (no look-up), any other board's through queue()."""
    own = [(t, p) for t, p in msgs if protocol.device_of_topic(t) == dev]
    if own:
        now = now_s()
        session.execute(insert(Downlink.__table__), [
            {"concentrator_id": conc_id, "n": counter_of(p), "topic": t, "payload": bytes(p), "created": now,
             "sent": None} for t, p in own])
    if len(own) < len(msgs):
        queue(session, [(t, p) for t, p in msgs if protocol.device_of_topic(t) != dev])


def queue_replies(session, replies):
    """queue_own for several messages' replies [(board id, dev, msgs)], in
    order: those to their own boards in one INSERT."""
    own, other = [], []
    now = now_s()
    for conc_id, dev, msgs in replies:
        for t, p in msgs:
            if protocol.device_of_topic(t) == dev:
                own.append({"concentrator_id": conc_id, "n": counter_of(p), "topic": t, "payload": bytes(p),
                            "created": now, "sent": None})
            else:
                other.append((t, p))
    if own and session.get_bind().dialect.name == "postgresql":
        cols = ("concentrator_id", "n", "topic", "payload", "created")
        bulk.copy_rows(session, "downlink", cols, [tuple(r[c] for c in cols) for r in own])
    elif own:
        session.execute(insert(Downlink.__table__), own)
    if other:
        queue(session, other)


def pending(session, limit=MAX_BATCH, dev=None, below=None, exclusive=False):
    """Unsent messages, oldest counter first per board (of board `dev`
    only, with a counter below `below`, when given).

    exclusive (PostgreSQL, several dispatchers): only boards whose dispatch
    lock this transaction takes (pg_try_advisory_xact_lock): a board's
    messages leave from one dispatcher at a time, in counter order, and
    another takes over at once when one dies (the lock goes with its
    connection). Counters are allocated under the board's row lock, so a
    board's messages commit in counter order: what one dispatcher sees is a
    prefix of what the next one will."""
    d = Downlink.__table__.c
    # plain rows (id, topic, payload): the dispatcher reads hundreds at a time
    q = select(d.id, d.concentrator_id, d.n, d.topic, d.payload).where(d.sent.is_(None))
    if exclusive and session.get_bind().dialect.name == "postgresql":
        q = q.where(func.pg_try_advisory_xact_lock(DISPATCH_LOCK, d.concentrator_id))
    if dev is not None:
        q = q.where(d.concentrator_id.in_(select(Concentrator.id).where(Concentrator.dev == dev)))
    if below is not None:
        q = q.where(d.n < below)
    return session.execute(q.order_by(d.concentrator_id, d.n).limit(limit)).all()


def mark_sent(session, ids):
    if ids:
        session.execute(update(Downlink).where(Downlink.id.in_(ids)).values(sent=now_s())
                        .execution_options(synchronize_session=False))
