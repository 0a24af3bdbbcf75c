"""The downlink outbox (models.Downlink): sealed messages written in the
transaction of what caused them, published afterwards by the MQTT service's
dispatcher (transport.mqtt) in counter order, and marked sent. A message
whose transaction rolled back was never queued; one queued while the broker
is down waits."""
from sqlalchemy import func, insert, text, update
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


def pending(session, limit=MAX_BATCH, exclusive=False, partition=None):
    """Unsent messages, oldest counter first per board (of the boards whose
    id is i modulo n, partition (i, n): a partitioned worker's,
    partition.py; a worker's replies first send what pending_below finds).

    exclusive (PostgreSQL, several dispatchers): only boards whose dispatch
    lock this transaction takes (pg_try_advisory_xact_lock): a board's
    messages leave from one dispatcher at a time, in counter order, and
    another takes over at once when one dies (the lock goes with its
    connection). Counters are allocated under the board's row lock, so a
    board's messages commit in counter order: what a snapshot sees of a
    board is a prefix of what a later one will.

    The locks are taken first, in statements of their own, and the messages
    read afterwards, in a new statement: its snapshot is taken with the locks
    held, so it sees what the previous holder marked sent (it committed
    before letting go) and every message of the board committed so far. With
    the lock in the reading statement's WHERE (as it was) the snapshot came
    before the lock: a dispatcher that got a board's lock while the other
    was letting go of it sent again what the other had just sent, and, as
    the lock was tried row by row, one that got it part way through a
    board's rows sent that board's later messages without the earlier ones
    the other had not seen yet; those left afterwards, below a counter the
    board already had, and the board dropped them as replays."""
    d = Downlink.__table__.c

    def unsent(q):
        q = q.where(d.sent.is_(None))
        if partition is not None:
            q = q.where(d.concentrator_id % partition[1] == partition[0])
        return q

    # plain rows (id, topic, payload): the dispatcher reads hundreds at a time
    q = unsent(select(d.id, d.concentrator_id, d.n, d.topic, d.payload))
    if exclusive and session.get_bind().dialect.name == "postgresql":
        # the boards with unsent messages (the first few thousand: a batch's worth and more)
        locked = lock_boards(session, session.execute(
            unsent(select(d.concentrator_id, func.count())).group_by(d.concentrator_id)
            .order_by(d.concentrator_id).limit(4 * limit)).all(), limit)
        if not locked:
            return []
        q = q.where(d.concentrator_id.in_(locked))
    return session.execute(q.order_by(d.concentrator_id, d.n).limit(limit)).all()


def lowest_counters(msgs):
    """{dev: the lowest counter among its messages} of sealed downlinks
    [(topic, payload)]."""
    out = {}
    for topic, payload in msgs:
        dev, n = protocol.device_of_topic(topic), counter_of(payload)
        if n < out.get(dev, n + 1):
            out[dev] = n
    return out


def pending_below(session, below, partition=None):
    """The unsent messages of the boards in `below` {dev: counter} whose
    counter is below that board's, in counter order per board (one
    statement for a batch's boards; of partition (i, n) only, when given)."""
    if not below:
        return []
    d, c = Downlink.__table__.c, Concentrator.__table__.c
    q = (select(d.id, d.concentrator_id, d.n, d.topic, d.payload, c.dev)
         .join(Concentrator.__table__, c.id == d.concentrator_id)
         .where(d.sent.is_(None), bulk.any_of(session, c.dev, sorted(below), "VARCHAR")))
    if partition is not None:
        q = q.where(d.concentrator_id % partition[1] == partition[0])
    return [r for r in session.execute(q.order_by(d.concentrator_id, d.n)).all() if r.n < below[r.dev]]


def lock_boards(session, counts, limit, rounds=8):
    """Take the dispatch locks of boards [(board id, unsent messages)], in
    that order, until they hold about `limit` messages (boards another
    dispatcher holds are skipped: a few statements at most) -> the ids."""
    locked, want, i = [], limit, 0
    for _round in range(rounds):
        chunk = []
        while i < len(counts) and (not chunk or want > 0):
            chunk.append(int(counts[i][0]))
            want -= int(counts[i][1])
            i += 1
        if not chunk:
            break
        got = set(session.execute(text(
            "SELECT b FROM unnest(CAST(:b AS INTEGER[])) AS b WHERE pg_try_advisory_xact_lock(:k, b)"),
            {"b": chunk, "k": DISPATCH_LOCK}).scalars().all())
        locked += [b for b in chunk if b in got]
        want += sum(int(k) for b, k in counts[i - len(chunk):i] if b not in got)
        if want <= 0 or i >= len(counts):
            break
    return locked


def mark_sent(session, ids):
    if ids:
        session.execute(update(Downlink).where(Downlink.id.in_(ids)).values(sent=now_s())
                        .execution_options(synchronize_session=False))
