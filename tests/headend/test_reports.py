"""Reports (check 2): totals equal the readings and the ledger for the same
filters; the XLSX opens in openpyxl with numeric cells and the same totals;
staff see only their properties. Readings come through the real ingest."""
import datetime
import io

import openpyxl
import pytest
from sqlmodel import func, select

from headend.core import permissions as P
from headend.models import LedgerEntry, Receipt, Unit
from headend.services import corrections, reports, sales, usage
from headend.services.actor import Actor, system_actor
from headend.services.errors import Forbidden, Invalid, NotFound
from headend.services.properties import get_or_create_property
from headend.services.receipts import LEDGER_KIND
from headend.services.reports import export
from headend.services.users import system_user
from tests.headend.test_rollups import DAY0, STEP, Meter, site  # noqa: F401  (site: the fixture)

DAY = datetime.date(2026, 12, 2)


def feed(ing, board, now, days=3):
    meters = [Meter(0, 50_000, 40), Meter(1, 7_000, 15)]
    seq = 0
    for k in range(days * 96):
        ts = DAY0 + k * STEP
        recs = []
        for m in meters:
            seq += 1
            recs.append(m.read(seq, ts))
        now[0] = ts + 30
        ing.handle(*board.rd(recs))


def test_report_totals_equal_readings_and_ledger(site):
    sf, ing, board, mids, accs, now = site
    feed(ing, board, now)
    with sf() as s:
        actor = system_actor(s)
        f = reports.filters(s, actor, property_id=_pid(s, mids[0]), start="2026-12-02", end="2026-12-03")
        rep = reports.consumption.report(s, f, "d", "unit")
        meter_ids = reports.consumption.meters_of(s, f)
        assert sorted(meter_ids) == sorted(mids)
        wh, mu = usage.total(s, meter_ids, f.start, f.end)            # from the raw readings
        assert rep.totals["energy_wh"] == wh > 0
        assert rep.totals["cost_mu"] == mu > 0
        assert len(rep.rows) == 2 and sum(r["energy_wh"] for r in rep.rows) == wh
        # bands add up to the energy
        assert sum(v for k, v in rep.totals.items() if k.startswith("b_")) == wh
        # per day the same totals, and the chart has the two days
        by_day = reports.consumption.report(s, f, "d", "day")
        assert [r["day"] for r in by_day.rows] == [DAY, DAY + datetime.timedelta(days=1)]
        assert by_day.totals["energy_wh"] == wh and by_day.chart["x"] == ["2026-12-02", "2026-12-03"]
        # the whole feed, all three days: the consumption ledger
        whole = reports.filters(s, actor, property_id=f.property_id, start="2026-12-01", end="2026-12-31")
        charged = -s.exec(select(func.sum(LedgerEntry.amount_mu)).where(
            LedgerEntry.account_id.in_(accs), LedgerEntry.kind == "consumption")).one()
        assert reports.consumption.report(s, whole, "d", "building").totals["cost_mu"] == charged
        assert reports.consumption.report(s, whole, "m", "unit").totals["cost_mu"] == charged
        # top consumers: meter 0's unit first
        top = reports.top.report(s, whole, limit=1)
        assert len(top.rows) == 1 and top.rows[0]["energy_wh"] == max(
            r["energy_wh"] for r in reports.consumption.report(s, whole, "d", "unit").rows)

        # the XLSX: numbers, dates, the same totals
        fobj, size = export.xlsx_file(rep)
        data = fobj.read()
        assert size == len(data)
        ws = openpyxl.load_workbook(io.BytesIO(data)).active
        rows = list(ws.iter_rows(values_only=True))
        head, body, total = rows[0], rows[1:-1], rows[-1]
        assert head[:2] == ("Building", "Unit") and total[0] == "Total"
        e = head.index("Energy kWh")
        c = head.index("Cost")
        assert all(isinstance(r[e], (int, float)) for r in body)
        assert round(sum(r[e] for r in body), 3) == round(total[e], 3) == wh / 1000
        assert round(total[c], 4) == mu / 10000
        ws_days = openpyxl.load_workbook(io.BytesIO(export.xlsx_file(by_day)[0].read())).active
        first = list(ws_days.iter_rows(min_row=2, max_row=2, values_only=True))[0]
        assert isinstance(first[0], datetime.datetime) and first[0].date() == DAY
        assert ws_days.column_dimensions["A"].width >= 10
        # the CSV: the same totals as text
        text = b"".join(export.csv_chunks(rep)).decode("utf-8-sig").splitlines()
        assert text[-1].startswith("Total,") and ("%.3f" % (wh / 1000)) in text[-1]


