"""Lists that scale: every list of the API and of the dashboard is one page
(limit, offset; X-Total-Count and Link headers), filtered and searched in the
database, and no list answers more than its page."""
import re

import pytest
from fastapi.testclient import TestClient

from headend.api.deps import SESSION_COOKIE
from headend.core.config import Settings
from headend.main import create_app
from headend.web import i18n
from headend.services import accounts, devices, properties, tenants
from headend.services.actor import system_actor
from headend.services.sales import sell
from tests.headend.conftest import As, make_user, token_for

METERS = 250


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    app = create_app(Settings(database_url="sqlite:///" + str(tmp_path_factory.mktemp("lists") / "l.db")),
                     start_mqtt=False)
    with app.state.session_factory() as s:
        sa = system_actor(s)
        p = properties.create_property(s, sa, "Long Court")
        b = properties.create_building(s, sa, p.id, "Tower")
        for c in range(5):
            conc = devices.create_concentrator(s, sa, p.id, "lc-c%d" % c)
            for i in range(METERS // 5):
                k = c * (METERS // 5) + i
                u = properties.create_unit(s, sa, b.id, "U-%03d" % k)
                a = accounts.create_account(s, sa, p.id, tenant_name="Tenant %03d" % k,
                                            low_balance_threshold_mu=50000)
                accounts.occupy(s, sa, a.id, u.id)
                devices.create_meter(s, sa, conc.id, "LC-%03d" % k, "sdm120", unit_id=u.id, opening_energy_wh=0,
                                     audit_it=False)
                if k % 10:
                    sell(s, sa, a.id, 100000, push=False)   # every tenth stays at 0: low balance
        s.commit()
    _uid, pw = make_user(app, "lc-admin", "admin")
    with TestClient(app) as c:
        yield app, c, As(c, token_for(c, "lc-admin", pw)), pw


def test_the_meter_list_comes_in_pages(site):
    _app, _c, api, _pw = site
    r = api.get("/api/meters")
    assert r.status_code == 200 and len(r.json()) == 100
    assert r.headers["X-Total-Count"] == str(METERS)
    assert 'rel="next"' in r.headers["Link"] and "offset=100" in r.headers["Link"]
    last = api.get("/api/meters", params={"offset": 200})
    assert [m["meter_id"] for m in last.json()][:2] == ["LC-200", "LC-201"] and len(last.json()) == 50
    assert 'rel="next"' not in last.headers.get("Link", "") and 'rel="prev"' in last.headers["Link"]
    seen = [m["meter_id"] for off in (0, 100, 200) for m in api.get("/api/meters", params={"offset": off}).json()]
    assert len(seen) == len(set(seen)) == METERS          # pages neither overlap nor skip
    assert api.get("/api/meters", params={"limit": 1001}).status_code == 422


def test_the_meter_list_is_searched_and_filtered_in_the_database(site):
    _app, _c, api, _pw = site
    r = api.get("/api/meters", params={"q": "tenant 12"})       # tenant name, any case
    assert sorted(m["meter_id"] for m in r.json()) == ["LC-%03d" % k for k in range(120, 130)]
    assert api.get("/api/meters", params={"q": "lc-c3"}).headers["X-Total-Count"] == "50"   # the board
    assert api.get("/api/meters", params={"q": "u-007"}).json()[0]["unit"] == "U-007"
    assert api.get("/api/meters", params={"q": "100%"}).json() == []      # % is a character, not a wildcard
    low = api.get("/api/meters", params={"state": "low_balance", "limit": 1000}).json()
    assert sorted(m["meter_id"] for m in low) == ["LC-%03d" % k for k in range(0, METERS, 10)]
    assert all(m["low_balance"] for m in low)
    assert api.get("/api/meters", params={"concentrator": "lc-c1"}).headers["X-Total-Count"] == "50"
    assert api.get("/api/meters", params={"state": "nonsense"}).status_code == 422


@pytest.mark.parametrize("path", ["/api/accounts", "/api/concentrators", "/api/units", "/api/buildings",
                                  "/api/properties", "/api/organisations", "/api/tariffs", "/api/users",
                                  "/api/auth/tokens", "/api/events", "/api/audit", "/api/meters"])
def test_no_list_answers_more_than_a_page(site, path):
    _app, _c, api, _pw = site
    r = api.get(path, params={"limit": 3})
    assert r.status_code == 200 and len(r.json()) <= 3, (path, r.text[:200])
    if path in ("/api/accounts", "/api/units", "/api/audit", "/api/meters"):
        assert len(r.json()) == 3 and 'rel="next"' in r.headers["Link"], path


def test_accounts_are_found_by_name_or_number(site):
    _app, _c, api, _pw = site
    assert [a["name"] for a in api.get("/api/accounts", params={"q": "tenant 042"}).json()] == ["Tenant 042"]
    acc = api.get("/api/accounts", params={"q": "tenant 042"}).json()[0]["id"]
    assert [a["id"] for a in api.get("/api/accounts", params={"q": "#%d" % acc}).json()] == [acc]


def _page(client, pw, url):
    r = client.post("/login", data={"username": "lc-admin", "password": pw}, follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, r.cookies[SESSION_COOKIE])
    client.cookies.set(i18n.COOKIE, "en")
    try:
        return client.get(url)
    finally:
        client.cookies.clear()


def test_the_staff_page_shows_one_page_with_a_pager_and_search(site):
    _app, c, _api, pw = site
    html = _page(c, pw, "/staff").text
    assert html.count("<tr data-meter=") == 100 and "1–100 of 250" in html
    assert re.search(r'href="/staff\?[^"]*offset=100', html)
    html = _page(c, pw, "/staff?q=Tenant+12&state=").text
    assert html.count("<tr data-meter=") == 10 and "1–10 of 10" in html
    part = _page(c, pw, "/staff/meters?offset=200").text          # the live refresh keeps its page
    assert part.count("<tr data-meter=") == 50 and "201–250 of 250" in part
    assert 'data-meter="LC-200"' in part and 'data-meter="LC-199"' not in part
    html = _page(c, pw, "/staff?state=low_balance").text
    assert html.count("<tr data-meter=") == 25


def test_the_desk_offers_a_bounded_searchable_list_with_the_chosen_account(site):
    """250 tenants: the desk lists nobody until the cashier searches, a search
    shows at most MAX_HITS accounts, and a chosen account opens its own screen."""
    _app, c, api, pw = site
    html = _page(c, pw, "/staff/desk").text
    assert html.count('class="hit"') == 0
    acc = api.get("/api/accounts", params={"q": "tenant 249"}).json()[0]["id"]
    r = _page(c, pw, "/staff/desk?account_id=%d" % acc)
    assert r.status_code == 200 and r.url.path == "/staff/desk/accounts/%d" % acc
    assert "Tenant 249" in r.text or "tenant 249" in r.text.lower()
    html = _page(c, pw, "/staff/desk?q=Tenant+24").text
    assert html.count('class="hit"') == 10        # Tenant 240..249
    html = _page(c, pw, "/staff/desk?q=Tenant").text
    assert html.count('class="hit"') == tenants.MAX_HITS < 250
