"""ingest: how fast the head-end stores and bills readings, on SQLite and
PostgreSQL, against what the database itself can do, with and without
history.

A simulated board with 32 meters sends `rd` messages of 32 readings (one
record interval of every meter, 15 minutes apart) with the five TOU band
registers and its own charged_mu, computed with concentrator.tariff as the
firmware does (a TOU + tiered tariff), signed with its key; each message
goes through the ingest (billing, ledger, ack, credit pushes). Everything is
checked: every reading stored once, every account's balance equal to its
ledger, no billing mismatch between board and head-end.

The main figures are the batch path, as a worker runs it when it finds
messages queued (transport/mqtt.py drains up to WK_INGEST_BATCH of them into
one Ingest.handle_batch transaction): the messages are handed over BATCH at a
time (64, the worker's default), as a backlog of the board's messages waiting
in the worker's queue (after an outage, or a burst): 64 messages are 16 hours
of this board's records. The single-message figures (one
Ingest.handle transaction per message: what an idle worker does with a
message that arrives alone) are kept beside them.

    ingest_readings_per_s_sqlite      readings/s through Ingest.handle_batch, SQLite (WAL), empty database
    ingest_readings_per_s_postgres    the same on PostgreSQL
    ingest_steady_readings_per_s_sqlite     the batch path in the board's second billing cycle: what a board
                                      does for the rest of its life (in its first cycle the head-end also
                                      checks the board's charges on a copy of its accumulator, once per
                                      meter and transaction: ingest/board_check; the main figures are
                                      first-cycle figures)
    ingest_steady_readings_per_s_postgres   the same on PostgreSQL
    ingest_single_readings_per_s_sqlite     readings/s through Ingest.handle (one message per transaction)
    ingest_single_readings_per_s_postgres   the same on PostgreSQL
    ingest_batch_messages             messages per batch
    ingest_naive_per_s_postgres       the same rows, one INSERT + COMMIT per reading
    ingest_bulk_per_s_postgres        the same rows, one COPY + COMMIT per 32-reading message
    ingest_vs_naive_ratio_postgres    ingest / naive
    ingest_vs_bulk_ratio_postgres     ingest / bulk (goal >= 0.30 after the set-based rewrite)
    ingest_aged_readings_per_s_postgres   the batch path with a year of history (full run; --quick: 30 days),
                                      vacuumed and checkpointed as a slowly aged database is (settle_history)
    ingest_age_ratio_postgres         aged / empty (goal >= 0.9)
    ingest_history_days               days of history behind the aged figure
    ingest_fleet_readings_per_s_postgres     the batch path as a fleet's worker finds it: each batch one message
                                      of each of ingest_fleet_boards boards (32 meters each, 15 minutes
                                      apart), so every message brings other meters and accounts
    ingest_fleet_boards               boards per batch of that figure
    ingest_statements_per_message_postgres   SQL statements one message costs (batch path: a batch's statements / its messages)
    ingest_single_statements_per_message_postgres   the same, one message per transaction
    ingest_errors                     readings lost or doubled, balances off, mismatches (must be 0)
"""
import io
import random
import secrets
import time

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

DEV = "bench-c1"
METERS = 32
RECORD_S = 900
START = 1764518400            # 2025-12-01 00:00 UTC: history runs up to START + days
TOU_TIERS = {"version": 1, "effective": 0, "tz_offset_s": 28800,
             "prices": {"sharp": 12000, "peak": 9000, "flat": 6000, "valley": 3000},
             "tou": {"days": {"workday": [["00:00", "valley"], ["08:00", "flat"], ["10:00", "peak"],
                                          ["19:00", "sharp"], ["21:00", "flat"], ["23:00", "valley"]]},
                     "seasons": [{"from": "01-01", "to": "12-31", "weekday": "workday"}]},
             "tiers": [{"from_wh": 0, "add": 0}, {"from_wh": 230000, "add": 500}, {"from_wh": 400000, "add": 3000}]}
NEXT_CYCLE = START + 31 * 86400   # 2026-01-01 08:00 local (UTC+8): the tariff's second monthly cycle
OPENING_WH = 1_000_000
BATCH = 64                    # messages per Ingest.handle_batch: a worker's default (WK_INGEST_BATCH)
READING_COLUMNS = ("concentrator_id", "seq", "meter_index", "meter_id", "ts", "energy_wh", "power_w", "flags",
                   "bands", "charged_mu", "billed_mu", "billed", "received")


