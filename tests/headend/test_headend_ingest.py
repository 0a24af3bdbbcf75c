"""Head-end ingest against real databases (SQLite file in WAL mode and a
fresh PostgreSQL database)."""
import json
import os
import secrets
import sys
import uuid

import pytest

from tests.support import ROOT

from concentrator import protocol  # noqa: E402
from sqlmodel import select  # noqa: E402

from headend.core import db
from headend.services import billing, ledger  # noqa: E402
from headend.ingest import Ingest  # noqa: E402
from headend.models import Account, Concentrator, Event, LedgerEntry, Meter, Reading  # noqa: E402
from headend.services import users
from headend.services.actor import system_actor
from headend.services.seed import seed_site  # noqa: E402

PRICE = 6000          # mu per kWh (0.60 per kWh)
OPENING = 1_000_000   # mu (100.00)
T0 = 1790000000


class Board:
    """The uplink side of one concentrator, built with the real protocol module."""

    def __init__(self, dev, key_hex):
        self.dev = dev
        self.key = protocol.key_from_hex(key_hex)
        self.n = 0
        self.down_n = -1

    def up(self, kind, **fields):
        self.n += 1
        return protocol.topic_up(self.dev), protocol.seal(protocol.message(self.dev, self.n, kind, T0, **fields), self.key)

    def rd(self, recs):
        return self.up(protocol.RECORDS, recs=recs)

    def hello(self, last=0, acked=0, meters=()):
        return self.up(protocol.HELLO, fw="0.1.0", boot=1, last=last, acked=acked, meters=list(meters))

    def receive(self, msgs):
        """Verify every downlink like the board does; return the bodies."""
        bodies = []
        for topic, payload in msgs:
            assert topic == protocol.topic_down(self.dev)
            body = protocol.verify(payload, self.key, dev=self.dev, last_n=self.down_n)
            self.down_n = body["n"]
            bodies.append(body)
        return bodies


def reading(seq, idx, energy, power=500, flags=0, ts=None):
    return [seq, protocol.KIND_READING, idx, ts or T0 + seq * 60, [energy, power, flags]]


@pytest.fixture
def site(engine):
    sf = db.session_factory(engine)
    dev = "t-" + uuid.uuid4().hex[:8]
    key = secrets.token_hex(32)
    with sf() as s:
        res = seed_site(s, "site-" + dev, [{"dev": dev, "key_hex": key, "meters": [
            {"id": dev + "-A101", "model": "sdm120", "opening_energy_wh": 100_000},
            {"id": dev + "-A102", "model": "sdm120"}]}],
            tariff_price_mu_per_kwh=PRICE, opening_balance_mu=OPENING)
    ing = Ingest(sf, clock=lambda: T0 + 100000)
    c = res["concentrators"][dev]
    acc = [c["meters"][dev + "-A101"]["account_id"], c["meters"][dev + "-A102"]["account_id"]]
    return sf, ing, Board(dev, key), acc


def balances(sf, acc_ids):
    with sf() as s:
        return [s.get(Account, a).balance_mu for a in acc_ids]


def assert_ledger_consistent(sf):
    with sf() as s:
        assert ledger.check_cache(s) == []
        for a in s.exec(select(Account)).all():
            assert ledger.ledger_sum(s, a.id) == a.balance_mu


def acks(bodies):
    return [b["seq"] for b in bodies if b["t"] == protocol.ACK]


def test_hello_gets_ack_and_credit_per_meter(site):
    sf, ing, board, acc = site
    bodies = board.receive(ing.handle(*board.hello(meters=[board.dev + "-A101", board.dev + "-A102"])))
    assert acks(bodies) == [0]
    credits = [b for b in bodies if b["t"] == protocol.CREDIT]
    # meter 0 has a commissioning register value; meter 1 gets its credit with its first reading
    assert credits == [dict(credits[0], m=0, bal=OPENING, e=100_000, top=1)]
    assert "c" not in credits[0]       # no reading billed yet: the board uses the price
    # the first reading of meter 1 is its baseline: no charge, but a credit so the board can use it
    bodies = board.receive(ing.handle(*board.rd([reading(1, 1, 5000)])))
    assert acks(bodies) == [1]
    assert [(b["m"], b["bal"], b["e"]) for b in bodies if b["t"] == protocol.CREDIT] == [(1, OPENING, 5000)]
    assert balances(sf, acc) == [OPENING, OPENING]


