"""The sales desk in a real headless Chromium, on a phone, on a site without
internet, with the head-end in its own process and a simulated board: a
cashier finds a tenant by unit, sells 50.00 by WeChat Pay, gets the receipt
(the PDF's text holds the receipt number and the amount), reverses the sale
with a reason, and sees both in the day-end report; the tenant's relay
closes after the sale and opens again after the reversal."""
import subprocess

from sim.load import ConstantLoad
from sim.stack import Stack
from tests.headend.browser import DESKTOP, PHONE, launch, login, offline_page


def pdf_text(data, path):
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def test_cashier_sells_by_wechat_prints_reverses_and_closes_the_day(tmp_path):
    from playwright.sync_api import sync_playwright
    with Stack(broker="mosquitto", concentrators=1, meters=2, price_mu_per_kwh=6000,
               balances={"C1-102": 3000}) as st:
        sm = st.site.concentrators[0].meters[1]           # C1-102, in unit C1-102
        sm.load = ConstantLoad(2000)
        st.site.run(3600, tick_s=5)
        assert st.site.settle(20, until=lambda: st.site.pending() == 0)
        assert not sm.relay_closed, "the tenant ran out of credit"
        st.add_user("mei", "cashier", password="mei-front-desk")
        base = "http://127.0.0.1:%d" % st.http_port
        with sync_playwright() as p:
            browser = launch(p)
            phone = offline_page(browser, viewport=PHONE)
            login(phone, base, "mei", "mei-front-desk")

            # screen 1: find the tenant by unit
            phone.goto(base + "/staff/desk")
            phone.fill("#desk-q", "c1-102")
            phone.wait_for_selector("ul.hits a.hit", timeout=10000)
            assert phone.locator("ul.hits a.hit").count() == 1
            assert "Tenant C1-102" in phone.locator("ul.hits").inner_text()
            phone.screenshot(path=str(tmp_path / "desk-find-phone.png"), full_page=True)
            phone.click("ul.hits a.hit")

            # screen 2: amount and method
            phone.wait_for_selector("#sale")
            assert "open" in phone.locator('#card tr[data-meter="C1-102"]').inner_text()
            phone.fill("#amount", "50.00")
            phone.check('input[name="method"][value="wechat"]')
            phone.fill('input[name="reference"]', "4200001234567890")
            phone.screenshot(path=str(tmp_path / "desk-sell-phone.png"), full_page=True)
            phone.click("#sell")

            # screen 3: the receipt
            phone.wait_for_selector("#receipt")
            sale_no = phone.locator("#receipt").get_attribute("data-receipt")
            text = phone.locator("#receipt").inner_text()
            for piece in (sale_no, "50.00", "WeChat Pay", "Tenant C1-102", "C1-102", "4200001234567890"):
                assert piece in text, (piece, text)
            assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scrolling"
            phone.screenshot(path=str(tmp_path / "receipt-phone.png"), full_page=True)
            pdf = phone.request.get(base + phone.locator("#pdf").get_attribute("href"))
            assert pdf.ok and pdf.headers["content-type"] == "application/pdf"
            printed = pdf_text(pdf.body(), tmp_path / "receipt.pdf")
            assert sale_no in printed and "50.00" in printed, printed

            # the board gets the credit: the relay closes, the account card follows live
            assert st.site.settle(20, until=lambda: sm.relay_closed)
            st.site.run(300, tick_s=5)
            phone.goto(base + phone.locator("a", has_text="Tenant C1-102").first.get_attribute("href"))
            phone.wait_for_function("document.querySelector('#card tr[data-meter=\"C1-102\"]').innerText"
                                    ".includes('closed')", timeout=20000)

            # reverse it with a reason (a cashier: own sale, same day)
            phone.goto(base + "/staff/desk/accounts/%d" % st.account_id("C1-102"))
            phone.click('a:has-text("%s")' % sale_no)
            phone.fill('#reverse input[name="reason"]', "typed the wrong tenant")
            phone.click('#reverse button[type="submit"]')
            phone.wait_for_selector('#receipt[data-kind="reversal"]')
            rev_no = phone.locator("#receipt").get_attribute("data-receipt")
            assert rev_no != sale_no and "typed the wrong tenant" in phone.locator("#receipt").inner_text()
            assert "-50.00" in phone.locator("#receipt").inner_text()
            # the credit is gone again: the relay opens
            assert st.site.settle(30, until=lambda: not sm.relay_closed)

            # the day end shows both, per payment method, reconciled
            desk = offline_page(browser, viewport=DESKTOP)
            login(desk, base, "mei", "mei-front-desk")
            desk.goto(base + "/staff/dayend")
            report = desk.locator("#dayend")
            for no in (sale_no, rev_no):
                assert report.locator('tr[data-receipt="%s"]' % no).count() == 1, no
            wechat = report.locator('#by-method tr[data-method="wechat"]').inner_text()
            assert "50.00" in wechat and "-50.00" in wechat and "0.00" in wechat
            assert desk.locator("#reconciled").count() == 1
            desk.screenshot(path=str(tmp_path / "dayend.png"), full_page=True)
            for pg in (phone, desk):
                assert pg.blocked == [], pg.blocked
            browser.close()
        entries = st.http.get("/api/accounts/%d/ledger" % st.account_id("C1-102")).json()["entries"]
        moves = [(e["kind"], e["amount_mu"], e["username"], e["source"]) for e in entries
                 if e["kind"] in ("recharge", "reversal") and e["username"] == "mei"]
        assert sorted(moves) == [("recharge", 500000, "mei", "desk"), ("reversal", -500000, "mei", "desk")]
