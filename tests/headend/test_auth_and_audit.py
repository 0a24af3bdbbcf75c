"""Locked doors: five bad passwords lock a user, a dashboard form without its
CSRF token is refused, a revoked API token stops at once, sessions end at
logout; every audited action leaves exactly one audit row naming the user;
the audit log reads and exports with filters; the first start creates an
admin with a one-time password."""
import csv
import io
import subprocess
import sys
import time

from fastapi.testclient import TestClient
from sqlmodel import func, select

from headend.api.deps import SESSION_COOKIE
from headend.core.config import Settings
from headend.main import create_app
from headend.models import AuditLog, LedgerEntry
from headend.services import accounts, devices, properties, tariffs, users
from headend.services.actor import system_actor
from tests.headend.conftest import As, make_user, token_for


def _world(app):
    with app.state.session_factory() as s:
        sa = system_actor(s)
        p = properties.create_property(s, sa, "Harbour View")
        tariffs.create_tariff(s, sa, p.id, "flat", 6000)
        c = devices.create_concentrator(s, sa, p.id, "hv-c1")
        a = accounts.create_account(s, sa, p.id, tenant_name="Zhou")
        m = devices.create_meter(s, sa, c.id, "HV-1", "sdm120", account_id=a.id, opening_energy_wh=0)
        s.commit()
        return {"property": p.id, "account": a.id, "dev": c.dev, "meter": m.id, "tenant": a.tenant_id}


def test_five_bad_passwords_lock_the_user_for_a_while(tmp_path):
    app = create_app(Settings(database_url="sqlite:///" + str(tmp_path / "a.db"), lockout_s=2), start_mqtt=False)
    make_user(app, "lin", "viewer", password="right-password")
    with TestClient(app) as c:
        for _ in range(4):
            assert c.post("/api/auth/token", data={"username": "lin", "password": "guess"}).status_code == 401
        assert c.post("/api/auth/token", data={"username": "lin", "password": "right-password"}).status_code == 200
        for _ in range(5):
            assert c.post("/api/auth/token", data={"username": "lin", "password": "guess"}).status_code == 401
        # locked: even the right password is refused, with a clear message
        r = c.post("/api/auth/token", data={"username": "lin", "password": "right-password"})
        assert r.status_code == 423 and "try again" in r.json()["detail"]
        r = c.post("/login", data={"username": "lin", "password": "right-password"})
        assert r.status_code == 401 and "try again" in r.text
        time.sleep(2.2)
        assert c.post("/api/auth/token", data={"username": "lin", "password": "right-password"}).status_code == 200
    with app.state.session_factory() as s:
        rows = s.exec(select(AuditLog).where(AuditLog.username == "lin").order_by(AuditLog.id)).all()
        actions = [r.action for r in rows]
        assert actions.count("login.failed") == 9 and actions.count("login.locked") == 2
        assert actions.count("login.success") == 2
        assert "locked for" in [r for r in rows if r.action == "login.failed"][-1].detail
        assert all(r.ip for r in rows)


def test_unknown_user_and_wrong_password_look_the_same(client, app):
    make_user(app, "qian", "viewer", password="right-password")
    a = client.post("/api/auth/token", data={"username": "qian", "password": "nope"})
    b = client.post("/api/auth/token", data={"username": "nobody-at-all", "password": "nope"})
    assert (a.status_code, a.json()) == (b.status_code, b.json()) == (401, {"detail": "wrong user name or password"})


