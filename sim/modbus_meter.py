"""Simulated Modbus RTU meters (bus devices for sim/bus.py).

``SDM120Meter`` / ``SDM630Meter`` speak like Eastron meters (FC 04 input
registers, big-endian float32 pairs) and are switched by an external contactor:
the simulated HAL's relay pin drives ``supply_closed``. ``PrepaidIntMeter``
is a typical prepaid DIN-rail meter (FC 03 holding registers with scaled
integers) with its own latching relay written by FC 06/16 or coil FC 05.

Ground truth for tests: ``energy_wh`` (int), ``relay_closed``, ``power_w()``.
Energy advances only while the meter is energized (relay and supply closed).
"""
import struct

from .load import ConstantLoad, EnergyIntegrator

ILLEGAL_FUNCTION = 1
ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3


def _crc_byte(crc):
    # bitwise CRC-16/MODBUS of one byte, written independently of the firmware
    for _ in range(8):
        crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


_CRC_TABLE = [_crc_byte(i) for i in range(256)]


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ b) & 0xFF]
    return crc


def with_crc(body):
    c = crc16(body)
    return bytes(body) + bytes((c & 0xFF, c >> 8))


class ModbusMeter:
    baud = 9600
    parity = "N"
    stop = 1
    window = 0x0180          # registers [0, window) of the read map exist

    def __init__(self, addr, load=None, energy_wh=0, voltage_dv=2300,
                 turnaround_us=8000, t_us=0, name=None):
        self.addr = addr
        self.name = name or "m%d" % addr
        self.load = load or ConstantLoad(0)
        self._e = EnergyIntegrator(energy_wh)
        self.export_wh = 0
        self.voltage_dv = voltage_dv
        self.freq_chz = 5000
        self.t_us = t_us
        self.relay_closed = True      # the meter's own relay (if it has one)
        self.supply_closed = True     # an external contactor upstream
        self.turnaround_us = turnaround_us
        self.dead = False             # quirk: never answers
        self.slow_us = 0              # quirk: extra turnaround
        self.reply_addr = None        # quirk: answers with another address
        self.frames_seen = 0
        self.replies = 0
        self.by_fc = {}

    # -- ground truth ------------------------------------------------------
    @property
    def energy_wh(self):
        return self._e.wh

    @energy_wh.setter
    def energy_wh(self, wh):
        self._e.wh = int(wh)

    def energized(self):
        return self.relay_closed and self.supply_closed

    def advance(self, t_us):
        if t_us > self.t_us:
            if self.energized():
                self._on_energy(self.load.energy_wus(self.t_us, t_us))
            self.t_us = t_us

    def _on_energy(self, wus):
        self._e.add_wus(wus)

    def power_w(self):
        return self.load.power_at(self.t_us) if self.energized() else 0

    def current_ma(self):
        v = self.voltage_dv if self.energized() else 0
        return self.power_w() * 10000 // v if v else 0

    def set_relay(self, closed, t_us=None):
        self.advance(self.t_us if t_us is None else t_us)
        self.relay_closed = bool(closed)

    def set_supply(self, closed, t_us=None):
        self.advance(self.t_us if t_us is None else t_us)
        self.supply_closed = bool(closed)

    # -- the bus device interface --------------------------------------------
    def on_frame(self, frame, t_us):
        self.advance(t_us)
        if self.dead or len(frame) < 4 or crc16(frame) != 0:
            return None, 0
        a = frame[0]
        if a != self.addr and a != 0:
            return None, 0
        self.frames_seen += 1
        fc = frame[1]
        self.by_fc[fc] = self.by_fc.get(fc, 0) + 1
        r = self.handle(fc, bytes(frame[2:-2]))
        if a == 0:
            return None, 0            # broadcast: act, never answer
        if isinstance(r, int):
            pdu = bytes((fc | 0x80, r))
        else:
            pdu = bytes((fc,)) + r
        self.replies += 1
        ra = self.addr if self.reply_addr is None else self.reply_addr
        return with_crc(bytes((ra,)) + pdu), self.turnaround_us + self.slow_us

    def handle(self, fc, data):
        if fc in (3, 4):
            if len(data) != 4:
                return ILLEGAL_VALUE
            start, count = struct.unpack(">HH", data)
            if not 1 <= count <= 125:
                return ILLEGAL_VALUE
            words = self.read_words(fc, start, count)
            if isinstance(words, int):
                return words
            return bytes((2 * count,)) + struct.pack(">%dH" % count, *words)
        if fc in (5, 6):
            if len(data) != 4:
                return ILLEGAL_VALUE
            reg, value = struct.unpack(">HH", data)
            if fc == 5 and value not in (0, 0xFF00):
                return ILLEGAL_VALUE
            e = self.write_words(fc, reg, [value])
            return e if e else data
        if fc == 16:
            if len(data) < 5:
                return ILLEGAL_VALUE
            reg, count, nb = struct.unpack(">HHB", data[:5])
            if not 1 <= count <= 123 or nb != 2 * count or len(data) != 5 + nb:
                return ILLEGAL_VALUE
            values = list(struct.unpack(">%dH" % count, data[5:]))
            e = self.write_words(fc, reg, values)
            return e if e else data[:4]
        return ILLEGAL_FUNCTION

    # subclasses: registers
    def read_words(self, fc, start, count):
        return ILLEGAL_FUNCTION

    def write_words(self, fc, reg, values):
        return ILLEGAL_FUNCTION


