# Modbus RTU master: CRC-16, frames for FC 03/04 reads and 05/06/16 writes,
# and transactions over hal.uart (docs/architecture.md).
#
# A reply becomes a value only after every check passed: length, CRC,
# address, function, byte count, and a decodable number. Everything else is
# counted in the meter's stats dict and retried or dropped.
from array import array

from concentrator import unload

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

MAX_WRITE = const(123)       # registers in one FC 16 request

# Counters kept per meter (meter["stats"]); a DL/T 645 driver uses the same.
STAT_KEYS = ("polls", "ok", "requests", "timeouts", "crc", "wrong_address",
             "wrong_function", "short", "exceptions", "bad_echo", "bad_value",
             "errors", "skipped", "silent", "fails")


# Besides the counters, each meter's row holds: "offline" (0/1), "last_exc"
# (last exception code a meter sent), "rtt_ms" (smoothed reply latency, -1 =
# unknown), "_x" / "_dx" (polls until the "extra" registers are due, Modbus /
# DL/T 645).
ROW_KEYS = STAT_KEYS + ("offline", "last_exc", "rtt_ms", "_x", "_dx")
_RTT = ROW_KEYS.index("rtt_ms")


def stats_table(n):
    # the counters of n meters in one array (32-bit signed ints): ~80 B a
    # meter instead of a 19-key dict's ~177 B; Stats(table, i) is one row
    t = array("i", bytes(4 * len(ROW_KEYS) * n))
    for i in range(n):
        t[i * len(ROW_KEYS) + _RTT] = -1
    return t


class Stats:
    # One meter's counters (meter["stats"]), used like a dict of ROW_KEYS:
    # st["timeouts"] += 1. The values are a row of a bus's stats_table.
    def __init__(self, table, i=0):
        self.table = table
        self.at = i * len(ROW_KEYS)

    def __getitem__(self, k):
        v = self.table[self.at + ROW_KEYS.index(k)]
        return bool(v) if k == "offline" else v

    def __setitem__(self, k, v):
        self.table[self.at + ROW_KEYS.index(k)] = v

    def get(self, k, default=None):
        return self[k] if k in ROW_KEYS else default

    def keys(self):
        return ROW_KEYS

    def items(self):
        return [(k, self[k]) for k in ROW_KEYS]


def new_stats():
    # the counters of a meter on its own (a bus gives its meters rows of one table)
    return Stats(stats_table(1))


def stats_of(meter):
    st = meter.get("stats")
    if st is None:
        st = meter["stats"] = new_stats()
    return st


# ---- CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF) -------------------
_TAB = array("H", range(256))
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0xA001 if _c & 1 else _c >> 1
    _TAB[_i] = _c


def crc16(buf, start=0, end=-1):
    if end < 0:
        end = len(buf)
    crc = 0xFFFF
    tab = _TAB
    for i in range(start, end):
        crc = (crc >> 8) ^ tab[(crc ^ buf[i]) & 0xFF]
    return crc


def _put_crc(buf, n):
    c = crc16(buf, 0, n)
    buf[n] = c & 0xFF
    buf[n + 1] = c >> 8
    return n + 2


# ---- frames ---------------------------------------------------------------
def build_read(buf, addr, fc, start, count):
    buf[0] = addr
    buf[1] = fc
    buf[2] = start >> 8
    buf[3] = start & 0xFF
    buf[4] = count >> 8
    buf[5] = count & 0xFF
    return _put_crc(buf, 6)


def check_reply(r, addr, fc, expect):
    # None if r is a well-formed normal reply of `expect` bytes from `addr`
    # for `fc`, else the name of the counter to bump.
    n = len(r)
    if n == 0:
        return "timeouts"
    if n < 5:
        return "short"
    if crc16(r, 0, n) != 0:
        if n < expect and r[1] == fc:
            return "short"
        return "crc"
    if r[0] != addr:
        return "wrong_address"
    if r[1] == fc | 0x80:
        return "exceptions" if n == 5 else "short"
    if r[1] != fc:
        return "wrong_function"
    if n != expect or (fc <= 4 and r[2] != n - 5):
        return "short"
    return None


