"""Editing an apportionment pool on the dashboard: a manager renames it,
changes its split and price, takes it out of the month's shares and back;
a refused change says why and changes nothing; the audit log holds before
and after; a viewer and another property's manager cannot."""
import html

from sqlmodel import select

from headend.models import ApportionPool, AuditLog
from headend.services.seed import seed_site
from tests.headend import apportion_site as AS
from tests.headend.conftest import make_user

CSRF = 'name="csrf_token" value="'


def _web(client, app, username, role, pids):
    _uid, pw = make_user(app, username, role, pids)
    client.cookies.clear()
    r = client.post("/login", data={"username": username, "password": pw}, follow_redirects=False)
    assert r.status_code == 303, r.text


def _token(html):
    return html.split(CSRF)[1].split('"')[0]


def test_a_manager_edits_a_pool(app, client):
    site = AS.build(app.state.session_factory)
    lift = site.pools["lift"]
    _web(client, app, "mgr-pool", "manager", [site.pid])
    page = client.get("/staff/apportionment?property_id=%d&month=2026-11" % site.pid)
    assert page.status_code == 200
    assert 'href="/staff/apportionment/pools/%d"' % lift in page.text      # an Edit link per pool
    form = client.get("/staff/apportionment/pools/%d" % lift)
    assert form.status_code == 200
    assert 'value="Lift"' in form.text and 'value="50"' in form.text        # filled in
    assert 'value="%d" checked' % site.meters["LIFT"] in form.text
    token = _token(form.text)
    sent = {"csrf_token": token, "name": "Lifts A+B", "rule": "equal", "building_id": str(site.building),
            "meter_ids": [str(site.meters["LIFT"]), str(site.meters["LIGHT"])], "vacant_weight_pct": "30",
            "price": "0.9", "tolerance_pct": "8", "window_h": "24"}            # "active" unticked
    r = client.post("/staff/apportionment/pools/%d" % lift, data=sent, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/staff/apportionment?property_id=%d" % site.pid
    with app.state.session_factory() as s:
        p = s.get(ApportionPool, lift)
        assert (p.name, p.rule, p.vacant_weight_pct, p.price_mu_per_kwh, p.active) == \
            ("Lifts A+B", "equal", 30, 9000, False)
        assert sorted(p.meter_ids) == sorted([site.meters["LIFT"], site.meters["LIGHT"]])
        a = s.exec(select(AuditLog).where(AuditLog.action == "apportionment.pool_update")).one()
        assert a.before["name"] == "Lift" and a.after["name"] == "Lifts A+B" and a.after["active"] is False
    # inactive: out of the month's preview, listed apart with its edit link
    page = client.get("/staff/apportionment?property_id=%d&month=2026-11" % site.pid).text
    assert 'data-pool="%d"' % lift not in page
    assert 'id="inactive-pools"' in page and "Lifts A+B" in page
    form = client.get("/staff/apportionment/pools/%d" % lift).text
    assert 'value="0.9000"' in form and 'value="equal" selected' in form
    # a refusal: the other pool's name; the form comes back with what was sent and why
    r = client.post("/staff/apportionment/pools/%d" % lift, data=dict(sent, csrf_token=_token(form), name="Lighting",
                                                                    active="1"))
    assert r.status_code == 409 and "a pool named 'Lighting' exists" in html.unescape(r.text)
    assert 'value="Lighting"' in r.text
    r = client.post("/staff/apportionment/pools/%d" % lift, data=dict(sent, csrf_token=_token(form), meter_ids=[],
                                                                    active="1"))
    assert r.status_code == 422 and "at least one meter" in r.text
    with app.state.session_factory() as s:
        p = s.get(ApportionPool, lift)
        assert (p.name, p.active) == ("Lifts A+B", False)
    # back in
    r = client.post("/staff/apportionment/pools/%d" % lift, data=dict(sent, csrf_token=_token(form), active="1"),
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/staff/apportionment?property_id=%d&month=2026-11" % site.pid).text
    assert 'data-pool="%d"' % lift in page and 'id="inactive-pools"' not in page


def test_only_its_managers_edit_a_pool(app, client):
    site = AS.build(app.state.session_factory)
    with app.state.session_factory() as s:
        other = seed_site(s, "Elsewhere", [], tariff_price_mu_per_kwh=6000)["property_id"]
        s.commit()
    lift = site.pools["lift"]
    _web(client, app, "view-pool", "viewer", [site.pid])
    assert client.get("/staff/apportionment/pools/%d" % lift).status_code == 403
    _web(client, app, "mgr-else", "manager", [other])
    assert client.get("/staff/apportionment/pools/%d" % lift).status_code == 404
    page = client.get("/staff/apportionment?property_id=%d" % other)
    r = client.post("/staff/apportionment/pools/%d" % lift,
                    data={"csrf_token": _token(page.text), "name": "mine", "rule": "area",
                          "meter_ids": [str(site.meters["LIFT"])]})
    assert r.status_code == 404
    with app.state.session_factory() as s:
        assert s.get(ApportionPool, lift).name == "Lift"
