"""The readings' and the ledger's references hold on both databases: a row
naming a missing account, board or meter is refused, and so is deleting or
renumbering one that rows name. SQLite: its foreign keys. PostgreSQL: the
statement-level checks of core/statement_refs.py (migration 0015), which
replaced the row-by-row foreign keys; they also take the referenced rows'
locks, so a delete racing an insert cannot leave an entry naming nothing."""
import threading

import psycopg2
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from headend.core import bulk, db
from headend.services.seed import seed_site

LEDGER_COLS = ("account_id", "kind", "amount_mu", "balance_after_mu", "concentrator_id", "source", "reference",
               "note", "created")
READING_COLS = ("concentrator_id", "seq", "meter_index", "meter_id", "ts", "energy_wh", "bands", "billed",
                "received", "power_w", "flags")
TS = 1764518400
REFUSED = (IntegrityError, psycopg2.IntegrityError)    # COPY runs on the driver's cursor: its own error


@pytest.fixture
def site(engine):
    sf = db.session_factory(engine)
    with sf() as s:
        res = seed_site(s, "Refs Court", [{"dev": "r1", "meters": [{"id": "M1", "model": "sdm120"},
                                                                    {"id": "M2", "model": "sdm120"}]}],
                        tariff_price_mu_per_kwh=600)
        s.commit()
    conc = res["concentrators"]["r1"]
    meters = sorted(conc["meters"].values(), key=lambda m: m["index"])
    return {"conc": conc["id"], "meters": [m["id"] for m in meters], "accounts": [m["account_id"] for m in meters],
            "engine": engine, "sf": sf}


def _entry(account, conc, ref):
    return (account, "consumption", -1, -1, conc, "ingest", ref, "", TS)


def _reading(conc, seq, meter):
    return (conc, seq, 0, meter, TS + seq, 1000 + seq, "[]", False, TS, 0, 0)


