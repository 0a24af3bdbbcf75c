"""Apportionment in a real headless Chromium (issue 11, check 5, the
apportionment part), on a site without internet, at 1366x768 and 375x812:
a manager opens the apportionment page of check 1's building, previews
November (the hand-checked shares of tests/headend/test_apportionment.py),
posts it, and posting again changes nothing; on the phone the pool's edit
form renames it. Screenshots under
build/screenshots/ (or $WK_SCREENSHOTS)."""
import os

from sqlmodel import func, select

from headend.core import db, migrate
from headend.models import LedgerEntry
from headend.services import users
from headend.services.actor import system_actor
from sim.stack import serve_http, stop_process
from tests.headend import apportion_site as AS
from tests.headend.browser import DESKTOP, PHONE, launch, login, offline_page
from tests.support import ROOT


def test_a_manager_previews_and_posts_the_month_on_a_desktop_and_a_phone(tmp_path):
    from playwright.sync_api import sync_playwright
    shots = os.environ.get("WK_SCREENSHOTS") or os.path.join(ROOT, "build", "screenshots")
    os.makedirs(shots, exist_ok=True)
    url = "sqlite:///" + str(tmp_path / "ap.db")
    engine = db.make_engine(url)
    migrate.upgrade(engine)
    sf = db.session_factory(engine)
    site = AS.build(sf, "Apportion Court")
    AS.feed_month(sf, site)
    with sf() as s:
        users.create_user(s, system_actor(s), "li-manager", "li-manager-pw", role="manager", property_ids=[site.pid])
        s.commit()
    engine.dispose()
    with open(tmp_path / "serve.log", "wb") as log:
        proc, base = serve_http(url, log)
        try:
            with sync_playwright() as p:
                browser = launch(p)
                desk = offline_page(browser, viewport=DESKTOP)
                login(desk, base, "li-manager", "li-manager-pw")
                desk.goto(base + "/staff/apportionment?property_id=%d&month=%s" % (site.pid, AS.MONTH))
                prev = desk.locator("#preview")
                assert prev.get_attribute("data-total") == "4960000"
                assert desk.locator("#preview-total").inner_text() == "496.00"
                lift = desk.locator('.pool[data-pool="%d"]' % site.pools["lift"])
                assert lift.get_attribute("data-amount") == "3200000"
                rows = lift.locator("tbody tr")
                assert rows.count() == 5
                text = lift.inner_text()
                for piece in ("A Tenant", "B Tenant", "C Tenant", "80.00 m²", "86.7796", "130.1695", "54.2373"):
                    assert piece in text, piece
                loss = desk.locator('.pool[data-pool="%d"]' % site.pools["loss"]).inner_text()
                assert "1600.000" in loss and "96.543" in loss and "30.8938" in loss
                desk.screenshot(path=os.path.join(shots, "apportionment-preview-desktop.png"), full_page=True)

                phone = offline_page(browser, viewport=PHONE, locale="zh-CN")
                login(phone, base, "li-manager", "li-manager-pw")
                phone.goto(base + "/staff/apportionment?property_id=%d&month=%s" % (site.pid, AS.MONTH))
                assert "公摊" in phone.locator("h1").inner_text()
                assert "按面积" in phone.locator("#preview").inner_text()
                assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scroll"
                phone.screenshot(path=os.path.join(shots, "apportionment-preview-phone.png"), full_page=True)

                desk.click("#post-month button[type=submit]")
                desk.wait_for_selector(".notice.ok", timeout=10000)
                assert desk.locator(".notice.ok").inner_text() == "posted"
                assert desk.locator(".pool .badge.ok").count() == 3
                desk.screenshot(path=os.path.join(shots, "apportionment-posted-desktop.png"), full_page=True)
                desk.click("#post-month button[type=submit]")          # again: nothing changes
                desk.wait_for_selector(".notice.ok", timeout=10000)
                assert "nothing changed" in desk.locator(".notice.ok").inner_text()
                # the pool's edit form on the phone, in Chinese: renamed, saved, back on the page
                phone.click('.pool[data-pool="%d"] a.edit-pool' % site.pools["lift"])
                phone.wait_for_selector("#edit-pool", timeout=10000)
                assert "编辑公摊池" in phone.locator("h1").inner_text()
                assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scroll"
                phone.screenshot(path=os.path.join(shots, "apportionment-pool-edit-phone.png"), full_page=True)
                phone.fill("#edit-pool input[name=name]", "电梯")
                phone.click("#save-pool")
                phone.wait_for_selector("#preview", timeout=10000)
                assert "电梯" in phone.locator('.pool[data-pool="%d"] h2' % site.pools["lift"]).inner_text()
                assert desk.blocked == [] and phone.blocked == [], (desk.blocked, phone.blocked)
                browser.close()
        finally:
            stop_process(proc)
    engine = db.make_engine(url)
    with db.session_factory(engine)() as s:
        assert s.exec(select(func.count()).select_from(LedgerEntry)
                      .where(LedgerEntry.kind == "apportionment")).one() == 11
    for name in ("apportionment-preview-desktop.png", "apportionment-preview-phone.png",
                 "apportionment-posted-desktop.png", "apportionment-pool-edit-phone.png"):
        assert os.path.getsize(os.path.join(shots, name)) > 10000
