"""Energy and money used by meters over time, from the readings.

SEAM (issue 11): `buckets` is the ONE function the portal and the
low-balance forecast read usage through. It reads the readings table now (a
bounded window, index ix_reading_meter_ts); when the interval rollups land,
point it at them, with the same answer.

A reading's billed_mu is what the head-end charged for the energy since the
meter's previous reading, and its register rise since that reading is the
energy: both belong to the interval the reading falls in.
"""
import bisect

from sqlalchemy import BigInteger, Integer, and_, column, func, text
from sqlalchemy import values as sa_values
from sqlmodel import select

from concentrator import protocol, tariff

from ..core import bulk
from ..models import Reading
from .errors import Invalid

DAY = 86400
MAX_WINDOW_S = 63 * DAY           # two months and a bit: what one call may cover
FORECAST_WINDOW_S = 7 * DAY       # "recent use": the last seven days
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
    last seven days up to `end`, per day since the first reading in them.
    None with less than FORECAST_MIN_SPAN_S of readings."""
    n, first_ts, cost = window_cost(session, meter_ids, end + 1 - FORECAST_WINDOW_S, end + 1)
    if not n or end - first_ts < FORECAST_MIN_SPAN_S:
        return None
    return cost * DAY // (end - first_ts)


def account_cost_rates(session, ends):
    """cost_rate_per_day of many accounts at once ({account id: end} ->
    {account id: mu per day or None}): each account's meters' cost over the
    seven days up to its end, in ONE statement grouped by account (the
    window of every account as VALUES or arrays; literal outer bounds so
    PostgreSQL reads only the month partitions they touch)."""
    if not ends:
        return {}
    w = [(int(aid), int(end) + 1 - FORECAST_WINDOW_S, int(end) + 1) for aid, end in sorted(ends.items())]
    rows = (_pg_account_costs if session.get_bind().dialect.name == "postgresql" else _account_costs)(session, w)
    out = dict.fromkeys(ends)
    for aid, n, t0, cost in rows:
        end = ends[aid]
        if n and end - int(t0) >= FORECAST_MIN_SPAN_S:
            out[aid] = int(cost) * DAY // (end - int(t0))
    return out


_PG_ACCOUNT_COSTS = text(
    # per meter of each account, its own aggregate (LATERAL): an index range scan of
    # ix_reading_meter_ts whatever the statistics say. A month partition just created
    # (or not analyzed yet) looks empty to the planner, and it joined every reading of
    # the window with every account (64 accounts of 85 readings each: 0.28 s, not 2 ms).
    # The literal outer bounds (:glo, :ghi) let it skip the other month partitions.
    "SELECT w.aid, sum(x.n), min(x.t0), sum(x.cost) FROM unnest(CAST(:a AS INTEGER[]), CAST(:lo AS BIGINT[]), "
    "CAST(:hi AS BIGINT[])) AS w (aid, lo, hi) JOIN meter m ON m.account_id = w.aid CROSS JOIN LATERAL ("
    "SELECT count(*) AS n, min(r.ts) AS t0, COALESCE(sum(r.billed_mu), 0) AS cost FROM reading r "
    "WHERE r.meter_id = m.id AND r.ts >= w.lo AND r.ts < w.hi AND r.ts >= :glo AND r.ts < :ghi "
    "AND r.flags & {m} = 0) AS x WHERE x.n > 0 GROUP BY w.aid".format(m=protocol.FLAG_MISSING))


def _pg_account_costs(session, w):
    """w: [(account id, window start, window end)]."""
    a = bulk.pg_array
    return session.execute(_PG_ACCOUNT_COSTS, {
        "a": a([x[0] for x in w]), "lo": a([x[1] for x in w]), "hi": a([x[2] for x in w]),
        "glo": min(x[1] for x in w), "ghi": max(x[2] for x in w)}).all()


def _account_costs(session, windows):
    """SQLite: the same in one grouped join (its planner takes the index)."""
    from ..models import Meter
    w = sa_values(column("aid", Integer), column("lo", BigInteger), column("hi", BigInteger), name="w").data(
        windows).cte("w")
    present = Reading.flags.op("&")(protocol.FLAG_MISSING) == 0
    lo = min(x[1] for x in windows)
    hi = max(x[2] for x in windows)
    return session.exec(select(w.c.aid, func.count(), func.min(Reading.ts),
                               func.coalesce(func.sum(Reading.billed_mu), 0))
                        .select_from(w).join(Meter, Meter.account_id == w.c.aid)
                        .join(Reading, and_(Reading.meter_id == Meter.id, Reading.ts >= w.c.lo, Reading.ts < w.c.hi,
                                            Reading.ts >= lo, Reading.ts < hi, present))
                        .group_by(w.c.aid)).all()


def window_cost(session, meter_ids, start, end):
    """(readings, first reading's ts or None, cost mu) of the meters'
    present readings in [start, end): what buckets() says of that one
    window but its energy, in ONE aggregate statement (no look-up of the
    reading before the window: the cost needs none), so the forecast costs
    the same with a year of history as with none."""
    ids = sorted(set(meter_ids))
    if not ids or end <= start:
        return 0, None, 0
    present = Reading.flags.op("&")(protocol.FLAG_MISSING) == 0
    n, t0, cost = session.exec(select(func.count(), func.min(Reading.ts), func.coalesce(func.sum(Reading.billed_mu), 0))
                               .where(Reading.meter_id.in_(ids), Reading.ts >= start, Reading.ts < end,
                                      present)).one()
    return int(n), (int(t0) if t0 is not None else None), int(cost)


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
