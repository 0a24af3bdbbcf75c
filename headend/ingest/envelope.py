"""The envelope of an uplink: topic, signature under the device key (or the
new key during a rekey), replay counter."""
import collections

from concentrator import protocol

from ..core import jsonfast
from ..core.events import EV_REKEYED
from ..models import Event
from ..transport import downlink


UP_WINDOW = 63                     # counters below the highest one still accepted once (fits a BIGINT)
WINDOW_MASK = (1 << UP_WINDOW) - 1


class Rejected(Exception):
    def __init__(self, reason, detail="", conc_id=None):
        Exception.__init__(self, reason, detail)
        self.reason = reason
        self.detail = detail
        self.conc_id = conc_id


def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


class Uplink(collections.namedtuple("Uplink", "payload raw body")):
    """A message as parse() found it: the payload bytes, its body's bytes
    and the body (decoded once; not verified until check())."""


def parse(topic, payload):
    """-> (dev, Uplink) or raise Rejected: what a batch prepares before it
    checks each message (the body's type says what the message needs)."""
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
        raw, body = protocol.split(payload, jsonfast.loads)
    except protocol.ProtocolError as e:
        raise Rejected(e.args[0] if e.args else "malformed")
    return dev, Uplink(payload, raw, body)


def check(conc, up, dev, now):
    """The signature of a parse()d Uplink, under the board's confirmed key
    or a pending one (concentrator.keyring.ServerKeys), without writing
    anything: -> (body, keys, confirmed_now); raises protocol.ProtocolError.
    confirm_key(s, conc, keys, now) applies a completed rotation (the new
    key confirmed, the pending ones dropped: event 107); a batch checks
    every message before it changes the board's row."""
    keys = downlink.keys_of(conc)
    # counters inside the anti-replay window are let through here; claim_counter decides
    body, confirmed_now = keys.verify(up.payload, dev, last_n=max(-1, conc.last_up_n - UP_WINDOW - 1), now=now,
                                      parts=(up.raw, up.body))
    return body, keys, confirmed_now


def confirm_key(s, conc, keys, now):
    pending = [p[0] for p in (conc.key_pending or [])]
    nonce = next((p[0] for p in conc.key_pending if p[1] == keys.confirmed), "?")
    s.add(Event(concentrator_id=conc.id, code=EV_REKEYED, ts=now,
                message=("rekey complete: %s signs with the new key (nonce %s; rekeys pending were %s)"
                         % (conc.dev, nonce, ", ".join(pending)))[:1000]))
    conc.key_hex = keys.confirmed
    conc.key_pending = keys.entries          # late siblings the board may still take
    conc.rekey_started = conc.rekey_sent_at = None


def check_counter(conc, n):
    """Raise Rejected("replay") when claim_counter would (writes nothing)."""
    last, window = conc.last_up_n, conc.up_window or 0
    if n > last:
        return
    bit = last - 1 - n
    if bit < 0 or bit >= UP_WINDOW or window >> bit & 1:
        raise Rejected("replay", "n=%d" % n, conc.id)


def claim_counter(s, conc, n):
    """Accept counter n once, or raise Rejected("replay"): IPsec's
    anti-replay window. Above last_up_n the window slides; a counter among
    the UP_WINDOW below it that was not seen yet is accepted too (a board's
    messages handled by several workers may finish in any order: its status
    after its newer records), and marked. The caller holds the board's row
    (SELECT ... FOR UPDATE; BEGIN IMMEDIATE on SQLite): the new values are
    written with the board's row at commit."""
    check_counter(conc, n)
    last, window = conc.last_up_n, conc.up_window or 0
    if n > last:
        shift = n - last
        window = ((window << shift) | (1 << (shift - 1))) & WINDOW_MASK if shift <= UP_WINDOW else 0
        conc.last_up_n, conc.up_window = n, window
        return
    conc.up_window = window | (1 << (last - 1 - n))
