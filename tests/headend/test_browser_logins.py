"""The dashboard's doors in a real headless Chromium, on a site without
internet: a cashier logs in (a wrong password is refused), reaches the desk
and logs out; a tenant logs in and sees only their own balance; /docs
renders from the head-end's own assets. (Selling at the desk:
test_browser_desk.py.)"""
from sim.stack import Stack
from tests.headend.browser import PHONE, launch, login, offline_page


def test_cashier_logs_in_tenant_sees_own_balance_docs_offline(tmp_path):
    from playwright.sync_api import sync_playwright
    with Stack(broker="mosquitto", concentrators=1, meters=2, price_mu_per_kwh=6000) as st:
        st.add_user("mei", "cashier", password="mei-front-desk")
        meters = next(iter(st.seeded["concentrators"].values()))["meters"]
        tenant_of = {mid: meters[mid]["tenant_id"] for mid in ("C1-101", "C1-102")}
        st.add_user("tenant-102", tenant_id=tenant_of["C1-102"], password="tenant-102-pw")
        base = "http://127.0.0.1:%d" % st.http_port
        acc = st.account_id("C1-102")
        with sync_playwright() as p:
            browser = launch(p)
            page = offline_page(browser)
            # not logged in: the dashboard sends you to the login page
            page.goto(base + "/staff/desk")
            assert "/login" in page.url
            login(page, base, "mei", "wrong password")
            assert page.locator(".err").count() == 1
            login(page, base, "mei", "mei-front-desk")
            assert page.url.endswith("/staff")
            assert page.locator('tr[data-meter="C1-102"]').count() == 1
            page.goto(base + "/staff/desk")
            assert page.locator("#desk-q").count() == 1      # the sales desk (its own test: test_browser_desk)
            page.screenshot(path=str(tmp_path / "cashier.png"), full_page=True)
            page.click("#logout")
            page.wait_for_load_state("networkidle")
            page.goto(base + "/staff")
            assert "/login" in page.url, "logged out: the dashboard is closed again"

            # a tenant, on a phone: their own balance, nobody else's
            phone = offline_page(browser, viewport=PHONE, locale="zh-CN")
            login(phone, base, "tenant-102", "tenant-102-pw")
            assert phone.url.endswith("/portal")
            cards = phone.locator("section.account")
            assert cards.count() == 1
            assert cards.first.get_attribute("data-account") == str(acc)
            assert "Tenant C1-102" in cards.first.inner_text() and "Tenant C1-101" not in phone.content()
            phone.screenshot(path=str(tmp_path / "tenant-phone.png"), full_page=True)
            phone.goto(base + "/staff")
            assert phone.locator("body").inner_text().strip() != ""   # refused, not a blank crash
            assert "C1-101" not in phone.content()

            # /docs with no internet: Swagger UI comes from the head-end itself
            docs = offline_page(browser)
            docs.goto(base + "/docs")
            docs.wait_for_selector(".swagger-ui .opblock", timeout=20000)
            assert docs.locator(".opblock").count() > 20
            redoc = offline_page(browser)
            redoc.goto(base + "/redoc")
            redoc.wait_for_selector("[role=navigation], .menu-content", timeout=20000)
            for pg in (page, phone, docs, redoc):
                assert pg.blocked == [], pg.blocked
            browser.close()
