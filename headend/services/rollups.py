"""Interval rollups (models/rollup.py), kept up to date as readings arrive.

What a bucket holds is what services/usage.buckets computes from the raw
readings, per local hour, day and month:

* energy: a present reading's register rise since the meter's previous
  present reading in time order (ts, seq), attributed to the reading's
  bucket; a register that went backwards counts nothing (a reset);
* cost: the reading's billed_mu (what the head-end charged for it);
* readings: how many present readings.

Bands: when a reading and its predecessor both carry the five band
registers, the energy is split by their rises (scaled to the energy, the
remainder by largest remainder); otherwise it is band "". A reading's cost
is split over its bands in proportion to their energy (largest remainder,
ties to the earlier band of concentrator.tariff.BANDS), so band rows add up
to the reading exactly. The count goes to the band with the most energy
("" when none). Readings without a time (ts = 0) and gaps (FLAG_MISSING)
are not rolled up.

A late reading (older than readings already stored: a backlog uploaded out
of order, a clock fixed) changes its successor's rise too: after_billing
looks up each new reading's neighbours and applies the difference, so the
rollups stay equal to a recomputation (rebuild) whatever the arrival order.

    after_billing(session, readings)   # once per ingest message, the new readings
    rebuild(session, meter_ids, start, end)
"""
import collections
import functools

from sqlalchemy import BigInteger, and_, bindparam, delete, or_, select, text, union_all

from concentrator import protocol, tariff

from ..core import bulk, maintenance
from ..models import Concentrator, Meter, Property, Reading
from ..models.rollup import PERIODS, Rollup, RollupMark

HOUR = 3600
DAY = 86400
BANDS = tariff.BANDS
NBANDS = len(BANDS)

R = collections.namedtuple("R", "meter_id ts seq energy_wh bands billed_mu")
_new_r = functools.partial(tuple.__new__, R)     # R((fields)) without the namedtuple's Python-level __new__


def _rolled(rows):
    """The ingest's new readings (store.ReadingRow: meter_id, ts, seq,
    energy_wh, flags, bands, billed_mu; ints, as bounds.check_record let
    them through) -> [R] of those rolled up (a meter, a time, not a gap)."""
    missing = protocol.FLAG_MISSING
    return [_new_r((r.meter_id, r.ts, r.seq, r.energy_wh,
                    tuple(r.bands[:NBANDS]) if len(r.bands) >= NBANDS else None, r.billed_mu or 0))
            for r in rows if r.meter_id is not None and r.ts and not r.flags & missing]


# ----------------------------------------------------------------- buckets
def hour_start(t, tz):
    return (t + tz) // HOUR * HOUR - tz


def day_start(t, tz):
    return (t + tz) // DAY * DAY - tz


def month_start(t, tz):
    y, m, _d = tariff.civil_from_days((t + tz) // DAY)
    return tariff.days_from_civil(y, m, 1) * DAY - tz


def next_month(start, tz):
    y, m, _d = tariff.civil_from_days((start + tz) // DAY)
    y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return tariff.days_from_civil(y, m, 1) * DAY - tz


@functools.lru_cache(maxsize=4096)
def starts(t, tz):
    # a pure function of (t, tz), asked for every reading: the meters of
    # a message, and a fleet's messages, share their record times
    return ((PERIODS[0], hour_start(t, tz)), (PERIODS[1], day_start(t, tz)), (PERIODS[2], month_start(t, tz)))


def _split(total, weights):
    """total split in proportion to weights (ints >= 0, sum > 0): largest
    remainder, ties to the earlier index; sums to total exactly."""
    s = sum(weights)
    parts = [total * w // s for w in weights]
    rest = total - sum(parts)
    if not rest:
        return parts          # divides exactly (one band, most often): no remainder to hand out
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % s), i))
    for i in order[:rest]:
        parts[i] += 1
    return parts


def contribution(a, b):
    """What reading b puts in its buckets, given its predecessor a (or None):
    [(band, energy_wh, cost_mu, readings)]."""
    e = b.energy_wh - a.energy_wh if a is not None and b.energy_wh >= a.energy_wh else 0
    split = None
    if e > 0 and a is not None and a.bands is not None and b.bands is not None:
        d = [y - x if y > x else 0 for x, y in zip(a.bands, b.bands)]
        sd = sum(d)
        if sd == e and d.count(0) == NBANDS - 1:
            # one band took it all (most readings): what the general case below comes to
            i = d.index(e)
            return [(BANDS[i], e, b.billed_mu, 1)]
        if sd > 0:
            split = d if sd == e else _split(e, d)
    if split is None:
        return [("", e, b.billed_mu, 1)]
    costs = _split(b.billed_mu, split) if b.billed_mu else [0] * NBANDS
    top = split.index(max(split))       # the most energy, ties to the earlier band
    return [(BANDS[i], split[i], costs[i], 1 if i == top else 0)
            for i in range(NBANDS) if split[i] or costs[i] or i == top]


