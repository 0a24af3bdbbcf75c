"""Ingest.handle_batch (issue 13): several queued uplinks in one
transaction. A forged or replayed message in the middle is rejected and
the others are stored once; a board's messages in sequence give what one
message at a time gives; balances equal their ledger; a batch whose
transaction fails is handled again one message at a time. On SQLite and
PostgreSQL (the `engine` fixture)."""
import json
import secrets
import uuid

import pytest
from sqlalchemy import text

from concentrator import protocol
from headend.core import db
from headend.core.events import EV_UPLINK_REJECTED
from headend.ingest import Ingest
from headend.services import alerts, ledger
from headend.services.seed import seed_site
from headend.transport import downlink
from tests.headend.test_headend_ingest import Board, T0

METERS = 6
NOW = T0 + 10 ** 6


@pytest.fixture
def two_boards(engine):
    sf = db.session_factory(engine)
    tag = uuid.uuid4().hex[:8]
    keys = {"ba-%s" % tag: secrets.token_hex(32), "bb-%s" % tag: secrets.token_hex(32)}
    with sf() as s:
        res = seed_site(s, "site-" + tag, [{"dev": dev, "key_hex": k, "meters": [
            {"id": "%s-%d" % (dev, i), "model": "sdm120", "opening_energy_wh": 1000} for i in range(METERS)]}
            for dev, k in keys.items()], tariff_price_mu_per_kwh=6000, opening_balance_mu=10 ** 9)
        s.commit()
    boards = [Board(dev, k) for dev, k in keys.items()]
    ids = [res["concentrators"][b.dev]["id"] for b in boards]
    return sf, engine, boards, ids


class Meters:
    """A board's meters counting up, one records message per interval."""

    def __init__(self, board):
        self.board, self.seq, self.energy, self.i = board, 0, [1000] * METERS, 0

    def interval(self, kind_ts=None):
        self.i += 1
        recs = []
        for m in range(METERS):
            self.seq += 1
            self.energy[m] += 37 * (m + 1) + self.i
            recs.append([self.seq, protocol.KIND_READING, m, T0 + 900 * self.i, [self.energy[m], 400, 0]])
        return self.board.rd(recs), recs


def readings(engine, conc_id):
    with engine.connect() as c:
        return c.execute(text("SELECT seq, meter_index, energy_wh, billed_mu FROM reading WHERE concentrator_id = :c "
                              "ORDER BY seq"), {"c": conc_id}).all()


def balances_equal_ledger(sf):
    with sf() as s:
        return ledger.check_cache(s) == []


def charged(engine, conc_id):
    with engine.connect() as c:
        return c.execute(text("SELECT COALESCE(-sum(amount_mu), 0), count(*), count(DISTINCT reference) "
                              "FROM ledger_entry WHERE kind = 'consumption' AND concentrator_id = :c"),
                         {"c": conc_id}).one()


