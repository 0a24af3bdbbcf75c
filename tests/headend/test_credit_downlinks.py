"""The credits a board hears after its own readings.

The board bills its meters with the head-end's tariff code
(concentrator/credit.py) and reports its own charge in every reading. When
the head-end charged the same, a credit would only confirm what the board
already shows, so a records message is answered with its ack alone; a credit
goes when the board cannot know the balance: a first reference, a charge the
board did not make, another meter of the same account, and at least once an
hour per meter to repair one that was lost. The board here is the
firmware's own Credits class, fed with every downlink the head-end sends: its
local credit must equal the ledger's balance after every message."""
import secrets

import pytest
from sqlmodel import select

from concentrator import protocol
from concentrator import tariff as T
from concentrator.credit import Credits
from headend.core import db
from headend.core.events import EV_BILLING_MISMATCH
from headend.ingest import Ingest
from headend.models import Account, Concentrator, Downlink, Event, Meter
from headend.services import sales
from headend.services.actor import system_actor
from headend.services.seed import seed_site

TZ = 28800
T0 = T.days_from_civil(2026, 3, 2) * 86400 - TZ          # a Monday, 00:00 local
SPEC = {"version": 1, "effective": 0, "tz_offset_s": TZ,
        "prices": {"sharp": 12000, "peak": 9000, "flat": 6000, "valley": 3000},
        "tou": {"days": {"d": [["00:00", "valley"], ["08:00", "flat"], ["10:00", "peak"], ["19:00", "sharp"],
                               ["21:00", "flat"], ["23:00", "valley"]]},
                "seasons": [{"from": "01-01", "to": "12-31", "weekday": "d"}]}}
OPENING_WH = 500_000
METERS = 4            # meters 2 and 3 share one account (a tenant with two units)
RECORD_S = 900


@pytest.mark.parametrize("empty_engine", ["sqlite"], indirect=True)
def test_a_board_that_billed_as_the_head_end_hears_only_the_ack_and_its_credit_stays_the_ledgers(engine):
    sf = db.session_factory(engine)
    dev, key = "credit-c1", secrets.token_hex(32)
    with sf() as s:
        seed_site(s, "Credit Court", [{"dev": dev, "key_hex": key, "meters": [
            {"id": "cm-%d" % i, "model": "sdm120", "opening_energy_wh": OPENING_WH} for i in range(METERS)]}],
            tariff_spec=SPEC, opening_balance_mu=50_000_000)
        meters = s.exec(select(Meter).order_by(Meter.index)).all()
        meters[3].account_id = meters[2].account_id
        s.add(meters[3])
        s.commit()
        conc_id = s.exec(select(Concentrator.id)).one()
        accounts = [m.account_id for m in meters]
    versions = [T.validate(dict(SPEC))]
    now = [T0]
    ingest = Ingest(sf, clock=lambda: now[0] + 5)
    k = protocol.key_from_hex(key)
    board = Credits(METERS)
    energy = [OPENING_WH + 40] * METERS
    for i in range(METERS):
        board.on_poll(i, versions, energy[i], 0)            # the board's first poll: its baseline
    heard = []          # per message: the meter indexes a credit came for
    applied = [-1]

    def hear(payloads):
        got = set()
        for p in payloads:
            body = protocol.verify(p, k, dev=dev)
            if body["n"] <= applied[0]:
                continue
            applied[0] = body["n"]
            if body["t"] == protocol.CREDIT:
                board.sync(body["m"], body["bal"], body["e"], body.get("c"), body.get("top"))
                got.add(body["m"])
        return got

    def balances():
        with sf() as s:
            return {a.id: a.balance_mu for a in s.exec(select(Account)).all()}

    n = seq = 0
    t = T0 + 7 * 3600                 # 07:00: the valley, then the flat and peak bands
    for step in range(16):
        t += RECORD_S
        recs = []
        for i in range(METERS):
            if not (step == 12 and i == 0):       # meter 0 uses nothing in that interval
                energy[i] += 111 + 37 * i
            board.on_poll(i, versions, energy[i], t)
            charged = board.on_record(i, versions, t)
            if step == 12 and i == 0:
                board.charged[i] += 3         # ... and its board charges 3 mu: the head-end charges nothing
                charged = board.charged[i]
            if step == 6 and i == 1:
                board.charged[i] += 5         # the board charged 5 mu the head-end did not (and at its next
                                              # record, from its tariff state, 5 mu less)
                charged = board.charged[i]
            seq += 1
            recs.append([seq, protocol.KIND_READING, i, t, [energy[i], 300, 0, charged] + board.band_list(i)])
        n += 1
        now[0] = t
        body = protocol.message(dev, n, protocol.RECORDS, t, after=recs[0][0] - 1, recs=recs)
        out = ingest.handle(protocol.topic_up(dev), protocol.seal(body, k))
        assert out, ingest.stats.snapshot()
        heard.append(hear([p for _topic, p in out]))
        if step == 9:
            # a sale at the desk: its credit goes through the outbox, not with a records ack
            with sf() as s:
                sales.sell(s, system_actor(s), accounts[0], 10_000_000)
                s.commit()
                queued = s.exec(select(Downlink).where(Downlink.concentrator_id == conc_id,
                                                       Downlink.sent == None)  # noqa: E711
                                .order_by(Downlink.n)).all()
            assert hear([d.payload for d in queued]) == {0}
        bal = balances()
        for i in range(METERS):
            assert board.value(i) == bal[accounts[i]], (step, i, board.value(i), bal[accounts[i]])

    # the first message set every meter's reference
    assert heard[0] == set(range(METERS))
    # the two meters of one account hear every message: each one's charge changes the other's credit
    assert all({2, 3} <= h for h in heard)
    # the 5 mu the board charged alone, and taken back: two mismatches, each message with the meter's credit
    with sf() as s:
        mism = s.exec(select(Event).where(Event.code == EV_BILLING_MISMATCH)).all()
    assert [e.meter_index for e in mism] == [1, 1, 0, 0]
    assert 1 in heard[6] and 1 in heard[7]
    # so with the 3 mu a board charged where the head-end charged nothing: the balance did not move,
    # the board's credit did
    assert 0 in heard[12] and 0 in heard[13]
    # meters 0 and 1 alone on their accounts: at least one credit in every hour (4 records),
    # and nothing else after the first message but the mismatches
    for i in (0, 1):
        got = [j for j, h in enumerate(heard) if i in h]
        assert all(any(j <= x < j + 4 for x in got) for j in range(0, len(heard) - 3)), (i, got)
        assert len([j for j in got if j not in (0, 6, 7, 12, 13)]) <= 4, (i, got)
    assert sum(1 for h in heard[1:] if not ({0, 1} & h)) >= 8, heard