# ----------------------------------------------------------------- upsert
_COLUMNS = "meter_id, period, start, band, energy_wh, cost_mu, readings, first_ts"
_ON_CONFLICT = (
    " ON CONFLICT (meter_id, period, start, band) DO UPDATE SET "
    "energy_wh = rollup.energy_wh + EXCLUDED.energy_wh, cost_mu = rollup.cost_mu + EXCLUDED.cost_mu, "
    "readings = rollup.readings + EXCLUDED.readings, "
    "first_ts = CASE WHEN rollup.first_ts IS NULL THEN EXCLUDED.first_ts WHEN EXCLUDED.first_ts IS NULL "
    "THEN rollup.first_ts WHEN EXCLUDED.first_ts < rollup.first_ts THEN EXCLUDED.first_ts ELSE rollup.first_ts END")
_PG_UPSERT = text(
    "INSERT INTO rollup (" + _COLUMNS + ") "
    "SELECT * FROM unnest(CAST(:m AS INTEGER[]), CAST(:p AS VARCHAR[]), CAST(:s AS BIGINT[]), CAST(:b AS VARCHAR[]), "
    "CAST(:e AS BIGINT[]), CAST(:c AS BIGINT[]), CAST(:n AS BIGINT[]), CAST(:f AS BIGINT[]))" + _ON_CONFLICT)
_SQLITE_UPSERT = "INSERT INTO rollup (" + _COLUMNS + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)" + _ON_CONFLICT


def apply(session, acc):
    """Add acc {(meter_id, period, start, band): [wh, mu, n, first_ts]} to the
    rollups with one INSERT .. ON CONFLICT DO UPDATE (SQLite, PostgreSQL).
    Keys in order, so concurrent workers lock rows in the same order."""
    rows = [k + tuple(v) for k, v in sorted(acc.items()) if v[0] or v[1] or v[2] or v[3] is not None]
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        # one statement over arrays (psycopg2's executemany is a round trip per row)
        for i in range(0, len(rows), 5000):
            part = rows[i:i + 5000]
            session.execute(_PG_UPSERT, {k: bulk.pg_array([r[c] for r in part]) for c, k in enumerate("mpsbecnf")})
        return len(rows)
    # SQLite: plain tuples on its own cursor (SQLAlchemy's executemany builds a dict per row)
    cur = session.connection().connection.cursor()
    try:
        cur.executemany(_SQLITE_UPSERT, rows)
    finally:
        cur.close()
    return len(rows)


def _add(hours, tz, b, parts, sign, first_ts=None):
    """Reading b's parts into its local hour's buckets: hours {(meter_id,
    tz, hour start, band): [wh, mu, n, first_ts]} (periods() makes the
    days and months of them)."""
    h = hour_start(b.ts, tz)
    for band, wh, mu, n in parts:
        k = (b.meter_id, tz, h, band)
        v = hours.get(k)
        if v is None:
            v = hours[k] = [0, 0, 0, None]
        v[0] += sign * wh
        v[1] += sign * mu
        v[2] += sign * n
        if first_ts is not None and (v[3] is None or first_ts < v[3]):
            v[3] = first_ts


def periods(hours):
    """The hour buckets (_add) -> acc {(meter_id, period, start, band): [wh,
    mu, n, first_ts]} of every period: a local hour lies in one local day and
    month, so a day's (a month's) figures are the sums of its hours' and its
    first_ts their least: each reading is added once, not once per period."""
    acc = {}
    for (mid, tz, h, band), v in hours.items():
        for period, start in starts(h, tz):
            k = (mid, period, start, band)
            w = acc.get(k)
            if w is None:
                acc[k] = list(v)
                continue
            w[0] += v[0]
            w[1] += v[1]
            w[2] += v[2]
            if v[3] is not None and (w[3] is None or v[3] < w[3]):
                w[3] = v[3]
    return acc


# ----------------------------------------------------------------- look-ups
def tz_of_meters(session, meter_ids):
    rows = session.execute(select(Meter.id, Property.tz_offset_s).join(Concentrator, Concentrator.id == Meter.concentrator_id)
                           .join(Property, Property.id == Concentrator.property_id)
                           .where(Meter.id.in_(sorted(meter_ids)))).all()
    return {int(m): int(tz) for m, tz in rows}


