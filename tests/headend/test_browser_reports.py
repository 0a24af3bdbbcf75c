"""Reports in a real headless Chromium (check 5, the reports part), on a
site without internet, with the head-end in its own process and a simulated
board: a manager opens a building's monthly consumption report at 1366x768
and at 375x812, sees its chart drawn (ECharts from the head-end itself) and
its totals, and downloads the XLSX, which opens with the same totals.
Screenshots go to build/screenshots/ (or $WK_SCREENSHOTS)."""
import io
import os

import openpyxl

from sim.load import ConstantLoad
from sim.stack import Stack
from tests.headend.browser import DESKTOP, PHONE, launch, login, offline_page
from tests.support import ROOT


def test_manager_opens_building_month_report_with_chart_and_exports_xlsx():
    from playwright.sync_api import sync_playwright
    shots = os.environ.get("WK_SCREENSHOTS") or os.path.join(ROOT, "build", "screenshots")
    os.makedirs(shots, exist_ok=True)
    with Stack(broker="mosquitto", concentrators=1, meters=3, price_mu_per_kwh=6000, poll_s=300,
               record_s=900) as st:
        for k, sm in enumerate(st.site.concentrators[0].meters):
            sm.load = ConstantLoad(300 + 200 * k)
        st.site.run(26 * 3600, tick_s=60)
        assert st.site.settle(30, until=lambda: st.site.pending() == 0)
        st.add_user("lin", "manager", password="lin-manager-pw")
        conc = next(iter(st.seeded["concentrators"].values()))
        building = conc["building_id"]
        pid = st.seeded["property_id"]
        with st.session() as s:
            from headend.models import Property, Rollup
            from headend.services.reports.base import local_day
            from sqlmodel import func, select
            tz = s.get(Property, pid).tz_offset_s
            lo, hi = s.exec(select(func.min(Rollup.start), func.max(Rollup.start))).one()
        first = local_day(lo, tz).replace(day=1)
        last = local_day(hi, tz)
        url = "/staff/reports/consumption?property_id=%d&building_id=%d&start=%s&end=%s&period=m&group=unit" % (
            pid, building, first.isoformat(), last.isoformat())
        base = "http://127.0.0.1:%d" % st.http_port
        api = st.http.get("/api/reports/consumption?property_id=%d&building_id=%d&start=%s&end=%s&period=m"
                          % (pid, building, first.isoformat(), last.isoformat())).json()
        assert api["totals"]["energy_wh"] > 0 and len(api["rows"]) == 3
        with sync_playwright() as p:
            browser = launch(p)
            for name, vp in (("desktop", DESKTOP), ("phone", PHONE)):
                page = offline_page(browser, viewport=vp)
                login(page, base, "lin", "lin-manager-pw")
                page.goto(base + "/staff/reports")
                page.click("#report-consumption")
                page.wait_for_selector("#report-table")
                page.goto(base + url)
                page.wait_for_selector('#report-chart[data-drawn="1"] svg', timeout=15000)
                assert page.locator("#report-chart svg path").count() > 2        # bars drawn
                total = page.locator('#report-total [data-key="energy_wh"]').inner_text()
                assert total == "%.3f" % (api["totals"]["energy_wh"] / 1000)
                assert page.locator("#report-table tbody tr").count() == 3
                if vp is PHONE:
                    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
                page.screenshot(path=os.path.join(shots, "report-month-building-%s.png" % name), full_page=True)
                with page.expect_download() as dl:
                    page.click("#export-xlsx")
                data = open(dl.value.path(), "rb").read()
                assert dl.value.suggested_filename.endswith(".xlsx")
                rows = list(openpyxl.load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True))
                e = rows[0].index("Energy kWh")
                assert rows[-1][0] == "Total" and round(rows[-1][e] * 1000) == api["totals"]["energy_wh"]
                assert all(isinstance(r[e], (int, float)) for r in rows[1:])
                assert "(3)" in page.locator("#export-progress").inner_text()
                assert page.blocked == [], page.blocked
                page.context.close()
            browser.close()
    for name in ("desktop", "phone"):
        assert os.path.getsize(os.path.join(shots, "report-month-building-%s.png" % name)) > 10000
