"""Energy and money used by meters over time, from the readings.

`buckets` is what the portal's charts read usage through: the readings
table (a bounded window, index ix_reading_meter_ts). The low-balance
forecast (cost_rate_per_day, account_cost_rates) reads the day rollups
(services/rollups.py), which hold the same billed_mu per local day.

A reading's billed_mu is what the head-end charged for the energy since the
meter's previous reading, and its register rise since that reading is the
energy: both belong to the interval the reading falls in.
"""
import bisect

from sqlalchemy import func, text
from sqlmodel import select

from concentrator import protocol, tariff

from ..core import bulk
from ..models import Reading
from ..models.rollup import PERIODS, Rollup
from .errors import Invalid
from .rollups import tz_of_meters

DAY = 86400
DAY_PERIOD = PERIODS[1]           # the rollups' local days
MAX_WINDOW_S = 63 * DAY           # two months and a bit: what one call may cover
FORECAST_DAYS = 7                 # "recent use": the last seven local days (today included)
FORECAST_MIN_SPAN_S = 6 * 3600    # less data than this: no forecast


class Bucket:
    __slots__ = ("start", "end", "energy_wh", "cost_mu", "readings", "first_ts")

    def __init__(self, start, end):
        self.start, self.end = start, end
        self.energy_wh = self.cost_mu = self.readings = 0
        self.first_ts = None      # the first reading inside


