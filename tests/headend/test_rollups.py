"""Interval rollups through the real ingest path (signed uplinks, the ingest
service, billing), on SQLite and PostgreSQL: live readings, a two-day board
outage whose backlog arrives after the board's first live reading, then the
backlog in journal order. The rollups must equal a recomputation from the
raw readings, the outage days must show their own use (not a spike on the
day the board came back), and the money must equal the ledger."""
import secrets
import uuid

import pytest
from sqlmodel import func, select

from concentrator import protocol, tariff

from headend.core import db, maintenance
from headend.ingest import Ingest
from headend.models import LedgerEntry, Reading, Rollup
from headend.services import rollups, usage
from headend.services.seed import seed_site
from tests.headend.test_headend_ingest import Board

TZ = 28800
DAY0 = 1796169600 - TZ          # 2026-12-02 00:00 local (UTC+8)
STEP = 900
TOU = {"version": 1, "effective": 0, "tz_offset_s": TZ,
       "prices": {"sharp": 12000, "peak": 9000, "flat": 6000, "valley": 3000},
       "tou": {"days": {"workday": [["00:00", "valley"], ["08:00", "flat"], ["10:00", "peak"],
                                    ["19:00", "sharp"], ["21:00", "flat"], ["23:00", "valley"]]},
               "seasons": [{"from": "01-01", "to": "12-31", "weekday": "workday"}]}}


class Meter:
    """A meter with five band registers, as the board reports it."""

    def __init__(self, idx, start_wh, load):
        self.idx, self.load = idx, load
        self.regs = dict.fromkeys(tariff.BANDS, 0)
        self.regs["flat"] = start_wh

    def read(self, seq, ts, missing=False):
        if missing:
            return [seq, protocol.KIND_READING, self.idx, ts, [0, 0, protocol.FLAG_MISSING]]
        hour = (ts + TZ) // 3600 % 24
        wh = self.load * (3 if 18 <= hour < 22 else 1) + (seq % 7)
        self.regs[tariff.band_at(TOU, ts - 1)] += wh
        total = sum(self.regs.values())
        return [seq, protocol.KIND_READING, self.idx, ts,
                [total, wh * 4, 0, 0] + [self.regs[b] for b in tariff.BANDS]]


@pytest.fixture
def site(engine):
    sf = db.session_factory(engine)
    dev = "r-" + uuid.uuid4().hex[:8]
    key = secrets.token_hex(32)
    with sf() as s:
        res = seed_site(s, "site-" + dev, [{"dev": dev, "key_hex": key, "meters": [
            {"id": dev + "-A101", "model": "sdm120"}, {"id": dev + "-A102", "model": "sdm120"}]}],
            tariff_spec=TOU, opening_balance_mu=10 ** 9, tz_offset_s=TZ)
    c = res["concentrators"][dev]
    mids = [c["meters"][dev + "-A101"]["id"], c["meters"][dev + "-A102"]["id"]]
    accs = [c["meters"][dev + "-A101"]["account_id"], c["meters"][dev + "-A102"]["account_id"]]
    now = [DAY0]
    ing = Ingest(sf, clock=lambda: now[0])
    return sf, ing, Board(dev, key), mids, accs, now


