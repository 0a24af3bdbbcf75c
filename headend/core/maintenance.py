"""Database upkeep the head-end does by itself (at start, then every
settings.maintenance_interval_s) and `wattkeeper db maintain` does on demand:

* PostgreSQL: the month partitions of the readings table, from this month
  to settings.readings_partitions_ahead months ahead (core/partitions.py);
* retention: raw readings older than settings.readings_retention_months
  whole months go (whole partitions dropped on PostgreSQL, batched DELETEs
  on SQLite); 0 keeps them all. A job that must see them first (rollups)
  registers a guard: RETENTION_GUARDS.append(fn), fn(conn, cutoff) -> the
  cutoff it allows (<= cutoff); readings at or after it are kept.

    report = run(engine, settings)      # {"partitions_created": [...], "partitions_dropped": [...],
                                        #  "readings_deleted": n, "cutoff": ts or None}
"""
import calendar
import logging
import threading
import time

from sqlalchemy import text

from . import partitions

log = logging.getLogger("headend.maintenance")

RETENTION_GUARDS = []
DELETE_BATCH = 10000


def retention_cutoff(months, now=None):
    """Start of the UTC month `months` months before this one (None: keep all)."""
    if not months or months <= 0:
        return None
    y, m = partitions.month_start(now if now is not None else time.time())
    for _ in range(months):
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return calendar.timegm((y, m, 1, 0, 0, 0))


def _delete_before(conn, cutoff):
    """SQLite: readings before cutoff (undated ones by receive time), in batches."""
    total = 0
    while True:
        n = conn.execute(text(
            "DELETE FROM reading WHERE id IN (SELECT id FROM reading WHERE (ts > 0 AND ts < :c) "
            "OR (ts = 0 AND received < :c) LIMIT %d)" % DELETE_BATCH), {"c": cutoff}).rowcount
        total += n
        if n < DELETE_BATCH:
            return total


def apply_retention(engine, months, now=None):
    cutoff = retention_cutoff(months, now)
    out = {"cutoff": cutoff, "partitions_dropped": [], "readings_deleted": 0}
    if cutoff is None:
        return out
    with engine.begin() as conn:
        for guard in RETENTION_GUARDS:
            cutoff = min(cutoff, guard(conn, cutoff))
        out["cutoff"] = cutoff
        if partitions.is_partitioned(conn):
            out["partitions_dropped"] = partitions.drop_before(conn, cutoff)
            # undated readings older than the cutoff (by receive time)
            out["readings_deleted"] = conn.execute(text(
                "DELETE FROM %s WHERE received < :c" % partitions.UNDATED), {"c": cutoff}).rowcount
        else:
            out["readings_deleted"] = _delete_before(conn, cutoff)
    return out


def run(engine, settings, now=None):
    with engine.begin() as conn:
        made = partitions.ensure(conn, now, settings.readings_partitions_ahead)
    report = {"partitions_created": made}
    report.update(apply_retention(engine, settings.readings_retention_months, now))
    if made or report["partitions_dropped"] or report["readings_deleted"]:
        log.info("maintenance: %s", report)
    return report


class Maintenance:
    """run() now, then every interval_s in a daemon thread, until stop()."""

    def __init__(self, engine, settings):
        self.engine = engine
        self.settings = settings
        self._stop = threading.Event()
        self._thread = None
        self.last = None

    def start(self):
        self.last = run(self.engine, self.settings)
        if self.settings.maintenance_interval_s > 0:
            self._thread = threading.Thread(target=self._loop, name="wk-maintenance", daemon=True)
            self._thread.start()
        return self

    def _loop(self):
        while not self._stop.wait(self.settings.maintenance_interval_s):
            try:
                self.last = run(self.engine, self.settings)
            except Exception:
                log.exception("maintenance")

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