def test_forged_and_replayed_messages_in_a_batch_leave_the_others_stored_once(two_boards):
    sf, engine, (a, b), (a_id, b_id) = two_boards
    ma, mb = Meters(a), Meters(b)
    ing = Ingest(sf, clock=lambda: NOW)
    (a1, _r), (b1, _r2) = ma.interval(), mb.interval()
    (a2, _r3) = ma.interval()
    forged_board = Board(a.dev, secrets.token_hex(32))           # the right device, the wrong key
    forged_board.n = 50
    forged = forged_board.rd([[999, protocol.KIND_READING, 0, T0 + 5, [10 ** 6, 1, 0]]])
    (b2, _r4), (a3, _r5) = mb.interval(), ma.interval()
    batch = [a1, b1, forged, a2, a1, b2, a3]                       # a1 again: a replay on the broker
    outs = ing.handle_batch(batch)
    assert [bool(o) for o in outs] == [True, True, False, True, False, True, True]
    assert ing.stats.get("rejected_bad_mac") == 1 and ing.stats.get("rejected_replay") == 1
    assert ing.stats.get("batch_fallbacks") == 0 and ing.stats.get("errors") == 0
    # every downlink of a board in counter order over the whole batch; acks say what is stored
    acks = [bd["seq"] for bd in a.receive([m for o in outs for m in o if m[0] == protocol.topic_down(a.dev)])
            if bd["t"] == protocol.ACK]
    assert acks == [METERS, 2 * METERS, 3 * METERS]
    b.receive([m for o in outs for m in o if m[0] == protocol.topic_down(b.dev)])
    ra, rb = readings(engine, a_id), readings(engine, b_id)
    assert [r[0] for r in ra] == list(range(1, 3 * METERS + 1))    # once each, none of the forged one
    assert [r[0] for r in rb] == list(range(1, 2 * METERS + 1))
    for conc_id, rows in ((a_id, ra), (b_id, rb)):
        mu, n, refs = charged(engine, conc_id)
        assert n == refs and mu == sum(r[3] or 0 for r in rows) > 0
    assert balances_equal_ledger(sf)
    with engine.connect() as c:     # the rejections are events of board A (written after the commit)
        assert c.execute(text("SELECT count(*) FROM event WHERE concentrator_id = :c AND code = :e"),
                         {"c": a_id, "e": EV_UPLINK_REJECTED}).scalar() == 2


def test_a_boards_messages_in_one_batch_bill_as_one_at_a_time(two_boards):
    """Board A one message per transaction, board B the same messages (its
    own key) in batches: the same readings, charges, balances, rollups."""
    sf, engine, (a, b), (a_id, b_id) = two_boards
    ma, mb = Meters(a), Meters(b)
    ing = Ingest(sf, clock=lambda: NOW)
    pending = []
    for i in range(9):
        msg_a, _ = ma.interval()
        assert ing.handle(*msg_a)
        pending.append(mb.interval()[0])
        if len(pending) == 4 or i == 8:
            outs = ing.handle_batch(pending)
            assert all(outs)
            b.receive([m for o in outs for m in o])               # counters in order
            pending = []
    ra, rb = readings(engine, a_id), readings(engine, b_id)
    assert ra == rb and len(ra) == 9 * METERS
    assert charged(engine, a_id) == charged(engine, b_id)
    with engine.connect() as c:
        bal = c.execute(text("SELECT m.concentrator_id, m.\"index\", a.balance_mu FROM meter m JOIN account a "
                             "ON a.id = m.account_id WHERE m.concentrator_id IN (:a, :b) ORDER BY 2, 1"),
                        {"a": a_id, "b": b_id}).all()
        roll = c.execute(text("SELECT m.concentrator_id, m.\"index\", r.period, r.start, r.band, r.energy_wh, "
                              "r.cost_mu, r.readings FROM rollup r JOIN meter m ON m.id = r.meter_id "
                              "WHERE m.concentrator_id IN (:a, :b)"), {"a": a_id, "b": b_id}).all()
    assert [x[2] for x in bal if x[0] == a_id] == [x[2] for x in bal if x[0] == b_id]
    ka = sorted(r[1:] for r in roll if r[0] == a_id)
    assert ka and ka == sorted(r[1:] for r in roll if r[0] == b_id)
    assert balances_equal_ledger(sf)