def test_two_day_outage_backlog_equals_recomputation(site):
    sf, ing, board, mids, accs, now = site
    meters = [Meter(0, 50_000, 40), Meter(1, 7_000, 15)]
    seq = 0
    journal = []
    for k in range(4 * 24 * 4 + 1):               # four days and one reading, every 15 minutes
        ts = DAY0 + k * STEP
        for m in meters:
            seq += 1
            journal.append(m.read(seq, ts, missing=(m.idx == 1 and k == 130)))
    per_step = len(meters)
    live_until = 96 * per_step                     # day 1 live
    back_at = (96 * 3 + 8) * per_step              # offline for days 2 and 3 (and 2 hours of day 4)
    # day 1: one message per interval, as the board sends them
    for i in range(0, live_until, per_step):
        now[0] = journal[i][3] + 30
        ing.handle(*board.rd(journal[i:i + per_step]))
    # back online: the first live interval goes up before the backlog (an out-of-order arrival)
    now[0] = journal[back_at][3] + 30
    ing.handle(*board.rd(journal[back_at:back_at + per_step]))
    # then the backlog, 64 records a message, oldest first
    for i in range(live_until, back_at, 64):
        ing.handle(*board.rd(journal[i:min(i + 64, back_at)]))
    # the rest of day 4, live
    for i in range(back_at + per_step, len(journal), per_step):
        now[0] = journal[i][3] + 30
        ing.handle(*board.rd(journal[i:i + per_step]))

    with sf() as s:
        assert s.exec(select(func.count()).select_from(Reading)).one() == len(journal)
        kept = rollups.stored(s, mids)
        assert rollups.canonical(kept) == rollups.canonical(rollups.recompute(s, mids, DAY0 - 86400,
                                                                              DAY0 + 5 * 86400))
        # the same answer usage.buckets gives from the raw readings, day by day
        edges = [DAY0 + d * 86400 for d in range(5)]
        for mid in mids:
            days = usage.buckets(s, [mid], edges)
            for d, b in enumerate(days):
                got = [v for k, v in kept.items() if k[0] == mid and k[1] == "d" and k[2] == edges[d]]
                assert sum(v[0] for v in got) == b.energy_wh
                assert sum(v[1] for v in got) == b.cost_mu
                assert sum(v[2] for v in got) == b.readings
        # the outage days show their own use: meter 0 used 96*40 + 4 hours x 2 x 40 + seq noise a day
        m0 = {k[2]: 0 for k in kept if k[0] == mids[0] and k[1] == "d"}
        for k, v in kept.items():
            if k[0] == mids[0] and k[1] == "d":
                m0[k[2]] += v[0]
        for d in (1, 2):
            assert 96 * 40 + 16 * 80 <= m0[DAY0 + d * 86400] <= 96 * 40 + 16 * 80 + 96 * 6
        # bands: the evening peak energy is in "sharp" (19:00-21:00) and "peak"
        sharp = sum(v[0] for k, v in kept.items() if k[0] == mids[0] and k[1] == "d" and k[3] == "sharp")
        assert sharp > 0
        # money: every mu charged is in the rollups, month total = ledger
        charged = -s.exec(select(func.sum(LedgerEntry.amount_mu)).where(
            LedgerEntry.account_id.in_(accs), LedgerEntry.kind == "consumption")).one()
        month = sum(v[1] for k, v in kept.items() if k[1] == "m")
        assert charged > 0 and month == charged
        hours = sum(v[1] for k, v in kept.items() if k[1] == "h")
        assert hours == charged
        # a rebuild from the raw readings changes nothing
        rollups.rebuild(s, mids, DAY0, DAY0 + 4 * 86400)
        s.commit()
        assert rollups.canonical(rollups.stored(s, mids)) == rollups.canonical(kept)


def test_rollups_after_readings_in_any_order(site):
    """Records of one meter arriving shuffled across messages (a clock fix,
    resends): the rollups still equal the recomputation."""
    import random
    sf, ing, board, mids, accs, now = site
    m = Meter(0, 1000, 25)
    recs = [m.read(i + 1, DAY0 + i * STEP) for i in range(200)]
    order = list(range(0, 200, 10))
    random.Random(4).shuffle(order)
    now[0] = DAY0 + 3 * 86400
    for i in order:
        ing.handle(*board.rd(recs[i:i + 10]))
    with sf() as s:
        assert rollups.canonical(rollups.stored(s, mids)) == rollups.canonical(
            rollups.recompute(s, mids, DAY0 - 86400, DAY0 + 5 * 86400))
        total = sum(v[0] for k, v in rollups.stored(s, mids).items() if k[1] == "m")
        assert total == recs[-1][4][0] - recs[0][4][0]


def test_retention_waits_for_rollups(engine):
    """Readings stored before the rollups existed are not pruned until a
    full rebuild has rolled them up."""
    sf = db.session_factory(engine)
    with sf() as s:
        from headend.models.rollup import RollupMark
        mark = s.get(RollupMark, "since")
        assert mark is not None and mark.ts == 0         # a new database: nothing waits
        mark.ts = 1796140800
        s.add(mark)
        s.commit()
    with engine.begin() as conn:
        assert rollups.retention_guard(conn, 1796140800) == 0
    assert rollups.retention_guard in maintenance.RETENTION_GUARDS
    with sf() as s:
        rollups.rebuild_all(s)
        s.commit()
    with engine.begin() as conn:
        assert rollups.retention_guard(conn, 1796140800) == 1796140800