class SimBoard:
    """The firmware's side of a records message, without the firmware:
    cumulative registers per band (the band in force at t - 1) and the
    board's own charge, concentrator.tariff.charge_registers, as
    docs/protocol.md says."""

    def __init__(self, key_hex, versions, t0, seed=1, dev=DEV):
        from concentrator import tariff
        self.T = tariff
        self.dev = dev
        self.key = bytes.fromhex(key_hex)
        self.versions = versions
        self.t = t0
        self.n = 0
        self.seq = 0
        self.r = random.Random(seed)
        self.energy = [OPENING_WH] * METERS
        self.regs = [dict.fromkeys(tariff.BANDS, 0) for _ in range(METERS)]
        for m in range(METERS):
            self.regs[m]["flat"] = OPENING_WH
        self.fresh_tariff_state()

    def fresh_tariff_state(self):
        self.state = [self.T.new_state() for _ in range(METERS)]
        self.charged = [0] * METERS
        self.first = [True] * METERS

    def records(self, charge=True):
        """One interval of every meter: 32 records (charge=False: no
        charged_mu arithmetic, for history that is reset afterwards)."""
        self.t += RECORD_S
        band = self.T.band_at(self.versions, self.t - 1)
        recs = []
        for m in range(METERS):
            wh = self.r.randint(10, 400)
            self.energy[m] += wh
            self.regs[m][band] += wh
            if not charge:
                pass
            elif self.first[m]:
                self.T.charge_registers(self.versions, self.state[m], dict(self.regs[m]), self.t - 1)
                self.first[m] = False
            else:
                self.charged[m] += self.T.charge_registers(self.versions, self.state[m], dict(self.regs[m]),
                                                           self.t - 1)
            self.seq += 1
            recs.append([self.seq, 0, m, self.t, [self.energy[m], wh * 4, 0, self.charged[m]]
                         + [self.regs[m][b] for b in self.T.BANDS]])
        return recs

    def skip_to(self, t):
        """The next record at t (a jump over the time in between: one
        interval's energy, as after an outage)."""
        self.t = t - RECORD_S

    def message(self):
        from concentrator import protocol
        self.n += 1
        recs = self.records()
        body = protocol.message(self.dev, self.n, protocol.RECORDS, self.t, after=recs[0][0] - 1, recs=recs)
        return protocol.topic_up(self.dev), protocol.seal(body, self.key), recs


def _database(kind, tmpdir):
    if kind == "sqlite":
        import os
        return "sqlite:///" + os.path.join(tmpdir, "ingest.db"), None
    from tools.pgtemp import temp_database
    return temp_database("wk_bench_")


def _seed(engine):
    from headend.core import db
    from headend.services import tariffs
    from headend.services.seed import seed_site
    key = secrets.token_hex(32)
    sf = db.session_factory(engine)
    with sf() as s:
        res = seed_site(s, "Bench Court", [{"dev": DEV, "key_hex": key, "meters": [
            {"id": "bm-%02d" % i, "model": "sdm120", "opening_energy_wh": OPENING_WH} for i in range(METERS)]},
            {"dev": "bench-naive", "meters": []}, {"dev": "bench-copy", "meters": []}],
            tariff_spec=TOU_TIERS, opening_balance_mu=10 ** 10)
        s.commit()
        versions = tariffs.property_versions(s, res["property_id"])
    return sf, key, versions, res


class StatementCounter:
    def __init__(self, engine):
        self.n = 0
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *a):
        self.n += 1


def _ingest(sf, board, messages, clock, batch=BATCH):
    """-> readings/s over `messages` messages (after one warm-up), and the
    records sent. batch > 1: handed over `batch` messages at a time
    (Ingest.handle_batch); 1: one Ingest.handle each."""
    from headend.ingest import Ingest
    ingest = Ingest(sf, clock=clock)
    sent = []
    topic, payload, recs = board.message()          # warm-up: first readings are baselines
    assert ingest.handle(topic, payload), "warm-up message not acknowledged"
    sent += recs
    msgs = [board.message() for _ in range(messages)]
    t0 = time.perf_counter()
    for i in range(0, len(msgs), batch):
        part = msgs[i:i + batch]
        if batch == 1:
            outs = [ingest.handle(part[0][0], part[0][1])]
        else:
            outs = ingest.handle_batch([(topic, payload) for topic, payload, _r in part])
        if not all(outs):
            raise RuntimeError("a message was not acknowledged: %s" % ingest.stats.snapshot())
        for _t, _p, recs in part:
            sent += recs
    wall = time.perf_counter() - t0
    if ingest.stats.get("errors") or ingest.stats.get("rejected") or ingest.stats.get("batch_fallbacks"):
        raise RuntimeError("ingest errors: %s" % ingest.stats.snapshot())
    return messages * METERS / wall, sent


