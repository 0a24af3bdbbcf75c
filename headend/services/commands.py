"""Commands to boards that people give: relay overrides, relay policy, key
rotation. Each is sealed, queued in the outbox, recorded as an event naming
the user and in the audit log."""
import json
import secrets
import time

from sqlmodel import select

from concentrator import schema

from ..core import permissions as P
from ..core.events import EV_COMMAND
from ..models import Event, Meter
from ..transport import downlink, outbox
from . import audit
from .devices import get_concentrator, get_meter
from .errors import Invalid, NotFound

MAX_POLICY_JSON = 1500


def _fmt_time(t):
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _event(session, actor, conc, message, meter=None, now=None):
    ev = Event(concentrator_id=conc.id, meter_index=meter.index if meter else None,
               meter_id=meter.id if meter else None, code=EV_COMMAND, ts=now or int(time.time()),
               user_id=actor.user_id, message=(message + " (by %s)" % actor.username)[:500])
    session.add(ev)
    session.flush()
    return ev


def override_relay(session, actor, meter_pk, state, until=None, now=None):
    """Staff override of a meter's relay: `closed` keeps the power on, `open`
    forces it off, until `until`; `auto` ends the override."""
    m, conc = get_meter(session, actor, meter_pk)
    actor.check(P.RELAYS_OVERRIDE, conc.property_id)
    now = int(now or time.time())
    if state not in ("open", "closed", "auto"):
        raise Invalid("state is open, closed or auto")
    if state != "auto":
        if until is None:
            raise Invalid("an override to %r needs 'until' (Unix seconds)" % state)
        if until <= now:
            raise Invalid("until %d is not in the future" % until)
    until = until if until is not None else 0
    ev = queue_relay(session, actor, conc, m, state, until, now)
    audit.record(session, actor, "relay.override", "meter", m.id, property_id=conc.property_id,
                 after={"meter_id": m.meter_id, "state": state, "until": until})
    return {"event_id": ev.id, "message": ev.message, "queued": 1,
            "cmd": {"op": "relay", "m": m.index, "state": state, "until": until,
                    "exp": now + downlink.COMMAND_TTL_S}}


def queue_relay(session, actor, conc, m, state, until, now, why=""):
    """Queue a relay `cmd` for meter `m` and record the event naming the
    user (the caller audits the action it is part of). -> the Event."""
    msg = downlink.command(session, conc, "relay", ts=now, m=m.index, state=state, until=until)
    outbox.queue(session, [msg])
    text = ("relay override ended on %s" % m.meter_id if state == "auto" else
            "relay override on %s: %s until %s" % (m.meter_id, state, _fmt_time(until)))
    return _event(session, actor, conc, text + (" (%s)" % why if why else ""), meter=m, now=now)


def rekey(session, actor, dev, force=False, now=None):
    """Rotate the device key without sending it (docs/protocol.md, "Key
    rotation"): a `cmd` {op: "rekey", nonce}, sealed with the confirmed key;
    the new key is HMAC-SHA256(confirmed key, "wk-rekey:" + nonce) and stays
    pending until the board's first uplink under it. Another rekey before
    that only adds a pending key (so a board that took either one is
    recognised): no rotation can lock the board out. `force` is accepted
    for older clients and changes nothing."""
    conc = get_concentrator(session, actor, dev, lock=True)
    actor.check(P.KEYS_ROTATE, conc.property_id)
    now = int(now or time.time())
    nonce = secrets.token_hex(16)
    keys = downlink.keys_of(conc)
    before = [p[0] for p in keys.pending]
    fields = keys.start(nonce)
    msg = downlink.command(session, conc, ts=now, **fields)
    outbox.queue(session, [msg])
    conc.key_pending = keys.entries
    conc.rekey_started = conc.rekey_started or now
    conc.rekey_sent_at = now
    session.add(conc)
    ev = _event(session, actor, conc, "rekey of %s started (nonce %s)" % (dev, nonce), now=now)
    audit.record(session, actor, "key.rotate", "concentrator", conc.id, property_id=conc.property_id,
                 before={"pending_nonces": before} if before else None,
                 after={"nonce": nonce, "pending_nonces": [p[0] for p in keys.pending]})
    return {"event_id": ev.id, "nonce": nonce, "queued": 1}


def set_policy(session, actor, dev, policy, m=None, now=None):
    """Change the relay policy (docs/relay-policy.md) of meter index `m`, or
    of every meter of the board."""
    conc = get_concentrator(session, actor, dev)
    actor.check(P.POLICY_WRITE, conc.property_id)
    meter = None
    if m is not None:
        meter = session.exec(select(Meter).where(Meter.concentrator_id == conc.id, Meter.index == m)).first()
        if meter is None:
            raise NotFound("%s has no meter index %d" % (dev, m))
    try:
        policy = schema.check_policy(policy)   # the board's own check: refused here, not on the board
    except ValueError as e:
        raise Invalid(str(e))
    text = json.dumps(policy, sort_keys=True)
    if len(text) > MAX_POLICY_JSON:
        raise Invalid("policy too large (%d bytes of JSON, at most %d)" % (len(text), MAX_POLICY_JSON))
    now = int(now or time.time())
    fields = {"policy": policy}
    if m is not None:
        fields["m"] = m
    outbox.queue(session, [downlink.command(session, conc, "policy", ts=now, **fields)])
    ev = _event(session, actor, conc, "relay policy of %s: %s" % (
        meter.meter_id if meter else dev + " (every meter)", text), meter=meter, now=now)
    audit.record(session, actor, "policy.change", "concentrator", conc.id, property_id=conc.property_id,
                 after={"meter_index": m, "policy": policy})
    return {"event_id": ev.id, "message": ev.message, "queued": 1}
