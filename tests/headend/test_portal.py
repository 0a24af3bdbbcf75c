"""The tenant portal and the alerts of the ingest, on a real SQLite file
with real signed uplinks: a tenant with two meters sees each, its balance,
days left, money per hour, the price band, its use; changes its threshold
and preferences; sees nobody else's account through any portal page or
endpoint (issue 12, check 3). Alerts: raised in the ingest's transaction,
repeats suppressed, cleared when the condition ends, acknowledged in the
staff inbox."""
import re

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from concentrator import protocol
from headend.api.deps import SESSION_COOKIE
from headend.core import security
from headend.core.config import Settings
from headend.ingest import Ingest
from headend.main import create_app
from headend.models import Alert, AuditLog, AuthSession, Concentrator, Notification, Tenant
from headend.services import accounts, alerts, users
from headend.services.actor import system_actor
from headend.services.seed import seed_site
from tests.headend.test_headend_ingest import Board

PRICE = 6000
T0 = 1795000000             # 2026-11-18 03:46 local
Q = 900                     # a reading every 15 minutes


def reading(seq, idx, ts, energy, power=500, flags=0):
    return [seq, protocol.KIND_READING, idx, ts, [energy, power, flags]]


class World:
    pass


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("portal")
    app = create_app(Settings(database_url="sqlite:///" + str(tmp / "p.db")), start_mqtt=False)
    w = World()
    w.app, w.sf = app, app.state.session_factory
    with w.sf() as s:
        res = seed_site(s, "Portal Court", [{"dev": "pc1", "meters": [
            {"id": "P-1", "model": "sdm120", "opening_energy_wh": 0, "tenant": "Zhou Min"},
            {"id": "P-2", "model": "sdm120", "opening_energy_wh": 0, "vacant": True},
            {"id": "P-3", "model": "sdm120", "opening_energy_wh": 0, "tenant": "NEIGHBOUR Wu"}]}],
            tariff_price_mu_per_kwh=PRICE, opening_balance_mu=30 * 10000, commit=False)
        sa = system_actor(s)
        m = res["concentrators"]["pc1"]["meters"]
        w.account, w.other = m["P-1"]["account_id"], m["P-3"]["account_id"]
        accounts.occupy(s, sa, w.account, m["P-2"]["unit_id"])       # one tenant, two meters
        t = s.get(Tenant, m["P-1"]["tenant_id"])
        t.email, t.phone = "zhou@tenants.test", "13800001111"
        s.add(t)
        w.tenant_user = users.create_user(s, sa, "zhou", "zhou-portal-pw", tenant_id=t.id).id
        users.create_user(s, sa, "wu", "wu-portal-pw", tenant_id=m["P-3"]["tenant_id"])
        users.create_user(s, sa, "desk", "desk-staff-pw", role="cashier", property_ids=[res["property_id"]])
        users.create_user(s, sa, "boss", "boss-manager-pw", role="manager", property_ids=[res["property_id"]])
        w.meters = m
        w.pid = res["property_id"]
        key = s.exec(select(Concentrator.key_hex).where(Concentrator.dev == "pc1")).one()
        s.commit()
    w.board = Board("pc1", key)
    w.now = [T0]
    w.ingest = Ingest(w.sf, clock=lambda: w.now[0])
    w.client = TestClient(app)
    w.client.__enter__()
    w.seq = 0
    w.energy = [0, 0, 0]
    # two days of 500 W on each meter: 12 kWh a day each, 0.60 a kWh
    feed(w, 2 * 86400)
    yield w
    w.client.__exit__(None, None, None)


def feed(w, seconds, power=(500, 500, 500)):
    """Readings every 15 minutes for `seconds`, 16 records a message."""
    recs = []
    for _ in range(seconds // Q):
        w.now[0] += Q
        for i in range(3):
            w.energy[i] += power[i] * Q // 3600
            w.seq += 1
            recs.append(reading(w.seq, i, w.now[0], w.energy[i], power[i]))
        if len(recs) >= 16:
            w.ingest.handle(*w.board.rd(recs))
            recs = []
    if recs:
        w.ingest.handle(*w.board.rd(recs))


def event(w, code, idx, detail):
    w.seq += 1
    w.ingest.handle(*w.board.rd([[w.seq, protocol.KIND_EVENT, idx, w.now[0], [code, detail]]]))


def bearer(w, user, pw):
    r = w.client.post("/api/auth/token", data={"username": user, "password": pw})
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["access_token"]}