def test_billing_ack_and_credit_push(site):
    sf, ing, board, acc = site
    energies = [100_000, 100_333, 101_001, 101_999, 103_500]
    bodies = board.receive(ing.handle(*board.rd([reading(i + 1, 0, e) for i, e in enumerate(energies)])))
    expected = OPENING - (billing.cost_mu(103_500, PRICE) - billing.cost_mu(100_000, PRICE))
    assert acks(bodies) == [5]
    assert [(b["m"], b["bal"], b["e"]) for b in bodies if b["t"] == protocol.CREDIT] == [(0, expected, 103_500)]
    assert balances(sf, acc) == [expected, OPENING]
    with sf() as s:
        entries = s.exec(select(LedgerEntry).where(LedgerEntry.account_id == acc[0],
                                                   LedgerEntry.kind == "consumption")).all()
        conc_id = s.exec(select(Concentrator.id).where(Concentrator.dev == board.dev)).one()
        # every consumption entry names the board that measured it, and no person
        assert len(entries) == 4 and all(e.concentrator_id == conc_id and e.user_id is None for e in entries)
        assert all(e.reference.startswith("reading:") for e in entries)
    assert_ledger_consistent(sf)


def test_duplicates_and_reordering_are_harmless(site):
    sf, ing, board, acc = site
    recs = [reading(i, 0, 100_000 + i * 777) for i in range(1, 11)]
    # late half first: nothing contiguous yet
    assert acks(board.receive(ing.handle(*board.rd(recs[5:])))) == [0]
    assert acks(board.receive(ing.handle(*board.rd(recs[2:5])))) == [0]
    assert acks(board.receive(ing.handle(*board.rd(recs[:2])))) == [10]
    # the whole batch again (board did not see the ack) and a shuffled copy
    assert acks(board.receive(ing.handle(*board.rd(recs)))) == [10]
    assert acks(board.receive(ing.handle(*board.rd(list(reversed(recs)) + recs[:3])))) == [10]
    with sf() as s:
        assert len(s.exec(select(Reading).where(Reading.seq > 0)).all()) == 10
    # chunk invariance: same total as one reading at the end
    assert balances(sf, acc)[0] == OPENING - (billing.cost_mu(100_000 + 10 * 777, PRICE) - billing.cost_mu(100_000, PRICE))
    assert ing.stats.get("records_duplicate") == 10 + 10  # copies inside one batch are folded first
    assert_ledger_consistent(sf)


def test_ack_is_highest_contiguous(site):
    sf, ing, board, acc = site
    assert acks(board.receive(ing.handle(*board.rd([reading(1, 0, 100_100), reading(2, 0, 100_200),
                                                   reading(4, 0, 100_400)])))) == [2]
    ev = [5, protocol.KIND_EVENT, 0, T0, [protocol.EV_RELAY_OPEN, protocol.R_CREDIT]]
    assert acks(board.receive(ing.handle(*board.rd([ev])))) == [2]
    assert acks(board.receive(ing.handle(*board.rd([reading(3, 0, 100_300)])))) == [5]
    with sf() as s:
        conc = s.exec(select(Concentrator).where(Concentrator.dev == board.dev)).one()
        assert conc.acked_seq == 5
        e = s.exec(select(Event).where(Event.concentrator_id == conc.id, Event.seq == 5)).one()
        assert e.code == protocol.EV_RELAY_OPEN and "credit" in e.message
        m = s.exec(select(Meter).where(Meter.concentrator_id == conc.id, Meter.index == 0)).one()
        assert m.relay_closed is False  # event seq 5 is the newest state
    assert balances(sf, acc)[0] == OPENING - (billing.cost_mu(100_400, PRICE) - billing.cost_mu(100_000, PRICE))


def test_gap_is_not_zero_and_implausible_is_not_billed(site):
    sf, ing, board, acc = site
    recs = [reading(1, 0, 101_000),
            reading(2, 0, 0, power=0, flags=protocol.FLAG_MISSING),       # meter offline
            reading(3, 0, 99_999_999, flags=protocol.FLAG_IMPLAUSIBLE),   # spike
            reading(4, 0, 104_000)]
    bodies = board.receive(ing.handle(*board.rd(recs)))
    assert acks(bodies) == [4]
    assert balances(sf, acc)[0] == OPENING - (billing.cost_mu(104_000, PRICE) - billing.cost_mu(100_000, PRICE))
    # a register that goes backwards is not billed either (and not credited back)
    board.receive(ing.handle(*board.rd([reading(5, 0, 50_000)])))
    assert balances(sf, acc)[0] == OPENING - (billing.cost_mu(104_000, PRICE) - billing.cost_mu(100_000, PRICE))
    with sf() as s:
        msgs = [e.message for e in s.exec(select(Event).where(Event.seq.is_(None))).all()]
    assert any("implausible" in m for m in msgs) and any("backwards" in m for m in msgs)
    assert_ledger_consistent(sf)


