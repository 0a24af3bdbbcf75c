"""Energy and money used by meters in a time window, from the readings.

SEAM (issue 11): `window_use` is the ONE function the portal and the
low-balance forecast read usage through. It reads the readings table now
(bounded window, index ix_reading_meter_ts); when the interval rollups land
it should read them instead, with the same answer shape.

A reading's `billed_mu` is what the head-end charged for the energy since the
meter's previous reading, so a window's money is the sum of billed_mu of the
readings inside it, and its energy the register's rise between the last
reading before the window (or the first inside it) and the last inside it.
"""
from sqlalchemy import func
from sqlmodel import select

from ..models import Reading

DAY = 86400
FORECAST_WINDOW_S = 7 * DAY       # "recent use": the last seven days
FORECAST_MIN_SPAN_S = 6 * 3600    # less data than this: no forecast


class Use:
    """Use of one meter in [start, end): energy (Wh), money (mu), and the
    times of its first and last reading inside the window (None: none)."""
    __slots__ = ("meter_id", "energy_wh", "cost_mu", "first_ts", "last_ts", "first_cost_mu")

    def __init__(self, meter_id, energy_wh=0, cost_mu=0, first_ts=None, last_ts=None, first_cost_mu=0):
        self.meter_id, self.energy_wh, self.cost_mu = meter_id, energy_wh, cost_mu
        self.first_ts, self.last_ts, self.first_cost_mu = first_ts, last_ts, first_cost_mu


def window_use(session, meter_ids, start, end):
    """{meter id: Use} over [start, end) for each meter with readings in it."""
    ids = sorted(set(meter_ids))
    if not ids or end <= start:
        return {}
    inside = (Reading.meter_id.in_(ids), Reading.ts >= start, Reading.ts < end)
    agg = session.exec(select(Reading.meter_id, func.min(Reading.ts), func.max(Reading.ts),
                              func.coalesce(func.sum(Reading.billed_mu), 0), func.max(Reading.energy_wh))
                       .where(*inside).group_by(Reading.meter_id)).all()
    out = {}
    for mid, t0, t1, cost, top in agg:
        first = session.exec(select(Reading.energy_wh, Reading.billed_mu).where(
            Reading.meter_id == mid, Reading.ts == t0).order_by(Reading.seq)).first()
        before = session.exec(select(Reading.energy_wh).where(
            Reading.meter_id == mid, Reading.ts < start).order_by(Reading.ts.desc()).limit(1)).first()
        base = before if before is not None else first[0]
        out[mid] = Use(mid, max(0, int(top) - int(base)), int(cost), int(t0), int(t1), int(first[1] or 0))
    return out


def daily_use(session, meter_ids, day_starts):
    """[(day start, energy Wh, cost mu)] for consecutive local days
    (day_starts: their start times, plus the end of the last)."""
    rows = []
    for a, b in zip(day_starts, day_starts[1:]):
        uses = window_use(session, meter_ids, a, b).values()
        rows.append((a, sum(u.energy_wh for u in uses), sum(u.cost_mu for u in uses)))
    return rows


def cost_rate_per_day(session, meter_ids, end):
    """Money per day (mu) at the meters' recent use: what they cost over the
    last seven days before `end`, per day of readings. None when there is
    less than FORECAST_MIN_SPAN_S of readings."""
    total, any_span = 0, False
    for u in window_use(session, meter_ids, end - FORECAST_WINDOW_S, end + 1).values():
        span = u.last_ts - u.first_ts
        if span < FORECAST_MIN_SPAN_S:
            continue
        any_span = True
        # the first reading's charge covers time before the window's first reading
        total += (u.cost_mu - u.first_cost_mu) * DAY // span
    return total if any_span else None


def days_left_tenths(balance_mu, rate_per_day_mu):
    """Days the balance lasts at that rate, in tenths of a day (None: no
    use, it lasts); 0 when nothing is left."""
    if rate_per_day_mu is None or rate_per_day_mu <= 0:
        return None
    if balance_mu <= 0:
        return 0
    return balance_mu * 10 // rate_per_day_mu


def format_tenths(tenths):
    return None if tenths is None else "%d.%d" % divmod(int(tenths), 10)
