"""Headless Chromium (Debian's, driven by playwright) for the dashboard
tests: nothing but the head-end itself may be reached."""
import os
import shutil
from urllib.parse import urlsplit

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1366, "height": 768}


def launch(p):
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: run bash tools/bootstrap.sh")
    return p.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def offline_page(browser, viewport=DESKTOP, locale="en-US"):
    """A page whose every request outside 127.0.0.1 is refused (a site with no
    internet); the refused URLs are collected in page.blocked."""
    ctx = browser.new_context(viewport=viewport, locale=locale)
    page = ctx.new_page()
    page.blocked = []

    def route(r):
        host = urlsplit(r.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            page.blocked.append(r.request.url)
            r.abort()
    page.route("**/*", route)
    return page


def login(page, base, username, password):
    page.goto(base + "/login")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    page.click("#login")
    page.wait_for_load_state("networkidle")
