"""The head-end bills what a meter used between its commissioning and its
board's first record; the board takes that record as its baseline only.
From then on their accumulators see different cycle energies, so with a
tier surcharge that does not divide evenly they round differently: the
head-end must compare the board's charged_mu with a copy of the board's own
accumulator (a false 'board and head-end disagree' on every reading
otherwise), and drop that copy once a new billing cycle brings them
together again."""
import secrets

import pytest
from sqlmodel import select

from concentrator import protocol
from concentrator import tariff as T
from headend.core import db
from headend.core.events import EV_BILLING_MISMATCH
from headend.ingest import Ingest
from headend.models import Account, Event, LedgerEntry, Meter
from headend.services.seed import seed_site

TZ = 28800
DEC1 = T.days_from_civil(2025, 12, 1) * 86400 - TZ
JAN1 = T.days_from_civil(2026, 1, 1) * 86400 - TZ
SPEC = {"version": 1, "effective": 0, "tz_offset_s": TZ,
        "prices": {"sharp": 12000, "peak": 9000, "flat": 6000, "valley": 3000},
        "tou": {"days": {"d": [["00:00", "valley"], ["08:00", "flat"], ["10:00", "peak"], ["19:00", "sharp"],
                               ["21:00", "flat"], ["23:00", "valley"]]},
                "seasons": [{"from": "01-01", "to": "12-31", "weekday": "d"}]},
        # 0.0333 a kWh above 230 kWh: a Wh's surcharge is a third of a mu, so the floors differ
        "tiers": [{"from_wh": 0, "add": 0}, {"from_wh": 230000, "add": 333}]}
OPENING_WH = 1_000_000
METERS = 2


def _site(engine, dev, name):
    """A property of one board of METERS meters on SPEC -> (session factory,
    the versions, an Ingest whose clock is now[0] + 5, now, the board's key)."""
    sf = db.session_factory(engine)
    key = secrets.token_hex(32)
    with sf() as s:
        seed_site(s, name, [{"dev": dev, "key_hex": key, "meters": [
            {"id": "%s-%d" % (dev, i), "model": "sdm120", "opening_energy_wh": OPENING_WH} for i in range(METERS)]}],
            tariff_spec=SPEC, opening_balance_mu=10 ** 9)
        s.commit()
    now = [DEC1]
    return sf, [T.validate(dict(SPEC))], Ingest(sf, clock=lambda: now[0] + 5), now, protocol.key_from_hex(key)