def web_login(w, user, pw):
    w.client.cookies.clear()
    r = w.client.post("/login", data={"username": user, "password": pw}, follow_redirects=False)
    assert r.status_code == 303
    token = r.cookies[SESSION_COOKIE]
    with w.sf() as s:
        csrf = s.exec(select(AuthSession).where(AuthSession.token_hash == security.token_hash(token))).one().csrf_token
    w.client.cookies.set(SESSION_COOKIE, token)
    return csrf


def test_a_tenant_sees_each_meter_balance_days_left_and_money_per_hour(w):
    h = bearer(w, "zhou", "zhou-portal-pw")
    [acc] = w.client.get("/api/portal/summary", headers=h).json()
    assert acc["account_id"] == w.account and acc["name"] == "Zhou Min"
    assert [m["meter_id"] for m in acc["meters"]] == ["P-1", "P-2"]          # both meters
    # two days of 2 x 500 W at 0.60: 28.80 used of 30.00 (the first reading is the baseline)
    used = 30 * 10000 - acc["balance_mu"]
    assert acc["balance"] == "%d.%02d" % divmod((30 * 10000 - used) // 100, 100)
    assert 27 * 10000 < used < 29 * 10000
    # 1000 W at 0.60/kWh: 0.60 an hour; 14.40 a day
    assert acc["mu_per_hour"] == 6000 and acc["per_hour"] == "0.60"
    assert acc["band"] == "flat" and acc["price"] == "0.6000"
    # the forecast: 14.40 a day (the first reading's charge makes it a little more over two days)
    assert 144000 <= acc["rate_per_day_mu"] <= 144000 * 101 // 100
    assert acc["days_left"] == "0.%d" % (acc["balance_mu"] * 10 // acc["rate_per_day_mu"])
    assert acc["as_of"] == w.now[0]
    # today and this month (local time), from the readings
    assert acc["this_month"]["energy_wh"] == sum(acc["chart"]["this_month"]) > 0
    assert acc["today"]["energy_wh"] <= acc["this_month"]["energy_wh"]
    assert acc["last_month"]["energy_wh"] == 0 and len(acc["chart"]["last_month"]) == 31
    assert acc["history"][0]["kind"] == "recharge" and acc["history"][0]["amount_mu"] == 300000
    assert acc["statements"] == [] and acc["apportionment"] == [] and acc["topup_available"] is False


def test_portal_isolation_every_page_and_endpoint(w):
    """Another tenant's account id, or one that does not exist: 404, the
    same answer; nothing of the other tenant in any answer (check 3)."""
    h = bearer(w, "zhou", "zhou-portal-pw")
    api = [("GET", "/api/portal/accounts/%d", None), ("GET", "/api/portal/accounts/%d/ledger", None),
           ("PUT", "/api/portal/accounts/%d/threshold", {"amount": "5.00"}),
           ("POST", "/api/portal/accounts/%d/topup", {"amount": "5.00"})]
    for method, url, body in api:
        answers = set()
        for acc in (w.other, 999999):
            r = w.client.request(method, url % acc, headers=h, json=body)
            assert r.status_code == 404, (url, r.status_code, r.text)
            answers.add(r.text.replace(str(acc), "N"))
        assert len(answers) == 1, (url, answers)
        own = w.client.request(method, url % w.account, headers=h, json=body)
        assert own.status_code != 404 or url.endswith("topup"), (url, own.text)
    for url in ("/api/portal/summary", "/api/portal/accounts", "/api/portal/preferences"):
        r = w.client.get(url, headers=h)
        assert r.status_code == 200 and "NEIGHBOUR" not in r.text and "P-3" not in r.text
    # the neighbour sees only its own
    h2 = bearer(w, "wu", "wu-portal-pw")
    assert [a["account_id"] for a in w.client.get("/api/portal/summary", headers=h2).json()] == [w.other]
    # web pages: the same doors
    csrf = web_login(w, "zhou", "zhou-portal-pw")
    page = w.client.get("/portal")
    assert page.status_code == 200 and "Zhou Min" in page.text and "NEIGHBOUR" not in page.text
    assert 'data-meter="P-1"' in page.text and 'data-meter="P-2"' in page.text and "P-3" not in page.text
    for acc in (w.other, 999999):
        assert w.client.get("/portal/accounts/%d/live" % acc).status_code == 404
        for url in ("/portal/accounts/%d/threshold", "/portal/accounts/%d/topup"):
            r = w.client.post(url % acc, data={"amount": "5.00", "csrf_token": csrf})
            assert r.status_code == 404 and "NEIGHBOUR" not in r.text
    with w.sf() as s:
        other = s.get(accounts.Account, w.other)
        assert other.low_balance_threshold_mu == 0          # untouched
    # staff cannot use the portal, tenants cannot use the staff inbox
    hs = bearer(w, "desk", "desk-staff-pw")
    assert w.client.get("/api/portal/summary", headers=hs).status_code == 403
    assert w.client.get("/api/alerts", headers=h).status_code == 403
    w.client.cookies.clear()


def test_threshold_and_preferences_are_the_tenants_own_and_audited(w):
    h = bearer(w, "zhou", "zhou-portal-pw")
    r = w.client.put("/api/portal/accounts/%d/threshold" % w.account, headers=h, json={"amount": "12.50"})
    assert r.status_code == 200 and r.json()["threshold_mu"] == 125000
    for bad in ({"amount": "1e3"}, {"amount": "12.505"}, {"amount": 12}, {"amount": "-1"}):
        r = w.client.put("/api/portal/accounts/%d/threshold" % w.account, headers=h, json=bad)
        assert r.status_code == 422, (bad, r.text)
    r = w.client.put("/api/portal/preferences", headers=h,
                     json={"channels": ["email"], "days_left": 4, "quiet_start": "22:30", "quiet_end": "07:00",
                           "language": "en"})
    assert r.status_code == 200, r.text
    assert r.json() == {"tenant_id": r.json()["tenant_id"], "channels": ["email"],
                        "available_channels": ["sms", "email"], "days_left": 4, "quiet_start": "22:30",
                        "quiet_end": "07:00", "language": "en"}
    for bad in ({"channels": ["pager"]}, {"quiet_start": "25:00", "quiet_end": "07:00"},
                {"quiet_start": "", "quiet_end": "07:00"}, {"quiet_start": "07:00"}, {"days_left": -1},
                {"colour": "red"}):
        r = w.client.put("/api/portal/preferences", headers=h, json=bad)
        assert r.status_code == 422, (bad, r.text)
    with w.sf() as s:
        rows = s.exec(select(AuditLog).where(AuditLog.action.in_(["alert.threshold", "alert.preference"]))
                      .order_by(AuditLog.id)).all()
        # one row per change (the isolation test set 5.00 on its own account before)
        assert [a.action for a in rows] == ["alert.threshold", "alert.threshold", "alert.preference"]
        assert rows[1].after == {"low_balance_threshold_mu": 125000}
    # the web form does the same, and a bad value is a clear error that changes nothing
    csrf = web_login(w, "zhou", "zhou-portal-pw")
    r = w.client.post("/portal/accounts/%d/threshold" % w.account, data={"amount": "abc", "csrf_token": csrf})
    assert r.status_code == 422 and "not a plain decimal" in r.text
    r = w.client.post("/portal/preferences", data={"channel": ["sms", "email"], "days_left": "3",
                                                   "quiet_start": "", "quiet_end": "", "language": "zh-CN",
                                                   "csrf_token": csrf})
    assert r.status_code == 200 and 'class="ok notice"' in r.text
    assert w.client.post("/portal/preferences", data={"days_left": "3"}).status_code == 403   # no CSRF token
    w.client.cookies.clear()
    r = w.client.get("/api/portal/preferences", headers=h).json()
    assert r["channels"] == ["sms", "email"] and r["quiet_start"] is None and r["language"] == "zh-CN"


def test_alerts_from_the_ingest_suppressed_cleared_acknowledged(w):
    """Runs after the others: the tenant's balance runs down."""
    h = bearer(w, "desk", "desk-staff-pw")
    with w.sf() as s:
        mine = s.exec(select(Alert).where(Alert.account_id == w.account)).all()
    assert [a.kind for a in mine] == ["low_balance"]     # raised once, although every batch was low
    low = mine[0]
    assert low.active and low.values["days"] is not None
    with w.sf() as s:
        notes = s.exec(select(Notification).where(Notification.alert_id == low.id)).all()
        assert sorted(n.channel for n in notes) == ["email", "sms"]
        assert {n.recipient for n in notes} == {"zhou@tenants.test", "13800001111"}
    # the relay opens: one alert, one more message; a repeated event says nothing new
    event(w, protocol.EV_RELAY_OPEN, 0, protocol.R_CREDIT)
    event(w, protocol.EV_RELAY_OPEN, 0, protocol.R_CREDIT)
    with w.sf() as s:
        relay = s.exec(select(Alert).where(Alert.kind == "relay_opened")).all()
        assert len(relay) == 1 and relay[0].values["reason"] == "credit" and relay[0].values["meter"] == "P-1"
    # a recharge lifts the balance: the next reading ends the low-balance episode, the close ends the cut
    with w.sf() as s:
        from headend.services.sales import sell
        sell(s, system_actor(s), w.account, 500 * 10000, push=False)
        s.commit()
    feed(w, 3600)
    event(w, protocol.EV_RELAY_CLOSE, 0, protocol.R_CREDIT)
    with w.sf() as s:
        assert s.get(Alert, low.id).active is False and s.get(Alert, low.id).cleared is not None
        kinds = [a.kind for a in s.exec(select(Alert).where(Alert.account_id == w.account).order_by(Alert.id))]
        assert kinds == ["low_balance", "relay_opened", "relay_closed"]
    # the neighbour had its own low balance; the inbox lists every alert of the property for staff
    inbox = w.client.get("/api/alerts", headers=h).json()
    assert {a["kind"] for a in inbox} >= {"low_balance", "relay_opened", "relay_closed"}
    r = w.client.post("/api/alerts/%d/ack" % low.id, headers=h)
    assert r.status_code == 200 and r.json()["acknowledged"] is not None
    assert low.id not in [a["id"] for a in w.client.get("/api/alerts?unacknowledged=true", headers=h).json()]
    d = w.client.get("/api/alerts/%d/deliveries" % low.id, headers=h).json()
    assert sorted(x["channel"] for x in d) == ["email", "sms"] and all(x["state"] == "pending" for x in d)
    # the dashboard inbox: acknowledge with a click (htmx)
    csrf = web_login(w, "desk", "desk-staff-pw")
    home = w.client.get("/staff")
    ids = [int(x) for x in re.findall(r'data-alert="(\d+)"', home.text)]
    assert ids and low.id not in ids
    r = w.client.post("/staff/alerts/%d/ack" % ids[0], headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert r.status_code == 200 and 'data-alert="%d"' % ids[0] not in r.text
    w.client.cookies.clear()


def test_a_silent_concentrator_raises_once_and_clears_when_it_talks(w):
    with w.sf() as s:
        assert alerts.check_silence(s, w.now[0] + 20 * 60) == []        # 20 minutes: within the rule's 30
        raised = alerts.check_silence(s, w.now[0] + 31 * 60)
        assert [a.kind for a in raised] == ["concentrator_offline"] and raised[0].values["dev"] == "pc1"
        assert alerts.check_silence(s, w.now[0] + 90 * 60) == []        # suppressed: still the same silence
        s.commit()
    w.now[0] += 95 * 60
    feed(w, Q)
    with w.sf() as s:
        a = s.exec(select(Alert).where(Alert.kind == "concentrator_offline")).one()
        assert a.active is False and a.cleared == w.now[0]


def status(w, **fields):
    w.ingest.handle(*w.board.up(protocol.STATUS, **fields))


def test_rules_steer_what_is_raised_and_who_hears(w):
    h = bearer(w, "boss", "boss-manager-pw")
    url = "/api/properties/%d/alert-rules" % w.pid
    rules = {r["kind"]: r for r in w.client.get(url, headers=h).json()}
    assert rules["low_balance"]["amount"] == "10.00" and rules["low_balance"]["is_default"] is True
    assert w.client.put(url + "/meter_offline", headers=bearer(w, "desk", "desk-staff-pw"),
                        json={"enabled": True}).status_code == 403          # a cashier may not
    for kind, bad in (("meter_offline", {"staff_emails": ["not an address"]}), ("nonsense", {"enabled": True}),
                      ("low_balance", {"amount": "1.234"}), ("bus_errors", {"per_hour": 0})):
        assert w.client.put(url + "/" + kind, headers=h, json=bad).status_code == 422, (kind, bad)
    r = w.client.put(url + "/meter_offline", headers=h, json={"staff_emails": ["ops@site.test"]})
    assert r.status_code == 200 and r.json()["staff_emails"] == ["ops@site.test"] and not r.json()["is_default"]
    assert w.client.put(url + "/relay_opened", headers=h, json={"enabled": False}).json()["enabled"] is False
    event(w, protocol.EV_METER_OFFLINE, 2, 0)
    event(w, protocol.EV_RELAY_OPEN, 2, protocol.R_CREDIT)                 # disabled: nothing
    with w.sf() as s:
        off = s.exec(select(Alert).where(Alert.kind == "meter_offline")).one()
        assert off.active and off.values["meter"] == "P-3"
        [n] = s.exec(select(Notification).where(Notification.alert_id == off.id)).all()
        assert n.recipient == "ops@site.test" and "电表 P-3 离线" in n.body and "meter P-3 offline" in n.body
        assert s.exec(select(Alert).where(Alert.kind == "relay_opened", Alert.meter_id == off.meter_id)).all() == []
        assert len(s.exec(select(AuditLog).where(AuditLog.action == "alert.rule")).all()) == 2
    event(w, protocol.EV_METER_ONLINE, 2, 0)
    # bus errors: 200 errors in two hours of uptime is 100 an hour (rule: 60); ten times longer, 10 an hour
    status(w, up=7200, bus=[[2, 150, 50, 0, 0, 1]], meters=[])
    status(w, up=72000, bus=[[2, 150, 50, 0, 0, 1]], meters=[])
    with w.sf() as s:
        assert s.get(Alert, off.id).active is False
        [bus] = s.exec(select(Alert).where(Alert.kind == "bus_errors")).all()
        assert bus.values == {"meter": "P-3", "per_hour": 100} and bus.active is False and bus.cleared


def test_webhooks_api_shows_the_secret_once(w):
    h = bearer(w, "boss", "boss-manager-pw")
    r = w.client.post("/api/webhooks", headers=h, json={"property_id": w.pid, "url": "https://ops.site.test/wk",
                                                        "kinds": ["relay_opened"]})
    assert r.status_code == 201 and len(r.json()["secret_hex"]) == 64
    hook = r.json()["id"]
    listed = w.client.get("/api/webhooks", headers=h).json()
    assert [x["id"] for x in listed] == [hook] and "secret_hex" not in listed[0]
    for bad in ({"property_id": w.pid, "url": "ftp://x"}, {"property_id": w.pid, "url": "https://x.test/a",
                                                          "kinds": ["weather"]}):
        assert w.client.post("/api/webhooks", headers=h, json=bad).status_code == 422
    assert w.client.delete("/api/webhooks/%d" % hook, headers=h).status_code == 200
    assert w.client.get("/api/webhooks", headers=h).json() == []
    assert w.client.delete("/api/webhooks/%d" % hook, headers=h).status_code == 404


def test_journal_thinned_and_the_theft_seam(w, monkeypatch):
    event(w, protocol.EV_JOURNAL_THINNED, 0, 12)
    event(w, protocol.EV_JOURNAL_THINNED, 0, 30)           # the same day: once
    # issue 11's theft event codes (alerts.THEFT_EVENT_CODES): a meter's tamper alarm
    assert protocol.EV_TAMPER in alerts.THEFT_EVENT_CODES
    event(w, protocol.EV_TAMPER, 1, 0)
    with w.sf() as s:
        kinds = [a.kind for a in s.exec(select(Alert).where(Alert.kind.in_(["journal_thinned", "theft"])))]
        theft = s.exec(select(Alert).where(Alert.kind == "theft")).one()
    assert kinds == ["journal_thinned", "theft"]
    assert theft.values["meter"] == "P-2" and theft.account_id == w.account and theft.values["sign"] == "tamper"
    with w.sf() as s:
        assert s.exec(select(Notification).where(Notification.alert_id == theft.id)).all() == []   # staff only


def test_managers_set_rules_on_the_dashboard(w):
    csrf = web_login(w, "boss", "boss-manager-pw")
    page = w.client.get("/staff/alerts/rules?property_id=%d" % w.pid)
    assert page.status_code == 200 and page.text.count('class="card rule"') == 12
    r = w.client.post("/staff/alerts/rules/%d/low_balance" % w.pid,
                      data={"enabled": "1", "notify_tenant": "1", "amount": "15.00", "days_left": "4",
                            "staff_emails": "ops@site.test, night@site.test", "csrf_token": csrf})
    assert r.status_code == 200 and 'class="ok notice"' in r.text
    r = w.client.post("/staff/alerts/rules/%d/bus_errors" % w.pid, data={"per_hour": "many", "csrf_token": csrf})
    assert r.status_code == 422 and "whole number" in r.text
    w.client.cookies.clear()
    rules = {x["kind"]: x for x in w.client.get("/api/properties/%d/alert-rules" % w.pid,
                                                headers=bearer(w, "boss", "boss-manager-pw")).json()}
    assert rules["low_balance"]["amount_mu"] == 150000 and rules["low_balance"]["days_left"] == 4
    assert rules["low_balance"]["staff_emails"] == ["ops@site.test", "night@site.test"]
    assert rules["bus_errors"]["per_hour"] == 60
