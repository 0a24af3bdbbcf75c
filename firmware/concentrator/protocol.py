# Wire format shared by the concentrator and the head-end (docs/protocol.md).
#
# A message is the UTF-8 JSON body, a newline, and the lowercase hex
# HMAC-SHA256 of the body bytes under the device's own key:
#     {"v":1,"dev":"c1","n":42,"t":"rd","ts":1790000000,...}\n<64 hex>
# The receiver verifies the MAC over the exact bytes received, then checks
# the device id and that the counter `n` is higher than the last one seen.
try:
    import ujson as json
except ImportError:
    import json
try:
    import uhashlib as hashlib
except ImportError:
    import hashlib
try:
    import ubinascii as binascii
except ImportError:
    import binascii
try:
    from hmac import compare_digest as _c_same, digest as _c_hmac   # CPython: the head-end, the simulator
except ImportError:
    _c_same = _c_hmac = None    # MicroPython has no hmac module: hmac_sha256_portable, _same below

VERSION = 1
MAX_MESSAGE = 8192  # bytes; anything longer is rejected unread

# Uplink types (concentrator -> head-end)
HELLO = "hello"      # after every (re)connect
RECORDS = "rd"       # journal records batch
STATUS = "st"        # periodic health
# Downlink types (head-end -> concentrator)
ACK = "ack"          # highest contiguous committed sequence + server time
CREDIT = "credit"    # balance of one meter at a reference energy
TARIFF = "tariff"    # tariff versions to use for local credit
COMMAND = "cmd"      # relay override, time, policy, rekey, ota offer
OTA_CHUNK = "ota"    # one chunk of a firmware bundle (docs/protocol.md, OTA)
# Uplink, OTA
OTA_STATUS = "otast" # the board's OTA state: chunks it needs, staged, health

ENVELOPE = ("v", "dev", "n", "t", "ts")   # fields every body has

# Bounds of the numbers a body may carry (a signed body is still checked)
MAX_N = (1 << 53) - 1      # message counters
MAX_JSEQ = 0xFFFFFFFF      # journal sequence numbers (records, acks)
MAX_MU = 10 ** 13          # money (1e9 currency units)
MAX_WH = 10 ** 13          # cumulative energy (1e10 kWh)

# Record kinds inside RECORDS
KIND_READING = 0   # values: [energy_wh, power_w, flags, band1_wh.. (optional)]
KIND_EVENT = 1     # values: [code, arg...]

# Reading flags (bit set)
FLAG_MISSING = 1      # interval not read (meter offline): a gap, not zero
FLAG_IMPLAUSIBLE = 2  # delta negative or beyond the meter's maximum
FLAG_RELAY_OPEN = 4   # relay was open at the reading

# Event codes (values[0]); values[1] is the reason or detail
EV_BOOT = 1
EV_RELAY_OPEN = 2
EV_RELAY_CLOSE = 3
EV_RELAY_MISMATCH = 4   # read-back differs from the command
EV_METER_OFFLINE = 5
EV_METER_ONLINE = 6
EV_JOURNAL_THINNED = 7
EV_MSG_REJECTED = 8     # downlink rejected (reason index in REJECT_REASONS)
EV_IMPLAUSIBLE = 9
EV_LOW_CREDIT = 10
EV_OVERRIDE = 11        # technician/staff override (detail: reason*10 + closed)
EV_TIME_SET = 12        # clock corrected from the head-end (detail: seconds)
EV_REKEY = 13           # device key rotated (detail: 0 from the current key,
                        # 1 from the previous one: the head-end had not seen the last)
EV_STATE_REJECTED = 14  # part of the state file / tariff file refused at boot
                        # (detail: index in STATE_PARTS); defaults used instead
EV_OTA = 15             # firmware update (detail: OTA_* code below)
# from meters that report them (constants for drivers; the head-end raises
# a theft alert for each: headend/services/alerts.THEFT_EVENT_CODES)
EV_TAMPER = 16          # the meter's tamper / magnetic-field detection
EV_COVER_OPEN = 17      # the meter's terminal cover was opened

# EV_OTA details
OTA_STAGED = 1       # bundle complete and verified, switch at the next boot
OTA_SWITCHED = 2     # booted the new version, health check running
OTA_CONFIRMED = 3    # health check passed: the new version stays
OTA_ROLLED_BACK = 4  # health check failed (or no confirmation): previous version back
OTA_REFUSED = 5      # bundle failed its signature / hash check, dropped
OTA_ABANDONED = 6    # offer replaced or cancelled before it was complete

STATE_PARTS = ("file", "boots", "n_res", "n_down", "jseq", "key", "key_prev", "policy",
               "credit", "relay", "rec", "mpol", "tariff", "models")

# Relay reasons (values[1] of EV_RELAY_OPEN / EV_RELAY_CLOSE)
R_CREDIT = 1       # credit exhausted / restored
R_OVERRIDE = 2     # staff override from the head-end
R_TECHNICIAN = 3   # console relay() command
R_LOAD_LIMIT = 4
R_BOOT = 5         # state restored at boot

REJECT_REASONS = ("malformed", "too_long", "bad_mac", "wrong_device",
                  "replay", "expired", "unknown_device", "bad_fields")


class ProtocolError(Exception):
    # args[0] is a short reason: malformed, too_long, bad_mac, wrong_device,
    # replay, expired, unknown_device
    pass