def _pid(s, meter_id):
    from headend.models import Concentrator, Meter as M
    return s.get(Concentrator, s.get(M, meter_id).concentrator_id).property_id


def test_sales_report_counts_reversals_and_refunds_like_the_desk(site):
    sf, ing, board, mids, accs, now = site
    with sf() as s:
        actor = system_actor(s)
        a = sales.sell(s, actor, accs[0], 500_000, method="cash", push=False)
        sales.sell(s, actor, accs[0], 200_000, method="wechat", push=False)
        sales.sell(s, actor, accs[1], 100_000, method="cash", push=False)
        corrections.reverse(s, actor, a.receipt.id, "wrong account", push=False)
        corrections.refund(s, actor, accs[1], 50_000, method="cash", reason="moving out", push=False)
        s.commit()
        day = s.exec(select(Receipt.business_day)).first()
        f = reports.filters(s, actor, property_id=_pid(s, mids[0]), start=day, end=day)
        by_method = reports.sales.report(s, f, "method")
        cash = next(r for r in by_method.rows if r["method"] == "cash")
        opening = 2 * 10 ** 9                   # the seed's opening balances: cash sales too
        assert (cash["sale"], cash["reversal"], cash["refund"]) == (opening + 600_000, -500_000, -50_000)
        assert cash["net"] == opening + 50_000
        wechat = next(r for r in by_method.rows if r["method"] == "WeChat Pay")
        assert (wechat["sale"], wechat["net"], wechat["count"]) == (200_000, 200_000, 1)
        ledger = s.exec(select(func.sum(LedgerEntry.amount_mu)).where(
            LedgerEntry.account_id.in_(accs), LedgerEntry.kind.in_([LEDGER_KIND[k] for k in ("sale", "reversal", "refund")]))).one()
        for g in ("day", "cashier", "method"):
            assert reports.sales.report(s, f, g).totals["net"] == ledger == opening + 250_000
        assert reports.sales.report(s, f, "day").totals["count"] == 7
        # arrears and low balances
        bal = reports.balances.report(s, f)
        assert all(r["balance_mu"] < max(0, r["threshold_mu"]) or r["balance_mu"] < 0 for r in bal.rows)


def test_staff_see_only_their_properties(site):
    sf, ing, board, mids, accs, now = site
    with sf() as s:
        other = get_or_create_property(s, system_actor(s), "elsewhere", 28800)
        s.commit()
        user = system_user(s)
        mgr = Actor(user, P.ROLE_PERMISSIONS["manager"], [other.id])
        with pytest.raises(NotFound):
            reports.filters(s, mgr, property_id=_pid(s, mids[0]))
        assert reports.filters(s, mgr).property_id == other.id        # the default: their own
        cashier = Actor(user, P.ROLE_PERMISSIONS["cashier"], [other.id])
        with pytest.raises(Forbidden):
            reports.filters(s, cashier, property_id=other.id)
        with pytest.raises(Invalid):
            reports.filters(s, mgr, property_id=other.id, start="2026-12-05", end="2026-12-01")
        with pytest.raises(Invalid):
            reports.filters(s, mgr, property_id=other.id, start="yesterday")


def test_health_report_counts_missed_readings(site):
    sf, ing, board, mids, accs, now = site
    from concentrator import protocol
    recs = [[1, protocol.KIND_READING, 0, DAY0, [1000, 100, 0]],
            [2, protocol.KIND_READING, 0, DAY0 + STEP, [0, 0, protocol.FLAG_MISSING]],
            [3, protocol.KIND_READING, 1, DAY0 + STEP, [500, 10, 0]]]
    now[0] = DAY0 + STEP + 30
    ing.handle(*board.rd(recs))
    # the board's status: meter 1 had 3 timeouts and 2 CRC errors on the bus
    ing.handle(*board.up(protocol.STATUS, pending=0, meters=[[0, 1, 1, 0], [1, 1, 1, 0]], bus=[[1, 3, 2, 0, 0, 0]]))
    with sf() as s:
        f = reports.filters(s, system_actor(s), property_id=_pid(s, mids[0]), start="2026-12-02", end="2026-12-02")
        rep = reports.health.report(s, f, now=DAY0 + 3 * 86400, offline_after_s=3600)
        by = {r["meter"][-4:]: r for r in rep.rows}
        assert by["A101"]["missing"] == 1 and by["A102"]["missing"] == 0
        assert by["A102"]["bus_errors"] == 5 and rep.totals["bus_errors"] == 5
        assert by["A101"]["state"] == "offline" and by["A101"]["offline_s"] == 3 * 86400 - 0
