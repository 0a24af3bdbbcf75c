"""Simulated DL/T 645-2007 single-phase meter for the RS485 bus simulator.

Bus device interface (docs/architecture.md):
    meter.on_frame(frame: bytes, t_us: int) -> (reply | None, turnaround_us)
Ground truth: meter.energy_wh (int), meter.bands (4 ints, Wh per tariff
T1 sharp, T2 peak, T3 flat, T4 valley), meter.relay_closed; meter.advance(t_us).

The load is sim.load (LoadProfile: base load + appliance events, or
ConstantLoad). Energy is integrated exactly in W*us (integer remainders kept),
only while the meter's relay AND the upstream supply are closed, and attributed to tariff bands by the meter's OWN clock
(which drifts by `drift_ppm` and is corrected by broadcast time sync).

This file deliberately does not import the firmware codec: it is a second,
independent implementation of the frame format.
"""

from .load import ConstantLoad, LoadProfile, WUS_PER_WH

# Default time-of-use schedule (local seconds of day -> band index 0..3 for
# T1 sharp, T2 peak, T3 flat, T4 valley).
DEFAULT_TOU = (
    (0, 3), (7 * 3600, 2), (8 * 3600, 1), (11 * 3600, 2),
    (18 * 3600, 0), (19 * 3600, 1), (21 * 3600, 2), (23 * 3600, 3),
)


