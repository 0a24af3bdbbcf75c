"""Report routes: the API's JSON, CSV and XLSX agree with each other and with
the page; staff of another property get nothing; bad filters are a 4xx."""
import io
import secrets

import openpyxl

from headend.services.seed import seed_site
from tests.headend.test_headend_ingest import Board
from tests.headend.test_rollups import DAY0, STEP, TOU, TZ, Meter


def _site(app):
    key = secrets.token_hex(32)
    with app.state.session_factory() as s:
        res = seed_site(s, "Riverside", [{"dev": "rv-1", "key_hex": key, "building": "Block A", "meters": [
            {"id": "rv-A101"}, {"id": "rv-A102"}]}], tariff_spec=TOU, opening_balance_mu=10 ** 8, tz_offset_s=TZ)
        other = seed_site(s, "Hillside", [], tariff_price_mu_per_kwh=6000)
    board = Board("rv-1", key)
    meters = [Meter(0, 10_000, 30), Meter(1, 2_000, 10)]
    seq = 0
    for k in range(2 * 96):
        recs = []
        for m in meters:
            seq += 1
            recs.append(m.read(seq, DAY0 + k * STEP))
        app.state.ingest.clock = lambda: DAY0 + 3 * 86400
        app.state.ingest.handle(*board.rd(recs))
    return res["property_id"], other["property_id"]


Q = "start=2026-12-01&end=2026-12-31"


def test_api_json_csv_xlsx_agree(app, client, login):
    pid, other = _site(app)
    mgr = login("mgr-r", "manager", [pid])
    r = mgr.get("/api/reports/consumption?property_id=%d&%s&group=building" % (pid, Q))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [row["building"] for row in body["rows"]] == ["Block A"]
    wh, mu = body["totals"]["energy_wh"], body["totals"]["cost_mu"]
    assert wh > 0 and mu > 0
    x = mgr.get("/api/reports/consumption.xlsx?property_id=%d&%s&group=building" % (pid, Q))
    assert x.status_code == 200 and x.headers["x-row-count"] == "1"
    assert int(x.headers["content-length"]) == len(x.content)
    rows = list(openpyxl.load_workbook(io.BytesIO(x.content)).active.iter_rows(values_only=True))
    e = rows[0].index("Energy kWh")
    assert rows[-1][0] == "Total" and round(rows[-1][e] * 1000) == wh
    c = mgr.get("/api/reports/consumption.csv?property_id=%d&%s" % (pid, Q))
    assert c.status_code == 200 and c.headers["content-type"].startswith("text/csv")
    assert c.text.lstrip("\ufeff").splitlines()[0].startswith("Building,Unit,")
    for name in ("sales", "balances", "top", "health"):
        assert mgr.get("/api/reports/%s?property_id=%d" % (name, pid)).status_code == 200, name
    # another property's manager: nothing of Riverside
    outsider = login("mgr-h", "manager", [other])
    assert outsider.get("/api/reports/consumption?property_id=%d" % pid).status_code == 404
    assert outsider.get("/api/reports/consumption.xlsx?property_id=%d" % pid).status_code == 404
    # a cashier has no reports
    cashier = login("cash-r", "cashier", [pid])
    assert cashier.get("/api/reports/sales?property_id=%d" % pid).status_code == 403
    # bad filters: 4xx
    assert mgr.get("/api/reports/consumption?property_id=%d&start=2026-12-09&end=2026-12-01" % pid).status_code == 422
    assert mgr.get("/api/reports/consumption?property_id=%d&start=2026-13-45" % pid).status_code == 422
    assert mgr.get("/api/reports/consumption?property_id=%d&building_id=99999" % pid).status_code == 404


def test_report_page_in_chinese(app, client):
    pid, _other = _site(app)
    from tests.headend.conftest import make_user
    _uid, pw = make_user(app, "mgr-web", "manager", [pid])
    r = client.post("/login", data={"username": "mgr-web", "password": pw}, follow_redirects=False)
    assert r.status_code in (302, 303)
    page = client.get("/staff/reports/consumption?property_id=%d&%s" % (pid, Q))
    assert page.status_code == 200
    assert 'id="report-chart"' in page.text and 'id="report-total"' in page.text and "data-label=" in page.text
    zh = client.get("/staff/reports/consumption?property_id=%d&%s" % (pid, Q),
                    headers={"Accept-Language": "zh-CN"})
    assert "用电" in zh.text
    x = client.get("/staff/reports/consumption.xlsx?property_id=%d&%s" % (pid, Q), headers={"Accept-Language": "zh-CN"})
    assert x.status_code == 200
    assert client.get("/staff/reports").status_code == 200


def test_a_meters_load_curve_page_and_api(app, client, login):
    """The page theft and bypass alerts link to: the meter's load curve, the
    average power from its register agreeing with the readings."""
    from tests.headend.conftest import make_user
    from tests.headend.test_rollups import DAY0 as D0
    pid, other = _site(app)
    mgr = login("mgr-c", "manager", [pid])
    mid = mgr.get("/api/meters", params={"q": "rv-A101"}).json()[0]["id"]
    c = mgr.get("/api/meters/%d/curve" % mid, params={"start": D0, "end": D0 + 86400})
    assert c.status_code == 200, c.text
    pts = c.json()["points"]
    assert c.json()["meter_id"] == "rv-A101" and len(pts) == 96 and not c.json()["truncated"]
    assert all(p["avg_w"] is not None and p["avg_w"] > 0 for p in pts[1:])
    # 15-minute readings: four times the Wh of an interval is its average W (as the register says)
    assert {p["avg_w"] for p in pts[1:]} != {pts[1]["avg_w"]}          # evenings differ from the day
    assert login("mgr-o", "manager", [other]).get("/api/meters/%d/curve" % mid,
                                                 params={"start": D0, "end": D0 + 86400}).status_code == 404
    assert mgr.get("/api/meters/%d/curve" % mid, params={"start": D0, "end": D0 + 40 * 86400}).status_code == 422
    _uid, pw = make_user(app, "mgr-cw", "manager", [pid])
    client.post("/login", data={"username": "mgr-cw", "password": pw}, follow_redirects=False)
    page = client.get("/staff/meters/%d?days=1&end=%d" % (mid, D0 + 86400))
    assert page.status_code == 200 and 'id="meter-chart"' in page.text and "rv-A101" in page.text
    assert page.text.count('<tr><td data-label=') == 12          # the latest readings
    zh = client.get("/staff/meters/%d?days=1&end=%d" % (mid, D0 + 86400), headers={"Accept-Language": "zh-CN"})
    assert "负荷曲线" in zh.text
    # without `end` the window ends at the meter's latest reading (a simulated site's clock too)
    latest = client.get("/staff/meters/%d?days=1" % mid)
    assert 'id="meter-chart"' in latest.text and latest.text.count('<tr><td data-label=') == 12
