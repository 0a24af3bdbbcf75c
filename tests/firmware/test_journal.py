"""Flash journal: append/flush/pending/ack, recovery, thinning and power cuts.

Runs the real journal over real littlefs (littlefs-python) on the emulated NOR
flash of sim/flash.py; power is cut inside flash program/erase operations.
"""
import os
import random
import sys

from tests.support import ROOT

import pytest

from sim.flash import FlashFS, NorFlash, PowerCut
from concentrator import journal as J
from concentrator.journal import (EV_THINNED, FLAG_IMPLAUSIBLE, FLAG_MISSING,
                                  FLAG_RELAY_OPEN, FLAG_THINNED, Journal)

T0 = 1700000000


def fresh(blocks=256, **kw):
    fl = NorFlash(blocks * 4096, seed=1)
    fs = FlashFS(fl)
    j = Journal(fs, **kw)
    j.recover()
    return fl, fs, j


def reboot(fl, **kw):
    fl.power_on()
    fs = FlashFS(fl)
    j = Journal(fs, **kw)
    reads = j.recover()
    return fs, j, reads


def drain(j):
    return j.pending(10 ** 9)


def test_flag_constants_documented():
    assert (FLAG_MISSING, FLAG_IMPLAUSIBLE, FLAG_RELAY_OPEN) == (1, 2, 4)
    assert FLAG_THINNED not in (1, 2, 4)
    from concentrator import protocol
    assert (protocol.FLAG_MISSING, protocol.FLAG_IMPLAUSIBLE, protocol.FLAG_RELAY_OPEN) == (1, 2, 4)
    assert EV_THINNED == protocol.EV_JOURNAL_THINNED
    assert (J.KIND_READING, J.KIND_EVENT) == (protocol.KIND_READING, protocol.KIND_EVENT)
    src = open(J.__file__).read()
    for name in ("FLAG_MISSING", "FLAG_IMPLAUSIBLE", "FLAG_RELAY_OPEN", "FLAG_THINNED"):
        assert "%s = " % name in src


def test_append_pending_ack_roundtrip():
    fl, fs, j = fresh()
    recs = [
        (0, 0, T0, (123456789, 1500, 0)),
        (0, 255, T0 + 1, (5, -20, FLAG_MISSING | FLAG_RELAY_OPEN)),
        (1, 3, T0 + 2, (17, -5, 99999999999)),
        (0, 0, T0 + 900, (123457000, 0, FLAG_IMPLAUSIBLE, 10, 20, 30, 40)),
        (0, 7, T0 - 50, (0, 0, 0)),          # clock stepped back: still exact
        (1, 0, T0 + 901, ()),
        (0, 0, T0 + 1800, (123456000, 3, 0, 11, 21, 29, 40)),  # register went back
    ]
    seqs = [j.append(*r) for r in recs]
    assert seqs == list(range(1, len(recs) + 1))
    assert j.last_seq == len(recs)
    j.flush()
    got = drain(j)
    assert [g[0] for g in got] == seqs
    for g, r in zip(got, recs):
        assert g[1:] == (r[0], r[1], r[2], tuple(r[3]))
    # oldest first, bounded by limit
    assert [g[0] for g in j.pending(2)] == [1, 2]
    j.ack(3)
    assert j.acked_seq == 3
    assert [g[0] for g in drain(j)] == [4, 5, 6, 7]
    # ack below the cursor changes nothing; ack beyond what is stored is clamped
    j.ack(1)
    assert j.acked_seq == 3
    j.ack(1000)
    assert j.acked_seq == 7
    assert drain(j) == []
    assert j.append(0, 1, T0 + 2000, (1, 1, 0)) == 8


@pytest.mark.parametrize("meters", [0, 4, 32])
def test_encoder_table_and_other_meters_roundtrip(meters):
    """The encoder keeps the meters it was made for in one flat table and
    any other meter (or a reading with more values than the table holds)
    apart: whatever the mix, across segments and reboots that go on
    appending to the tail, every record reads back exactly."""
    rng = random.Random(meters)
    fl, fs, j = fresh(segment_bytes=1024, meters=meters)
    sent = []
    for n in range(600):
        meter = rng.choice((0, 1, 3, 7, 31, 255))
        if rng.random() < 0.1:
            vals = tuple(rng.randint(-10 ** 6, 10 ** 6) for _ in range(rng.randint(0, 4)))
            kind = 1
        else:
            nx = rng.choice((0, 1, 5, 6, 7, 9))      # 7 and 9 extra values: more than the table holds
            vals = (rng.randint(0, 10 ** 10), rng.randint(-5000, 5000), rng.choice((0, 1, 4))) + \
                tuple(rng.randint(0, 10 ** 9) for _ in range(nx))
            kind = 0
        ts = T0 + n * 60
        sent.append((j.append(kind, meter, ts, vals), kind, meter, ts, vals))
        if n % 37 == 36:
            j.flush()
        if n % 151 == 150:
            j.flush()
            fs, j, _ = reboot(fl, segment_bytes=1024, meters=meters)
    j.flush()
    fs, j, _ = reboot(fl, segment_bytes=1024, meters=meters)
    assert drain(j) == sent


