"""Sealing downlink messages: a per-concentrator counter that is persisted
(allocated inside the caller's transaction) and the board's CONFIRMED key
(concentrator.keyring: during a rotation the board keeps its previous key
until it sees the new one in use, so the head-end signs with the confirmed key
until the board has proved the new one).

Every body is checked with the board's own schema (concentrator.schema)
before it is sealed: the board refuses anything that fails those checks, so a
body that fails here is the head-end's bug and is never sent."""
import json
import logging

from sqlalchemy import func, text, update
from sqlmodel import select

from concentrator import protocol, schema
from concentrator.keyring import ServerKeys

from ..core import jsonfast
from ..models import Concentrator, Meter, now_s
from ..services.errors import Invalid

log = logging.getLogger("headend.downlink")

COMMAND_TTL_S = 300
_PLAIN = (protocol.ACK, protocol.CREDIT)


def next_n(session, conc_id, count=1):
    """Reserve `count` downlink counters; returns the first one."""
    row = session.execute(
        update(Concentrator)
        .where(Concentrator.id == conc_id)
        .values(last_down_n=Concentrator.last_down_n + count)
        .returning(Concentrator.last_down_n)
        .execution_options(synchronize_session=False)
    ).first()
    return int(row[0]) - count + 1


def next_n_many(session, counts):
    """next_n for several boards {board id: count} -> {board id: first
    counter}: one statement on PostgreSQL."""
    counts = {cid: k for cid, k in counts.items() if k}
    if not counts:
        return {}
    if len(counts) == 1 or session.get_bind().dialect.name != "postgresql":
        return {cid: next_n(session, cid, k) for cid, k in sorted(counts.items())}
    ids = sorted(counts)
    rows = session.execute(text(
        "UPDATE concentrator SET last_down_n = concentrator.last_down_n + v.k FROM unnest(CAST(:i AS INTEGER[]), "
        "CAST(:k AS BIGINT[])) AS v (id, k) WHERE concentrator.id = v.id RETURNING concentrator.id, "
        "concentrator.last_down_n"), {"i": ids, "k": [counts[c] for c in ids]}).all()
    return {int(cid): int(last) - counts[cid] + 1 for cid, last in rows}


def keys_of(conc):
    """The board's keys as concentrator.keyring sees them."""
    return ServerKeys(conc.key_hex, conc.key_pending or [])


def meters_of(session, conc):
    """How many meters the board has (what schema checks a meter index against)."""
    return int(session.exec(select(func.count()).select_from(Meter).where(Meter.concentrator_id == conc.id)).one())


def seal_n(conc, n, kind, ts, fields, n_meters, key=None):
    """Seal one message with counter n (already reserved with next_n);
    key: the board's signing key when the caller has it."""
    body = protocol.message(conc.dev, n, kind, int(ts if ts is not None else now_s()), **fields)
    # acks and credits (ints, every message has some): compact, with orjson; the rest as
    # the standard library writes it (ASCII). The board checks the MAC of the bytes it gets.
    raw = jsonfast.dumps(body).encode() if kind in _PLAIN else json.dumps(body).encode()
    try:
        # acks and credits are built of ints here: checked as they are; the rest as the board will parse them
        schema.check_downlink(body if kind in _PLAIN else json.loads(raw), n_meters)
    except ValueError as e:
        log.error("%s: refusing to send a downlink the board would refuse: %s (%r)", conc.dev, e, body)
        raise Invalid("%s" % e)
    return protocol.topic_down(conc.dev), seal_raw(raw, key if key is not None else keys_of(conc).signing_key())


def seal_raw(raw, key):
    """protocol.seal(body, key) of the body dumped to `raw`, byte for byte
    (tests/headend/test_ingest_batch.py compares them)."""
    return raw + b"\n" + protocol.hexlify(protocol.hmac_sha256(key, raw)).encode()


def seal(session, conc, kind, ts=None, **fields):
    """-> (topic, payload bytes) for concentrator `conc` (model instance)."""
    n_meters = meters_of(session, conc)
    return seal_n(conc, next_n(session, conc.id), kind, ts, fields, n_meters)


def seal_many(session, conc, items, ts=None, n_meters=None):
    """items: [(kind, fields dict)] for one concentrator -> sealed messages
    with consecutive counters (one database round trip; n_meters: the
    board's meter count when the caller has it)."""
    if not items:
        return []
    if n_meters is None:
        n_meters = meters_of(session, conc)
    n = next_n(session, conc.id, len(items))
    key = keys_of(conc).signing_key()
    return [seal_n(conc, n + i, kind, ts, fields, n_meters, key) for i, (kind, fields) in enumerate(items)]


def command(session, conc, op, ts=None, **fields):
    """A signed `cmd` (expires COMMAND_TTL_S after ts)."""
    ts = int(ts if ts is not None else now_s())
    return seal(session, conc, protocol.COMMAND, ts=ts, exp=ts + COMMAND_TTL_S, op=op, **fields)


def tariff_message(session, conc, versions, ts=None):
    return seal(session, conc, protocol.TARIFF, ts=ts, spec=list(versions))


def counter_of(payload):
    """The counter `n` sealed in a downlink payload."""
    body, _mac = protocol.split(payload)
    return int(json.loads(body)["n"])
