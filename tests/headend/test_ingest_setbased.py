"""Set-based ingest (issue 13): a message costs a handful of statements
whatever the history, resends and gaps still store and bill once, the
anti-replay window lets a board's messages finish in any order, the
recharge count is a counter, bus error counters live in the database."""
import secrets
import uuid

import pytest
from sqlalchemy import event, text
from sqlmodel import select

from concentrator import protocol
from headend.core import db
from headend.ingest import Ingest
from headend.models import Account, Concentrator, LedgerEntry, Meter, MeterBusErrors, Reading
from headend.services import ledger, meters as meter_service, pushes
from headend.services.seed import seed_site
from tests.headend.test_headend_ingest import Board, T0, reading

METERS = 8


@pytest.fixture
def board_site(engine):
    sf = db.session_factory(engine)
    dev = "sb-" + uuid.uuid4().hex[:8]
    key = secrets.token_hex(32)
    with sf() as s:
        res = seed_site(s, "site-" + dev, [{"dev": dev, "key_hex": key, "meters": [
            {"id": "%s-%d" % (dev, i), "model": "sdm120", "opening_energy_wh": 1000} for i in range(METERS)]}],
            tariff_price_mu_per_kwh=6000, opening_balance_mu=10 ** 9)
        s.commit()
    c = res["concentrators"][dev]
    accounts = sorted(m["account_id"] for m in c["meters"].values())
    return sf, engine, Board(dev, key), c["id"], accounts


def batch(first_seq, energy):
    return [reading(first_seq + i, i, energy) for i in range(METERS)]


def ledger_ok(sf):
    with sf() as s:
        return ledger.check_cache(s) == []


