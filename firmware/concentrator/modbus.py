# Modbus RTU master: CRC-16, frames for FC 03/04 reads and 05/06/16 writes,
# and transactions over hal.uart (docs/architecture.md).
#
# A reply becomes a value only after every check passed: length, CRC,
# address, function, byte count, and a decodable number. Everything else is
# counted in the meter's stats dict and retried or dropped.
from array import array

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


def build_write1(buf, addr, fc, reg, value):
    # FC 05 (coil: value 0xFF00 on / 0x0000 off) or FC 06 (one register)
    return build_read(buf, addr, fc, reg, value & 0xFFFF)


def build_write_multi(buf, addr, reg, values):
    n = len(values)
    build_read(buf, addr, 16, reg, n)
    buf[6] = 2 * n
    j = 7
    for v in values:
        buf[j] = (v >> 8) & 0xFF
        buf[j + 1] = v & 0xFF
        j += 2
    return _put_crc(buf, j)


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


def plan(profile, names):
    # Group the entries named in `names` into as few reads as possible:
    # [(start, count, (entries...)), ...], each within max_regs and all the
    # entries of one read with the same function code (fc_of).
    mx = profile.get("max_regs", 60)
    gap = profile.get("max_gap", mx)
    regs = [e for e in profile["regs"] if e["name"] in names]
    regs.sort(key=lambda e: (fc_of(profile, e), e["addr"]))
    blocks = []
    for e in regs:
        a = e["addr"]
        end = a + width(e)
        if blocks:
            b = blocks[-1]
            if fc_of(profile, b[2][0]) == fc_of(profile, e) and \
                    a - (b[0] + b[1]) <= gap and end - b[0] <= mx:
                b[1] = max(b[1], end - b[0])
                b[2].append(e)
                continue
        blocks.append([a, end - a, [e]])
    return [(b[0], b[1], tuple(b[2])) for b in blocks]


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
        self._tx = bytearray(9 + 2 * MAX_WRITE)
        self._mv = memoryview(self._tx)
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
    def _xfer(self, meter, profile, n, expect, tries):
        st = stats_of(meter)
        addr = self._tx[0]
        fc = self._tx[1]
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
        n = build_read(self._tx, meter["addr"], fc, start, count)
        r = self._xfer(meter, profile, n, 5 + 2 * count, tries)
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

    def write(self, meter, profile, fc, reg, values):
        # FC 05/06 (one value) or 16 (list of values); True if echoed back.
        self.port(meter, profile)
        if fc == 16:
            n = build_write_multi(self._tx, meter["addr"], reg, values)
        else:
            v = values[0] if isinstance(values, (list, tuple)) else values
            if fc == 5:
                v = 0xFF00 if v else 0
            n = build_write1(self._tx, meter["addr"], fc, reg, v)
        r = self._xfer(meter, profile, n, 8, self.retries)
        if meter["addr"] == 0:
            return True
        if r is None:
            return False
        for i in range(2, 6):
            if r[i] != self._tx[i]:
                stats_of(meter)["bad_echo"] += 1
                return False
        return True

    def read_regs(self, meter, profile, fc, start, count):
        # Raw registers as a list of u16, or None (console, commissioning).
        self.port(meter, profile)
        n = build_read(self._tx, meter["addr"], fc, start, count)
        r = self._xfer(meter, profile, n, 5 + 2 * count, self.retries)
        if r is None:
            return None
        return [(r[3 + 2 * i] << 8) | r[4 + 2 * i] for i in range(count)]

    def set_relay(self, meter, profile, closed):
        rl = profile.get("relay")
        if not rl or rl.get("kind") != "modbus":
            return False
        if not self.write(meter, profile, rl.get("fc", 6), rl["addr"],
                          rl["on"] if closed else rl["off"]):
            return False
        ent = None
        for e in profile["regs"]:
            if e["name"] == rl.get("status"):
                ent = e
        if ent is None:
            return True                      # nothing to read back
        fc = fc_of(profile, ent)
        w = width(ent)
        swap = swapped(profile, ent)
        for k in range(3):                   # a latching relay takes time
            self.hal.sleep_ms(rl.get("settle_ms", 0))
            n = build_read(self._tx, meter["addr"], fc, ent["addr"], w)
            r = self._xfer(meter, profile, n, 5 + 2 * w, self.retries)
            if r is not None:
                v = decode(r, 3, ent, swap)
                if v is not None and bool(v) == bool(closed):
                    return True
        return False