_COLS = (Reading.meter_id, Reading.ts, Reading.seq, Reading.energy_wh, Reading.bands, Reading.billed_mu)
_PRESENT = Reading.flags.op("&")(protocol.FLAG_MISSING) == 0


def _r(row):
    mid, ts, seq, e, bands, billed = row
    return R(int(mid), int(ts), int(seq), int(e), tuple(bands[:NBANDS]) if bands and len(bands) >= NBANDS else None,
             int(billed or 0))


NEIGHBOUR_WINDOW_S = 7 * DAY     # a predecessor is looked for this far back first (then further, rarely)
_NEIGHBOUR_SQL = {}              # number of meters -> the statement (built once: building it costs more than running it)


def _p(name, i):
    return bindparam("%s_%d" % (name, i), type_=BigInteger)


def _neighbour_stmt(n):
    """The statement _neighbours runs for n meters, with bind parameters
    mid_i, lts_i, lseq_i, lwin_i (the first new reading and how far back to
    look), hts_i, hseq_i (the last), lo, hi: cached per n, so a message pays
    only for its execution (and SQLAlchemy's compiled cache hits)."""
    stmt = _NEIGHBOUR_SQL.get(n)
    if stmt is not None:
        return stmt
    parts = []
    for i in range(n):
        mid, lts, lseq, hts, hseq = _p("mid", i), _p("lts", i), _p("lseq", i), _p("hts", i), _p("hseq", i)
        before = (select(*_COLS).where(Reading.meter_id == mid, Reading.ts > 0, Reading.ts >= _p("lwin", i), _PRESENT,
                                       or_(Reading.ts < lts, and_(Reading.ts == lts, Reading.seq < lseq)))
                  .order_by(Reading.ts.desc(), Reading.seq.desc()).limit(1).subquery())
        after = (select(*_COLS).where(Reading.meter_id == mid, _PRESENT, Reading.ts >= hts,
                                      or_(Reading.ts > hts, and_(Reading.ts == hts, Reading.seq > hseq)))
                 .order_by(Reading.ts, Reading.seq).limit(1).subquery())
        parts.append(select(*before.c))
        parts.append(select(*after.c))
    inside = select(*_COLS).where(Reading.meter_id.in_(bindparam("mids", expanding=True)), _PRESENT,
                                  Reading.ts >= bindparam("lo", type_=BigInteger),
                                  Reading.ts <= bindparam("hi", type_=BigInteger))
    parts.append(inside)
    stmt = _NEIGHBOUR_SQL[n] = union_all(*parts)
    return stmt


_PG_COLS = "meter_id, ts, seq, energy_wh, bands, billed_mu"
_PG_NEIGHBOURS = text(
    # per meter (arrays, one short plan whatever the number of meters): the reading
    # before its first new one and the one after its last; then every reading in between.
    # The literal bounds (:gwin, :ghts below, :glts above) let the planner skip the month
    # partitions a probe cannot reach (the older ones, and the months made ahead).
    "SELECT r.* FROM unnest(CAST(:mid AS INTEGER[]), CAST(:lts AS BIGINT[]), CAST(:lseq AS BIGINT[]), "
    "CAST(:lwin AS BIGINT[]), CAST(:hts AS BIGINT[]), CAST(:hseq AS BIGINT[])) AS s (mid, lts, lseq, lwin, hts, hseq) "
    "CROSS JOIN LATERAL ("
    # ts <= s.lts (>= s.hts) as the index condition, the seq tie-break apart: with the OR in the
    # index condition the planner took a bitmap scan of the meter's whole window (a week of
    # readings read and sorted per meter) instead of walking the index back to one row
    "(SELECT {c} FROM reading WHERE meter_id = s.mid AND ts > 0 AND ts >= :gwin AND ts >= s.lwin AND flags & {m} = 0 "
    " AND ts <= :glts AND ts <= s.lts AND (ts < s.lts OR seq < s.lseq) ORDER BY ts DESC, seq DESC LIMIT 1) "
    "UNION ALL "
    "(SELECT {c} FROM reading WHERE meter_id = s.mid AND ts >= :ghts AND ts >= s.hts AND flags & {m} = 0 "
    " AND (ts > s.hts OR seq > s.hseq) ORDER BY ts, seq LIMIT 1)) AS r "
    "UNION ALL "
    "SELECT {c} FROM reading WHERE meter_id = ANY(CAST(:mid AS INTEGER[])) AND flags & {m} = 0 "
    "AND ts >= :lo AND ts <= :hi".format(c=_PG_COLS, m=protocol.FLAG_MISSING))