def buckets(session, meter_ids, edges):
    """Use of the meters together in each interval [edges[i], edges[i+1]):
    [Bucket(start, end, energy_wh, cost_mu, readings)]."""
    edges = [int(e) for e in edges]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise Invalid("time edges must be increasing")
    if edges[-1] - edges[0] > MAX_WINDOW_S:
        raise Invalid("at most %d days at a time" % (MAX_WINDOW_S // DAY))
    out = [Bucket(a, b) for a, b in zip(edges, edges[1:])]
    ids = sorted(set(meter_ids))
    if not ids:
        return out
    present = Reading.flags.op("&")(protocol.FLAG_MISSING) == 0
    inside = (Reading.meter_id.in_(ids), Reading.ts >= edges[0], Reading.ts < edges[-1], present)
    last = {}
    for mid in ids:
        before = session.exec(select(Reading.energy_wh).where(Reading.meter_id == mid, Reading.ts < edges[0], present)
                              .order_by(Reading.ts.desc()).limit(1)).first()
        if before is not None:
            last[mid] = before
    if len(out) == 1:
        # one window (the forecast, totals): aggregated by the database
        b = out[0]
        for mid, n, t0, lo, hi, cost in session.exec(
                select(Reading.meter_id, func.count(), func.min(Reading.ts), func.min(Reading.energy_wh),
                       func.max(Reading.energy_wh), func.coalesce(func.sum(Reading.billed_mu), 0))
                .where(*inside).group_by(Reading.meter_id)).all():
            b.readings += int(n)
            b.cost_mu += int(cost)
            b.energy_wh += max(0, int(hi) - int(last.get(mid, lo)))
            b.first_ts = int(t0) if b.first_ts is None else min(b.first_ts, int(t0))
        return out
    rows = session.exec(select(Reading.meter_id, Reading.ts, Reading.energy_wh, Reading.billed_mu)
                        .where(*inside).order_by(Reading.meter_id, Reading.ts, Reading.seq)).all()
    for mid, ts, wh, billed in rows:
        b = out[bisect.bisect_right(edges, ts) - 1]
        b.readings += 1
        b.cost_mu += billed or 0
        b.first_ts = ts if b.first_ts is None else min(b.first_ts, ts)
        prev = last.get(mid)
        if prev is not None and wh >= prev:
            b.energy_wh += wh - prev
        last[mid] = wh
    return out


def total(session, meter_ids, start, end):
    """(energy Wh, cost mu) over [start, end)."""
    if end <= start:
        return 0, 0
    [b] = buckets(session, meter_ids, [start, end])
    return b.energy_wh, b.cost_mu


def cost_rate_per_day(session, meter_ids, end):
    """Money per day (mu) at the meters' recent use: their cost over the
    last seven local days up to `end` (today and the six days before),
    per day since the first reading in them. None with less than
    FORECAST_MIN_SPAN_S of readings. Read from the day rollups
    (services/rollups.py: a reading's billed_mu in its local day), ~8 rows
    a meter band instead of a week of readings."""
    ids = sorted(set(meter_ids))
    tzs = set(tz_of_meters(session, ids).values()) if ids else set()
    if len(tzs) != 1:
        return None               # no meter (or meters of properties in other time zones: no one "today")
    lo, hi = forecast_days(end, tzs.pop())
    n, t0, cost = session.exec(
        select(func.coalesce(func.sum(Rollup.readings), 0), func.min(Rollup.first_ts),
               func.coalesce(func.sum(Rollup.cost_mu), 0))
        .where(Rollup.meter_id.in_(ids), Rollup.period == DAY_PERIOD, Rollup.start >= lo,
               Rollup.start <= hi)).one()
    return _rate(end, n, t0, cost)


def forecast_days(end, tz_offset_s):
    """(first, last) local day starts of the forecast's window at `end`."""
    today = local_day_start(int(end), tz_offset_s)
    return today - (FORECAST_DAYS - 1) * DAY, today


def _rate(end, n, t0, cost):
    if not n or t0 is None or end - int(t0) < FORECAST_MIN_SPAN_S:
        return None
    return int(cost) * DAY // (end - int(t0))


def account_cost_rates(session, ends, tzs=None):
    """cost_rate_per_day of many accounts at once ({account id: end} ->
    {account id: mu per day or None}): each account's meters' day rollups
    of its window, in ONE statement grouped by account (the windows as
    VALUES or arrays). tzs: {account id: its property's UTC offset} when
    the caller has them (else one look-up)."""
    if not ends:
        return {}
    tz = tzs if tzs is not None and all(a in tzs for a in ends) else _account_tzs(session, ends)
    w = [(int(aid), *forecast_days(end, tz[aid])) for aid, end in sorted(ends.items()) if aid in tz]
    rows = (_pg_account_costs if session.get_bind().dialect.name == "postgresql" else _account_costs)(session, w) \
        if w else []
    out = dict.fromkeys(ends)
    for aid, n, t0, cost in rows:
        out[aid] = _rate(ends[aid], n, t0, cost)
    return out


def _account_tzs(session, ids):
    from ..models import Account, Property
    return dict(session.exec(select(Account.id, Property.tz_offset_s).join(Property, Property.id == Account.property_id)
                             .where(bulk.any_of(session, Account.id, sorted(ids)))).all())


_PG_ACCOUNT_COSTS = text(
    # per meter of each account and day of its window, the day's rows (LATERAL): every
    # column of either index of the rollups is an equality, so the plan is a few index
    # probes a meter whatever the statistics say (with the days as a range and no
    # statistics, the planner walked ix_rollup_period_start over every meter's days)
    "SELECT w.aid, sum(x.n), min(x.t0), sum(x.cost) FROM unnest(CAST(:a AS INTEGER[]), CAST(:d AS BIGINT[])) "
    "AS w (aid, day) JOIN meter m ON m.account_id = w.aid CROSS JOIN LATERAL ("
    "SELECT COALESCE(sum(r.readings), 0) AS n, min(r.first_ts) AS t0, COALESCE(sum(r.cost_mu), 0) AS cost "
    "FROM rollup r WHERE r.meter_id = m.id AND r.period = :p AND r.start = w.day) AS x "
    "GROUP BY w.aid")


def _pg_account_costs(session, w):
    """w: [(account id, first day start, last day start)]."""
    days = [(aid, d) for aid, lo, hi in w for d in range(lo, hi + 1, DAY)]
    return session.execute(_PG_ACCOUNT_COSTS, {"a": bulk.pg_array([x[0] for x in days]),
                                               "d": bulk.pg_array([x[1] for x in days]), "p": DAY_PERIOD}).all()


def _account_costs(session, windows):
    """SQLite: the same in one grouped join, in the order written (CROSS
    JOIN): the windows, each account's meters, their day rollups by the
    primary key (meter, period, start). Left to itself, without statistics,
    SQLite read every meter's days through ix_rollup_period_start."""
    out = []
    for k in range(0, len(windows), 1000):
        part = windows[k:k + 1000]
        params = {"p": DAY_PERIOD}
        rows = []
        for i, (aid, lo, hi) in enumerate(part):
            rows.append("(:a%d, :l%d, :h%d)" % (i, i, i))
            params.update({"a%d" % i: aid, "l%d" % i: lo, "h%d" % i: hi})
        out += session.execute(text(
            "WITH w (aid, lo, hi) AS (VALUES %s) SELECT w.aid, sum(r.readings), min(r.first_ts), "
            "COALESCE(sum(r.cost_mu), 0) FROM w CROSS JOIN meter m CROSS JOIN rollup r "
            "WHERE m.account_id = w.aid AND r.meter_id = m.id AND r.period = :p AND r.start >= w.lo "
            "AND r.start <= w.hi GROUP BY w.aid" % ", ".join(rows)), params).all()
    return out


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


# ------------------------------------------------------------ local calendar
def local_day_start(t, tz_offset_s):
    return (t + tz_offset_s) // DAY * DAY - tz_offset_s


def local_month_starts(t, tz_offset_s):
    """(start of last month, start of this month, start of next month), local."""
    y, m, _d = tariff.civil_from_days((t + tz_offset_s) // DAY)

    def start(y, m):
        return tariff.days_from_civil(y, m, 1) * DAY - tz_offset_s
    py, pm = (y - 1, 12) if m == 1 else (y, m - 1)
    ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
    return start(py, pm), start(y, m), start(ny, nm)


def day_edges(start, end, tz_offset_s):
    """Local midnights from `start` (a local midnight) up to and including `end`'s day end."""
    edges = [start]
    while edges[-1] < end:
        edges.append(edges[-1] + DAY)        # offsets are fixed (no daylight saving)
    return edges