def _f32_words(x):
    hi, lo = struct.unpack(">HH", struct.pack(">f", x))
    return hi, lo


class SDM120Meter(ModbusMeter):
    """Eastron SDM120-like: FC 04, float32 pairs; no relay of its own."""

    def register_wh(self):
        """The import-energy register as the meter shows it (float32 kWh), in Wh."""
        kwh = struct.unpack(">f", struct.pack(">f", self.energy_wh / 1000))[0]
        return int(round(kwh * 1000))

    def floats(self):
        p = self.power_w()
        return {
            0x00: self.voltage_dv / 10 if self.energized() else 0.0,
            0x06: self.current_ma() / 1000,
            0x0C: float(p),
            0x46: self.freq_chz / 100,
            0x48: self.energy_wh / 1000,
            0x4A: self.export_wh / 1000,
            0x156: (self.energy_wh + self.export_wh) / 1000,
        }

    def read_words(self, fc, start, count):
        if fc != 4:
            return ILLEGAL_ADDRESS   # no holding registers modelled
        if start + count > self.window:
            return ILLEGAL_ADDRESS
        words = [0] * count
        for a, x in self.floats().items():
            hi, lo = _f32_words(x)
            for k, w in ((a, hi), (a + 1, lo)):
                if start <= k < start + count:
                    words[k - start] = w
        return words

    def write_words(self, fc, reg, values):
        return ILLEGAL_FUNCTION if fc in (5, 6) else ILLEGAL_ADDRESS


class SDM630Meter(SDM120Meter):
    """Eastron SDM630-like three-phase meter, load split over the phases."""

    def floats(self):
        p = self.power_w()
        v = self.voltage_dv / 10 if self.energized() else 0.0
        i = self.current_ma() / 3000
        return {
            0x00: v, 0x02: v, 0x04: v,
            0x06: i, 0x08: i, 0x0A: i,
            0x0C: p / 3, 0x0E: p / 3, 0x10: p / 3,
            0x30: 3 * i, 0x34: float(p),
            0x46: self.freq_chz / 100,
            0x48: self.energy_wh / 1000,
            0x4A: self.export_wh / 1000,
            0x156: (self.energy_wh + self.export_wh) / 1000,
        }


class PrepaidIntMeter(ModbusMeter):
    """Prepaid DIN-rail meter: FC 03 holding registers, scaled integers.

    0x00 voltage 0.1 V (u16), 0x01 current mA (u32), 0x03 power W (s32),
    0x0A energy 0.01 kWh (u32), 0x0C..0x13 four tariff bands (u32 0.01 kWh),
    0x14 relay status (1 closed), 0x20 relay control (write 1 close, 0 open),
    coil 0 = relay, 0x30..0x3F scratch registers (writable).
    """
    parity = "E"
    window = 0x40
    RELAY_CTL = 0x20

    def __init__(self, addr, **kw):
        super().__init__(addr, **kw)
        self.band = 0                 # tariff band the meter is in now
        self.bands_e = [EnergyIntegrator() for _ in range(4)]
        self.scratch = [0] * 16
        self.relay_ctl = 1

    def _on_energy(self, wus):
        self._e.add_wus(wus)
        self.bands_e[self.band].add_wus(wus)

    def register_wh(self):
        """The energy register as the meter shows it (0.01 kWh steps), in Wh."""
        return self.energy_wh // 10 * 10

    def words(self):
        w = [0] * self.window
        w[0] = self.voltage_dv if self.energized() else 0
        cur = self.current_ma()
        w[1], w[2] = cur >> 16, cur & 0xFFFF
        p = self.power_w() & 0xFFFFFFFF
        w[3], w[4] = p >> 16, p & 0xFFFF
        e = (self.energy_wh // 10) & 0xFFFFFFFF
        w[0x0A], w[0x0B] = e >> 16, e & 0xFFFF
        for k, be in enumerate(self.bands_e):
            v = (be.wh // 10) & 0xFFFFFFFF
            w[0x0C + 2 * k], w[0x0D + 2 * k] = v >> 16, v & 0xFFFF
        w[0x14] = 1 if self.relay_closed else 0
        w[self.RELAY_CTL] = self.relay_ctl
        w[0x30:0x40] = self.scratch
        return w

    def read_words(self, fc, start, count):
        if fc != 3:
            return ILLEGAL_FUNCTION
        if start + count > self.window:
            return ILLEGAL_ADDRESS
        return self.words()[start:start + count]

    def write_words(self, fc, reg, values):
        if fc == 5:
            if reg != 0:
                return ILLEGAL_ADDRESS
            self.set_relay(values[0] == 0xFF00)
            return 0
        for k, v in enumerate(values):
            a = reg + k
            if a == self.RELAY_CTL:
                if v not in (0, 1):
                    return ILLEGAL_VALUE
            elif not 0x30 <= a < 0x40:
                return ILLEGAL_ADDRESS
        for k, v in enumerate(values):
            a = reg + k
            if a == self.RELAY_CTL:
                self.relay_ctl = v
                self.set_relay(v == 1)
            else:
                self.scratch[a - 0x30] = v
        return 0
