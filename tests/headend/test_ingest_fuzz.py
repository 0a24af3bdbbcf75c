"""Signed garbage: a board's own key on random and mutated bodies (huge and
negative integers, 2^63 and beyond, wrong types, boundary values) through
Ingest.handle on SQLite and PostgreSQL. Nothing raises, nothing outside
ingest.bounds is stored, and a plausible record sent after the garbage is
still stored and acknowledged."""
import random
import secrets

from sqlmodel import select

from concentrator import protocol
from headend.core import db
from headend.core.events import EV_OUT_OF_RANGE
from headend.ingest import Ingest, bounds
from headend.models import Concentrator, Event, LedgerEntry, Meter, Reading
from headend.services.seed import seed_site

DEV = "fuzz-c1"
NOW = 1796119200          # 2026-12-01
MESSAGES = 300
TOU_TIERS = {"version": 1, "effective": 0, "tz_offset_s": 28800,
             "prices": {"sharp": 12000, "peak": 9000, "flat": 6000, "valley": 3000},
             "tou": {"days": {"workday": [["00:00", "valley"], ["08:00", "flat"], ["10:00", "peak"],
                                          ["19:00", "sharp"], ["21:00", "flat"], ["23:00", "valley"]]},
                     "seasons": [{"from": "01-01", "to": "12-31", "weekday": "workday"}]},
             "tiers": [{"from_wh": 0, "add": 0}, {"from_wh": 230000, "add": 500}]}
HUGE = (2 ** 31, 2 ** 53, 2 ** 63 - 1, 2 ** 63, 2 ** 64, 10 ** 15, 10 ** 30, -1, -2 ** 63 - 1, -10 ** 20)
ODD = (None, True, False, 1.5, "12", [], {}, [1, 2], 1e300)


class Garbage:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def value(self, low, high):
        """Mostly plausible, often just outside, sometimes absurd."""
        p = self.r.random()
        if p < 0.45:
            return self.r.randint(low, high)
        if p < 0.6:
            return self.r.choice((low - 1, high + 1, low, high))
        if p < 0.9:
            return self.r.choice(HUGE)
        return self.r.choice(ODD)

    def record(self, seq):
        r = self.r
        kind = r.choice((0, 0, 0, 1))
        if kind == 0:
            n_values = r.choice((3, 4, 9, 9, 9, 2, 10, 16))
            values = [self.value(lo, hi) for _n, lo, hi in (bounds.READING_FIELDS * 2)[:n_values]]
        else:
            values = [self.value(1, 13)] + [self.value(0, 5) for _ in range(r.randint(0, 4))]
        rec = [seq if r.random() < 0.9 else self.value(1, 10 ** 6), kind if r.random() < 0.95 else self.value(0, 1),
               r.randint(0, 3) if r.random() < 0.9 else self.value(0, 255),
               NOW - r.randint(0, 86400) if r.random() < 0.8 else self.value(0, bounds.TS_MAX), values]
        if r.random() < 0.05:
            rec = rec[:r.randint(0, 4)]
        return rec

    def body(self, n, seq):
        r = self.r
        t = r.choice((protocol.RECORDS, protocol.RECORDS, protocol.STATUS, protocol.HELLO))
        if t == protocol.RECORDS:
            recs = [self.record(seq + i) for i in range(r.randint(1, 32))]
            fields = {"after": self.value(0, seq), "recs": recs}
        elif t == protocol.STATUS:
            fields = {"up": self.value(0, 10 ** 6), "pending": self.value(0, 100), "last": self.value(0, seq),
                      "acked": self.value(0, seq),
                      "meters": [[self.value(0, 3), self.value(0, 1), self.value(0, 1), self.value(-10 ** 6, 10 ** 9)]
                                 for _ in range(r.randint(0, 4))],
                      "bus": [[self.value(0, 3)] + [self.value(0, 100) for _ in range(5)] for _ in range(r.randint(0, 3))]}
        else:
            fields = {"fw": r.choice(("0.2.0", 5, None, "x" * 100)), "boot": self.value(0, 100),
                      "last": self.value(0, seq), "acked": self.value(0, seq),
                      "meters": r.choice((["fz-m0", "fz-m1"], [1, 2], None, "m"))}
        # a counter beyond what a database holds (an in-range jump would just end the run as replays)
        n_field = n if r.random() < 0.97 else r.choice((2 ** 53, 2 ** 63, 2 ** 64, -1, 1.5, None, "7"))
        body = protocol.message(DEV, n_field, t, NOW if r.random() < 0.9 else self.value(0, bounds.TS_MAX), **fields)
        if r.random() < 0.05:
            body[r.choice(("v", "dev", "t", "ts"))] = r.choice(ODD + HUGE)
        return body


