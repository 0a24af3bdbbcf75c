"""The dashboard in a real headless Chromium: a member of staff sees a tenant
without power, sells credit in the form, and sees the relay close and the
balance change without reloading the page."""
import os
import shutil

import pytest

from sim.load import ConstantLoad
from sim.stack import Stack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def row_text(page, meter_id):
    return page.locator('tr[data-meter="%s"]' % meter_id).inner_text()


def test_staff_recharge_in_the_browser(tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: run bash tools/bootstrap.sh")
    from playwright.sync_api import sync_playwright
    with Stack(broker="mosquitto", concentrators=1, meters=2, price_mu_per_kwh=6000,
               balances={"C1-102": 3000}) as st:
        sm = st.site.concentrators[0].meters[1]
        sm.load = ConstantLoad(2000)
        st.site.run(3600, tick_s=5)
        assert st.site.settle(20, until=lambda: st.site.pending() == 0)
        assert not sm.relay_closed
        url = "http://127.0.0.1:%d/" % st.http_port
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            page.goto(url)
            assert "open" in row_text(page, "C1-102")
            assert "closed" in row_text(page, "C1-101")
            page.select_option('#recharge select[name="account"]', str(st.account_id("C1-102")))
            page.fill('#recharge input[name="amount"]', "50.00")
            page.fill('#recharge input[name="actor"]', "Mei (front desk)")
            page.click('#recharge button[type="submit"]')
            page.wait_for_function("document.getElementById('msg').textContent.length > 0")
            msg = page.locator("#msg").inner_text()
            assert "50.00" in msg or "recharge" in msg.lower(), msg
            # the board gets the credit and closes the relay; the page follows live
            assert st.site.settle(20, until=lambda: sm.relay_closed)
            st.site.run(900, tick_s=5)
            st.site.settle(10, until=lambda: st.site.pending() == 0)
            page.wait_for_function(
                "document.querySelector('tr[data-meter=\"C1-102\"]').innerText.includes('closed')",
                timeout=15000)
            text = row_text(page, "C1-102")
            assert "closed" in text
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            # a bad amount is refused with a readable error, nothing is booked
            before = st.balance("C1-102")
            page.fill('#recharge input[name="amount"]', "-5")
            page.evaluate("document.querySelector('#recharge input[name=amount]').removeAttribute('pattern')")
            page.click('#recharge button[type="submit"]')
            page.wait_for_function("document.getElementById('msg').className == 'err'", timeout=10000)
            assert st.balance("C1-102") == before
            browser.close()
        entries = st.http.get("/api/accounts/%d/ledger" % st.account_id("C1-102")).json()["entries"]
        assert any(e["kind"] == "recharge" and e["actor"] == "Mei (front desk)" for e in entries)
