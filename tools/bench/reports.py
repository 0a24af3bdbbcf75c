"""reports: how long a property's monthly consumption report takes, on PostgreSQL.

A property of 1,000 units in 10 buildings, one meter each on 32-meter
boards, with a year of 15-minute readings (35 million rows in month
partitions) and their rollups (hourly, daily, monthly by TOU band), all
made set-based in the database (generate_series); --quick: 100 units and
31 days. Then the consumption report of the last whole month per unit
(services/reports: what GET /staff/reports/consumption shows), repeated.

    report_month_property_ms   median time of the month report (goal <= 300 ms)
    report_month_property_p95_ms
    report_units, report_readings, report_rollups   what the database held

Each figure comes from a function in METRICS (name -> fn(ctx) -> dict);
another report's figure is one more entry.
"""
import statistics
import time

from sqlalchemy import text

DAY = 86400
TZ = 28800
START = 1764518400 - TZ          # 2025-12-01 00:00 local (UTC+8)
UNITS_PER_BUILDING = 100
METERS_PER_BOARD = 32
PRICES = {"sharp": 12000, "peak": 9000, "flat": 6000, "valley": 3000}


def _band_sql(hour):
    return ("CASE WHEN {h} >= 23 OR {h} < 8 THEN 'valley' WHEN {h} < 10 OR {h} >= 21 THEN 'flat' "
            "WHEN {h} < 19 THEN 'peak' ELSE 'sharp' END").format(h=hour)


def _weight_sql(hour):
    # Wh per 15 minutes for a meter of factor 1: more in the evening
    return "(CASE WHEN {h} >= 18 AND {h} < 22 THEN 3 WHEN {h} >= 8 AND {h} < 18 THEN 2 ELSE 1 END)".format(h=hour)