def _bcd(v, n, signed=False):
    """int -> n BCD bytes, lowest first (sign in the top bit)."""
    neg = v < 0
    v = abs(int(v))
    out = bytearray(n)
    for i in range(n):
        d = v % 100
        v //= 100
        out[i] = ((d // 10) << 4) | (d % 10)
    if v:                      # overflow: wrap like a register rollover
        pass
    if neg and signed:
        out[-1] |= 0x80
    return bytes(out)


def _unbcd(b):
    v = 0
    for x in reversed(b):
        if (x >> 4) > 9 or (x & 15) > 9:
            raise ValueError("bcd")
        v = v * 100 + (x >> 4) * 10 + (x & 15)
    return v


def _days_from_civil(y, m, d):
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _civil(z):
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


class Dlt645Meter:
    baud = 2400
    parity = "E"
    stop = 1

    def __init__(self, addr="000000000001", seed=1, base_w=None,
                 events=True, load=None, start_unix=1_735_660_800,
                 tz_offset_s=28800, drift_ppm=0, tou=DEFAULT_TOU,
                 relay_closed=True, password=None, turnaround_us=30_000,
                 dead=False, block_max_data=None, preamble=4,
                 voltage_dv=2200, close_needs_button=False, energy_wh=0,
                 balance_mu=None, price_mu_per_kwh=0, check_expiry=True):
        assert len(addr) == 12 and addr.isdigit()
        self.addr = addr
        self.addr6 = bytes(int(addr[10 - 2 * i:12 - 2 * i], 16)
                           for i in range(6))
        if load is None:
            if events:
                load = LoadProfile(seed, base_w=base_w, epoch_s=start_unix,
                                   tz_offset_s=tz_offset_s)
            else:
                load = ConstantLoad(base_w or 0)
        self.load = load
        self.supply_closed = True                # external contactor upstream
        self.slow_us = 0                         # quirk: extra turnaround
        self.replies = 0
        self.t_us = 0
        self._acc = energy_wh * WUS_PER_WH       # total W*us
        self._band_acc = [0, 0, 0, 0]
        self._band_acc[2] = energy_wh * WUS_PER_WH
        self.relay_closed = relay_closed
        self.close_allowed = False
        self.close_needs_button = close_needs_button
        self.password = password                 # "LLPPPPPP" or None
        self.turnaround_us = turnaround_us
        self.dead = dead
        self.block_max_data = block_max_data     # split block replies
        self.preamble = preamble
        self.voltage_dv = voltage_dv
        self.drift_ppm = drift_ppm
        self.tz_offset_s = tz_offset_s
        self.tou = tuple(sorted(tou))
        self.check_expiry = check_expiry
        self.balance_mu0 = balance_mu
        self.price_mu_per_kwh = price_mu_per_kwh
        # meter clock: local_us(t) = clk_local_us + (t - clk_t) * (1e6+ppm)/1e6
        self._clk_local_us = (start_unix + tz_offset_s) * 1_000_000
        self._clk_t = 0
        self._pending = None                     # follow-up frame state
        self.log = []                            # (t_us, event) for tests
        self.frames_seen = 0
        self.syncs = 0

    # ----------------------------------------------------------- truth
    @property
    def energy_wh(self):
        return self._acc // WUS_PER_WH

    def register_wh(self):
        """The energy register as the meter shows it (XXXXXX.XX kWh, i.e.
        0.01 kWh steps), in Wh: what a master reading 00010000 must get."""
        return self.energy_wh // 10 * 10

    @property
    def bands(self):
        return [a // WUS_PER_WH for a in self._band_acc]

    @property
    def balance_mu(self):
        if self.balance_mu0 is None:
            return None
        return self.balance_mu0 - self.energy_wh * self.price_mu_per_kwh // 1000

    def energized(self):
        return self.relay_closed and self.supply_closed

    def power_w(self, t_us=None):
        if not self.energized():
            return 0
        return self.load.power_at(self.t_us if t_us is None else t_us)

    def local_s(self, t_us=None):
        """Meter's own local time (seconds since 1970, in its time zone)."""
        t = self.t_us if t_us is None else t_us
        return self._local_us(t) // 1_000_000

    def _local_us(self, t):
        return self._clk_local_us + (t - self._clk_t) * (
            1_000_000 + self.drift_ppm) // 1_000_000

    def _band(self, t):
        sod = (self._local_us(t) // 1_000_000) % 86400
        b = self.tou[-1][1]
        for start, band in self.tou:
            if sod >= start:
                b = band
        return b

    def _next_boundary(self, t):
        lus = self._local_us(t)
        day_us = 86_400_000_000
        sod_us = lus % day_us
        nxt = None
        for start, _ in self.tou:
            s = start * 1_000_000
            if s > sod_us:
                nxt = s
                break
        if nxt is None:
            nxt = day_us + self.tou[0][0] * 1_000_000
        target = lus - sod_us + nxt
        rate = 1_000_000 + self.drift_ppm
        dt = -((-(target - self._clk_local_us) * 1_000_000) // rate)
        return max(self._clk_t + dt, t + 1)

    def advance(self, t_us):
        """Integrate consumption up to t_us (exact integer W*us)."""
        while self.t_us < t_us:
            t = self.t_us
            end = min(t_us, self._next_boundary(t))
            if self.energized():
                e = self.load.energy_wus(t, end)
                self._acc += e
                self._band_acc[self._band(t)] += e
            self.t_us = end

    def set_relay(self, closed, t_us=None):
        if t_us is not None:
            self.advance(t_us)
        self.relay_closed = closed

    def set_supply(self, closed, t_us=None):
        if t_us is not None:
            self.advance(t_us)
        self.supply_closed = bool(closed)

    def press_button(self, t_us=None):
        """Tenant presses the meter's button after 'allow close'."""
        if t_us is not None:
            self.advance(t_us)
        if self.close_allowed:
            self.relay_closed = True
            self.close_allowed = False

    # ----------------------------------------------------------- protocol
    @staticmethod
    def parse(frame):
        """First valid frame in a chunk -> (addr6, ctrl, data) or None."""
        b = bytes(frame)
        for i in range(len(b)):
            if b[i] != 0x68 or i + 12 > len(b) or b[i + 7] != 0x68:
                continue
            L = b[i + 9]
            end = i + 12 + L
            if end > len(b) or b[end - 1] != 0x16:
                continue
            if sum(b[i:end - 2]) & 0xFF != b[end - 2]:
                continue
            data = bytes((x - 0x33) & 0xFF for x in b[i + 10:end - 2])
            return b[i + 1:i + 7], b[i + 8], data
        return None

    def _frame(self, ctrl, data, addr6=None):
        a = addr6 or self.addr6
        body = bytes([0x68]) + a + bytes([0x68, ctrl, len(data)]) + bytes(
            (x + 0x33) & 0xFF for x in data)
        return b"\xfe" * self.preamble + body + bytes([sum(body) & 0xFF, 0x16])

    def _err(self, func, code):
        return self._frame(0xC0 | func, bytes([code]))

    def on_frame(self, frame, t_us):
        self.advance(t_us)
        self.frames_seen += 1
        if self.dead or not self.supply_closed:      # quirk / unpowered
            return None, 0
        f = self.parse(frame)
        if f is None:
            return None, 0
        a, ctrl, data = f
        if ctrl & 0x80:
            return None, 0              # another slave's reply
        if a == b"\x99" * 6:
            if ctrl == 0x08:
                self._time_sync(data)
            return None, 0
        if not all(x == y or x == 0xAA for x, y in zip(a, self.addr6)):
            return None, 0
        if ctrl == 0x08:                # addressed time sync: no reply either
            self._time_sync(data)
            return None, 0
        reply = self._handle(ctrl, data)
        self.replies += 1
        return reply, self.turnaround_us + self.slow_us

    def _handle(self, ctrl, data):
        if ctrl == 0x11:
            if len(data) < 4:
                return self._err(0x11, 0x01)
            di = int.from_bytes(data[:4], "little")
            self._pending = None
            val = self._value(di)
            if val is None:
                return self._err(0x11, 0x02)
            mx = self.block_max_data
            if mx and 4 + len(val) > mx:
                k = mx - 4
                self._pending = [di, val[k:], 0]
                return self._frame(0xB1, data[:4] + val[:k])
            return self._frame(0x91, data[:4] + val)
        if ctrl == 0x12:
            p = self._pending
            if len(data) < 5 or p is None or int.from_bytes(
                    data[:4], "little") != p[0] or data[4] != p[2] + 1:
                return self._err(0x12, 0x02)
            k = self.block_max_data - 5
            chunk, rest = p[1][:k], p[1][k:]
            p[1] = rest
            p[2] += 1
            ctl = 0xB2 if rest else 0x92
            if not rest:
                self._pending = None
            return self._frame(ctl, data[:4] + chunk + bytes([p[2]]))
        if ctrl == 0x13:
            return self._frame(0x93, self.addr6)
        if ctrl == 0x1C:
            return self._relay_cmd(data)
        return self._err(ctrl & 0x1F, 0x04 if ctrl == 0x14 else 0x01)

    def _relay_cmd(self, data):
        if len(data) != 16:
            return self._err(0x1C, 0x01)
        if self.password is not None:
            pw = self.password
            want = bytes([int(pw[0:2], 16), int(pw[6:8], 16),
                          int(pw[4:6], 16), int(pw[2:4], 16)])
            if data[:4] != want:
                self.log.append((self.t_us, "relay refused: password"))
                return self._err(0x1C, 0x04)
        if self.check_expiry:
            try:
                ss, mm, hh, DD, MM, YY = (_unbcd(data[10 + i:11 + i])
                                          for i in range(6))
                exp = _days_from_civil(2000 + YY, MM, DD) * 86400 + \
                    hh * 3600 + mm * 60 + ss
            except ValueError:
                return self._err(0x1C, 0x01)
            if exp < self.local_s():
                self.log.append((self.t_us, "relay refused: expired"))
                return self._err(0x1C, 0x01)
        n1 = data[8]
        if n1 == 0x1A:
            self.relay_closed = False
            self.close_allowed = False
        elif n1 == 0x1B:
            if self.close_needs_button:
                self.close_allowed = True
            else:
                self.relay_closed = True
        elif n1 == 0x1C:
            self.relay_closed = True
        elif n1 in (0x2A, 0x2B, 0x3A, 0x3B):
            pass
        else:
            return self._err(0x1C, 0x01)
        self.log.append((self.t_us, "relay %02X" % n1))
        return self._frame(0x9C, b"")

    def _time_sync(self, data):
        if len(data) != 6:
            return
        try:
            ss, mm, hh, DD, MM, YY = (_unbcd(data[i:i + 1]) for i in range(6))
            if not (1 <= MM <= 12 and 1 <= DD <= 31 and hh < 24 and mm < 60
                    and ss < 60):
                return
        except ValueError:
            return
        local = _days_from_civil(2000 + YY, MM, DD) * 86400 + hh * 3600 + \
            mm * 60 + ss
        self._clk_local_us = local * 1_000_000
        self._clk_t = self.t_us
        self.syncs += 1

    def _value(self, di):
        e = self.energy_wh // 10                # 0.01 kWh units
        bands = [b // 10 for b in self.bands]
        if di in (0x00000000, 0x00010000):
            return _bcd(e, 4)
        if (di & 0xFFFF00FF) in (0x00000000, 0x00010000) and \
                1 <= (di >> 8) & 0xFF <= 4:
            return _bcd(bands[((di >> 8) & 0xFF) - 1], 4)
        if di in (0x0000FF00, 0x0001FF00):
            return _bcd(e, 4) + b"".join(_bcd(b, 4) for b in bands)
        p = self.power_w()
        v = self.voltage_dv if self.voltage_dv else 1
        if di == 0x02010100:
            return _bcd(self.voltage_dv, 2)
        if di == 0x02020100:
            return _bcd(p * 10_000 // v, 3, True)    # mA at pf 1
        if di in (0x02030000, 0x02030100):
            return _bcd(p * 10, 3, True)              # 0.0001 kW
        if di == 0x02060000:
            return _bcd(1000, 2, True)
        if di == 0x04000101:
            days = self.local_s() // 86400
            y, m, d = _civil(days)
            wd = (days + 4) % 7                      # 1970-01-01 Thursday
            return bytes([_bcd(wd, 1)[0], _bcd(d, 1)[0], _bcd(m, 1)[0],
                          _bcd(y % 100, 1)[0]])
        if di == 0x04000102:
            sod = self.local_s() % 86400
            return _bcd(sod % 60, 1) + _bcd(sod // 60 % 60, 1) + \
                _bcd(sod // 3600, 1)
        if di == 0x04000503:
            w = 0
            if not self.relay_closed:
                w |= 1 << 4                         # relay state: open
            return bytes([w & 0xFF, w >> 8])
        if di == 0x00900200 and self.balance_mu0 is not None:
            return _bcd(max(self.balance_mu, 0) // 100, 4)
        return None