def test_state_survives_reboot_and_sequence_continues():
    fl, fs, j = fresh()
    for i in range(100):
        j.append(0, i % 5, T0 + i * 60, (1000 + i * 3, i, 0))
    j.flush()
    j.ack(40)
    fs, j2, _ = reboot(fl)
    assert j2.last_seq == 100 and j2.acked_seq == 40
    got = drain(j2)
    assert [g[0] for g in got] == list(range(41, 101))
    assert got[-1][4] == (1000 + 99 * 3, 99, 0)
    assert j2.append(0, 0, T0 + 10 ** 5, (5000, 1, 0)) == 101


def test_everything_acked_then_reboot_keeps_sequence():
    fl, fs, j = fresh()
    for i in range(10):
        j.append(0, 1, T0 + i, (i, 0, 0))
    j.flush()
    j.ack(10)
    assert [n for n in fs.listdir("/journal") if n != "ack"] == []
    fs, j2, _ = reboot(fl)
    assert j2.last_seq == 10
    assert j2.append(0, 1, T0 + 20, (11, 0, 0)) == 11  # no sequence number reused


def test_unflushed_records_lost_on_cut_and_sequence_reused_only_for_them():
    fl, fs, j = fresh()
    for i in range(5):
        j.append(0, 2, T0 + i, (i, 0, 0))
    j.flush()
    for i in range(5, 8):
        j.append(0, 2, T0 + i, (i, 0, 0))
    fl.cut_now()                       # power fails before the core's flush
    fs, j2, _ = reboot(fl)
    assert j2.last_seq == 5
    assert [g[0] for g in drain(j2)] == [1, 2, 3, 4, 5]
    assert j2.append(0, 2, T0 + 9, (9, 0, 0)) == 6


def test_pending_never_returns_records_that_are_not_in_flash():
    # a record handed to the head-end must survive a cut, or its seq would be reused
    fl, fs, j = fresh()
    j.append(0, 1, T0, (1, 0, 0))
    got = j.pending(10)
    assert [g[0] for g in got] == [1]
    fl.cut_now()
    fs, j2, _ = reboot(fl)
    assert [g[0] for g in drain(j2)] == [1]


def test_recovery_skips_torn_and_corrupt_tail():
    fl, fs, j = fresh()
    for i in range(30):
        j.append(0, i % 3, T0 + i, (100 + i, i, 0))
        if i % 10 == 9:
            j.flush()
    segs = [n for n in fs.listdir("/journal") if n != "ack"]
    assert len(segs) == 1
    path = "/journal/" + segs[0]
    # a torn frame: valid length prefix, payload cut short
    f = fs.open(path, "ab")
    f.write(bytes([40, 1, 2, 3]))
    f.close()
    fs, j2, reads = reboot(fl)
    assert j2.last_seq == 30
    assert [g[0] for g in drain(j2)] == list(range(1, 31))
    # appending after a torn tail goes to a new segment; the old one stays readable
    assert j2.append(0, 0, T0 + 100, (500, 1, 0)) == 31
    j2.flush()
    fs, j3, _ = reboot(fl)
    got = drain(j3)
    assert [g[0] for g in got] == list(range(1, 32))
    assert got[-1][4] == (500, 1, 0)

    # a corrupted byte inside the last frame: that frame (and only the tail) is dropped
    fl2, fs2, k = fresh()
    for i in range(20):
        k.append(0, 0, T0 + i, (i, 0, 0))
        if i in (9, 19):
            k.flush()
    name = "/journal/" + [n for n in fs2.listdir("/journal") if n != "ack"][0]
    data = bytearray(fs2.open(name, "rb").read())
    data[-5] ^= 0x40
    f = fs2.open(name, "wb")
    f.write(data)
    f.close()
    fs2, k2, _ = reboot(fl2)
    assert k2.last_seq == 10
    assert [g[0] for g in drain(k2)] == list(range(1, 11))
    assert k2.append(0, 0, T0 + 50, (50, 0, 0)) == 11


