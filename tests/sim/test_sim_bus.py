"""The simulated RS485 bus, clock, load profiles and Modbus meters."""
import os
import random
import struct
import sys
import time

from hypothesis import given, settings, strategies as st

from tests.support import ROOT

from concentrator.meters import MeterBus  # noqa: E402
from sim.bus import Bus, BusHal, char_us  # noqa: E402
from sim.clock import VirtualClock  # noqa: E402
from sim.load import WUS_PER_WH, ConstantLoad, EnergyIntegrator, LoadProfile  # noqa: E402
from sim.modbus_meter import PrepaidIntMeter, SDM120Meter, crc16, with_crc  # noqa: E402


def req(addr, fc, a, b):
    return with_crc(struct.pack(">BBHH", addr, fc, a, b))


def test_clock():
    c = VirtualClock()
    c.advance(1500)
    assert c.now_us == 1500 and c.ms() == 1
    c.advance_to(1000)                    # never backwards
    assert c.now_us == 1500
    c.advance_to(2500000)
    assert c.s() == 2
    assert VirtualClock.ticks_diff(5, (1 << 30) - 5) == 10   # wraps like MicroPython


def test_char_time():
    assert char_us(9600, 8, "E", 1) == 1146        # 11 bits
    assert char_us(9600, 8, "N", 1) == 1042        # 10 bits
    assert char_us(2400, 8, "E", 1) == 4584
    assert char_us(115200, 8, "N", 2) == 96


def test_write_timing_and_de_transitions():
    bus = Bus()
    u = bus.uart
    u.configure(9600, 8, "E", 1)
    bus.clock.advance(10000)
    u.write(b"\x01\x02\x03\x04")
    assert bus.clock.now_us == 10000 + 4 * 1146
    assert list(u.de_log) == [(10000, 1), (10000 + 4 * 1146, 0)]
    assert bus.tx_bytes == 4 and bus.busy_us == 4 * 1146


def test_read_timeout_advances_virtual_time_only():
    bus = Bus()
    t0 = time.monotonic()
    for _ in range(1000):
        assert bus.uart.read(8, 500, 2) == b""
    assert bus.clock.now_us == 1000 * 500000          # 500 s of virtual time
    assert time.monotonic() - t0 < 2                  # ...in almost no wall time
    assert bus.timeouts == 1000


def test_reply_bytes_arrive_at_character_timing():
    bus = Bus()
    m = bus.attach(PrepaidIntMeter(5, turnaround_us=20000, voltage_dv=2311))
    u = bus.uart
    u.configure(9600, 8, "E", 1)
    c = u.char_us()
    bus.clock.advance(100000)
    u.write(req(5, 3, 0, 1))
    t_end = bus.clock.now_us
    r = u.read(7, 1000, 2)
    assert r == with_crc(bytes((5, 3, 2)) + struct.pack(">H", 2311))
    assert bus.clock.now_us == t_end + 20000 + 7 * c
    # asking for more than comes: the read ends after the gap of silence
    bus.clock.advance(10000)
    u.write(req(5, 3, 0, 1))
    t_end = bus.clock.now_us
    r = u.read(50, 1000, 3)
    assert len(r) == 7 and bus.clock.now_us == t_end + 20000 + 7 * c + 3000


def test_read_before_reply_started_waits_up_to_timeout():
    bus = Bus()
    bus.attach(PrepaidIntMeter(5, turnaround_us=300000))
    u = bus.uart
    u.configure(9600, 8, "E", 1)
    bus.clock.advance(100000)
    u.write(req(5, 3, 0, 1))
    assert u.read(7, 100, 2) == b""          # 300 ms turnaround, 100 ms timeout
    # the late reply is still in flight: flush_input drops only what arrived
    bus.clock.advance(300000)
    u.flush_input()
    assert u.read(7, 1, 2) == b""


def test_master_errors_are_punished():
    bus = Bus()
    m = bus.attach(PrepaidIntMeter(5, turnaround_us=100000))
    u = bus.uart
    u.configure(9600, 8, "E", 1)
    bus.clock.advance(100000)
    u.write(req(5, 3, 0, 1))
    u.write(req(5, 3, 0, 1))                  # no 3.5-char silence
    assert bus.silence_violations == 1 and bus.collisions == 0
    assert m.frames_seen == 1
    assert u.read(7, 500, 2) == b""           # the broken exchange gets no reply
    m.turnaround_us = 5000
    bus.clock.advance(5000)
    u.write(req(5, 3, 0, 1))
    bus.clock.advance(6000)                   # the reply is on the line now...
    u.write(req(5, 3, 0, 1))                  # ...and the master talks over it
    assert bus.collisions == 1 and m.frames_seen == 2
    assert u.read(7, 500, 2) == b""