def test_mixed_kinds_and_a_resend_inside_one_batch(two_boards):
    """hello, status and a records message sent again (its ack was lost) in
    the same batch as new records: every record once, the ack moves on."""
    sf, engine, (a, _b), (a_id, _bid) = two_boards
    ma = Meters(a)
    ing = Ingest(sf, clock=lambda: NOW)
    first, recs = ma.interval()
    again = a.rd(recs)                                              # the same records, a new counter
    second, _ = ma.interval()
    status = a.up(protocol.STATUS, pending=0, last=ma.seq, acked=0,
                  meters=[[i, 1, 1, 5000] for i in range(METERS)])
    third, _ = ma.interval()
    outs = ing.handle_batch([a.hello(meters=["%s-%d" % (a.dev, i) for i in range(METERS)]), first, status,
                             again, second, third])
    assert all(outs[:2]) and all(outs[3:])
    bodies = a.receive([m for o in outs for m in o])
    assert [bd["seq"] for bd in bodies if bd["t"] == protocol.ACK][-1] == 3 * METERS
    assert [r[0] for r in readings(engine, a_id)] == list(range(1, 3 * METERS + 1))
    mu, n, refs = charged(engine, a_id)
    assert n == refs and mu == sum(r[3] or 0 for r in readings(engine, a_id))
    assert ing.stats.get("records_duplicate") == METERS
    assert balances_equal_ledger(sf)


def test_a_failed_batch_is_handled_again_one_message_at_a_time(two_boards, monkeypatch):
    sf, engine, (a, b), (a_id, b_id) = two_boards
    ma, mb = Meters(a), Meters(b)
    ing = Ingest(sf, clock=lambda: NOW)
    real, calls = alerts.after_ingest_many, []

    def flaky(*args, **kw):
        calls.append(1)
        if len(calls) == 1:         # the batch's transaction, at its end: nothing of it may remain
            raise RuntimeError("the database went away")
        return real(*args, **kw)
    monkeypatch.setattr(alerts, "after_ingest_many", flaky)
    batch = [ma.interval()[0], mb.interval()[0], ma.interval()[0]]
    outs = ing.handle_batch(batch)
    assert all(outs) and ing.stats.get("batch_fallbacks") == 1
    assert ing.stats.get("accepted") == 3 and ing.stats.get("received") == 3
    a.receive([m for o in outs for m in o if m[0] == protocol.topic_down(a.dev)])
    assert [r[0] for r in readings(engine, a_id)] == list(range(1, 2 * METERS + 1))
    assert [r[0] for r in readings(engine, b_id)] == list(range(1, METERS + 1))
    assert balances_equal_ledger(sf)


def test_downlinks_sealed_as_the_firmware_seals_them():
    key = bytes(range(32))
    body = protocol.message("d1", 7, protocol.CREDIT, T0, m=3, bal=-12, e=5, top=1)
    assert downlink.seal_raw(json.dumps(body).encode(), key) == protocol.seal(body, key)
    assert protocol.verify(downlink.seal_raw(json.dumps(body).encode(), key), key, dev="d1") == body


@pytest.mark.parametrize("empty_engine", ["postgresql"], indirect=True)   # row locks
def test_a_board_held_by_another_worker_is_handled_after_the_others(two_boards):
    """PostgreSQL: the batch does not wait for a board another transaction
    holds; the others commit first, that board's messages follow in order."""
    import threading
    import time
    sf, engine, (a, b), (a_id, b_id) = two_boards
    assert engine.dialect.name == "postgresql"
    ma, mb = Meters(a), Meters(b)
    batch = [ma.interval()[0], mb.interval()[0], ma.interval()[0]]
    ing = Ingest(sf, clock=lambda: NOW)
    holder = engine.connect()
    holder.execute(text("SELECT id FROM concentrator WHERE id = :a FOR UPDATE"), {"a": a_id})
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("outs", ing.handle_batch(batch)))
    t.start()
    deadline = time.monotonic() + 20
    while not readings(engine, b_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(readings(engine, b_id)) == METERS and not readings(engine, a_id)   # B did not wait for A
    holder.rollback()
    holder.close()
    t.join(20)
    assert all(got["outs"]) and ing.stats.get("batch_deferred") == 2
    acks = [bd["seq"] for bd in a.receive([m for o in got["outs"] for m in o if m[0] == protocol.topic_down(a.dev)])
            if bd["t"] == protocol.ACK]
    assert acks == [METERS, 2 * METERS]
    assert [r[0] for r in readings(engine, a_id)] == list(range(1, 2 * METERS + 1))
    assert balances_equal_ledger(sf)
