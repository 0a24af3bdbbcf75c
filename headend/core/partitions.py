"""The readings table on PostgreSQL: partitioned by month of `ts`
(declarative RANGE partitioning), one partition per UTC calendar month,
created ahead of time; SQLite keeps one plain table.

    reading                  the partitioned table (what the code reads and writes)
    reading_p202612          the readings of December 2026 (ts in [2026-12-01, 2027-01-01) UTC)
    reading_undated          ts = 0: the board did not know the time (the head-end rates them
                             at receive time; ingest.bounds allows no other ts before 2020)
    reading_default          anything else (a month not created yet); moved into its month's
                             partition when that is created

Keys (docs/deploying.md, "Readings for years"): a partitioned table's
primary key and unique constraints must contain the partition key, so on
PostgreSQL the primary key is (id, ts) and the ingest's idempotency key is
UNIQUE (concentrator_id, seq, ts). A record's ts is part of the board's
signed, journaled record and never changes when it is sent again, so a
re-sent record collides on that key exactly as on (concentrator_id, seq);
and the ingest itself skips every seq it already holds for the board (any
ts), under the board's row lock (SELECT ... FOR UPDATE), before inserting.
SQLite keeps UNIQUE (concentrator_id, seq).

    ensure(conn, now, months_ahead)   create the partitions from this month to months_ahead
    drop_before(conn, cutoff)         drop the month partitions that end at or before cutoff
"""
import calendar
import re
import time

from sqlalchemy import text

TABLE = "reading"
UNDATED = "reading_undated"
DEFAULT = "reading_default"
TS_DATED = 1577836800            # 2020-01-01: ts below it (0) goes to reading_undated (ingest.bounds.TS_MIN)
NAME_RE = re.compile(r"^reading_(p(\d{4})(\d{2})|undated|default)$")


def is_partition_name(name):
    return bool(NAME_RE.match(name or ""))


def month_start(ts):
    """Unix s -> (year, month) of its UTC month."""
    t = time.gmtime(int(ts))
    return t.tm_year, t.tm_mon


def month_bounds(year, month):
    lo = calendar.timegm((year, month, 1, 0, 0, 0))
    y2, m2 = (year + 1, 1) if month == 12 else (year, month + 1)
    return lo, calendar.timegm((y2, m2, 1, 0, 0, 0))


def month_name(year, month):
    return "reading_p%04d%02d" % (year, month)


def next_month(year, month):
    return (year + 1, 1) if month == 12 else (year, month + 1)


def is_partitioned(conn):
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.execute(text("SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c "
                                  "ON c.oid = p.partrelid WHERE c.relname = :t"), {"t": TABLE}).scalar())


def partitions(conn):
    """[(name, low, high)] of the month partitions, oldest first."""
    rows = conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :t"), {"t": TABLE}).scalars().all()
    out = []
    for name in rows:
        m = NAME_RE.match(name)
        if m and m.group(2):
            lo, hi = month_bounds(int(m.group(2)), int(m.group(3)))
            out.append((name, lo, hi))
    return sorted(out, key=lambda x: x[1])


def create_month(conn, year, month):
    """The partition of one month; rows of that month waiting in
    reading_default are moved into it (same transaction)."""
    name = month_name(year, month)
    lo, hi = month_bounds(year, month)
    waiting = conn.execute(text("SELECT count(*) FROM %s WHERE ts >= :lo AND ts < :hi" % DEFAULT),
                           {"lo": lo, "hi": hi}).scalar()
    if not waiting:
        conn.execute(text("CREATE TABLE %s PARTITION OF %s FOR VALUES FROM (%d) TO (%d)" % (name, TABLE, lo, hi)))
        return name
    conn.execute(text("CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)" % (name, TABLE)))
    conn.execute(text("WITH moved AS (DELETE FROM %s WHERE ts >= %d AND ts < %d RETURNING *) "
                      "INSERT INTO %s SELECT * FROM moved" % (DEFAULT, lo, hi, name)))
    conn.execute(text("ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%d) TO (%d)" % (TABLE, name, lo, hi)))
    return name


def ensure(conn, now=None, months_ahead=3, since=None):
    """Create every missing month partition from the month of `since`
    (default: this month) to `months_ahead` months after this one.
    -> names created. Nothing on SQLite."""
    if not is_partitioned(conn):
        return []
    now = int(now if now is not None else time.time())
    have = {name for name, _lo, _hi in partitions(conn)}
    y, m = month_start(since if since is not None else now)
    last = month_start(now)
    for _ in range(max(0, months_ahead)):
        last = next_month(*last)
    made = []
    while (y, m) <= last:
        if month_name(y, m) not in have:
            made.append(create_month(conn, y, m))
        y, m = next_month(y, m)
    return made


def drop_before(conn, cutoff):
    """Drop the month partitions whose whole month ends at or before
    `cutoff` (Unix s): whole months of readings go at once, no DELETE.
    -> names dropped. Nothing on SQLite (see maintenance.apply_retention)."""
    if not is_partitioned(conn):
        return []
    gone = []
    for name, _lo, hi in partitions(conn):
        if hi <= cutoff:
            conn.execute(text("ALTER TABLE %s DETACH PARTITION %s" % (TABLE, name)))
            conn.execute(text("DROP TABLE %s" % name))
            gone.append(name)
    return gone
