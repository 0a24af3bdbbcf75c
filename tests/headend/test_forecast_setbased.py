"""The low-balance forecast computed for many accounts at once
(usage.account_cost_rates, alerts.forecast_rates) says what the per-account
usage.cost_rate_per_day says, and it is stored for the next messages."""
from sqlalchemy import event, text
from sqlmodel import delete, select

from headend.models import AccountForecast
from headend.services import alerts, usage
from tests.headend.test_rollups import DAY0, STEP, Meter, site  # noqa: F401  (the fixture)


def _one_day(site):  # noqa: F811
    sf, ing, board, mids, accs, now = site
    a, b = Meter(0, 5000, 40), Meter(1, 9000, 10)
    seq = 0
    for k in range(4 * 24):                       # one day, both meters, every 15 minutes
        ts = DAY0 + k * STEP
        recs = []
        for m in (a, b):
            seq += 1
            recs.append(m.read(seq, ts))
        now[0] = ts + 30
        ing.handle(*board.rd(recs))
    return DAY0 + 95 * STEP


def test_forecast_of_many_accounts_equals_one_by_one(site):  # noqa: F811
    sf, ing, board, mids, accs, now = site
    end = _one_day(site)
    with sf() as s:
        one = {acc: usage.cost_rate_per_day(s, [mid], end) for acc, mid in zip(accs, mids)}
        assert all(v and v > 0 for v in one.values()) and one[accs[0]] > one[accs[1]]
        assert usage.account_cost_rates(s, {acc: end for acc in accs}) == one
        # too little history before the end: no forecast, as one by one
        early = DAY0 + 3 * STEP
        assert usage.account_cost_rates(s, {accs[0]: early}) == {accs[0]: usage.cost_rate_per_day(s, [mids[0]], early)}
        assert usage.account_cost_rates(s, {accs[0]: early})[accs[0]] is None
        # refreshed together, then stored: the next call reads the stored rows
        s.execute(delete(AccountForecast))
        got = alerts.forecast_rates(s, {acc: end for acc in accs}, {})
        assert got == one
        rows = {f.account_id: f for f in s.exec(select(AccountForecast)).all()}
        assert {k: (f.rate_mu_per_day, f.as_of) for k, f in rows.items()} == {k: (v, end) for k, v in one.items()}
        # a refresh of one stored row updates it
        later = end + alerts.FORECAST_REFRESH_S
        again = alerts.forecast_rates(s, {accs[0]: later}, rows)
        assert again == {accs[0]: usage.cost_rate_per_day(s, [mids[0]], later)}
        s.expire_all()
        assert s.get(AccountForecast, accs[0]).as_of == later


def test_forecast_reads_each_meters_days_by_the_rollups_key(site):  # noqa: F811
    """The statement the forecast runs reads each meter's day rollups by
    an index on (meter, period, start), also when the
    database has no statistics yet (a fresh database, a table autovacuum
    has not analyzed): not every meter's days of the window, which on a
    site of thousands of meters is every row of the week."""
    sf, _ing, _board, _mids, accs, _now = site
    with sf() as s:
        pg = s.get_bind().dialect.name == "postgresql"
        if pg:      # autovacuum must not analyze it during the test: no statistics, as in a fresh database
            s.execute(text("ALTER TABLE rollup SET (autovacuum_enabled = false)"))
            s.commit()
    end = _one_day(site)
    seen = []
    with sf() as s:
        eng = s.get_bind()
        if pg:
            assert not s.execute(text("SELECT count(*) FROM pg_stats WHERE tablename = 'rollup'")).scalar()

        def grab(_conn, _cur, stmt, params, _ctx, _many):
            seen.append((stmt, params))
        event.listen(eng, "before_cursor_execute", grab)
        try:
            # a batch's accounts: those two among many others' (ids with no meters here)
            many = dict.fromkeys(range(max(accs) + 1, max(accs) + 63), end)
            rates = usage.account_cost_rates(s, {**many, **{acc: end for acc in accs}})
        finally:
            event.remove(eng, "before_cursor_execute", grab)
        assert all(rates[acc] for acc in accs)
        [(stmt, params)] = [(q, p) for q, p in seen if "rollup" in q]
        cur = s.connection().connection.cursor()
        cur.execute(("EXPLAIN " if pg else "EXPLAIN QUERY PLAN ") + stmt, params)
        plan = "\n".join(str(row[-1]) for row in cur.fetchall())
    if pg:
        # an index probe per meter and day, on either index of the rollups (every column an equality)
        probe = [ln for ln in plan.splitlines() if "Index Cond" in ln and "meter_id = m.id" in ln]
        assert "Seq Scan on rollup" not in plan and probe and "start = w.day" in probe[0], plan
    else:
        assert "SEARCH r USING INDEX sqlite_autoindex_rollup_1 (meter_id=? AND period=? AND start>? AND start<?)" \
            in plan and "ix_rollup_period_start" not in plan, plan