def topic_up(dev):
    return "wk/" + dev + "/up"


def topic_down(dev):
    return "wk/" + dev + "/down"


def device_of_topic(topic):
    # "wk/<dev>/up" -> "<dev>" or None
    if isinstance(topic, (bytes, bytearray)):
        topic = topic.decode()
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != "wk" or not parts[1]:
        return None
    return parts[1]


def hmac_sha256_portable(key, msg):
    # RFC 2104 over hashlib.sha256 (MicroPython has no hmac module).
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + b"\x00" * (64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


if _c_hmac is not None:
    def hmac_sha256(key, msg):
        # the same MAC with CPython's C hmac (the head-end checks every
        # uplink with it: ~10x faster than the portable loops)
        return _c_hmac(key, msg, "sha256")
else:
    hmac_sha256 = hmac_sha256_portable


def _hex(b):
    return binascii.hexlify(b).decode()


def _same_portable(a, b):
    # constant-time comparison of two equal-length byte strings
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


_same = _c_same if _c_same is not None else _same_portable    # hmac.compare_digest on CPython


def key_from_hex(text):
    return binascii.unhexlify(text)


def hexlify(b):
    return _hex(b)


def seal(body, key):
    # body: dict with at least v, dev, n, t. Returns the bytes to publish.
    raw = json.dumps(body).encode()
    return raw + b"\n" + _hex(hmac_sha256(key, raw)).encode()


def split(data, loads=None):
    # -> (raw body bytes, body dict). Does NOT verify: use it only to find the
    # device id and its key, then call verify(). loads: the JSON decoder
    # (json.loads when None; the head-end passes a faster one).
    if not isinstance(data, (bytes, bytearray)):
        raise ProtocolError("malformed")
    if len(data) > MAX_MESSAGE:
        raise ProtocolError("too_long")
    cut = bytes(data).rfind(b"\n")
    if cut <= 0 or len(data) - cut - 1 != 64:
        raise ProtocolError("malformed")
    raw = bytes(data[:cut])
    try:
        body = (loads or json.loads)(raw)
    except Exception:
        raise ProtocolError("malformed")
    if not isinstance(body, dict):
        raise ProtocolError("malformed")
    for k in ("dev", "t"):
        if not isinstance(body.get(k), str):
            raise ProtocolError("malformed")
    n = body.get("n")
    if type(n) is not int or n < 0 or n > MAX_N:
        raise ProtocolError("malformed")
    return raw, body


def verify(data, key, dev=None, last_n=-1, now=None, parts=None):
    # Full check of one received message. Returns the body dict.
    # dev: the device the message must be about; last_n: highest counter
    # already accepted from this sender; now: receiver's Unix time, to
    # reject commands past their "exp"; parts: split(data), when the caller
    # has it already (the body is not decoded twice).
    raw, body = parts or split(data)
    try:
        mac = binascii.unhexlify(bytes(data[len(raw) + 1:]))
    except Exception:
        raise ProtocolError("malformed")
    if not _same(mac, hmac_sha256(key, raw)):
        raise ProtocolError("bad_mac")
    if dev is not None and body["dev"] != dev:
        raise ProtocolError("wrong_device")
    if body["n"] <= last_n:
        raise ProtocolError("replay")
    exp = body.get("exp")
    if type(exp) is int and now and now > exp:
        raise ProtocolError("expired")
    return body


# ---- the bodies every board receives all the time (the rest: schema.py) ------
def _num(body, k, lo, hi, need=True):
    x = body.get(k)
    if x is None and not need:
        return None
    if type(x) is not int or x < lo or x > hi:
        raise ValueError("%s.%s: must be an integer between %d and %d" % (body.get("t"), k, lo, hi))
    return x


def check_ack(body):
    _num(body, "seq", 0, MAX_JSEQ)
    _num(body, "ts", 0, 0xFFFFFFFF)
    return body


def check_credit(body, n_meters):
    _num(body, "m", 0, n_meters - 1)
    _num(body, "bal", -MAX_MU, MAX_MU)
    _num(body, "e", 0, MAX_WH)
    _num(body, "c", -MAX_MU, MAX_MU, False)
    _num(body, "top", 0, 0x7FFFFFFF, False)
    return body


def message(dev, n, kind, ts, **fields):
    body = {"v": VERSION, "dev": dev, "n": n, "t": kind, "ts": ts}
    for k in fields:
        body[k] = fields[k]
    return body


def check_record(rec):
    # A record in a RECORDS message: [seq, kind, meter, ts, [ints...]].
    # Returns it as a tuple or raises ProtocolError("malformed").
    if not isinstance(rec, list) or len(rec) != 5:
        raise ProtocolError("malformed")
    seq, kind, meter, ts, values = rec
    # type() is int: an int and not a bool (JSON gives no other int types)
    for x in (seq, kind, meter, ts):
        if type(x) is not int or x < 0:
            raise ProtocolError("malformed")
    if seq == 0 or kind not in (KIND_READING, KIND_EVENT) or meter > 255:
        raise ProtocolError("malformed")
    if type(values) is not list or not values or len(values) > 16:
        raise ProtocolError("malformed")
    for x in values:
        if type(x) is not int:
            raise ProtocolError("malformed")
    if kind == KIND_READING and (len(values) < 3 or values[0] < 0):
        raise ProtocolError("malformed")
    return (seq, kind, meter, ts, values)