def test_rollup_rows_are_few(site):
    """Hourly, daily and monthly rows only for buckets with readings."""
    sf, ing, board, mids, accs, now = site
    m = Meter(0, 1000, 25)
    now[0] = DAY0 + 86400
    ing.handle(*board.rd([m.read(i + 1, DAY0 + i * STEP) for i in range(8)]))    # two hours
    with sf() as s:
        rows = s.exec(select(Rollup).where(Rollup.meter_id == mids[0])).all()
        assert {(r.period, r.start) for r in rows} == {("h", DAY0), ("h", DAY0 + 3600), ("d", DAY0),
                                                       ("m", rollups.month_start(DAY0, TZ))}
        assert sum(r.readings for r in rows if r.period == "d") == 8


def test_load_curve_from_readings(site):
    """The meter's reported power and the average power from its register."""
    from headend.services import load_curves
    from headend.services.actor import system_actor
    from headend.services.errors import Invalid as Inv
    sf, ing, board, mids, accs, now = site
    m = Meter(0, 1000, 25)
    recs = [m.read(i + 1, DAY0 + i * STEP) for i in range(8)]
    now[0] = DAY0 + 86400
    ing.handle(*board.rd(recs))
    with sf() as s:
        c = load_curves.curve(s, system_actor(s), mids[0], DAY0, DAY0 + 86400)
        assert [p[0] for p in c["points"]] == [r[3] for r in recs]
        assert [p[1] for p in c["points"]] == [r[4][1] for r in recs]
        assert c["points"][0][2] is None
        # average W over 15 minutes = Wh rise x 4
        assert c["points"][1][2] == (recs[1][4][0] - recs[0][4][0]) * 4
        with pytest.raises(Inv):
            load_curves.curve(s, system_actor(s), mids[0], DAY0, DAY0 + 100 * 86400)


def test_the_cli_rolls_up_readings_stored_before_rollups(site, engine):
    """`wattkeeper db rollups` after an upgrade: readings with no rollups
    get them (equal to the recomputation) and retention is unblocked."""
    from sqlalchemy import delete
    from typer.testing import CliRunner

    from headend.cli.app import app as cli
    from headend.models.rollup import Rollup, RollupMark
    sf, ing, board, mids, accs, now = site
    m = Meter(0, 1000, 25)
    now[0] = DAY0 + 3 * 86400
    ing.handle(*board.rd([m.read(i + 1, DAY0 + i * STEP) for i in range(96)]))
    with sf() as s:
        want = rollups.canonical(rollups.stored(s, mids))
        s.execute(delete(Rollup))                     # as if stored by a head-end without rollups
        s.get(RollupMark, "since").ts = DAY0 + 86400   # readings before this were never rolled up
        s.commit()
    r = CliRunner().invoke(cli, ["--db", engine.url.render_as_string(hide_password=False), "db", "rollups"])
    assert r.exit_code == 0, r.output
    assert "rollups rebuilt" in r.output
    with sf() as s:
        assert want and rollups.canonical(rollups.stored(s, mids)) == want
        assert s.get(RollupMark, "since").ts == 0
def test_rollup_after_a_long_silence_counts_the_whole_rise(site):
    """A meter heard again after 20 days (longer than the 7 days the ingest
    looks back first for a reading's predecessor): its register rise since
    the reading before the silence is its energy, in the rollups as in a
    recomputation from the raw readings."""
    sf, ing, board, mids, accs, now = site
    m = Meter(0, 5000, 30)
    first = [m.read(1, DAY0), m.read(2, DAY0 + STEP)]
    now[0] = DAY0 + STEP + 30
    ing.handle(*board.rd(first))
    m.regs["flat"] += 12_345                       # used during the silence
    later = DAY0 + 20 * 86400
    back = [m.read(3, later), m.read(4, later + STEP)]
    now[0] = later + STEP + 30
    ing.handle(*board.rd(back))
    with sf() as s:
        kept = rollups.stored(s, mids)
        assert rollups.canonical(kept) == rollups.canonical(rollups.recompute(s, mids, DAY0 - 86400,
                                                                              later + 86400))
        day = rollups.day_start(later, TZ)
        rise = back[0][4][0] - first[-1][4][0]
        assert rise > 12_345
        got = sum(v[0] for k, v in kept.items() if k[0] == mids[0] and k[1] == "d" and k[2] == day)
        assert got == back[-1][4][0] - first[-1][4][0]