def test_statements_per_message_do_not_grow_with_history(board_site):
    sf, engine, board, conc_id, accounts = board_site
    ing = Ingest(sf, clock=lambda: T0 + 10 ** 6)
    count = []
    event.listen(engine, "before_cursor_execute", lambda *a: count.append(1))
    seq, energy, per_message = 1, 2000, []
    for i in range(40):
        count.clear()
        assert ing.handle(*board.rd(batch(seq, energy)))
        per_message.append(len(count))
        seq += METERS
        energy += 100
    # the first messages set the baselines; after that a message costs the same
    # handful of statements (the low-balance forecast is refreshed every few hours)
    early, late = sorted(per_message[5:20]), sorted(per_message[25:])
    assert early[len(early) // 2] == late[len(late) // 2] <= 25, per_message
    with sf() as s:
        assert s.exec(select(Reading).where(Reading.concentrator_id == conc_id)).all().__len__() == 40 * METERS
        conc = s.get(Concentrator, conc_id)
        assert conc.acked_seq == conc.top_seq == 40 * METERS
    assert ledger_ok(sf)


def test_resent_batch_and_gap_store_and_bill_once(board_site):
    sf, _engine, board, conc_id, accounts = board_site
    ing = Ingest(sf, clock=lambda: T0 + 10 ** 6)
    assert ing.handle(*board.rd(batch(1, 2000)))               # baselines
    def consumption_entries(s):
        return len(s.exec(select(LedgerEntry).where(LedgerEntry.kind == "consumption",
                                                    LedgerEntry.account_id.in_(accounts))).all())
    with sf() as s:
        before = {a: s.get(Account, a).balance_mu for a in accounts}
        entries_before = consumption_entries(s)
    second = batch(METERS + 1, 3000)                            # +1 kWh each
    ing.handle(*board.rd(second[:3] + second[4:]))              # seq 12 missing: the ack stops at 11
    acks = [b for b in board.receive(ing.handle(*board.rd(second[4:]))) if b["t"] == protocol.ACK]
    assert acks[0]["seq"] == METERS + 3                         # a resend of stored ones: same ack, nothing new
    acks = [b for b in board.receive(ing.handle(*board.rd(second[3:4]))) if b["t"] == protocol.ACK]
    assert acks[0]["seq"] == 2 * METERS                         # the gap filled: the ack jumps to the top
    with sf() as s:
        seqs = s.exec(select(Reading.seq).where(Reading.concentrator_id == conc_id)).all()
        assert sorted(seqs) == list(range(1, 2 * METERS + 1))
        after = {a: s.get(Account, a).balance_mu for a in accounts}
        n_entries = consumption_entries(s) - entries_before
    assert {a: before[a] - after[a] for a in accounts} == {a: 6000 for a in accounts}     # 1 kWh at 0.60, once
    assert n_entries == METERS
    assert ledger_ok(sf)


def test_messages_finish_in_any_order_but_a_replay_is_refused(board_site):
    sf, _engine, board, conc_id, _accounts = board_site
    ing = Ingest(sf, clock=lambda: T0 + 10 ** 6)
    msgs = [board.rd(batch(1 + i * METERS, 2000 + 100 * i)) for i in range(4)]
    status = board.up(protocol.STATUS, pending=0, last=4 * METERS, acked=0)
    # a second worker finished the newer ones first
    for m in (msgs[2], status, msgs[0], msgs[3], msgs[1]):
        ing.handle(*m)
    assert ing.stats.get("rejected") == 0 and ing.stats.get("accepted") == 5
    assert ing.handle(*msgs[1]) == [] and ing.stats.get("rejected_replay") == 1     # the very same message again
    with sf() as s:
        conc = s.get(Concentrator, conc_id)
        assert conc.acked_seq == 4 * METERS and conc.last_up_n == board.n
        assert len(s.exec(select(Reading).where(Reading.concentrator_id == conc_id)).all()) == 4 * METERS
    # older than the window: refused
    board.n = 0
    for _ in range(70):
        board.up(protocol.STATUS, pending=0)
    ing.handle(*board.up(protocol.STATUS, pending=0))     # n = 71: new
    assert ing.stats.get("rejected") == 1
    board.n = 2
    ing.handle(*board.up(protocol.STATUS, pending=0))     # n = 3, far behind 71
    assert ing.stats.get("rejected_replay") == 2
    assert ledger_ok(sf)


def test_recharge_count_is_kept_with_the_balance(board_site):
    sf, _engine, _board, _conc_id, accounts = board_site
    a = accounts[0]
    with sf() as s:
        start = pushes.recharge_counts(s, [a])[a]
        e1 = ledger.post(s, a, "recharge", 500, concentrator_id=_conc_id, source="system")
        ledger.post(s, a, "recharge", 700, concentrator_id=_conc_id, source="system")
        s.flush()
        ledger.post(s, a, "reversal", -500, concentrator_id=_conc_id, source="system", related_entry_id=e1.id)
        ledger.post(s, a, "consumption", -10, concentrator_id=_conc_id, source="ingest")
        s.commit()
    with sf() as s:
        assert pushes.recharge_counts(s, [a])[a] == start + 1
        counted = s.execute(text("SELECT sum(CASE kind WHEN 'recharge' THEN 1 ELSE -1 END) FROM ledger_entry "
                                 "WHERE account_id = :a AND kind IN ('recharge', 'reversal')"), {"a": a}).scalar()
        assert pushes.recharge_counts(s, [a])[a] == counted


def s_index(sf):
    """meter pk -> its index on the board."""
    with sf() as s:
        return dict(s.exec(select(Meter.id, Meter.index)).all())


def test_bus_errors_are_seen_by_every_worker_and_after_a_restart(board_site):
    sf, _engine, board, _conc_id, _accounts = board_site
    worker_a = Ingest(sf, clock=lambda: T0 + 10 ** 6)
    assert worker_a.handle(*board.hello(meters=["x"] * METERS))
    worker_a.handle(*board.up(protocol.STATUS, pending=0, up=7200, bus=[[1, 3, 2, 0, 1, 0], [5, 0, 0, 9, 0, 1]],
                                  meters=[[i, 1, 1, 0] for i in range(METERS)]))
    worker_b = Ingest(sf, clock=lambda: T0 + 10 ** 6 + 60)       # another process: shares nothing in memory
    worker_b.handle(*board.up(protocol.STATUS, pending=0, up=7260, bus=[[1, 4, 2, 0, 1, 0]],
                                  meters=[[i, 1, 1, 0] for i in range(METERS)]))
    with sf() as s:
        rows = {r.meter_id: r for r in s.exec(select(MeterBusErrors)).all()}
        got = meter_service.bus_errors_of(s, list(rows))
    by_index = sorted(got.items())
    assert len(got) == METERS                                     # every meter: zeros for the quiet ones
    nonzero = {k: v for k, v in got.items() if any(v[x] for x in ("timeouts", "crc", "wrong_address",
                                                                  "exceptions", "offline"))}
    assert [(v["timeouts"], v["crc"], v["exceptions"]) for v in nonzero.values()] == [(4, 2, 1)]
    # ts: since when a row holds what it holds. Meter 1's counters grew and meter 5's errors
    # ended (back to zero) at the second status; the quiet meters' zeros were not rewritten
    changed = {rows_id for rows_id, r in rows.items() if r.ts == T0 + 10 ** 6 + 60}
    by_pos = {board_index: mid for mid, board_index in s_index(sf).items()}
    assert changed == {by_pos[1], by_pos[5]}, (changed, by_pos)
    assert all(v["ts"] == T0 + 10 ** 6 for k, v in by_index if k not in changed)


def test_a_status_stores_its_meters_rows_alone_or_in_a_batch_with_records(board_site):
    """A status's meters' rows (online, relay closed, the board's local
    credit) are stored, and leave the billing state alone; in one batch with
    a records message of the same board, both are."""
    sf, _engine, board, _conc_id, accounts = board_site
    ing = Ingest(sf, clock=lambda: T0 + 10 ** 6)
    assert ing.handle(*board.rd(batch(1, 2000)))
    with sf() as s:
        before = {m.index: (m.tariff_state, m.billed_seq, m.billed_energy_wh) for m in s.exec(select(Meter)).all()}
    rows = [[i, i % 2, 1 - i % 2, 1000 * i - 500] for i in range(METERS)]
    ing.handle(*board.up(protocol.STATUS, pending=0, up=600, meters=rows, bus=[]))
    with sf() as s:
        ms = {m.index: m for m in s.exec(select(Meter)).all()}
        assert [(ms[i].online, ms[i].relay_closed, ms[i].local_credit_mu) for i in range(METERS)] == \
            [(bool(i % 2), not i % 2, 1000 * i - 500) for i in range(METERS)]
        assert {i: (m.tariff_state, m.billed_seq, m.billed_energy_wh) for i, m in ms.items()} == before
    # a batch: records, then a status that puts every meter back online with new credits
    out = ing.handle_batch([board.rd(batch(1 + METERS, 2500)),
                            board.up(protocol.STATUS, pending=0, up=900, meters=[[i, 1, 1, 7 * i] for i in range(METERS)],
                                     bus=[])])
    assert out[0] and ing.stats.get("batch_fallbacks") == 0
    with sf() as s:
        ms = {m.index: m for m in s.exec(select(Meter)).all()}
        assert [(ms[i].online, ms[i].relay_closed, ms[i].local_credit_mu) for i in range(METERS)] == \
            [(True, True, 7 * i) for i in range(METERS)]
        assert all(m.billed_energy_wh == 2500 and m.billed_seq == METERS + 1 + i for i, m in ms.items())
    assert ledger_ok(sf)


def test_an_events_only_message_keeps_the_accumulators_the_next_reading_bills_from(board_site):
    """A records message of relay events only changes the meters' rows
    without billing them (their accumulators are never decoded: they are
    written back as they were); the next reading bills from them, to the mu."""
    sf, _engine, board, _conc_id, accounts = board_site
    ing = Ingest(sf, clock=lambda: T0 + 10 ** 6)
    assert ing.handle(*board.rd(batch(1, 2000)))               # baselines
    assert ing.handle(*board.rd(batch(1 + METERS, 3000)))      # +1 kWh each: 6000 mu
    with sf() as s:
        before = {m.index: m.tariff_state for m in s.exec(select(Meter)).all()}
        balances = {a: s.get(Account, a).balance_mu for a in accounts}
    assert all(isinstance(st, dict) and st["wh"] == 2000 for st in before.values()), before  # since opening
    seq = 1 + 2 * METERS
    events = [[seq + i, protocol.KIND_EVENT, i, T0, [protocol.EV_RELAY_OPEN, protocol.R_CREDIT]] for i in range(METERS)]
    assert ing.handle(*board.rd(events))
    with sf() as s:
        ms = {m.index: m for m in s.exec(select(Meter)).all()}
        assert all(not m.relay_closed for m in ms.values())
        assert {i: m.tariff_state for i, m in ms.items()} == before
    assert ing.handle(*board.rd(batch(seq + METERS, 3500)))    # +0.5 kWh each: 3000 mu
    with sf() as s:
        assert {a: balances[a] - s.get(Account, a).balance_mu for a in accounts} == dict.fromkeys(accounts, 3000)
        assert all(m.tariff_state["wh"] == 2500 for m in s.exec(select(Meter)).all())
    assert ledger_ok(sf)