def _pg_neighbours(session, mids, spans, params, window_s):
    lo = [spans[m][0] for m in mids]
    hi = [spans[m][1] for m in mids]
    lwin = [r.ts - window_s if window_s else 0 for r in lo]
    a = bulk.pg_array
    return session.execute(_PG_NEIGHBOURS, {
        "mid": a(mids), "lts": a([r.ts for r in lo]), "lseq": a([r.seq for r in lo]), "lwin": a(lwin),
        "hts": a([r.ts for r in hi]), "hseq": a([r.seq for r in hi]), "gwin": min(lwin), "glts": max(r.ts for r in lo),
        "ghts": min(r.ts for r in hi),
        "lo": params["lo"], "hi": params["hi"]}).all()


def _neighbours(session, spans, window_s=None):
    """spans {meter: (first R, last R)} -> every present reading of those
    meters from the one before first to the one after last (one statement;
    a second, rarely, for meters with nothing in the NEIGHBOUR_WINDOW_S
    before their first new reading, so a year of history costs nothing)."""
    window_s = NEIGHBOUR_WINDOW_S if window_s is None else window_s
    mids = sorted(spans)
    params = {"mids": mids, "lo": min(lo.ts for lo, _ in spans.values()),
              "hi": max(hi.ts for _, hi in spans.values())}
    if session.get_bind().dialect.name == "postgresql":
        rows = _pg_neighbours(session, mids, spans, params, window_s)
    else:
        for i, mid in enumerate(mids):
            lo, hi = spans[mid]
            params.update({"mid_%d" % i: mid, "lts_%d" % i: lo.ts, "lseq_%d" % i: lo.seq,
                           "lwin_%d" % i: lo.ts - window_s if window_s else 0,
                           "hts_%d" % i: hi.ts, "hseq_%d" % i: hi.seq})
        rows = session.execute(_neighbour_stmt(len(mids)), params).all()
    out = collections.defaultdict(dict)
    for row in rows:
        r = _r(row)
        out[r.meter_id][(r.ts, r.seq)] = r
    if window_s:
        far = {mid: spans[mid] for mid in mids
               if not any(k < (spans[mid][0].ts, spans[mid][0].seq) for k in out.get(mid, ()))}
        if far:
            # nothing stored in the window before: look all the way back (a meter's first reading, a long gap)
            for mid, got in _neighbours(session, far, window_s=0).items():
                out[mid].update(got)
    return out


# ----------------------------------------------------------------- the hook
def after_billing(session, readings, tzs=None):
    """Roll up the new readings of an ingest transaction (billed: billed_mu
    set; store.ReadingRow, see _rolled). tzs: {meter id: its property's UTC
    offset} when the caller knows them (else looked up). Returns the number
    of rollup rows written."""
    new = _rolled(readings)
    if not new:
        return 0
    by_meter = collections.defaultdict(list)
    for r in new:
        by_meter[r.meter_id].append(r)
    spans = {}
    for mid, rs in by_meter.items():
        rs.sort(key=lambda r: (r.ts, r.seq))
        spans[mid] = (rs[0], rs[-1])
    tzs = tzs if tzs is not None and all(m in tzs for m in by_meter) else tz_of_meters(session, by_meter)
    known = _neighbours(session, spans)
    hours = {}
    for mid, rs in by_meter.items():
        tz = tzs.get(mid, 0)
        got = known.get(mid, {})
        mine = {(r.ts, r.seq) for r in rs}
        if len(mine) == len(rs) and (not got or max(got) < (rs[0].ts, rs[0].seq)):
            # in order (what a board sends): every stored neighbour is older than the new
            # readings, which follow each other; nothing stored changes its predecessor
            prev = got[max(got)] if got else None
            for b in rs:
                _add(hours, tz, b, contribution(prev, b), +1, first_ts=b.ts)
                prev = b
            continue
        merged = dict(got)
        for r in rs:
            merged[(r.ts, r.seq)] = r
        chain = [merged[k] for k in sorted(merged)]
        old_prev = None    # the predecessor among the readings stored before this message
        prev = None
        for b in chain:
            if (b.ts, b.seq) in mine:
                _add(hours, tz, b, contribution(prev, b), +1, first_ts=b.ts)
            elif prev is not None and prev is not old_prev:
                # an older reading whose predecessor is now one of the new ones
                _add(hours, tz, b, contribution(old_prev, b), -1)
                _add(hours, tz, b, contribution(prev, b), +1, first_ts=b.ts)
            if (b.ts, b.seq) not in mine:
                old_prev = b
            prev = b
    return apply(session, periods(hours))