def test_garbage_is_counted_and_does_not_stop_ingest(site):
    sf, ing, board, acc = site
    rnd = secrets.token_bytes(300)
    good_topic, good = board.rd([reading(1, 0, 100_500)])
    body = json.loads(good.split(b"\n")[0])
    forged = good[:-64] + (b"0" * 64)                      # bad MAC
    other_key = protocol.seal(dict(body, n=body["n"] + 1), secrets.token_bytes(32))
    garbage = [
        (good_topic, rnd),                                 # random bytes
        (good_topic, b"{not json\n" + b"a" * 64),          # not JSON
        (good_topic, b"[1,2,3]\n" + b"0" * 64),            # JSON but not an object
        (good_topic, b"x" * 9000),                         # too long
        (good_topic, forged),
        (good_topic, other_key),
        ("wk/nobody-%s/up" % uuid.uuid4().hex[:6], good),  # unknown device
        ("wk/%s" % board.dev, good),                       # bad topic
        (b"\xff\xfe/up", good),
    ]
    for t, p in garbage:
        assert ing.handle(t, p) == []
    assert acks(board.receive(ing.handle(good_topic, good))) == [1]
    # the same message again is a replay, and so is an older counter
    assert ing.handle(good_topic, good) == []
    # a body naming another device (correct key) on this device's topic
    board.n += 1
    wrong = protocol.seal(protocol.message("someone-else", board.n, protocol.RECORDS, T0, recs=[]), board.key)
    assert ing.handle(good_topic, wrong) == []
    # records with bad fields: the good ones are kept, the bad one's seq is consumed
    bodies = board.receive(ing.handle(*board.rd([reading(2, 0, 100_900), [3, 0, 0, T0, ["x"]],
                                               "junk", reading(4, 0, 101_000)])))
    assert acks(bodies) == [4]
    st = ing.stats.snapshot()
    assert st["rejected_malformed"] == 5 and st["rejected_too_long"] == 1
    assert st["rejected_bad_mac"] == 2 and st["rejected_unknown_device"] == 1
    assert st["rejected_replay"] == 1 and st["rejected_wrong_device"] == 1
    assert st["bad_records"] == 2 and st["errors"] == 0
    assert st["accepted"] == 2 and st["rejected"] == 11
    assert balances(sf, acc)[0] == OPENING - (billing.cost_mu(101_000, PRICE) - billing.cost_mu(100_000, PRICE))
    with sf() as s:  # rejections of a known device are reported as events
        assert s.exec(select(Event).where(Event.code == 100)).all()


def test_downlink_counter_persists_and_increases(site):
    sf, ing, board, acc = site
    board.receive(ing.handle(*board.hello()))
    first = board.down_n
    ing2 = Ingest(sf)  # a restarted head-end
    board.receive(ing2.handle(*board.rd([reading(1, 0, 100_100)])))
    assert board.down_n > first
    # replayed uplink is still refused after restart
    old = protocol.seal(protocol.message(board.dev, 1, protocol.RECORDS, T0, recs=[]), board.key)
    assert ing2.handle(protocol.topic_up(board.dev), old) == []
    assert ing2.stats.get("rejected_replay") == 1


def test_hello_acked_skips_records_the_board_no_longer_has(site):
    sf, ing, board, acc = site
    bodies = board.receive(ing.handle(*board.hello(last=1300, acked=1200)))
    assert acks(bodies) == [1200]
    assert acks(board.receive(ing.handle(*board.rd([reading(1201, 0, 100_050)])))) == [1201]


def test_concurrent_recharges_and_consumption_keep_ledger_exact(site):
    """Cashiers recharge while readings are billed: the cached balance stays
    equal to the ledger sum and no money is lost."""
    import threading
    sf, ing, board, acc = site
    errors = []
    with sf() as s:
        sysactor = system_actor(s)
        cashiers = [users.create_user(s, sysactor, "cashier-%d" % k, "password-%d" % k, role="cashier").id
                    for k in range(3)]
        s.commit()

    def cashier(k):
        try:
            for i in range(15):
                with sf() as s:
                    ledger.post(s, acc[0], "recharge", 1000 + k, user_id=cashiers[k])
                    s.commit()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=cashier, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for seq in range(1, 31):
        board.receive(ing.handle(*board.rd([reading(seq, 0, 100_000 + seq * 1234)])))
    for t in threads:
        t.join()
    assert not errors
    assert ing.stats.get("errors") == 0
    expected = (OPENING + 15 * (1000 + 1001 + 1002)
                - (billing.cost_mu(100_000 + 30 * 1234, PRICE) - billing.cost_mu(100_000, PRICE)))
    assert balances(sf, acc)[0] == expected
    assert_ledger_consistent(sf)