# ---- numbers ---------------------------------------------------------------
def _div_round(num, den):
    # num / den rounded half away from zero (den > 0)
    if num < 0:
        return -((2 * -num + den) // (2 * den))
    return (2 * num + den) // (2 * den)


def f32_to_int(bits, scale=1, div=1):
    # IEEE-754 single (as a 32-bit int) * scale / div -> int, no floats.
    # None for NaN and infinities.
    e = (bits >> 23) & 0xFF
    m = bits & 0x7FFFFF
    if e == 0xFF:
        return None
    if e == 0:
        e = 1               # subnormal
    else:
        m |= 0x800000
    num = m * scale
    sh = e - 150
    if sh >= 0:
        num <<= sh
    else:
        div <<= -sh
    if bits & 0x80000000:
        num = -num
    return _div_round(num, div)


def decode(buf, off, e, swap=False):
    # Register entry e at buf[off:] -> scaled int, or None if not a number
    t = e["type"]
    if t == "u16" or t == "s16":
        raw = (buf[off] << 8) | buf[off + 1]
        if t == "s16" and raw & 0x8000:
            raw -= 0x10000
    else:
        hi = (buf[off] << 8) | buf[off + 1]
        lo = (buf[off + 2] << 8) | buf[off + 3]
        if swap:
            hi, lo = lo, hi
        raw = (hi << 16) | lo
        if t == "f32":
            v = f32_to_int(raw, e.get("scale", 1), e.get("div", 1))
            if v is not None and -(1 << 62) < v < (1 << 62):
                return v
            return None
        if t == "s32" and raw & 0x80000000:
            raw -= 0x100000000
    d = e.get("div", 1)
    raw *= e.get("scale", 1)
    return raw if d == 1 else _div_round(raw, d)


def width(e):
    return 1 if e["type"] in ("u16", "s16") else 2


def fc_of(profile, e):
    # function code that reads entry e: its own "fc", else the profile's
    return e.get("fc") or profile.get("fc", 3)


def swapped(profile, e):
    # 32-bit entry e has its low word first: its own "words", else the profile's
    return e.get("words", profile.get("words")) == "lo"


def store(reading, e, v, nbands=0):
    name = e["name"]
    if name == "band":
        if reading.bands is None:
            reading.bands = [0] * max(nbands, e["idx"] + 1)
        reading.bands[e["idx"]] = v
    elif name == "relay_closed":
        reading.relay_closed = bool(v)
    else:
        setattr(reading, name, v)


# ---- the master ------------------------------------------------------------
class Driver:
    def __init__(self, hal, retries=3, timeout_ms=None, min_timeout_ms=20):
        self.hal = hal
        self.uart = hal.uart
        self.retries = retries
        self.timeout_ms = timeout_ms         # overrides the profile's value
        self.min_timeout_ms = min_timeout_ms
        self.tx = bytearray(9 + 2 * MAX_WRITE)
        self._mv = memoryview(self.tx)
        self._plans = {}
        self._cfg = None                     # (baud, parity, stop) set on uart
        self._char_us = 1000
        self._t35_ms = 4
        self._gap_ms = 2
        self._last = hal.ticks_ms()          # end of the last bus activity

    def _diff(self, a, b):
        f = getattr(self.hal, "ticks_diff", None)
        return f(a, b) if f else a - b

    # -- port ----------------------------------------------------------------
    def port(self, meter, profile):
        cfg = (meter.get("baud") or profile.get("baud", 9600),
               meter.get("parity") or profile.get("parity", "N"),
               meter.get("stop") or profile.get("stop", 1))
        if cfg != self._cfg:
            self.uart.configure(cfg[0], 8, cfg[1], cfg[2])
            self._cfg = cfg
            c = self._char_us = self.uart.char_us()
            if cfg[0] > 19200:
                t35, t15 = 1750, 750
            else:
                t35, t15 = (7 * c + 1) // 2, (3 * c + 1) // 2
            self._t35_ms = (t35 + 999) // 1000
            self._gap_ms = max(1, (t15 + 999) // 1000)

    def _timeout(self, profile, st, first):
        base = self.timeout_ms or profile.get("timeout_ms", 200)
        rtt = st["rtt_ms"]
        if not first or rtt < 0:
            return base
        return max(self.min_timeout_ms, min(base, 2 * rtt + 10))

    # -- one request, with retries -------------------------------------------
    def xfer(self, meter, profile, n, expect, tries):
        st = stats_of(meter)
        addr = self.tx[0]
        fc = self.tx[1]
        hal = self.hal
        uart = self.uart
        for k in range(tries):
            # 3.5 character silence before transmitting (+1 ms: ticks are
            # whole milliseconds)
            d = self._diff(hal.ticks_ms(), self._last)
            if d <= self._t35_ms:
                hal.sleep_ms(self._t35_ms + 1 - d)
            uart.flush_input()
            uart.write(self._mv[:n])
            t0 = hal.ticks_ms()
            st["requests"] += 1
            if addr == 0:                    # broadcast: nobody answers
                self._last = t0
                return None
            to = self._timeout(profile, st, k == 0)
            r = uart.read(expect, to, self._gap_ms)
            self._last = hal.ticks_ms()
            err = check_reply(r, addr, fc, expect)
            if err is None:
                st["silent"] = 0
                lat = self._diff(self._last, t0) - expect * self._char_us // 1000
                lat = max(0, lat)
                rtt = st["rtt_ms"]
                st["rtt_ms"] = lat if lat > rtt else (3 * rtt + lat) // 4
                return r
            st[err] += 1
            st["silent"] = st["silent"] + 1 if err == "timeouts" else 0
            if err != "timeouts":
                # a broken frame may go on: wait until the line is quiet
                # (a short one may be noise before the real reply: give
                # that one the response timeout to arrive)
                w = to if len(r) < expect else self._t35_ms
                for _ in range(4):
                    if not uart.read(64, w, self._gap_ms):
                        break
                    w = self._t35_ms
                self._last = hal.ticks_ms()
            if err == "exceptions":
                st["last_exc"] = r[2]
                if r[2] not in (5, 6):       # only "ack"/"busy" are retried
                    return None
        return None

    def _read_block(self, meter, profile, blk, reading, tries):
        start, count, ents = blk
        fc = fc_of(profile, ents[0])
        n = build_read(self.tx, meter["addr"], fc, start, count)
        r = self.xfer(meter, profile, n, 5 + 2 * count, tries)
        if r is None:
            return False
        for e in ents:                       # all values good, or none used
            if decode(r, 3 + 2 * (e["addr"] - start), e, swapped(profile, e)) is None:
                stats_of(meter)["bad_value"] += 1
                return False
        nb = profile.get("bands", 0)
        for e in ents:
            store(reading, e, decode(r, 3 + 2 * (e["addr"] - start), e, swapped(profile, e)), nb)
        return True

    def _plan(self, profile):
        p = self._plans.get(id(profile))
        if p is None:
            if len(self._plans) > 16:
                self._plans.clear()
            p = (plan(profile, profile.get("billing", ())),
                 plan(profile, profile.get("extra", ())))
            self._plans[id(profile)] = p
        return p

    # -- public ----------------------------------------------------------------
    def read(self, meter, profile, reading, tries=None):
        # One request for the billing set (more only if the profile's
        # billing registers do not fit in max_regs); the "extra" registers
        # every extra_every polls. Fills `reading` in place.
        st = stats_of(meter)
        self.port(meter, profile)
        tries = tries or self.retries
        bill, extra = self._plan(profile)
        for blk in bill:
            if not self._read_block(meter, profile, blk, reading, tries):
                reading.ok = False
                return False
        if extra:
            if st["_x"] <= 0:
                good = True
                for blk in extra:
                    good = self._read_block(meter, profile, blk, reading, tries) and good
                if good:
                    st["_x"] = profile.get("extra_every", 10)
            st["_x"] -= 1
        reading.ok = True
        reading.t_ms = self.hal.ticks_ms()
        return True

    # -- now and then: writes, relay switching, raw reads (modbus_ops.py,
    # loaded for the call and dropped again) -----------------------------------
    def write(self, meter, profile, fc, reg, values):
        # FC 05/06 (one value) or 16 (list of values); True if echoed back.
        return _ops("write", self, meter, profile, fc, reg, values)

    def read_regs(self, meter, profile, fc, start, count):
        # Raw registers as a list of u16, or None (console, commissioning).
        return _ops("read_regs", self, meter, profile, fc, start, count)

    def set_relay(self, meter, profile, closed):
        return _ops("set_relay", self, meter, profile, closed)


def plan(profile, names):
    # [(start, count, (entries...)), ...]: modbus_ops.plan (once per model)
    return _ops("plan", profile, names)


def _ops(name, *args):
    from concentrator import modbus_ops
    try:
        return getattr(modbus_ops, name)(*args)
    finally:
        unload("modbus_ops")