def _insert(site, table, cols, rows):
    """The ingest's way: COPY on PostgreSQL, an executemany INSERT on SQLite."""
    with site["sf"]() as s:
        if s.get_bind().dialect.name == "postgresql":
            bulk.copy_rows(s, table, cols, rows)
        else:
            s.execute(text("INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(cols), ", ".join(":" + c for c in cols))),
                      [dict(zip(cols, r)) for r in rows])
        s.commit()


def _lone_account(engine):
    """An account nothing but the ledger will name (no meter, no tenant)."""
    with engine.begin() as c:
        pid = c.execute(text("SELECT min(id) FROM property")).scalar()
        c.execute(text("INSERT INTO account (property_id, kind, name, balance_mu, recharge_count, "
                       "low_balance_threshold_mu, status, opened) VALUES (:p, 'tenant', 'lone', 0, 0, 0, 'open', 0)"),
                  {"p": pid})
        return c.execute(text("SELECT max(id) FROM account")).scalar()


def _count(engine, sql):
    with engine.connect() as c:
        return c.execute(text(sql)).scalar()


def test_rows_naming_what_exists_are_stored(site):
    a, c = site["accounts"], site["conc"]
    _insert(site, "ledger_entry", LEDGER_COLS, [_entry(a[i % 2], c, "ok:%d" % i) for i in range(50)])
    _insert(site, "reading", READING_COLS, [_reading(c, i, site["meters"][i % 2]) for i in range(50)])
    assert _count(site["engine"], "SELECT count(*) FROM ledger_entry WHERE reference LIKE 'ok:%'") == 50
    assert _count(site["engine"], "SELECT count(*) FROM reading") == 50


@pytest.mark.parametrize("what", ["account", "ledger_concentrator", "meter", "reading_concentrator"])
def test_a_row_naming_nothing_refuses_its_whole_statement(site, what):
    a, c, m = site["accounts"], site["conc"], site["meters"]
    if what in ("account", "ledger_concentrator"):
        rows = [_entry(a[0], c, "bad:%d" % i) for i in range(20)]
        rows[13] = _entry(99999, c, "bad:13") if what == "account" else _entry(a[0], 99999, "bad:13")
        table, cols = "ledger_entry", LEDGER_COLS
    else:
        rows = [_reading(c, i, m[0]) for i in range(20)]
        rows[13] = _reading(c, 13, 99999) if what == "meter" else _reading(99999, 13, m[0])
        table, cols = "reading", READING_COLS
    before = _count(site["engine"], "SELECT count(*) FROM %s" % table)
    with pytest.raises(REFUSED, match="(?i)foreign key"):
        _insert(site, table, cols, rows)
    assert _count(site["engine"], "SELECT count(*) FROM %s" % table) == before      # none of the 20


@pytest.mark.parametrize("table, sql, by", [
    ("account", "DELETE FROM account WHERE id = :a", "ledger_entry"),
    ("account", "UPDATE account SET id = 99999 WHERE id = :a", "ledger_entry"),
    ("meter", "DELETE FROM meter WHERE id = :m", ""),
    ("concentrator", "DELETE FROM concentrator WHERE id = :c", ""),
])
def test_a_named_row_cannot_be_deleted_or_renumbered(site, table, sql, by):
    a, c, m = _lone_account(site["engine"]), site["conc"], site["meters"]
    _insert(site, "ledger_entry", LEDGER_COLS, [_entry(a, c, "named")])
    _insert(site, "reading", READING_COLS, [_reading(c, 1, m[0])])
    # the lone account is named by its ledger entry only (SQLite's message names no table)
    with pytest.raises(IntegrityError, match="(?i)foreign key.*%s" % by if site["engine"].dialect.name == "postgresql"
                       else "(?i)foreign key"):
        with site["engine"].begin() as conn:
            conn.execute(text("PRAGMA foreign_keys=ON") if conn.dialect.name == "sqlite" else text("SELECT 1"))
            conn.execute(text(sql), {"a": a, "m": m[0], "c": c})
    assert _count(site["engine"], "SELECT count(*) FROM %s" % table) >= 1
    assert _count(site["engine"], "SELECT count(*) FROM ledger_entry WHERE reference = 'named'") == 1


def _pg_site(pg, name, dev):
    _url, engine = pg
    site = {"engine": engine, "sf": db.session_factory(engine)}
    with site["sf"]() as s:
        res = seed_site(s, name, [{"dev": dev, "meters": [{"id": dev + "-1", "model": "sdm120"}]}],
                        tariff_price_mu_per_kwh=600)
        s.commit()
    conc = res["concentrators"][dev]
    m = next(iter(conc["meters"].values()))
    site.update(conc=conc["id"], meters=[m["id"]], accounts=[m["account_id"]])
    return site


def test_truncating_a_named_table_is_refused_on_postgresql(pg):
    site = _pg_site(pg, "Truncate Court", "t1")
    _insert(site, "reading", READING_COLS, [_reading(site["conc"], 1, site["meters"][0])])
    with pytest.raises(IntegrityError, match="(?i)cannot truncate table \"meter\""):
        with site["engine"].begin() as conn:
            conn.execute(text("TRUNCATE meter CASCADE"))
    assert _count(site["engine"], "SELECT count(*) FROM meter") == 1


def test_a_delete_racing_an_insert_waits_for_it_and_is_refused(pg):
    """The insert's check locks the account (FOR KEY SHARE, as a foreign key
    does): a DELETE of it waits for the insert's commit, then sees the
    entry and is refused."""
    site = _pg_site(pg, "Race Court", "r2")
    engine = site["engine"]
    account = _lone_account(engine)        # nothing else names it: only the ledger's check can refuse
    inserter = engine.connect()
    tx = inserter.begin()
    inserter.execute(text("INSERT INTO ledger_entry (%s) VALUES (%s)" % (", ".join(LEDGER_COLS), ", ".join(
        ":" + c for c in LEDGER_COLS))), dict(zip(LEDGER_COLS, _entry(account, site["conc"], "racing"))))
    outcome = {}

    def delete():
        try:
            with engine.begin() as c:
                c.execute(text("SET lock_timeout = '20s'"))
                c.execute(text("DELETE FROM account WHERE id = :a"), {"a": account})
            outcome["result"] = "deleted"
        except IntegrityError as e:
            outcome["result"] = "refused: %s" % e.orig
    t = threading.Thread(target=delete)
    t.start()
    t.join(1.0)
    assert t.is_alive(), "the DELETE did not wait for the uncommitted entry naming the account: %s" % outcome
    tx.commit()
    inserter.close()
    t.join(20)
    assert outcome.get("result", "").startswith("refused") and "ledger_entry" in outcome["result"], outcome
    assert _count(engine, "SELECT count(*) FROM account WHERE id = %d" % account) == 1