def _cookie_login(client, username, password):
    r = client.post("/login", data={"username": username, "password": password}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return r.cookies[SESSION_COOKIE]


def test_a_form_without_its_csrf_token_is_refused(app, client):
    w = _world(app)
    make_user(app, "desk", "cashier", [w["property"]], password="desk-password")
    cookie = _cookie_login(client, "desk", "desk-password")
    client.cookies.set(SESSION_COOKIE, cookie)
    page = client.get("/staff/desk")
    assert page.status_code == 200
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    form = {"amount": "20.00", "idempotency_key": "form-key-0001"}
    sell = "/staff/desk/accounts/%d/sell" % w["account"]
    assert client.post(sell, data=form).status_code == 403
    assert client.post(sell, data=dict(form, csrf_token="forged")).status_code == 403
    assert client.post(sell, data=form, headers={"X-CSRF-Token": "forged"}).status_code == 403
    with app.state.session_factory() as s:
        assert s.exec(select(func.count()).select_from(LedgerEntry)).one() == 0, "nothing sold"
    r = client.post(sell, data=dict(form, csrf_token=token))
    assert r.status_code == 200 and "20.00" in r.text and "R000001" in r.text      # the receipt
    r = client.post(sell, data=dict(form, idempotency_key="form-key-0002"), headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and "40.00" in r.text and "R000002" in r.text
    # the logout form needs it too; after logout the cookie is dead
    assert client.post("/logout", follow_redirects=False).status_code == 403
    assert client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    client.cookies.set(SESSION_COOKIE, cookie)
    r = client.get("/staff/desk", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_a_revoked_api_token_stops_at_once(app, client):
    _world(app)
    make_user(app, "ops", "technician", password="ops-password")
    me = As(client, token_for(client, "ops", "ops-password"))
    r = me.post("/api/auth/tokens", json={"name": "monitoring", "scopes": ["property.read"]})
    assert r.status_code == 201, r.text
    raw, tid = r.json()["token"], r.json()["id"]
    assert raw.startswith("wkt_") and r.json()["prefix"] == raw[:12]
    bot = As(client, raw)
    assert bot.get("/api/meters").status_code == 200
    # the scope holds: a technician's token limited to reading cannot rotate keys
    assert bot.post("/api/concentrators/hv-c1/rekey", json={}).status_code == 403
    assert all("token" not in t for t in me.get("/api/auth/tokens").json())   # shown once only
    assert me.delete("/api/auth/tokens/%d" % tid).status_code == 200
    assert bot.get("/api/meters").status_code == 401
    # scopes cannot exceed the user's own permissions
    assert me.post("/api/auth/tokens", json={"name": "x", "scopes": ["money.sell"]}).status_code == 422
    # a disabled user's tokens die with it
    make_user(app, "boss", "admin", password="boss-password")
    adm = As(client, token_for(client, "boss", "boss-password"))
    uid = [u["id"] for u in adm.get("/api/users").json() if u["username"] == "ops"][0]
    assert adm.patch("/api/users/%d" % uid, json={"active": False}).status_code == 200
    assert me.get("/api/auth/me").status_code == 401


def test_logout_ends_an_access_token(app, client):
    make_user(app, "viewer-v", "viewer", password="viewer-password")
    v = As(client, token_for(client, "viewer-v", "viewer-password"))
    assert v.get("/api/auth/me").json()["username"] == "viewer-v"
    assert v.post("/api/auth/logout").json()["ok"] is True
    assert v.get("/api/auth/me").status_code == 401


def _audit_count(app, **where):
    with app.state.session_factory() as s:
        q = select(AuditLog)
        for k, v in where.items():
            q = q.where(getattr(AuditLog, k) == v)
        return s.exec(q).all()


def test_each_audited_action_leaves_exactly_one_row_naming_the_user(app, client):
    w = _world(app)
    uid_m, _ = make_user(app, "mgr", "manager", [w["property"]], password="manager-password")
    uid_t, _ = make_user(app, "tech", "technician", [w["property"]], password="tech-password")
    uid_c, _ = make_user(app, "cash", "cashier", [w["property"]], password="cash-password")
    mgr = As(client, token_for(client, "mgr", "manager-password"))
    tech = As(client, token_for(client, "tech", "tech-password"))
    cash = As(client, token_for(client, "cash", "cash-password"))
    tid = mgr.get("/api/tariffs").json()[0]["id"]
    actions = [
        ("money.sale", uid_c, lambda: cash.post("/api/accounts/%d/recharge" % w["account"], json={"amount": "8.00"})),
        ("relay.override", uid_m, lambda: mgr.post("/api/meters/%d/override" % w["meter"],
                                                    json={"state": "closed", "until": int(time.time()) + 600})),
        ("relay.override", uid_t, lambda: tech.post("/api/meters/%d/override" % w["meter"], json={"state": "auto"})),
        ("tariff.create", uid_m, lambda: mgr.post("/api/tariffs", json={"property_id": w["property"], "name": "tou",
                                                                         "price_mu_per_kwh": 5000,
                                                                         "property_default": False})),
        ("tariff.version", uid_m, lambda: mgr.post("/api/tariffs/%d/versions" % tid,
                                                    json={"price_mu_per_kwh": 6100, "effective": 4102444800})),
        ("policy.change", uid_m, lambda: mgr.post("/api/concentrators/%s/policy" % w["dev"],
                                                   json={"policy": {"emergency_mu": 3000}})),
        ("key.rotate", uid_t, lambda: tech.post("/api/concentrators/%s/rekey" % w["dev"], json={})),
        ("user.create", uid_m, lambda: mgr.post("/api/users", json={"username": "new-cashier", "role": "cashier",
                                                                     "password": "new-password",
                                                                     "property_ids": [w["property"]]})),
        ("user.update", uid_m, lambda: mgr.patch("/api/users/%d" % uid_c, json={"display_name": "Cash Desk 1"})),
        ("token.create", uid_t, lambda: tech.post("/api/auth/tokens", json={"name": "t"})),
        ("meter.assign", uid_m, lambda: mgr.put("/api/meters/%d/account" % w["meter"],
                                                 json={"account_id": w["account"]})),
    ]
    for action, uid, do in actions:
        before = len(_audit_count(app, action=action))
        r = do()
        assert r.status_code in (200, 201, 202), (action, r.status_code, r.text)
        rows = _audit_count(app, action=action)
        assert len(rows) == before + 1, (action, len(rows) - before)
        assert rows[-1].user_id == uid and rows[-1].actor_kind == "user", action
        assert rows[-1].property_id in (w["property"], None)
    # before -> after on a change
    upd = _audit_count(app, action="user.update")[-1]
    assert upd.before["display_name"] != "Cash Desk 1" and upd.after["display_name"] == "Cash Desk 1"
    sale = _audit_count(app, action="money.sale")[-1]
    assert sale.before == {"balance_mu": 0} and sale.after["balance_mu"] == 80000
    # a refused action leaves no row
    n = len(_audit_count(app))
    assert cash.post("/api/concentrators/%s/rekey" % w["dev"], json={}).status_code == 403
    assert len(_audit_count(app)) == n


def test_audit_log_api_and_csv_with_filters(app, client):
    w = _world(app)
    make_user(app, "boss", "admin", password="boss-password")
    adm = As(client, token_for(client, "boss", "boss-password"))
    client.post("/api/auth/token", data={"username": "boss", "password": "wrong"})
    adm.post("/api/accounts/%d/recharge" % w["account"], json={"amount": "3.00"})
    logins = adm.get("/api/audit", params={"action": "login"}).json()
    assert {r["action"] for r in logins} == {"login.success", "login.failed"}
    money = adm.get("/api/audit", params={"action": "money."}).json()
    assert [r["action"] for r in money] == ["money.sale"] and money[0]["username"] == "boss"
    r = adm.get("/api/audit.csv", params={"action": "login"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert {x["action"] for x in rows} == {"login.success", "login.failed"} and all(x["ip"] for x in rows)
    # a cashier may not read it
    make_user(app, "c2", "cashier", [w["property"]], password="cashier-password")
    assert As(client, token_for(client, "c2", "cashier-password")).get("/api/audit").status_code == 403


def test_a_manager_manages_only_its_own_staff(app, client):
    w = _world(app)
    with app.state.session_factory() as s:
        other = properties.create_property(s, system_actor(s), "Elsewhere").id
        s.commit()
    make_user(app, "m1", "manager", [w["property"]], password="manager-password")
    m = As(client, token_for(client, "m1", "manager-password"))
    ok = {"username": "c-1", "password": "password-1", "role": "cashier", "property_ids": [w["property"]]}
    assert m.post("/api/users", json=ok).status_code == 201
    assert m.post("/api/users", json=dict(ok, username="a-1", role="admin")).status_code == 403
    assert m.post("/api/users", json=dict(ok, username="m-2", role="manager")).status_code == 403
    assert m.post("/api/users", json=dict(ok, username="c-2", property_ids=[other])).status_code == 403
    assert m.post("/api/users", json=dict(ok, username="c-3", property_ids=[])).status_code == 422
    assert m.post("/api/users", json=dict(ok, username="c-4", password="short")).status_code == 422
    assert [u["username"] for u in m.get("/api/users").json()] == ["m1", "c-1"]


def test_first_start_creates_an_admin_with_a_one_time_password(tmp_path):
    url = "sqlite:///" + str(tmp_path / "first.db")
    app = create_app(Settings(database_url=url), start_mqtt=False)
    with app.state.session_factory() as s:
        first = users.ensure_first_admin(s)
        s.commit()
        assert first is not None and first[0].role == "admin" and first[0].must_change_password
        assert users.ensure_first_admin(s) is None      # only on a database without staff
    with TestClient(app) as c:
        assert c.post("/api/auth/token", data={"username": "admin", "password": first[1]}).status_code == 200


def test_cli_user_add_reads_the_password_from_stdin(tmp_path):
    url = "sqlite:///" + str(tmp_path / "cli.db")
    run = lambda *args, stdin="": subprocess.run(  # noqa: E731
        [sys.executable, "-m", "headend.cli", "--db", url, *args], input=stdin, capture_output=True, text=True,
        timeout=60)
    r = run("provision", "property", "Lotus Garden")
    assert r.returncode == 0, r.stderr
    r = run("user", "add", "wu", "--role", "cashier", "--property", "Lotus Garden", stdin="wu-secret-1\n")
    assert r.returncode == 0 and "user wu created" in r.stdout, r.stderr
    r = run("user", "add", "wu2", "--role", "wizard", stdin="wu-secret-1\n")
    assert r.returncode == 2 and "unknown role" in r.stderr
    r = run("user", "add", "wu3", "--role", "viewer", stdin="short\n")
    assert r.returncode == 2 and "at least 8" in r.stderr
    r = run("user", "list")
    assert "wu" in r.stdout and "cashier" in r.stdout
    app = create_app(Settings(database_url=url), start_mqtt=False)
    with TestClient(app) as c:
        tok = token_for(c, "wu", "wu-secret-1")
        me = As(c, tok).get("/api/auth/me").json()
        assert me["role"] == "cashier" and len(me["property_ids"]) == 1