def test_wrong_serial_settings_are_not_heard():
    bus = Bus()
    m = bus.attach(PrepaidIntMeter(5))         # 8E1
    u = bus.uart
    u.configure(9600, 8, "N", 1)
    bus.clock.advance(100000)
    u.write(req(5, 3, 0, 1))
    assert u.read(7, 100, 2) == b"" and m.frames_seen == 0


def run_faulty(seed):
    bus = Bus(seed=seed, drop_p=0.02, corrupt_p=0.02, noise_p=0.1)
    for a in (1, 2, 3):
        bus.attach(SDM120Meter(a, load=ConstantLoad(100 * a)))
    hal = BusHal(bus)
    mb = MeterBus(hal, [{"id": str(a), "addr": a, "model": "sdm120"} for a in (1, 2, 3)])
    for _ in range(100):
        for i in range(3):
            mb.poll(i)
    return bus.counters(), [dict(mb.stats(i)) for i in range(3)]


def test_faults_are_seeded_and_counted():
    a, b, c = run_faulty(1), run_faulty(1), run_faulty(2)
    assert a == b
    assert a != c
    cnt = a[0]
    assert cnt["dropped"] > 0 and cnt["corrupted"] > 0 and cnt["noise_bytes"] > 0
    assert cnt["silence_violations"] == 0 and cnt["collisions"] == 0
    errors = sum(s["crc"] + s["short"] + s["wrong_address"] + s["wrong_function"]
                 for s in a[1])
    assert errors > 0
    assert all(s["ok"] >= 90 for s in a[1])      # retries get through


def test_drop_rate_is_roughly_what_was_asked():
    bus = Bus(seed=3, drop_p=0.1)
    m = bus.attach(SDM120Meter(1))
    u = bus.uart
    u.configure(9600, 8, "N", 1)
    for _ in range(300):
        bus.clock.advance(10000)
        u.write(req(1, 4, 0x48, 2))
        u.read(9, 100, 2)
    assert 0.07 < bus.dropped / bus.rx_bytes < 0.13


# ---- simulated meters speak Modbus correctly -----------------------------------

def ask(meter, frame):
    reply, ta = meter.on_frame(frame, meter.t_us)
    return reply


def test_prepaid_exceptions_and_echoes():
    m = PrepaidIntMeter(7)
    assert ask(m, req(7, 3, 0x3F, 2)) == with_crc(bytes((7, 0x83, 2)))   # past the map
    assert ask(m, req(7, 3, 0, 0)) == with_crc(bytes((7, 0x83, 3)))      # count 0
    assert ask(m, req(7, 3, 0, 126)) == with_crc(bytes((7, 0x83, 3)))
    assert ask(m, req(7, 4, 0, 1)) == with_crc(bytes((7, 0x84, 1)))      # no input regs
    assert ask(m, with_crc(bytes((7, 0x2B, 0x0E, 1, 0)))) == with_crc(bytes((7, 0xAB, 1)))
    assert ask(m, req(7, 6, 0x20, 2)) == with_crc(bytes((7, 0x86, 3)))   # relay: 0/1 only
    assert ask(m, req(7, 6, 0x00, 1)) == with_crc(bytes((7, 0x86, 2)))   # read-only
    assert ask(m, req(7, 6, 0x20, 0)) == req(7, 6, 0x20, 0) and not m.relay_closed
    assert ask(m, req(7, 5, 0, 0xFF00)) == req(7, 5, 0, 0xFF00) and m.relay_closed
    assert ask(m, req(7, 5, 0, 0x1234)) == with_crc(bytes((7, 0x85, 3)))
    w = with_crc(struct.pack(">BBHHBHH", 7, 16, 0x30, 2, 4, 11, 12))
    assert ask(m, w) == req(7, 16, 0x30, 2) and m.scratch[:2] == [11, 12]
    assert ask(m, req(8, 3, 0, 1)) is None                                # not mine
    bad = bytearray(req(7, 3, 0, 1))
    bad[-1] ^= 1
    assert ask(m, bytes(bad)) is None                                     # bad CRC
    assert ask(m, req(0, 6, 0x20, 0)) is None and not m.relay_closed      # broadcast acts silently
    m.dead = True
    assert ask(m, req(7, 3, 0, 1)) is None


def test_sdm120_map_is_float32_big_endian():
    m = SDM120Meter(1, load=ConstantLoad(1500), energy_wh=12345670, voltage_dv=2301)
    r = ask(m, req(1, 4, 0x48, 2))
    assert r[:3] == bytes((1, 4, 4)) and crc16(r) == 0
    assert struct.unpack(">f", r[3:7])[0] == struct.unpack(">f", struct.pack(">f", 12345.67))[0]
    r = ask(m, req(1, 4, 0, 0x0E))
    v, = struct.unpack(">f", r[3:7])
    p, = struct.unpack(">f", r[3 + 24:3 + 28])
    assert abs(v - 230.1) < 1e-4 and p == 1500.0
    assert ask(m, req(1, 4, 0x0170, 0x20)) == with_crc(bytes((1, 0x84, 2)))
    assert ask(m, req(1, 6, 0, 1)) == with_crc(bytes((1, 0x86, 1)))
    assert ask(m, req(1, 3, 0, 1)) == with_crc(bytes((1, 0x83, 2)))