@pytest.mark.parametrize("empty_engine", ["sqlite"], indirect=True)
def test_no_false_mismatch_after_the_commissioning_energy_and_the_copy_goes_at_the_next_cycle(engine):
    dev = "mirror-c1"
    sf, versions, ingest, now, k = _site(engine, dev, "Mirror Court")
    # the board: its first record of a meter is its baseline; then tariff.charge_registers
    regs = [dict.fromkeys(T.BANDS, 0) for _ in range(METERS)]
    for r in regs:
        r["flat"] = OPENING_WH + 157            # 157 Wh used since commissioning, before the first record
    state = [T.new_state() for _ in range(METERS)]
    charged = [0] * METERS
    n = seq = 0
    t = DEC1 + 9 * 3600
    head_end_mu = 157 * 6000 // 1000 * METERS  # what the head-end charges for those 157 Wh (flat, base tier)
    while t < JAN1 + 3 * 86400:
        recs = []
        for m in range(METERS):
            if n:
                regs[m][T.band_at(versions, t - 1)] += 7777 + 13 * m
                charged[m] += T.charge_registers(versions, state[m], dict(regs[m]), t - 1)
            else:
                T.charge_registers(versions, state[m], dict(regs[m]), t - 1)
            seq += 1
            recs.append([seq, protocol.KIND_READING, m, t, [sum(regs[m].values()), 500, 0, charged[m]]
                         + [regs[m][b] for b in T.BANDS]])
        n += 1
        now[0] = t
        body = protocol.message(dev, n, protocol.RECORDS, t, after=recs[0][0] - 1, recs=recs)
        assert ingest.handle(protocol.topic_up(dev), protocol.seal(body, k)), ingest.stats.snapshot()
        if t < JAN1 <= t + 6 * 3600:
            with sf() as s:          # December crossed the tier: the head-end keeps the board's copy
                assert all(m.board_tariff_state is not None for m in s.exec(select(Meter)).all())
        t += 6 * 3600
    with sf() as s:
        mism = s.exec(select(Event).where(Event.code == EV_BILLING_MISMATCH)).all()
        assert mism == [], mism[0].message
        meters = s.exec(select(Meter).order_by(Meter.index)).all()
        # January started both accumulators afresh: one again (the meter is billed once per reading)
        assert [m.board_tariff_state for m in meters] == [None] * METERS
        spent = -sum(e.amount_mu for e in s.exec(select(LedgerEntry).where(LedgerEntry.kind == "consumption")))
        # the ledger holds the board's charges plus what the board never saw: the 157 Wh, and the
        # surcharge on 157 Wh more of December above the tier (the head-end's cycle energy is higher)
        unseen = head_end_mu + METERS * (157 * 333 // 1000)
        assert abs(spent - sum(charged) - unseen) <= METERS, (spent, sum(charged), unseen)
        assert sum(a.balance_mu for a in s.exec(select(Account).where(Account.kind == "tenant"))) == \
            METERS * 10 ** 9 - spent


@pytest.mark.parametrize("empty_engine", ["sqlite"], indirect=True)
def test_a_batch_of_many_readings_names_exactly_the_one_wrong_board_charge(engine):
    """The copy is checked once per meter and transaction (board_check):
    a batch of messages of many readings each, across a tier and a new
    billing cycle, gives no false mismatch, and one reading the board
    charged a mu too much in the middle of a batch gives exactly one event,
    naming that reading."""
    dev = "mirror-c2"
    sf, versions, ingest, now, k = _site(engine, dev, "Mirror Row")
    regs = [dict.fromkeys(T.BANDS, 0) for _ in range(METERS)]
    for r in regs:
        r["flat"] = OPENING_WH + 157
    state = [T.new_state() for _ in range(METERS)]
    charged = [0] * METERS
    seq, t, n, wrong_seq = 0, DEC1 + 9 * 3600, 0, None
    pending, batches = [], 0
    while t < JAN1 + 4 * 86400:
        recs = []
        for _ in range(6):                       # six readings of each meter in a message, 2 h apart
            for m in range(METERS):
                seq += 1
                if seq == 1 or seq == 2:
                    T.charge_registers(versions, state[m], dict(regs[m]), t - 1)   # the board's baseline
                else:
                    regs[m][T.band_at(versions, t - 1)] += 5311 + 17 * m
                    charged[m] += T.charge_registers(versions, state[m], dict(regs[m]), t - 1)
                    if wrong_seq is None and m == 1 and t > DEC1 + 20 * 86400 and batches % 2:
                        wrong_seq = seq
                        charged[m] += 1        # the board took one mu too many here, and only here
                recs.append([seq, protocol.KIND_READING, m, t, [sum(regs[m].values()), 500, 0, charged[m]]
                             + [regs[m][b] for b in T.BANDS]])
            t += 2 * 3600
        n += 1
        body = protocol.message(dev, n, protocol.RECORDS, t, after=recs[0][0] - 1, recs=recs)
        pending.append((protocol.topic_up(dev), protocol.seal(body, k)))
        if len(pending) == 4:                  # four messages in one transaction
            now[0] = t
            assert all(ingest.handle_batch(pending)), ingest.stats.snapshot()
            pending, batches = [], batches + 1
    if pending:
        now[0] = t
        assert all(ingest.handle_batch(pending))
    assert wrong_seq is not None
    with sf() as s:
        mism = s.exec(select(Event).where(Event.code == EV_BILLING_MISMATCH)).all()
        assert [(e.detail, e.values[1] - e.values[0]) for e in mism] == [(wrong_seq, 1)], \
            [e.message for e in mism]
        meters = s.exec(select(Meter).order_by(Meter.index)).all()
        assert [m.board_tariff_state for m in meters] == [None] * METERS     # January: one accumulator again
        assert all(m.billed_seq > seq - 2 * METERS for m in meters)
