"""The tenant portal in a real headless Chromium at 375x812, on a site
without internet (issue 12, check 4): a tenant logs in, sees the balance,
the days left and the usage chart (ECharts from the head-end itself), and
changes the low-balance threshold; screenshots are saved."""
import os

from sim.load import ConstantLoad
from sim.stack import Stack
from tests.headend.browser import PHONE, launch, login, offline_page

METER = "C1-102"


def test_tenant_on_a_phone_sees_balance_days_left_chart_and_sets_threshold(tmp_path):
    from playwright.sync_api import sync_playwright
    shots = os.environ.get("WK_SCREENSHOTS") or str(tmp_path)
    with Stack(broker="mosquitto", concentrators=1, meters=2, price_mu_per_kwh=6000,
               balances={METER: 40 * 10000}, poll_s=300, record_s=900) as st:
        vc = st.site.concentrators[0]
        for sm in vc.meters:
            sm.load = ConstantLoad(400)
        st.site.run(30 * 3600, tick_s=60)
        assert st.site.settle(30, until=lambda: st.site.pending() == 0)
        tenant_id = next(iter(st.seeded["concentrators"].values()))["meters"][METER]["tenant_id"]
        st.add_user("tenant-phone", tenant_id=tenant_id, password="tenant-phone-pw")
        acc = st.account_id(METER)
        base = "http://127.0.0.1:%d" % st.http_port
        with sync_playwright() as p:
            browser = launch(p)
            page = offline_page(browser, viewport=PHONE, locale="zh-CN")
            login(page, base, "tenant-phone", "tenant-phone-pw")
            assert page.url.endswith("/portal")
            card = page.locator('section.account[data-account="%d"]' % acc)
            assert card.count() == 1
            balance = card.locator(".balance").inner_text()
            assert balance == st.http.get("/api/accounts/%d" % acc).json()["balance"]
            days = card.locator(".days-left").inner_text()
            assert days != "—" and float(days) > 0          # 30 hours of use: a forecast
            assert "预计可用天数" in card.inner_text() and "余额" in card.inner_text()
            page.wait_for_selector('#chart-%d[data-drawn="1"] svg' % acc, timeout=15000)
            bars = page.locator("#chart-%d svg path" % acc).count()
            assert bars > 2
            # fits the phone: nothing wider than the screen
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            page.screenshot(path=os.path.join(shots, "portal-phone-zh.png"), full_page=True)
            # the low-balance threshold
            form = card.locator("form.threshold")
            form.locator('input[name="amount"]').fill("15.00")
            form.locator('button[type="submit"]').click()
            page.wait_for_selector(".notice.ok", timeout=10000)
            assert "提醒金额已保存" in page.locator(".notice").inner_text()
            assert page.locator('section.account[data-account="%d"] form.threshold input[name="amount"]'
                                % acc).input_value() == "15.00"
            page.screenshot(path=os.path.join(shots, "portal-phone-threshold.png"), full_page=True)
            # English too
            page.goto(base + "/lang/en?next=/portal")
            assert "Days left" in page.locator("section.account").first.inner_text()
            page.screenshot(path=os.path.join(shots, "portal-phone-en.png"), full_page=True)
            assert page.blocked == [], page.blocked
            browser.close()
        with st.session() as s:
            from headend.models import Account
            assert s.get(Account, acc).low_balance_threshold_mu == 150000
    for name in ("portal-phone-zh.png", "portal-phone-threshold.png", "portal-phone-en.png"):
        assert os.path.getsize(os.path.join(shots, name)) > 10000