# ---- energy ground truth ---------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(st.integers(0, 1000), st.lists(st.integers(1, 10 ** 9), min_size=1, max_size=60))
def test_energy_is_chunk_invariant(seed, steps):
    a = PrepaidIntMeter(1, load=LoadProfile(seed=seed))
    b = PrepaidIntMeter(1, load=LoadProfile(seed=seed))
    t = 0
    for s in steps:
        t += s
        a.advance(t)
    b.advance(t)
    assert a.energy_wh == b.energy_wh
    assert a._e.rem_wus == b._e.rem_wus
    assert a.energy_wh * WUS_PER_WH + a._e.rem_wus == b.load.energy_wus(0, t)


def test_load_profile_is_deterministic_and_integrates_exactly():
    lp = LoadProfile(seed=42)
    lp2 = LoadProfile(seed=42)
    day = 24 * 3600 * 1000000
    rng = random.Random(1)
    pts = [rng.randrange(7 * day) for _ in range(200)]
    assert [lp.power_at(t) for t in pts] == [lp2.power_at(t) for t in reversed(pts)][::-1]
    assert len({lp.power_at(t) for t in pts}) > 5          # it really varies
    # additive over any split
    for a, b, c in [(0, 5 * 10 ** 9, day), (123, 4567890123, 2 * day)]:
        assert lp.energy_wus(a, b) + lp.energy_wus(b, c) == lp.energy_wus(a, c)
    # matches a fine numerical integration (1 s steps) to within a few Wh per day
    approx = sum(lp.power_at(t) for t in range(0, day, 1000000)) * 1000000
    assert abs(approx - lp.energy_wus(0, day)) < 5 * WUS_PER_WH
    # a residential day: a few kWh, more in the evening than at night
    kwh = lp.energy_wus(0, day) // WUS_PER_WH
    assert 1000 < kwh < 40000
    lp0 = LoadProfile(seed=1, events_per_hour_pct=0, fridge_w=0, base_w=100, tz_offset_s=0)
    assert lp0.power_at(3 * 3600 * 1000000) < lp0.power_at(19 * 3600 * 1000000)


def test_integrator_keeps_remainder():
    e = EnergyIntegrator()
    for _ in range(3600):
        e.add_wus(1000000)            # 1 W for 1 s, 3600 times
    assert e.wh == 1 and e.rem_wus == 0


def test_relay_and_contactor_stop_energy():
    pre = PrepaidIntMeter(1, load=ConstantLoad(1000))
    sdm = SDM120Meter(2, load=ConstantLoad(1000))
    h = 3600 * 1000000
    pre.advance(h)
    sdm.advance(h)
    assert pre.energy_wh == 1000 and sdm.energy_wh == 1000
    pre.set_relay(False, h)
    sdm.set_supply(False, h)
    pre.advance(5 * h)
    sdm.advance(5 * h)
    assert pre.energy_wh == 1000 and sdm.energy_wh == 1000
    assert pre.power_w() == 0 and sdm.current_ma() == 0
    pre.set_relay(True, 5 * h)
    pre.advance(6 * h)
    assert pre.energy_wh == 2000 and pre.bands_e[0].wh == 2000


def test_a_month_of_polling_runs_fast_and_tracks_truth():
    bus = Bus(seed=9, corrupt_p=0.002, drop_p=0.002)
    devs = [bus.attach(PrepaidIntMeter(a, load=LoadProfile(seed=a))) for a in range(1, 9)]
    hal = BusHal(bus)
    mb = MeterBus(hal, [{"id": str(d.addr), "addr": d.addr, "model": "prepaid-int"} for d in devs])
    t0 = time.monotonic()
    step = 15 * 60 * 1000000
    for k in range(1, 30 * 96 + 1):
        bus.clock.advance_to(k * step)
        for i in range(8):
            mb.poll(i)
    wall = time.monotonic() - t0
    for i, d in enumerate(devs):
        d.advance(bus.clock.now_us)
        r = mb.reading(i)
        assert r.ok
        assert 0 <= d.energy_wh - r.energy_wh < 200      # one poll's worth + 0.01 kWh
        assert d.energy_wh > 30 * 1000
    assert wall < 60
    print("month of 8 meters every 15 min: %.1f s wall, bus busy %.1f s"
          % (wall, bus.busy_us / 1e6))