def test_segments_deleted_only_after_application_ack():
    fl, fs, j = fresh(segment_bytes=1024)
    for i in range(600):
        j.append(0, i % 8, T0 + i * 10, (10 * i, i % 50, 0))
        if i % 8 == 7:
            j.flush()
    j.flush()
    segs = sorted(n for n in fs.listdir("/journal") if n != "ack")
    assert len(segs) >= 4
    assert all(fs.stat("/journal/" + n)[6] <= 1024 for n in segs)
    got = drain(j)
    assert len(got) == 600       # reading everything deletes nothing
    assert sorted(n for n in fs.listdir("/journal") if n != "ack") == segs
    second = int(segs[1], 16)
    j.ack(second - 2)            # one record of the first segment still pending
    assert sorted(n for n in fs.listdir("/journal") if n != "ack") == segs
    assert drain(j)[0][0] == second - 1
    j.ack(second - 1)            # now the whole first segment is committed
    assert sorted(n for n in fs.listdir("/journal") if n != "ack") == segs[1:]
    assert drain(j)[0][0] == second


def test_ack_cursor_is_atomic_under_power_cuts():
    rng = random.Random(5)
    for trial in range(60):
        fl, fs, j = fresh(blocks=32)
        for i in range(50):
            j.append(0, 1, T0 + i, (i, 0, 0))
        j.flush()
        j.ack(20)
        fl.cut_after(rng.randint(1, 12))
        try:
            j.ack(35)
        except PowerCut:
            pass
        fs, j2, _ = reboot(fl)
        assert j2.acked_seq in (20, 35)
        assert [g[0] for g in drain(j2)] == list(range(j2.acked_seq + 1, 51))


def test_compact_encoding():
    fl, fs, j = fresh()
    rng = random.Random(2)
    energy = [rng.randint(10 ** 5, 10 ** 7) for _ in range(32)]
    t = T0
    n = 0
    for cycle in range(96 * 3):          # 3 days of 15-minute readings, 32 meters
        for m in range(32):
            energy[m] += rng.randint(0, 400)
            j.append(0, m, t + m, (energy[m], rng.randint(0, 3000), 0))
            n += 1
        j.flush()
        t += 900
    per = j.stats()["bytes"] / n
    assert per < 9, per                    # an uncompressed record would be >= 20 bytes
    got = drain(j)
    assert len(got) == n and got[-1][4][0] == energy[31]


