"""Data that grows for years: readings partitioned by month on PostgreSQL
(created ahead, a late month moved out of the default partition, old months
dropped by retention, a time range reading only its months), SQLite's plain
table with the same retention; `wattkeeper db backup` then `db restore`
reproduces every table, row for row, on both databases."""
import hashlib
import json
import os
import secrets
import subprocess
import sys

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, select

from concentrator import protocol
from headend.core import backup, db, maintenance, migrate, partitions
from headend.core.config import Settings
from headend.ingest import Ingest
from headend.models import Reading
from headend.services.actor import system_actor
from headend.services.sales import sell
from headend.services.seed import seed_site
from tests.support import ROOT

NOW = 1796119200                 # 2026-12-01 09:20 UTC
DAY = 86400
DEV = "yr-c1"


def fill(engine, months=14, per_day=2, meters=2):
    """A board's readings over `months` months before NOW, through the real
    ingest; -> (ingest, key, next counter, next seq)."""
    sf = db.session_factory(engine)
    key = secrets.token_hex(32)
    with sf() as s:
        seed_site(s, "Years Court", [{"dev": DEV, "key_hex": key, "meters": [
            {"id": "yr-m%d" % i, "model": "sdm120", "opening_energy_wh": 0} for i in range(meters)]}],
            tariff_price_mu_per_kwh=6000, opening_balance_mu=1000_0000)
        s.commit()
    with engine.begin() as c:
        partitions.ensure(c, NOW, 3, since=NOW - months * 31 * DAY)
    ingest = Ingest(sf, clock=lambda: NOW)
    k = protocol.key_from_hex(key)
    recs, seq = [], 1
    start = NOW - months * 30 * DAY
    for d in range(months * 30):
        for j in range(per_day):
            ts = start + d * DAY + j * (DAY // per_day)
            for m in range(meters):
                recs.append([seq, 0, m, ts, [1000 * seq, 100, 0]])
                seq += 1
    n = 1
    for i in range(0, len(recs), 32):
        out = ingest.handle(protocol.topic_up(DEV), protocol.seal(
            protocol.message(DEV, n, protocol.RECORDS, NOW, recs=recs[i:i + 32]), k))
        assert out, "batch %d not acknowledged" % i
        n += 1
    assert ingest.stats.get("errors") == 0
    return ingest, k, n, seq


def snapshot(engine):
    """{table: (rows, sha256 of every row in key order)} of every table."""
    out = {}
    with engine.connect() as c:
        names = sorted(set(inspect(c).get_table_names()) - {n for n in inspect(c).get_table_names()
                                                            if partitions.is_partition_name(n)})
        for name in names:
            t = SQLModel.metadata.tables.get(name)
            order = ", ".join(col.name for col in t.primary_key.columns) if t is not None else "1"
            h = hashlib.sha256()
            rows = c.execute(text("SELECT * FROM %s ORDER BY %s" % (name, order))).all()
            for r in rows:
                h.update(json.dumps([v if not isinstance(v, (bytes, memoryview)) else bytes(v).hex()
                                     for v in r], sort_keys=True, default=str).encode())
            out[name] = (len(rows), h.hexdigest())
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def two_databases(request, tmp_path):
    """(url, engine) of a database in use and (url, make) of an empty one to restore into."""
    from tests.conftest import pg_database
    made = []

    def new():
        if request.param == "sqlite":
            url, drop = "sqlite:///" + str(tmp_path / ("db%d.sqlite" % len(made))), None
        else:
            url, drop = pg_database()
        eng = db.make_engine(url)
        made.append((eng, drop))
        return url, eng
    yield new
    for eng, drop in made:
        eng.dispose()
        if drop:
            drop()


def test_backup_then_restore_reproduces_every_table(two_databases, tmp_path):
    url, engine = two_databases()
    migrate.upgrade(engine)
    ingest, k, n, seq = fill(engine, months=3, per_day=2)
    with db.session_factory(engine)() as s:
        acc = s.exec(select(Reading.meter_id)).first()
        sell(s, system_actor(s), 1, 12_3400, push=False)
        s.commit()
    before = snapshot(engine)
    assert before["reading"][0] == 3 * 30 * 2 * 2 and before["ledger_entry"][0] > 100 and acc
    path = str(tmp_path / "wk.backup")
    seen = []
    backup.backup(url, path, progress=lambda done, total, what: seen.append((done, total)))
    assert os.path.getsize(path) > 0 and seen and seen[-1][0] == seen[-1][1]
    # life goes on: more readings and a sale after the backup
    ingest.handle(protocol.topic_up(DEV), protocol.seal(protocol.message(
        DEV, n, protocol.RECORDS, NOW, recs=[[seq, 0, 0, NOW - 60, [10 ** 9, 1, 0]]]), k))
    with db.session_factory(engine)() as s:
        sell(s, system_actor(s), 1, 1_0000, push=False)
        s.commit()
    assert snapshot(engine) != before
    engine.dispose()
    backup.restore(url, path)
    assert snapshot(engine) == before
    # and into an empty database elsewhere (the machine burnt down)
    url2, engine2 = two_databases()
    backup.restore(url2, path)
    assert snapshot(engine2) == before
    migrate.check(engine2)


def test_the_cli_backs_up_and_restores_with_progress(tmp_path):
    url = "sqlite:///" + str(tmp_path / "cli.db")
    e = db.make_engine(url)
    migrate.upgrade(e)
    fill(e, months=1, per_day=1, meters=1)
    before = snapshot(e)
    e.dispose()
    env = dict(os.environ, WK_DATABASE_URL=url, COLUMNS="100")
    cli = [sys.executable, "-m", "headend.cli", "db"]
    r = subprocess.run(cli + ["backup", str(tmp_path / "b.db")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "backed up" in r.stdout, r.stdout + r.stderr
    os.remove(str(tmp_path / "cli.db"))
    r = subprocess.run(cli + ["restore", str(tmp_path / "b.db"), "--yes"], cwd=ROOT, env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0 and "restored" in r.stdout, r.stdout + r.stderr
    assert snapshot(db.make_engine(url)) == before
    r = subprocess.run(cli + ["restore", str(tmp_path / "missing.db"), "--yes"], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "no backup file" in (r.stdout + r.stderr)


@pytest.fixture
def pg_engine():
    from tests.conftest import pg_database
    url, drop = pg_database()
    eng = db.make_engine(url)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()
    drop()


def test_readings_live_in_month_partitions(pg_engine):
    fill(pg_engine, months=14, per_day=1, meters=1)
    with pg_engine.connect() as c:
        parts = partitions.partitions(c)
        names = [p[0] for p in parts]
        assert names[0] <= "reading_p202510" and "reading_p202703" in names   # history and 3 months ahead
        counts = {name: c.execute(text("SELECT count(*) FROM %s" % name)).scalar() for name in names}
        assert sum(counts.values()) == 14 * 30 and counts["reading_p202611"] == 30
        assert c.execute(text("SELECT count(*) FROM reading_default")).scalar() == 0
        # a month of readings reads that month's partition only
        lo, hi = partitions.month_bounds(2026, 6)
        plan = "\n".join(c.execute(text("EXPLAIN SELECT count(*) FROM reading WHERE ts >= %d AND ts < %d"
                                        % (lo, hi))).scalars())
        assert "reading_p202606" in plan and "reading_p202605" not in plan and "reading_p202607" not in plan
        # the idempotency key holds in the database too
        with pytest.raises(IntegrityError):
            with c.begin_nested():
                c.execute(text("INSERT INTO reading (concentrator_id, seq, meter_index, ts, energy_wh, power_w, flags,"
                               " bands, billed, received) SELECT concentrator_id, seq, meter_index, ts, 1, 1, 0, '[]',"
                               " false, 0 FROM reading LIMIT 1"))


def test_a_month_not_created_yet_waits_in_the_default_partition(pg_engine):
    ingest, k, n, seq = fill(pg_engine, months=1, per_day=1, meters=1)
    far = NOW + 200 * DAY                     # a board whose clock runs months ahead (within bounds)
    ingest.handle(protocol.topic_up(DEV), protocol.seal(protocol.message(
        DEV, n, protocol.RECORDS, NOW, recs=[[seq, 0, 0, far, [10 ** 8, 1, 0]], [seq + 1, 0, 0, 0, [10 ** 8, 1, 0]]]),
        k))
    with pg_engine.begin() as c:
        assert c.execute(text("SELECT count(*) FROM reading_default")).scalar() == 1
        assert c.execute(text("SELECT count(*) FROM reading_undated")).scalar() == 1
        made = partitions.ensure(c, far, 0)
        y, m = partitions.month_start(far)
        assert partitions.month_name(y, m) in made
        assert c.execute(text("SELECT count(*) FROM reading_default")).scalar() == 0
        assert c.execute(text("SELECT count(*) FROM %s" % partitions.month_name(y, m))).scalar() == 1
    with db.session_factory(pg_engine)() as s:
        assert s.exec(select(Reading).where(Reading.ts == far)).one().energy_wh == 10 ** 8


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_retention_drops_whole_old_months_and_keeps_the_rest(dialect, tmp_path, request):
    if dialect == "postgresql":
        engine = request.getfixturevalue("pg_engine")
    else:
        engine = db.make_engine("sqlite:///" + str(tmp_path / "ret.db"))
        migrate.upgrade(engine)
    fill(engine, months=14, per_day=1, meters=1)
    st = Settings(database_url="sqlite://", readings_retention_months=12, readings_partitions_ahead=3)
    report = maintenance.run(engine, st, now=NOW)
    cutoff = maintenance.retention_cutoff(12, NOW)
    assert cutoff == partitions.month_bounds(2025, 12)[0]
    with db.session_factory(engine)() as s:
        tss = s.exec(select(Reading.ts)).all()
    assert tss and min(tss) >= cutoff and max(tss) < NOW
    assert len(tss) == len([d for d in range(14 * 30) if NOW - 14 * 30 * DAY + d * DAY >= cutoff])
    if dialect == "postgresql":
        assert report["partitions_dropped"] and all(name < "reading_p202512" for name in report["partitions_dropped"])
    else:
        assert report["readings_deleted"] > 0
    # a guard (rollups not done yet) holds retention back
    maintenance.RETENTION_GUARDS.append(lambda conn, c: c - 31 * DAY)
    try:
        again = maintenance.run(engine, Settings(database_url="sqlite://", readings_retention_months=11), now=NOW)
        assert again["cutoff"] == maintenance.retention_cutoff(11, NOW) - 31 * DAY
    finally:
        maintenance.RETENTION_GUARDS.pop()