def _check(engine, res, sent):
    """Readings lost or doubled + accounts whose balance is not their ledger + mismatch events."""
    conc_id = res["concentrators"][DEV]["id"]
    with engine.connect() as c:
        stored = c.execute(text("SELECT count(*), count(DISTINCT seq), count(*) FILTER (WHERE billed) FROM reading "
                                "WHERE concentrator_id = :c AND seq >= :lo"), {"c": conc_id, "lo": sent[0][0]}).one()
    # every reading stored once and billed, balances = ledger, board and head-end agree
    return abs(stored[0] - len(sent)) + (stored[0] - stored[1]) + (stored[0] - stored[2]) + _check_balances(engine)


def _check_balances(engine):
    """Accounts whose balance is not their ledger + billing mismatch events (board and head-end disagree)."""
    from headend.core.events import EV_BILLING_MISMATCH
    with engine.connect() as c:
        off = c.execute(text("SELECT count(*) FROM account a LEFT JOIN (SELECT account_id, sum(amount_mu) s FROM "
                             "ledger_entry GROUP BY account_id) l ON l.account_id = a.id "
                             "WHERE a.balance_mu <> COALESCE(l.s, 0)")).scalar()
        mism = c.execute(text("SELECT count(*) FROM event WHERE code = :c"), {"c": EV_BILLING_MISMATCH}).scalar()
    return off + mism


def _rows(conc_id, recs):
    import json
    return [(conc_id, r[0], r[2], None, r[3], r[4][0], r[4][1], r[4][2], json.dumps(r[4][4:]), r[4][3], None,
             False, r[3]) for r in recs]


def _naive(engine, conc_id, recs):
    """One INSERT + COMMIT per reading -> rows/s."""
    sql = text("INSERT INTO reading (%s) VALUES (%s)" % (", ".join(READING_COLUMNS),
                                                          ", ".join(":" + c for c in READING_COLUMNS)))
    rows = [dict(zip(READING_COLUMNS, r)) for r in _rows(conc_id, recs)]
    t0 = time.perf_counter()
    with engine.connect() as c:
        for row in rows:
            c.execute(sql, row)
            c.commit()
    return len(rows) / (time.perf_counter() - t0)


def _copy(raw, table, columns, rows):
    buf = io.StringIO()
    for r in rows:
        buf.write("\t".join("\\N" if v is None else ("t" if v is True else "f" if v is False else str(v))
                            for v in r) + "\n")
    buf.seek(0)
    with raw.cursor() as cur:
        cur.copy_expert("COPY %s (%s) FROM STDIN" % (table, ", ".join(columns)), buf)


def _bulk(engine, conc_id, recs):
    """One COPY + COMMIT per 32-reading message -> rows/s."""
    rows = _rows(conc_id, recs)
    raw = engine.raw_connection()
    try:
        t0 = time.perf_counter()
        for i in range(0, len(rows), METERS):
            _copy(raw, "reading", READING_COLUMNS, rows[i:i + METERS])
            raw.commit()
        return len(rows) / (time.perf_counter() - t0)
    finally:
        raw.close()


