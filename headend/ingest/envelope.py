"""The envelope of an uplink: topic, signature under the device key (or the
new key during a rekey), replay counter."""
from sqlalchemy import update

from concentrator import protocol

from ..core.events import EV_REKEYED
from ..models import Concentrator, Event
from ..transport import downlink


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
    """Verify under the board's confirmed key or a pending one
    (concentrator.keyring.ServerKeys). -> (body, signed_with_confirmed);
    raises protocol.ProtocolError. An uplink under a pending key completes
    the rotation: the key is confirmed, the pending ones dropped (event 107)."""
    keys = downlink.keys_of(conc)
    pending = [p[0] for p in keys.entries]
    body, confirmed_now = keys.verify(payload, dev, last_n=conc.last_up_n, now=now)
    if confirmed_now:
        nonce = next((p[0] for p in conc.key_pending if p[1] == keys.confirmed), "?")
        s.add(Event(concentrator_id=conc.id, code=EV_REKEYED, ts=now,
                    message=("rekey complete: %s signs with the new key (nonce %s; rekeys pending were %s)"
                             % (conc.dev, nonce, ", ".join(pending)))[:1000]))
        conc.key_hex = keys.confirmed
        conc.key_pending = keys.entries          # late siblings the board may still take
        conc.rekey_started = conc.rekey_sent_at = None
    return body, not confirmed_now


def claim_counter(s, conc, n):
    """Move the device's uplink counter to n, or raise Rejected("replay")."""
    res = s.execute(update(Concentrator)
                    .where(Concentrator.id == conc.id, Concentrator.last_up_n < n)
                    .values(last_up_n=n))
    if res.rowcount != 1:
        raise Rejected("replay", "n=%d" % n, conc.id)
