"""The low-balance forecast computed for many accounts at once
(usage.account_cost_rates, alerts.forecast_rates) says what the per-account
usage.cost_rate_per_day says, and it is stored for the next messages."""
from sqlmodel import delete, select

from headend.models import AccountForecast
from headend.services import alerts, usage
from tests.headend.test_rollups import DAY0, STEP, Meter, site  # noqa: F401  (the fixture)


def test_forecast_of_many_accounts_equals_one_by_one(site):  # noqa: F811
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
    end = DAY0 + 95 * STEP
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