def _fill(j, cycles, meters, rng, t=T0, energy=None, events_every=0):
    energy = energy or [rng.randint(10 ** 5, 10 ** 6) for _ in range(meters)]
    for c in range(cycles):
        for m in range(meters):
            energy[m] += rng.randint(0, 500)
            j.append(0, m, t + m, (energy[m], rng.randint(0, 2000), 0, energy[m] // 3))
        if events_every and c % events_every == 0:
            j.append(1, c % meters, t, (42, c))
        j.flush()
        t += 900
    return energy, t


def test_full_flash_thinning_keeps_latest_register_of_every_meter():
    fl, fs, j = fresh(blocks=64, max_bytes=16 * 4096)
    rng = random.Random(3)
    energy, t = _fill(j, 700, 24, rng, events_every=25)
    st = j.stats()
    assert st["thinned"] > 0 and st["thin_passes"] > 0
    assert st["segments"] * 4096 <= 16 * 4096
    fs, j, _ = reboot(fl, max_bytes=16 * 4096)
    got = drain(j)
    seqs = [g[0] for g in got]
    assert seqs == sorted(set(seqs))                     # no duplicates, in order
    # nothing acked, nothing lost that the policy protects:
    last = {}
    for g in got:
        if g[1] == 0:
            assert last.get(g[2], -1) <= g[4][0]         # cumulative registers stay monotonic
            last[g[2]] = g[4][0]
    assert last == dict(enumerate(energy))               # latest cumulative of every meter
    user_events = [g for g in got if g[1] == 1 and g[4][0] == 42]
    assert len(user_events) == len(range(0, 700, 25))    # events are never thinned at level 1
    thin_events = [g for g in got if g[1] == 1 and g[2] == 0 and g[4][0] == EV_THINNED]
    assert thin_events, "thinning must be reported by an event"
    assert sum(e[4][1] for e in thin_events) == st["thinned"]
    assert any(g[1] == 0 and g[4][2] & FLAG_THINNED for g in got)
    # the newest readings are all there in full detail
    assert [g[4][0] for g in got[-24:] if g[1] == 0][-1] == energy[23]


def test_recovery_is_bounded_on_a_full_journal():
    fl, fs, j = fresh(blocks=384, max_bytes=1024 * 1024)
    rng = random.Random(4)
    _fill(j, 96 * 10, 32, rng)
    assert j.stats()["segments"] > 40
    fs = FlashFS(fl)
    fl.reset_counters()
    fs.listdir("/journal")
    listing = fl.bytes_read                    # littlefs cost of listing the segments
    fl.reset_counters()
    j2 = Journal(fs, max_bytes=1024 * 1024)
    reads = j2.recover()
    assert reads <= 4                          # HAL reads: ack cursor + the newest segment
    # beyond the directory listing, block-device bytes read stay within a few blocks
    # (scanning the journal would read its 260+ KiB)
    assert fl.bytes_read - listing < 4 * 4096, (fl.bytes_read, listing)
    assert j2.last_seq == j.last_seq
    assert j2.append(0, 0, T0, (1, 0, 0)) == j.last_seq + 1


def test_power_cut_fuzz():
    """Cut power at random flash operations while appending, flushing and acking."""
    master = random.Random(20240611)
    trials = 120
    for trial in range(trials):
        seed = master.randrange(1 << 30)
        total_ops = _scenario(seed, None)
        cut = master.randint(1, total_ops)
        _scenario(seed, cut, partial=master.choice([None, 0, 1]))


def _scenario(seed, cut_at, partial=None):
    rng = random.Random(seed)
    fl = NorFlash(48 * 4096, seed=seed)
    fs = FlashFS(fl)
    seg = rng.choice([512, 1024, 4096])
    j = Journal(fs, segment_bytes=seg, max_bytes=40 * 4096)
    j.recover()
    fl.reset_counters()
    if cut_at is not None:
        fl.cut_after(cut_at)
    model = {}            # seq -> record tuple
    durable = 0
    acked = 0
    attempt = None
    energy = [0] * 6
    t = T0
    cut = False
    try:
        for step in range(rng.randint(20, 60)):
            for _ in range(rng.randint(0, 6)):
                m = rng.randrange(6)
                if rng.random() < 0.1:
                    vals = (rng.randint(0, 9), rng.randint(-5, 5))
                    kind = 1
                else:
                    energy[m] += rng.randint(0, 300)
                    vals = (energy[m], rng.randint(0, 900), rng.choice([0, 0, 1, 2, 4]))
                    kind = 0
                t += rng.randint(0, 120)
                seq = j.append(kind, m, t, vals)
                assert seq == (max(model) if model else 0) + 1
                model[seq] = (seq, kind, m, t, vals)
            j.flush()
            durable = j.last_seq
            if rng.random() < 0.3:
                p = j.pending(rng.randint(1, 40))
                assert [r[0] for r in p] == [s for s in sorted(model) if s > acked][:len(p)]
                if p:
                    attempt = p[rng.randrange(len(p))][0]
                    j.ack(attempt)
                    acked = attempt
                    attempt = None
    except PowerCut:
        cut = True
    if cut_at is None:
        return fl.ops
    fl.power_on()
    fs2 = FlashFS(fl)
    j2 = Journal(fs2, segment_bytes=seg, max_bytes=40 * 4096)
    j2.recover()
    if attempt is not None:
        assert j2.acked_seq in (acked, attempt)
    else:
        assert j2.acked_seq == acked
    got = drain(j2)
    seqs = [g[0] for g in got]
    assert seqs == sorted(set(seqs)), "duplicated or unordered records"
    expect = [model[s] for s in sorted(model) if j2.acked_seq < s <= durable]
    assert got[:len(expect)] == expect, "a flushed, unacknowledged record was lost"
    extra = got[len(expect):]
    inflight = [model[s] for s in sorted(model) if s > durable]
    assert extra == inflight[:len(extra)], "only a prefix of the unflushed records may survive"
    assert j2.last_seq == max([j2.acked_seq] + seqs)
    assert j2.last_seq >= durable
    nxt = j2.append(0, 0, t + 1, (energy[0] + 1, 0, 0))
    assert nxt == j2.last_seq and nxt == max([j2.acked_seq] + seqs) + 1
    j2.flush()
    assert drain(j2)[-1][0] == nxt
    return fl.ops