def test_signed_garbage_stores_nothing_out_of_range(engine):
    sf = db.session_factory(engine)
    key = secrets.token_hex(32)
    with sf() as s:
        seed_site(s, "fuzz", [{"dev": DEV, "key_hex": key, "meters": [
            {"id": "fz-m%d" % i, "model": "sdm120", "opening_energy_wh": 1000} for i in range(4)]}],
            tariff_spec=TOU_TIERS,
            opening_balance_mu=100_0000)
        s.commit()
    ingest = Ingest(sf, clock=lambda: NOW)
    k = protocol.key_from_hex(key)
    g = Garbage(seed=13)
    seq = 1
    for n in range(1, MESSAGES + 1):
        payload = protocol.seal(g.body(n, seq), k)
        ingest.handle(protocol.topic_up(DEV), payload)
        seq += g.r.randint(0, 20)
    st = ingest.stats.snapshot()
    assert st["errors"] == 0, st            # no unhandled exception (they are counted, not raised)
    assert st["accepted"] > MESSAGES // 2 and st["bad_records"] > 100, st
    with sf() as s:
        rows = s.exec(select(Reading)).all()
        assert rows, "some plausible readings were stored"
        for rd in rows:
            values = [rd.energy_wh, rd.power_w, rd.flags] + ([rd.charged_mu] if rd.charged_mu is not None else [])
            for (name, low, high), v in zip(bounds.READING_FIELDS, values + list(rd.bands)):
                assert low <= v <= high, (name, v, rd)
            assert 1 <= rd.seq <= bounds.MAX_SEQ and (rd.ts == 0 or bounds.TS_MIN <= rd.ts <= bounds.TS_MAX)
            assert 0 <= rd.meter_index <= bounds.MAX_METER_INDEX
        for ev in s.exec(select(Event)).all():
            assert ev.seq is None or 1 <= ev.seq <= bounds.MAX_SEQ
            assert ev.detail is None or abs(ev.detail) <= bounds.INT32_MAX + 1
            assert all(abs(v) < 2 ** 53 for v in ev.values), ev
        assert s.exec(select(Event).where(Event.code == EV_OUT_OF_RANGE)).first() is not None
        conc = s.exec(select(Concentrator).where(Concentrator.dev == DEV)).one()
        assert 0 <= conc.last_up_n <= bounds.MAX_N
        for v in (conc.acked_seq, conc.journal_last or 0):
            assert 0 <= v <= bounds.MAX_SEQ if v >= 0 else v == -1
        assert 0 <= (conc.boot or 0) <= bounds.INT32_MAX and 0 <= (conc.pending or 0) <= bounds.INT32_MAX
        for m in s.exec(select(Meter)).all():
            assert m.local_credit_mu is None or abs(m.local_credit_mu) <= bounds.MAX_CREDIT_MU
            assert m.last_energy_wh is None or 0 <= m.last_energy_wh <= bounds.MAX_ENERGY_WH
        for e in s.exec(select(LedgerEntry)).all():
            assert abs(e.amount_mu) < 2 ** 53 and abs(e.balance_after_mu) < 2 ** 53
        last_n, acked = conc.last_up_n, conc.acked_seq
    # the board is not stuck: a plausible record after all that is stored and acknowledged
    good = protocol.message(DEV, last_n + 1, protocol.RECORDS, NOW, after=acked,
                            recs=[[acked + 1, 0, 0, NOW, [999_999, 10, 0]]])
    out = ingest.handle(protocol.topic_up(DEV), protocol.seal(good, k))
    acks = [protocol.verify(p, k)["seq"] for _t, p in out if protocol.split(p)[1]["t"] == protocol.ACK]
    assert acks and acks[0] >= acked + 1, out