def build(engine, units, days):
    from headend.core import db, partitions
    from headend.services import properties
    from headend.services.actor import system_actor
    sf = db.session_factory(engine)
    with sf() as s:
        sa = system_actor(s)
        p = properties.create_property(s, sa, "Report Gardens")
        s.commit()
        pid = p.id
    end = START + days * DAY
    boards = -(-units // METERS_PER_BOARD)
    with engine.begin() as c:
        partitions.ensure(c, end, 1, since=START)
        c.execute(text("INSERT INTO building (property_id, name, created) SELECT :p, 'Block ' || b, 0 "
                       "FROM generate_series(1, :n) b"), {"p": pid, "n": -(-units // UNITS_PER_BUILDING)})
        c.execute(text(
            "INSERT INTO unit (building_id, property_id, name, floor, floor_area_dm2, created) "
            "SELECT b.id, :p, lpad(((k - 1) %% :per + 1)::text, 4, '0'), ((k - 1) %% :per) / 4 + 1, 6000 + k %% 50 * 100, 0 "
            "FROM generate_series(1, :n) k JOIN (SELECT id, row_number() OVER (ORDER BY id) r FROM building "
            "WHERE property_id = :p) b ON b.r = (k - 1) / :per + 1".replace("%%", "%")),
            {"p": pid, "n": units, "per": UNITS_PER_BUILDING})
        c.execute(text("INSERT INTO concentrator (dev, property_id, key_hex, online, last_seen, acked_seq, created, "
                       "last_up_n, last_down_n, key_pending) "
                       "SELECT 'rg-c' || lpad(b::text, 4, '0'), :p, md5(b::text) || md5(b::text), true, :t, 0, 0, "
                       "-1, 0, '[]' FROM generate_series(1, :n) b"), {"p": pid, "t": end, "n": boards})
        c.execute(text(
            "INSERT INTO meter (concentrator_id, index, meter_id, model, unit_id) "
            "SELECT c.id, (u.r - 1) %% 32, 'rg-m' || lpad(u.r::text, 5, '0'), 'sdm120', u.id FROM "
            "(SELECT id, row_number() OVER (ORDER BY id) r FROM unit WHERE property_id = :p) u JOIN "
            "(SELECT id, row_number() OVER (ORDER BY id) r FROM concentrator WHERE property_id = :p) c "
            "ON c.r = (u.r - 1) / 32 + 1".replace("%%", "%")), {"p": pid})
        # a year of 15-minute readings: register = factor x cumulative weight
        c.execute(text(
            "INSERT INTO reading (concentrator_id, seq, meter_index, meter_id, ts, energy_wh, power_w, flags, bands, "
            "billed, billed_mu, received) "
            "SELECT m.concentrator_id, k * 32 + m.index + 1, m.index, m.id, :s + k * 900, "
            "1000 + (m.id %% 7 + 1) * 10 * k, (m.id %% 7 + 1) * 40, 0, '[]', true, 0, :s + k * 900 "
            "FROM meter m JOIN unit u ON u.id = m.unit_id, generate_series(1, :n) k "
            "WHERE u.property_id = :p".replace("%%", "%")), {"s": START, "n": days * 96, "p": pid})
        # rollups: hourly from the same formula, then days and months from the hours
        hour = "((h * 3600 + :tz) / 3600 %% 24)".replace("%%", "%")
        c.execute(text(
            "INSERT INTO rollup (meter_id, period, start, band, energy_wh, cost_mu, readings, first_ts) "
            "SELECT m.id, 'h', :s + h * 3600, {band}, (m.id %% 7 + 1) * 10 * 4 * {w}, "
            "(m.id %% 7 + 1) * 10 * 4 * {w} * (CASE {band} WHEN 'valley' THEN 3000 WHEN 'flat' THEN 6000 "
            "WHEN 'peak' THEN 9000 ELSE 12000 END) / 1000, 4, :s + h * 3600 "
            "FROM meter m JOIN unit u ON u.id = m.unit_id, generate_series(0, :n - 1) h "
            "WHERE u.property_id = :p".format(band=_band_sql(hour), w=_weight_sql(hour)).replace("%%", "%")),
            {"s": START, "n": days * 24, "p": pid, "tz": TZ})
        c.execute(text(
            "INSERT INTO rollup (meter_id, period, start, band, energy_wh, cost_mu, readings, first_ts) "
            "SELECT meter_id, 'd', (start + :tz) / 86400 * 86400 - :tz, band, sum(energy_wh), sum(cost_mu), "
            "sum(readings), min(first_ts) FROM rollup WHERE period = 'h' GROUP BY 1, 3, 4"), {"tz": TZ})
        c.execute(text(
            "INSERT INTO rollup (meter_id, period, start, band, energy_wh, cost_mu, readings, first_ts) "
            "SELECT meter_id, 'm', extract(epoch FROM date_trunc('month', to_timestamp(start + :tz) AT TIME ZONE 'UTC'))"
            "::bigint - :tz, band, sum(energy_wh), sum(cost_mu), sum(readings), min(first_ts) "
            "FROM rollup WHERE period = 'd' GROUP BY 1, 3, 4"), {"tz": TZ})
        c.execute(text("ANALYZE"))
    return pid


def month_report(ctx):
    """The last whole month's consumption report per unit, timed."""
    from headend.core import db
    from headend.services import reports
    from headend.services.actor import system_actor
    from headend.services.reports.base import local_day
    engine, pid, days = ctx["engine"], ctx["property_id"], ctx["days"]
    last = local_day(START + days * DAY - 1, TZ)
    first = last.replace(day=1)          # the data ends on a month's last day
    sf = db.session_factory(engine)
    times = []
    with sf() as s:
        actor = system_actor(s)
        for i in range(12 if ctx["quick"] else 25):
            t0 = time.perf_counter()
            rep = reports.run(s, actor, "consumption", pid, None, first.isoformat(), last.isoformat(), "d", "unit")
            times.append((time.perf_counter() - t0) * 1000)
            s.rollback()
        assert len(rep.rows) == ctx["units"], (len(rep.rows), ctx["units"])
        assert rep.totals["energy_wh"] > 0
    times = times[2:]       # warm-up
    return {"report_month_property_ms": round(statistics.median(times), 1),
            "report_month_property_p95_ms": round(sorted(times)[int(len(times) * 0.95) - 1], 1)}


def counts(ctx):
    with ctx["engine"].connect() as c:
        return {"report_units": ctx["units"],
                "report_readings": c.execute(text("SELECT count(*) FROM reading")).scalar(),
                "report_rollups": c.execute(text("SELECT count(*) FROM rollup")).scalar()}


def statement_batch(ctx):
    """Statements rendered per second (issue 11, check 6): tools.bench.statements."""
    from tools.bench import statements
    return {k: v for k, v in statements.run(ctx["quick"]).items() if k.startswith("statement_batch_per")}


METRICS = {"report_month_property_ms": month_report, "report_counts": counts,
           "statement_batch_per_s": statement_batch}


def run(quick=False):
    from headend.core import db, migrate
    from tools.pgtemp import temp_database
    units, days = (100, 31) if quick else (1000, 365)
    url, drop = temp_database("wk_bench_reports_")
    engine = db.make_engine(url)
    try:
        migrate.upgrade(engine)
        t0 = time.monotonic()
        pid = build(engine, units, days)
        out = {"report_build_s": round(time.monotonic() - t0, 1)}
        ctx = {"engine": engine, "property_id": pid, "units": units, "days": days, "quick": quick}
        for fn in METRICS.values():
            out.update(fn(ctx))
        return out
    finally:
        engine.dispose()
        drop()
