"""Sealing downlink messages: device key + a per-concentrator counter that is
persisted (allocated inside the caller's transaction). While a rekey is in
progress (Concentrator.key_next_hex) downlinks use the new key; the rekey
command itself is sealed with the old one (old_key=True)."""
from sqlalchemy import update

from concentrator import protocol

from ..models import Concentrator, now_s

COMMAND_TTL_S = 300


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


def down_key_hex(conc, old_key=False):
    if conc.key_next_hex and not old_key:
        return conc.key_next_hex
    return conc.key_hex


def _seal_n(conc, n, kind, ts, fields, old_key=False):
    body = protocol.message(conc.dev, n, kind, int(ts if ts is not None else now_s()), **fields)
    return protocol.topic_down(conc.dev), protocol.seal(body, protocol.key_from_hex(down_key_hex(conc, old_key)))


def seal(session, conc, kind, ts=None, old_key=False, **fields):
    """-> (topic, payload bytes) for concentrator `conc` (model instance)."""
    return _seal_n(conc, next_n(session, conc.id), kind, ts, fields, old_key)


def seal_many(session, conc, items, ts=None):
    """items: [(kind, fields dict)] for one concentrator -> sealed messages
    with consecutive counters (one database round trip)."""
    if not items:
        return []
    n = next_n(session, conc.id, len(items))
    return [_seal_n(conc, n + i, kind, ts, fields) for i, (kind, fields) in enumerate(items)]


def command(session, conc, op, ts=None, old_key=False, **fields):
    """A signed `cmd` (expires COMMAND_TTL_S after ts)."""
    ts = int(ts if ts is not None else now_s())
    return seal(session, conc, protocol.COMMAND, ts=ts, old_key=old_key, exp=ts + COMMAND_TTL_S, op=op, **fields)


def rekey_command(session, conc, ts=None):
    """The pending rekey command again (sealed with the old key)."""
    return command(session, conc, "rekey", ts=ts, old_key=True, nonce=conc.rekey_nonce)


def tariff_message(session, conc, versions, ts=None):
    return seal(session, conc, protocol.TARIFF, ts=ts, spec=list(versions))


def counter_of(payload):
    """The counter `n` sealed in a downlink payload."""
    body, _mac = protocol.split(payload)
    import json
    return int(json.loads(body)["n"])