def add_history(engine, res, board, days):
    """`days` of the board's past, as the ingest would have left it: billed
    readings and their consumption entries (COPY), then the meters' billing
    pointers, the board's counters and the balances. The board and the
    head-end both start a fresh tariff cycle state after it."""
    from headend.core import partitions
    conc_id = res["concentrators"][DEV]["id"]
    meters = res["concentrators"][DEV]["meters"]
    by_index = {m["index"]: m for m in meters.values()}
    with engine.begin() as c:
        partitions.ensure(c, board.t + (days + 62) * 86400, 3, since=board.t)
    raw = engine.raw_connection()
    try:
        for _day in range(days):
            recs = []
            for _i in range(86400 // RECORD_S):
                recs += board.records(charge=False)
            rows = _rows(conc_id, recs)
            rows = [r[:3] + (by_index[r[2]]["id"],) + r[4:10] + (r[5] // 1000 * 6,) + (True, r[4]) for r in rows]
            _copy(raw, "reading", READING_COLUMNS, rows)
            ledger = [(by_index[r[2]]["account_id"], "consumption", -(r[5] // 1000 * 6), 0, conc_id, "ingest",
                       "reading:history/seq:%d" % r[1], "", r[4]) for r in rows]
            _copy(raw, "ledger_entry", ("account_id", "kind", "amount_mu", "balance_after_mu", "concentrator_id",
                                        "source", "reference", "note", "created"), ledger)
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as c:
        for idx, m in by_index.items():
            c.execute(text("UPDATE meter SET billed_seq = :s, billed_energy_wh = :e, billed_ts = :t, "
                           "tariff_state = NULL, board_tariff_state = NULL, board_charged_mu = NULL WHERE id = :id"),
                      {"s": board.seq - METERS + 1 + idx, "e": board.energy[idx], "t": board.t, "id": m["id"]})
        c.execute(text("UPDATE concentrator SET acked_seq = :s WHERE id = :id"), {"s": board.seq, "id": conc_id})
        c.execute(text("UPDATE account SET balance_mu = COALESCE((SELECT sum(amount_mu) FROM ledger_entry l "
                       "WHERE l.account_id = account.id), 0)"))
    settle_history(engine)
    board.fresh_tariff_state()


def settle_history(engine):
    """What a year of autovacuum and checkpoints leave behind a database
    that aged slowly, done at once for a history COPYed in seconds: the
    tables vacuumed and analysed, the dirty pages written. Otherwise
    autovacuum's first pass over the 2 million new rows, and the checkpoint
    they force, land in the middle of the aged measurement (a full run
    measured 0.82 and 1.07 that way on the same code)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM (ANALYZE) reading, ledger_entry, meter, account, concentrator"))
        try:
            c.execute(text("CHECKPOINT"))        # superuser or pg_checkpoint; else the server's own schedule
        except DBAPIError as e:
            print("# ingest: no CHECKPOINT before the aged run (%s)" % str(e.orig).strip().splitlines()[0])


def _fleet(engine, boards, rounds):
    """-> readings/s of batches made of one message of each of `boards`
    boards (their own property, every reading checked as _check does)."""
    from headend.core import db
    from headend.ingest import Ingest
    from headend.services import tariffs
    from headend.services.seed import seed_site
    sf = db.session_factory(engine)
    keys = {"fleet-%03d" % i: secrets.token_hex(32) for i in range(boards)}
    with sf() as s:
        res = seed_site(s, "Fleet Court", [{"dev": d, "key_hex": k, "meters": [
            {"id": "%s-%02d" % (d, i), "model": "sdm120", "opening_energy_wh": OPENING_WH} for i in range(METERS)]}
            for d, k in keys.items()], tariff_spec=TOU_TIERS, opening_balance_mu=10 ** 10)
        s.commit()
        versions = tariffs.property_versions(s, res["property_id"])
    fleet = [SimBoard(k, versions, START, seed=10 + i, dev=d) for i, (d, k) in enumerate(keys.items())]
    ingest = Ingest(sf, clock=lambda: fleet[0].t + 5)
    for b in fleet:                                  # warm-up: first readings are baselines
        assert ingest.handle(*b.message()[:2]), "warm-up message not acknowledged"
    wall, n = 0.0, 0
    for _r in range(rounds):
        msgs = [b.message() for b in fleet]
        t0 = time.perf_counter()
        for i in range(0, len(msgs), BATCH):
            if not all(ingest.handle_batch([(t, p) for t, p, _rc in msgs[i:i + BATCH]])):
                raise RuntimeError("a message was not acknowledged: %s" % ingest.stats.snapshot())
        wall += time.perf_counter() - t0
        n += len(msgs) * METERS
    if ingest.stats.get("errors") or ingest.stats.get("rejected") or ingest.stats.get("batch_fallbacks"):
        raise RuntimeError("ingest errors: %s" % ingest.stats.snapshot())
    ids = [c["id"] for c in res["concentrators"].values()]
    with engine.connect() as c:
        stored = c.execute(text("SELECT count(*), count(*) FILTER (WHERE billed) FROM reading WHERE concentrator_id "
                                "= ANY(:ids)"), {"ids": ids}).one()
    expected = boards * METERS * (rounds + 1)           # every reading stored once and billed
    return n / wall, abs(stored[0] - expected) + (stored[0] - stored[1])


def _measure(kind, messages, history_days, tmpdir, out):
    from headend.core import db, heap, migrate
    url, drop = _database(kind, tmpdir)
    engine = db.make_engine(url)
    try:
        migrate.upgrade(engine)
        sf, key, versions, res = _seed(engine)
        from headend.core import partitions
        with engine.begin() as c:
            partitions.ensure(c, START, 3, since=START)
        board = SimBoard(key, versions, START)
        heap.settle()                     # what `wattkeeper serve` and `worker` do once started (core/heap.py)
        clock = lambda: board.t + 5       # noqa: E731  (the head-end's clock follows the board's)
        name = "sqlite" if kind == "sqlite" else "postgres"
        counter = StatementCounter(engine) if kind == "postgresql" else None
        single, sent = _ingest(sf, board, messages, clock, batch=1)
        out["ingest_single_readings_per_s_%s" % name] = round(single)
        if counter is not None:
            out["ingest_single_statements_per_message_postgres"] = round(counter.n / (messages + 1), 2)
            counter.n = 0
        rate, sent2 = _ingest(sf, board, messages, clock)
        sent += sent2
        out["ingest_readings_per_s_%s" % name] = round(rate)
        out["ingest_batch_messages"] = BATCH
        errors = _check(engine, res, sent)
        statements = counter.n if counter is not None else 0
        board.skip_to(NEXT_CYCLE)         # the copy of the board's accumulator goes (billing.apart)
        steady, sent2 = _ingest(sf, board, messages, clock)
        errors += _check(engine, res, sent2)
        out["ingest_steady_readings_per_s_%s" % name] = round(steady)
        if kind == "postgresql":
            out["ingest_statements_per_message_postgres"] = round(statements / (messages + 1), 2)
            naive = _naive(engine, res["concentrators"]["bench-naive"]["id"], sent)
            bulk = _bulk(engine, res["concentrators"]["bench-copy"]["id"], sent)
            out["ingest_naive_per_s_postgres"] = round(naive)
            out["ingest_bulk_per_s_postgres"] = round(bulk)
            out["ingest_vs_naive_ratio_postgres"] = round(rate / naive, 3)
            out["ingest_vs_bulk_ratio_postgres"] = round(rate / bulk, 3)
            add_history(engine, res, board, history_days)
            aged, sent2 = _ingest(sf, board, messages, clock)
            errors += _check(engine, res, sent2)
            out["ingest_aged_readings_per_s_postgres"] = round(aged)
            out["ingest_age_ratio_postgres"] = round(aged / rate, 3)
            out["ingest_history_days"] = history_days
            fleet_boards = 8 if messages < 640 else BATCH
            rate, lost = _fleet(engine, fleet_boards, rounds=4 if messages < 640 else 12)
            errors += lost + _check_balances(engine)
            out["ingest_fleet_readings_per_s_postgres"] = round(rate)
            out["ingest_fleet_boards"] = fleet_boards
        out["ingest_errors"] = out.get("ingest_errors", 0) + errors
    finally:
        engine.dispose()
        if drop:
            drop()


def run(quick=False):
    import tempfile
    out = {}
    with tempfile.TemporaryDirectory(prefix="wk-bench-") as tmp:
        for kind in ("sqlite", "postgresql"):
            _measure(kind, messages=128 if quick else 640, history_days=30 if quick else 365, tmpdir=tmp, out=out)
    order = ("ingest_readings_per_s_sqlite", "ingest_readings_per_s_postgres", "ingest_steady_readings_per_s_sqlite",
             "ingest_steady_readings_per_s_postgres", "ingest_single_readings_per_s_sqlite",
             "ingest_single_readings_per_s_postgres", "ingest_batch_messages", "ingest_naive_per_s_postgres",
             "ingest_bulk_per_s_postgres", "ingest_vs_naive_ratio_postgres", "ingest_vs_bulk_ratio_postgres",
             "ingest_aged_readings_per_s_postgres", "ingest_age_ratio_postgres", "ingest_history_days",
             "ingest_fleet_readings_per_s_postgres", "ingest_fleet_boards",
             "ingest_statements_per_message_postgres", "ingest_single_statements_per_message_postgres",
             "ingest_errors")
    return {k: out[k] for k in order}


if __name__ == "__main__":
    import sys
    for k, v in run(quick="--quick" in sys.argv).items():
        print("%s: %s" % (k, v))
