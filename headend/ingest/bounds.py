"""The range of every field a board's signed uplink may carry, defined once
(docs/protocol.md, "Ranges"). A board's key proves who sent a message, not
that its numbers are plausible: a record outside these ranges is refused
(stored as an event that keeps its sequence number, like a malformed one),
an out-of-range field of a hello or status message is ignored and reported,
and no integer outside them reaches the database (so none above 2^63).

    rec = check_record(r, now)       # the record as a tuple, or OutOfRange / ProtocolError
    problems = clean_body(body, now) # drops out-of-range hello/status fields; [(field, value)]
"""
from concentrator import protocol

INT32_MAX = 2 ** 31 - 1
MAX_SEQ = protocol.MAX_JSEQ      # journal sequence numbers: what an ack can carry back to the board
MAX_N = protocol.MAX_N          # message counters: exact in JSON and in BIGINT
TS_MIN = 1577836800              # 2020-01-01 UTC: a clock before it was never set (boards send 0 then)
TS_MAX = 4102444800              # 2100-01-01 UTC
MAX_AHEAD_S = 400 * 86400        # a board's clock may run ahead of the head-end's by at most this
MAX_ENERGY_WH = 10 ** 12         # a cumulative register: 1 TWh (1e9 kWh)
MAX_POWER_W = 10 ** 8            # 100 MW, either direction
MAX_FLAGS = 255
MAX_CHARGED_MU = 10 ** 15        # the board's cumulative charge of one meter: 1e11 currency units
MAX_CREDIT_MU = 10 ** 15         # a board's local credit estimate, either sign
MAX_METER_INDEX = 255
BOARD_EVENT_CODES = (1, 99)      # the board's event codes; 100 and up are the head-end's own
READING_VALUES = (3, 9)          # [energy, power, flags] .. + [charged_mu, five band energies]
EVENT_VALUES = (1, 16)

# reading values by position: (name, low, high)
READING_FIELDS = (("energy_wh", 0, MAX_ENERGY_WH), ("power_w", -MAX_POWER_W, MAX_POWER_W),
                  ("flags", 0, MAX_FLAGS), ("charged_mu", 0, MAX_CHARGED_MU),
                  ("sharp_wh", 0, MAX_ENERGY_WH), ("peak_wh", 0, MAX_ENERGY_WH), ("flat_wh", 0, MAX_ENERGY_WH),
                  ("valley_wh", 0, MAX_ENERGY_WH), ("deep_valley_wh", 0, MAX_ENERGY_WH))

# hello / status fields: name -> (low, high)
BODY_FIELDS = {"n": (0, MAX_N), "boot": (0, INT32_MAX), "last": (0, MAX_SEQ), "acked": (0, MAX_SEQ),
               "after": (0, MAX_SEQ), "pending": (0, INT32_MAX), "up": (0, MAX_SEQ)}
STATUS_ROW = (("index", 0, MAX_METER_INDEX), ("online", 0, 1), ("relay", 0, 1),
              ("local_credit_mu", -MAX_CREDIT_MU, MAX_CREDIT_MU))
BUS_ROW_MAX = INT32_MAX          # RS485 error counters


class OutOfRange(protocol.ProtocolError):
    """args: ("out_of_range", field name, value, low, high)."""

    def __init__(self, name, value, low, high):
        protocol.ProtocolError.__init__(self, "out_of_range", name, value, low, high)
        self.name, self.value, self.low, self.high = name, value, low, high

    def __str__(self):
        return "%s = %s is outside %s..%s" % (self.name, _short(self.value), self.low, self.high)


def _short(v):
    s = str(v)
    return s if len(s) <= 24 else s[:10] + "...(%d digits)" % len(s)


def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _within(name, v, low, high):
    if not low <= v <= high:
        raise OutOfRange(name, v, low, high)


def ts_range(now):
    return TS_MIN, min(TS_MAX, int(now) + MAX_AHEAD_S)


def storable_seq(x):
    """A sequence number the database can hold (to store a refused record's event under)."""
    return is_int(x) and 1 <= x <= MAX_SEQ


def check_record(rec, now, ts_bounds=None):
    """protocol.check_record, then the ranges: -> (seq, kind, meter, ts, values),
    or raise ProtocolError("malformed") / OutOfRange. ts_bounds: ts_range(now),
    when the caller checks many records at once."""
    seq, kind, meter, ts, values = protocol.check_record(rec)
    # _within, inline where every record passes (a function call each costs more than the test)
    if not 1 <= seq <= MAX_SEQ:
        raise OutOfRange("seq", seq, 1, MAX_SEQ)
    if not 0 <= meter <= MAX_METER_INDEX:
        raise OutOfRange("meter index", meter, 0, MAX_METER_INDEX)
    if ts != 0:
        lo, hi = ts_bounds or ts_range(now)
        if not lo <= ts <= hi:
            raise OutOfRange("ts", ts, lo, hi)
    if kind == protocol.KIND_READING:
        if not READING_VALUES[0] <= len(values) <= READING_VALUES[1]:
            raise OutOfRange("reading values", len(values), *READING_VALUES)
        for (name, low, high), v in zip(READING_FIELDS, values):
            if not low <= v <= high:        # _within, inline: nine per reading
                raise OutOfRange(name, v, low, high)
    else:
        _within("event values", len(values), *EVENT_VALUES)
        _within("event code", values[0], *BOARD_EVENT_CODES)
        for v in values[1:]:
            _within("event detail", v, -INT32_MAX - 1, INT32_MAX)
    return seq, kind, meter, ts, values


def clean_body(body, now):
    """Check the fields of a verified body other than its records. An
    out-of-range counter `n` raises OutOfRange (the message is refused);
    any other out-of-range field is removed from `body` (a status row's
    value becomes None, a bus row is dropped). -> [(field, value)] removed."""
    problems = []
    n = body.get("n")
    if is_int(n):
        _within("n", n, *BODY_FIELDS["n"])
    for name, (low, high) in BODY_FIELDS.items():
        v = body.get(name)
        if name != "n" and is_int(v) and not low <= v <= high:
            problems.append((name, v))
            del body[name]
    ts = body.get("ts")
    if is_int(ts) and ts != 0 and not ts_range(now)[0] <= ts <= ts_range(now)[1]:
        problems.append(("ts", ts))
        body["ts"] = 0
    rows = body.get("meters")
    if body.get("t") == protocol.STATUS and isinstance(rows, list):
        for row in rows:
            if not isinstance(row, list):
                continue
            for i, (name, low, high) in enumerate(STATUS_ROW[:len(row)]):
                if is_int(row[i]) and not low <= row[i] <= high:
                    problems.append(("meters." + name, row[i]))
                    row[i] = None
    bus = body.get("bus")
    if isinstance(bus, list):
        keep = []
        for row in bus:
            if isinstance(row, list) and row and all(is_int(x) for x in row) and \
                    (not 0 <= row[0] <= MAX_METER_INDEX or not all(0 <= x <= BUS_ROW_MAX for x in row[1:])):
                problems.append(("bus", row[0]))
                continue
            keep.append(row)
        body["bus"] = keep
    return problems


def describe(problems):
    return ", ".join("%s=%s" % (name, _short(v)) for name, v in problems)
