"""The envelope of an uplink: topic, signature under the device key (or the
new key during a rekey), replay counter."""
from sqlalchemy import update

from concentrator import protocol

from ..core.events import EV_REKEYED
from ..models import Concentrator, Event


class Rejected(Exception):
    def __init__(self, reason, detail="", conc_id=None):
        Exception.__init__(self, reason, detail)
        self.reason = reason
        self.detail = detail
        self.conc_id = conc_id


def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def parse(topic, payload):
    """-> (dev, payload bytes) or raise Rejected."""
    try:
        dev = protocol.device_of_topic(topic)
    except Exception:
        dev = None
    if isinstance(topic, (bytes, bytearray)):
        topic = bytes(topic).decode("utf-8", "replace")
    if dev is None or not isinstance(topic, str) or not topic.endswith("/up"):
        raise Rejected("malformed", "bad topic")
    if isinstance(payload, str):
        payload = payload.encode()
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise Rejected("malformed", "payload type")
    payload = bytes(payload)
    try:
        protocol.split(payload)
    except protocol.ProtocolError as e:
        raise Rejected(e.args[0] if e.args else "malformed")
    return dev, payload


def verify(s, conc, payload, dev, now):
    """Verify under the device key; during a rekey also under the new key,
    and switch to it for good on the first valid uplink that uses it.
    -> body, or raise protocol.ProtocolError."""
    try:
        return protocol.verify(payload, protocol.key_from_hex(conc.key_hex), dev=dev,
                               last_n=conc.last_up_n, now=now)
    except protocol.ProtocolError as e:
        if not conc.key_next_hex or (e.args and e.args[0] != "bad_mac"):
            raise
    body = protocol.verify(payload, protocol.key_from_hex(conc.key_next_hex), dev=dev,
                           last_n=conc.last_up_n, now=now)
    s.add(Event(concentrator_id=conc.id, code=EV_REKEYED, ts=now,
                message="rekey complete: %s signs with the new key (nonce %s, asked at %s)"
                % (conc.dev, conc.rekey_nonce, conc.rekey_started)))
    conc.key_hex = conc.key_next_hex
    conc.key_next_hex = None
    conc.rekey_nonce = None
    conc.rekey_started = None
    return body


def claim_counter(s, conc, n):
    """Move the device's uplink counter to n, or raise Rejected("replay")."""
    res = s.execute(update(Concentrator)
                    .where(Concentrator.id == conc.id, Concentrator.last_up_n < n)
                    .values(last_up_n=n))
    if res.rowcount != 1:
        raise Rejected("replay", "n=%d" % n, conc.id)


def board_rejects_our_key(body):
    """True when a records batch carries the board's "downlink rejected:
    bad_mac" event (it does not have the key we sign with)."""
    recs = body.get("recs")
    bad_mac = protocol.REJECT_REASONS.index("bad_mac")
    for r in recs if isinstance(recs, list) else ():
        if (isinstance(r, list) and len(r) == 5 and r[1] == protocol.KIND_EVENT and isinstance(r[4], list)
                and len(r[4]) > 1 and r[4][0] == protocol.EV_MSG_REJECTED and r[4][1] == bad_mac):
            return True
    return False