def test_out_of_range_records_are_refused_with_an_event_and_acknowledged(engine):
    """10^15 Wh from a board with a valid key: not stored, reported, and the
    sequence still acknowledged so the board does not send it forever."""
    sf = db.session_factory(engine)
    key = secrets.token_hex(32)
    with sf() as s:
        seed_site(s, "oor", [{"dev": DEV, "key_hex": key, "meters": [{"id": "oor-m0", "opening_energy_wh": 0}]}],
                  tariff_price_mu_per_kwh=6000, opening_balance_mu=100_0000)
        s.commit()
    ingest = Ingest(sf, clock=lambda: NOW)
    k = protocol.key_from_hex(key)
    recs = [[1, 0, 0, NOW, [10 ** 15, 5, 0]], [2, 0, 0, NOW, [1000, 5, 0, -6 * 10 ** 15]],
            [3, 0, 0, NOW, [2 ** 64, 5, 0]], [4, 1, 0, NOW, [5, 2 ** 40]], [2 ** 63, 0, 0, NOW, [1, 1, 0]],
            [5, 0, 0, NOW + 10 * 365 * 86400, [1000, 5, 0]], [6, 0, 0, NOW, [2000, 5, 0]]]
    out = ingest.handle(protocol.topic_up(DEV), protocol.seal(
        protocol.message(DEV, 1, protocol.RECORDS, NOW, recs=recs), k))
    assert ingest.stats.get("errors") == 0
    ack = [protocol.verify(p, k) for _t, p in out][0]
    assert ack["t"] == protocol.ACK and ack["seq"] == 6
    with sf() as s:
        assert [(r.seq, r.energy_wh) for r in s.exec(select(Reading))] == [(6, 2000)]
        refused = s.exec(select(Event).where(Event.code == EV_OUT_OF_RANGE).order_by(Event.seq)).all()
        assert [e.seq for e in refused] == [1, 2, 3, 4, 5]
        assert "energy_wh = 1000000000000000 is outside" in refused[0].message
        assert "charged_mu" in refused[1].message and "ts = " in refused[4].message
    # a counter past 2^53 is refused whole (and counted), it does not overflow
    big_n = protocol.seal(protocol.message(DEV, 2 ** 64, protocol.STATUS, NOW, pending=1), k)
    assert ingest.handle(protocol.topic_up(DEV), big_n) == []
    assert ingest.stats.get("rejected_malformed") == 1 and ingest.stats.get("errors") == 0   # the envelope check refuses it
    # hello fields out of range are ignored and reported; the hello is answered
    out = ingest.handle(protocol.topic_up(DEV), protocol.seal(protocol.message(
        DEV, 2, protocol.HELLO, NOW, fw="x", boot=2 ** 40, last=2 ** 70, acked=6, meters=["oor-m0"]), k))
    assert [protocol.split(p)[1]["t"] for _t, p in out][0] == protocol.ACK
    with sf() as s:
        conc = s.exec(select(Concentrator).where(Concentrator.dev == DEV)).one()
        assert conc.boot is None and conc.journal_last is None
        ev = s.exec(select(Event).where(Event.code == EV_OUT_OF_RANGE, Event.seq.is_(None))).one()
        assert "boot=" in ev.message and "last=" in ev.message