# ----------------------------------------------------------------- rebuild
def recompute(session, meter_ids, start, end):
    """The rollups of the meters' readings with ts in [start, end), from the
    raw readings: {(meter_id, period, start, band): [wh, mu, n, first_ts]}."""
    ids = sorted(set(meter_ids))
    tzs = tz_of_meters(session, ids)
    hours = {}
    for mid in ids:
        prev = session.execute(select(*_COLS).where(Reading.meter_id == mid, Reading.ts > 0, Reading.ts < start,
                                                    _PRESENT)
                               .order_by(Reading.ts.desc(), Reading.seq.desc()).limit(1)).first()
        prev = _r(prev) if prev is not None else None
        q = (select(*_COLS).where(Reading.meter_id == mid, Reading.ts >= max(start, 1), Reading.ts < end, _PRESENT)
             .order_by(Reading.ts, Reading.seq).execution_options(yield_per=5000))
        for row in session.execute(q):
            b = _r(row)
            _add(hours, tzs.get(mid, 0), b, contribution(prev, b), +1, first_ts=b.ts)
            prev = b
    return periods(hours)


def widen(session, meter_ids, start, end):
    """[start, end) widened to whole local months of every meter's property."""
    tzs = tz_of_meters(session, meter_ids).values() or [0]
    lo = min(month_start(start, tz) for tz in tzs)
    hi = max(next_month(month_start(end - 1, tz), tz) for tz in tzs)
    return lo, hi


def rebuild(session, meter_ids, start, end):
    """Recompute the meters' rollups for the whole local months touching
    [start, end) from the raw readings. Returns the rows written."""
    ids = sorted(set(meter_ids))
    if not ids or end <= start:
        return 0
    lo, hi = widen(session, ids, start, end)
    session.execute(delete(Rollup).where(Rollup.meter_id.in_(ids), Rollup.start >= lo, Rollup.start < hi))
    return apply(session, recompute(session, ids, lo, hi))


def rebuild_all(session, chunk=200, progress=None):
    """Every meter over all its readings; then every reading is rolled up
    (the mark "since" goes to 0 and retention may prune).
    progress(done, total, what) after each chunk of meters."""
    lo, hi = session.execute(select(Reading.ts).where(Reading.ts > 0).order_by(Reading.ts).limit(1)).scalar(), \
        session.execute(select(Reading.ts).order_by(Reading.ts.desc()).limit(1)).scalar()
    n = 0
    if lo is not None:
        ids = [int(m) for m in session.execute(select(Meter.id).order_by(Meter.id)).scalars()]
        for i in range(0, len(ids), chunk):
            n += rebuild(session, ids[i:i + chunk], lo, hi + 1)
            if progress is not None:
                progress(min(i + chunk, len(ids)), len(ids), "meters")
    mark = session.get(RollupMark, "since")
    if mark is None:
        session.add(RollupMark(name="since", ts=0))
    else:
        mark.ts = 0
        session.add(mark)
    session.flush()
    return n


def canonical(acc):
    """acc -> ({key: (wh, mu, n)} without empty rows, {bucket: first_ts}):
    what two rollups must agree on (first_ts is a bucket's, over its bands)."""
    rows, first = {}, {}
    for k, v in acc.items():
        if v[0] or v[1] or v[2]:
            rows[k] = tuple(v[:3])
        if v[3] is not None and v[2] >= 0:
            b = k[:3]
            first[b] = v[3] if b not in first else min(first[b], v[3])
    return rows, first


def stored(session, meter_ids, start=None, end=None):
    """The rollup rows as the same dict recompute gives (for checks)."""
    q = select(Rollup).where(Rollup.meter_id.in_(sorted(set(meter_ids))))
    if start is not None:
        q = q.where(Rollup.start >= start, Rollup.start < end)
    out = {}
    for (r,) in session.execute(q):
        out[(r.meter_id, r.period, r.start, r.band)] = [r.energy_wh, r.cost_mu, r.readings, r.first_ts]
    return out


# ----------------------------------------------------------------- retention
def retention_guard(conn, cutoff):
    """Raw readings go only once rolled up: while the mark "since" is set
    (readings stored before the rollups existed), none is pruned."""
    since = conn.execute(text("SELECT ts FROM rollup_mark WHERE name = 'since'")).scalar()
    return cutoff if not since else 0


if retention_guard not in maintenance.RETENTION_GUARDS:
    maintenance.RETENTION_GUARDS.append(retention_guard)
