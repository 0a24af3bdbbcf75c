"""The role matrix, generated from the app's route table: every route (API
and dashboard) x {anonymous, tenant, viewer, technician, cashier, manager,
other property's manager, admin} gets the answer its declared permission
says; a route that declares no permission fails. Nothing of property ALPHA
reaches anyone outside it, and no tenant sees another tenant."""
import re

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlmodel import select

from headend.api.deps import SESSION_COOKIE, Permission, Public
from headend.core import permissions as P
from headend.core import security
from headend.core.config import Settings
from headend.main import create_app
from headend.models import AuthSession, User
from concentrator import ota_format
from headend.models import RolloutCreate
from headend.models import alert as alert_kinds
from headend.services import accounts, alert_rules, alerts, apportionment, devices, ota, properties, tariffs, users, webhooks
from headend.services.actor import system_actor
from headend.services.sales import sell

PRINCIPALS = ("anonymous", "tenant", "viewer", "technician", "cashier", "manager", "other_manager", "admin")
ROLE_OF = {"tenant": "tenant", "viewer": "viewer", "technician": "technician", "cashier": "cashier",
           "manager": "manager", "other_manager": "manager", "admin": "admin"}
# what no one outside property ALPHA may read, and what no tenant but the neighbour may read
ALPHA, NEIGHBOUR, BRAVO = "ALPHA", "NEIGHBOUR", "BRAVO"


def declared_permission(route):
    """The permission a route declares (Permission), None for public(), or
    raise when it declares neither or several."""
    found = []

    def walk(dep):
        call = dep.call
        if isinstance(call, (Permission, Public)):
            found.append(call)
        for d in dep.dependencies:
            walk(d)
    walk(route.dependant)
    kinds = {(type(c).__name__, c.permission) for c in found}
    if len(kinds) != 1:
        raise AssertionError("%s %s declares %s: give it exactly one require(...) or public()"
                             % (sorted(route.methods), route.path, sorted(kinds) or "no permission"))
    return found[0].permission, isinstance(found[0], Permission) and found[0].web


def routes(app):
    """(method, path, APIRoute) for every route of the app, routers included."""
    out = []
    for rc in iter_route_contexts(app.routes):
        r = rc.original_route
        if isinstance(r, APIRoute):
            for m in sorted(rc.methods):
                out.append((m, rc.path, r))
    assert out, "the route table is empty: the matrix would test nothing"
    return out


# ------------------------------------------------------------------ the world
class World:
    pass


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("matrix")
    app = create_app(Settings(database_url="sqlite:///" + str(tmp / "m.db"), payment_providers="fake",
                              payment_fake_secret="matrix-secret-0123456789"), start_mqtt=False)
    w = World()
    w.app = app
    with app.state.session_factory() as s:
        sa = system_actor(s)
        ids = {}
        for tag in (ALPHA, BRAVO):
            p = properties.create_property(s, sa, "%s Court" % tag)
            b = properties.create_building(s, sa, p.id, "%s Tower" % tag)
            u1 = properties.create_unit(s, sa, b.id, "%s-101" % tag, floor=1, floor_area_dm2=8000)
            u2 = properties.create_unit(s, sa, b.id, "%s-102" % tag, floor=1, floor_area_dm2=6000)
            t = tariffs.create_tariff(s, sa, p.id, "%s-flat" % tag, 6000)
            c = devices.create_concentrator(s, sa, p.id, "%s-c1" % tag.lower())
            a1 = accounts.create_account(s, sa, p.id, tenant_name="%s tenant one" % tag)
            a2 = accounts.create_account(s, sa, p.id, tenant_name="%s %s" % (tag, NEIGHBOUR))
            accounts.occupy(s, sa, a1.id, u1.id)
            accounts.occupy(s, sa, a2.id, u2.id)
            m1 = devices.create_meter(s, sa, c.id, "%s-M1" % tag, "sdm120", unit_id=u1.id, opening_energy_wh=0)
            devices.create_meter(s, sa, c.id, "%s-M2" % tag, "sdm120", unit_id=u2.id, opening_energy_wh=0)
            sell(s, sa, a1.id, 1000000, push=False)
            sell(s, sa, a2.id, 1000000, push=False)
            rule = alert_rules.rules_for(s, p.id)[alert_kinds.LOW_BALANCE]
            alert = alerts.raise_alert(s, rule, 1, alert_kinds.LOW_BALANCE, "account:%d" % a1.id, p.id,
                                       {"name": a1.name, "balance": "1.00"}, active=True, account_id=a1.id,
                                       tenant_id=a1.tenant_id)
            hook = webhooks.create_webhook(s, sa, p.id, "http://127.0.0.1:9/%s" % tag, description="%s hook" % tag)
            lift = devices.create_meter(s, sa, c.id, "%s-LIFT" % tag, "sdm120", opening_energy_wh=0)
            pool = apportionment.create_pool(s, sa, p.id, "%s lift" % tag, "common", "area", b.id, [lift.id], 50)
            ids[tag] = dict(property=p.id, building=b.id, unit=u1.id, unit2=u2.id, tariff=t.id, conc=c.dev,
                            conc_id=c.id, account=a1.id, neighbour=a2.id, tenant=a1.tenant_id, meter=m1.id,
                            meter_name="%s-M1" % tag, alert=alert.id, webhook=hook.id, pool=pool.id,
                            lift=lift.id)
        manifest, data = ota_format.build([("concentrator/core.py", b"# v9\n")], "9.9.9")
        w.bundle = (manifest, data)
        bundle = ota.add_bundle(s, sa, manifest, data)
        ids["bundle"] = bundle.id
        ids["rollout"] = ota.start(s, sa, RolloutCreate(bundle_id=bundle.id, property_id=ids[ALPHA]["property"])).id
        s.commit()
        w.ids = ids
        A = ids[ALPHA]
        w.users = {}
        for who in PRINCIPALS[1:]:
            role = ROLE_OF[who]
            pid = ids[BRAVO if who == "other_manager" else ALPHA]["property"]
            name = "mx-" + who.replace("_", "-")
            if role == "tenant":
                u = users.create_user(s, sa, name, name + "-pw", tenant_id=A["tenant"])
            else:
                u = users.create_user(s, sa, name, name + "-pw", role=role,
                                      property_ids=[] if role == "admin" else [pid])
            w.users[who] = (u.id, name, name + "-pw")
        s.commit()
        # a sale the cashier made today: the one the reversal routes reverse
        cashier = users.actor_for(s, s.get(User, w.users["cashier"][0]))
        w.ids[ALPHA]["receipt"] = sell(s, cashier, A["account"], 20000, push=False).receipt.id
        s.commit()
    w.client = TestClient(app)
    w.client.__enter__()
    w.bearer, w.cookie, w.csrf = {}, {}, {}
    for who, (uid, name, pw) in w.users.items():
        r = w.client.post("/api/auth/token", data={"username": name, "password": pw})
        assert r.status_code == 200, r.text
        w.bearer[who] = r.json()["access_token"]
        r = w.client.post("/login", data={"username": name, "password": pw}, follow_redirects=False)
        assert r.status_code == 303, r.text
        w.cookie[who] = r.cookies[SESSION_COOKIE]
        with app.state.session_factory() as s:
            w.csrf[who] = s.exec(select(AuthSession).where(
                AuthSession.token_hash == security.token_hash(w.cookie[who]))).one().csrf_token
    w.client.cookies.clear()
    yield w
    w.client.__exit__(None, None, None)


def fresh_token(w, who):
    _uid, name, pw = w.users[who]
    r = w.client.post("/api/auth/token", data={"username": name, "password": pw})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


# what each route is called with: path parameters and a valid body, aimed at
# property ALPHA's things. scoped: the call touches one of ALPHA's things, so
# the other property's manager must be refused (403/404) even with the role.
def examples(w):
    A = w.ids[ALPHA]
    return {
        "path": {"account_id": A["account"], "meter_pk": A["meter"], "dev": A["conc"], "tariff_id": A["tariff"],
                 "property_id": A["property"], "user_id": w.users["cashier"][0], "token_id": 999999,
                 "code": "en", "rollout_id": w.ids["rollout"], "action": "pause",
                 "alert_id": A["alert"], "webhook_id": A["webhook"], "kind": "low_balance",
                 "tenant_id": A["tenant"], "receipt_id": A["receipt"], "provider": "fake",
                 "order_no": "P00000000000000", "pool_id": A["pool"], "month": "2020-01", "run_id": 999999},
        ("POST", "/api/firmware"): dict(files={"manifest": ("manifest.json", w.bundle[0]),
                                               "bundle": ("bundle.bin", w.bundle[1])}),
        ("POST", "/api/rollouts"): dict(json={"bundle_id": w.ids["bundle"], "property_id": A["property"]}, scoped=True),
        ("POST", "/api/rollouts/{rollout_id}/{action}"): dict(scoped=True),
        ("GET", "/api/rollouts/{rollout_id}"): dict(scoped=True),
        ("POST", "/staff/firmware/rollouts"): dict(data={"bundle_id": w.ids["bundle"], "property_id": A["property"]},
                                                   scoped=True),
        ("POST", "/staff/firmware/rollouts/{rollout_id}/{action}"): dict(scoped=True),
        ("POST", "/api/organisations"): dict(json={"name": "Another group"}),
        ("POST", "/api/properties"): dict(json={"name": "Another property"}),
        ("POST", "/api/buildings"): dict(json={"property_id": A["property"], "name": "B2"}, scoped=True),
        ("POST", "/api/units"): dict(json={"building_id": A["building"], "name": "U-9", "floor_area_dm2": 5000},
                                     scoped=True),
        ("POST", "/api/concentrators"): dict(json={"property_id": A["property"], "dev": "mx-new"}, scoped=True),
        ("POST", "/api/concentrators/{dev}/meters/import"): dict(
            content='{"addr": 9, "proto": "modbus", "model": "sdm120"}\n', scoped=True),
        ("POST", "/api/concentrators/{dev}/rekey"): dict(json={"force": True}, scoped=True),
        ("POST", "/api/concentrators/{dev}/policy"): dict(json={"policy": {"emergency_mu": 5000}}, scoped=True),
        ("POST", "/api/meters"): dict(json={"concentrator_id": A["conc_id"], "meter_id": "mx-meter"}, scoped=True),
        ("PUT", "/api/meters/{meter_pk}/account"): dict(json={"account_id": A["account"]}, scoped=True),
        ("POST", "/api/meters/{meter_pk}/override"): dict(json={"state": "auto"}, scoped=True),
        ("POST", "/api/accounts"): dict(json={"property_id": A["property"], "tenant": "mx tenant"}, scoped=True),
        ("POST", "/api/accounts/{account_id}/recharge"): dict(json={"amount": "1.00"}, scoped=True),
        ("POST", "/api/tariffs"): dict(json={"property_id": A["property"], "name": "mx", "price_mu_per_kwh": 1,
                                             "property_default": False}, scoped=True),
        ("POST", "/api/tariffs/{tariff_id}/versions"): dict(
            json={"price_mu_per_kwh": 7000, "effective": 4102444800}, scoped=True),
        ("POST", "/api/users"): dict(json={"username": "mx-made", "password": "made-password", "role": "viewer",
                                           "property_ids": [A["property"]]}, scoped=True),
        ("PATCH", "/api/users/{user_id}"): dict(json={"display_name": "Cashier of ALPHA"}, scoped=True),
        ("GET", "/api/users/{user_id}"): dict(scoped=True),
        ("GET", "/api/properties/{property_id}"): dict(scoped=True),
        ("GET", "/api/accounts/{account_id}"): dict(scoped=True),
        ("GET", "/api/accounts/{account_id}/ledger"): dict(scoped=True),
        ("GET", "/api/tariffs/{tariff_id}/versions"): dict(scoped=True),
        ("GET", "/api/portal/accounts/{account_id}/ledger"): dict(scoped=True),
        # alerts (issue 12)
        ("GET", "/api/properties/{property_id}/alert-rules"): dict(scoped=True),
        ("PUT", "/api/properties/{property_id}/alert-rules/{kind}"): dict(json={"days_left": 4}, scoped=True),
        ("POST", "/api/alerts/{alert_id}/ack"): dict(scoped=True),
        ("GET", "/api/alerts/{alert_id}/deliveries"): dict(scoped=True),
        ("POST", "/api/webhooks"): dict(json={"property_id": A["property"], "url": "http://127.0.0.1:9/new"},
                                        scoped=True),
        ("DELETE", "/api/webhooks/{webhook_id}"): dict(scoped=True),
        ("POST", "/staff/alerts/{alert_id}/ack"): dict(scoped=True),
        ("GET", "/staff/alerts/rules"): dict(params={"property_id": A["property"]}, scoped=True),
        ("POST", "/staff/alerts/rules/{property_id}/{kind}"): dict(data={"enabled": "1", "amount": "8.00"},
                                                                  scoped=True),
        # the tenant portal (issue 12)
        ("GET", "/api/portal/accounts/{account_id}"): dict(scoped=True),
        ("PUT", "/api/portal/accounts/{account_id}/threshold"): dict(json={"amount": "5.00"}, scoped=True),
        ("POST", "/api/portal/accounts/{account_id}/topup"): dict(json={"amount": "5.00"}, scoped=True),
        ("PUT", "/api/portal/preferences"): dict(json={"days_left": 3}),
        ("GET", "/portal/accounts/{account_id}/live"): dict(scoped=True),
        ("POST", "/portal/accounts/{account_id}/threshold"): dict(data={"amount": "5.00"}, scoped=True),
        ("POST", "/portal/accounts/{account_id}/topup"): dict(data={"amount": "5.00"}, scoped=True),
        ("POST", "/portal/preferences"): dict(data={"days_left": "3"}),
        ("POST", "/api/auth/token"): dict(data={"username": "nobody", "password": "wrong-password"}),
        ("POST", "/api/auth/password"): dict(json={"current_password": "wrong", "new_password": "another-one"}),
        ("POST", "/api/auth/tokens"): dict(json={"name": "matrix"}),
        ("POST", "/login"): dict(data={"username": "nobody", "password": "wrong"}),
        ("GET", "/staff/desk"): dict(params={"account_id": A["account"]}),
        # the sales desk and the account lifecycle (API)
        ("POST", "/api/accounts/{account_id}/refund"): dict(json={"amount": "0.01", "reason": "matrix"}, scoped=True),
        ("POST", "/api/accounts/{account_id}/adjust"): dict(json={"amount": "0.01", "reason": "matrix",
                                                                  "idempotency_key": "matrix-adjust"}, scoped=True),
        ("POST", "/api/accounts/{account_id}/move-in"): dict(json={"unit_id": A["unit"]}, scoped=True),
        ("POST", "/api/accounts/{account_id}/move-out"): dict(json={"unit_id": A["unit2"]}, scoped=True),
        ("PUT", "/api/accounts/{account_id}/tariff"): dict(json={"tariff_id": None}, scoped=True),
        ("POST", "/api/receipts/{receipt_id}/reverse"): dict(json={"reason": "matrix"}, scoped=True),
        ("GET", "/api/receipts/{receipt_id}"): dict(scoped=True),
        ("GET", "/api/receipts/{receipt_id}/pdf"): dict(scoped=True),
        ("GET", "/api/dayend"): dict(params={"property_id": A["property"]}, scoped=True),
        ("POST", "/api/dayend/close"): dict(json={"property_id": A["property"], "day": "2020-01-01"}, scoped=True),
        ("POST", "/api/tenants"): dict(json={"property_id": A["property"], "name": "mx tenant"}, scoped=True),
        ("GET", "/api/tenants/{tenant_id}"): dict(scoped=True),
        ("PATCH", "/api/tenants/{tenant_id}"): dict(json={"phone": "13900000000"}, scoped=True),
        ("GET", "/api/desk/search"): dict(params={"q": ALPHA}),
        ("POST", "/api/meters/{meter_pk}/swap"): dict(json={"new_meter_id": A["meter_name"]}, scoped=True),
        ("GET", "/api/meters/{meter_pk}/history"): dict(scoped=True),
        ("GET", "/api/properties/{property_id}/settings"): dict(scoped=True),
        ("PUT", "/api/properties/{property_id}/settings"): dict(json={"vacant_relay": "open"}, scoped=True),
        ("POST", "/api/tariffs/preview"): dict(json={"property_id": A["property"], "spec": {"price": 6000},
                                                     "month": "2027-01"}, scoped=True),
        ("POST", "/api/portal/accounts/{account_id}/topup"): dict(json={"amount": "1.00"}, scoped=True),
        ("POST", "/api/import"): dict(params={"property_id": A["property"]}, content=b"unit\nALPHA-101\n", scoped=True),
        # the sales desk and the account lifecycle (dashboard)
        ("POST", "/staff/desk/accounts/{account_id}/sell"): dict(data={"amount": "1.00", "idempotency_key": "matrix-sale"},
                                                                  scoped=True),
        ("GET", "/staff/desk/accounts/{account_id}"): dict(scoped=True),
        ("GET", "/staff/desk/accounts/{account_id}/card"): dict(scoped=True),
        ("GET", "/staff/receipts/{receipt_id}"): dict(scoped=True),
        ("GET", "/staff/receipts/{receipt_id}/pdf"): dict(scoped=True),
        ("POST", "/staff/receipts/{receipt_id}/reverse"): dict(data={"reason": "matrix", "idempotency_key": "matrix-rev"},
                                                                scoped=True),
        ("POST", "/staff/dayend/close"): dict(data={"property_id": A["property"], "day": "2020-01-02"}, scoped=True),
        ("POST", "/staff/accounts/new"): dict(data={"property_id": A["property"], "name": "mx web tenant",
                                                    "idempotency_key": "matrix-open"}, scoped=True),
        ("GET", "/staff/accounts/{account_id}"): dict(scoped=True),
        ("POST", "/staff/accounts/{account_id}/tenant"): dict(data={"name": "%s tenant one" % ALPHA}, scoped=True),
        ("POST", "/staff/accounts/{account_id}/move-in"): dict(data={"unit_id": A["unit"],
                                                                     "idempotency_key": "matrix-in"}, scoped=True),
        ("POST", "/staff/accounts/{account_id}/move-out"): dict(data={"unit_id": A["unit2"],
                                                                      "idempotency_key": "matrix-out"}, scoped=True),
        ("POST", "/staff/accounts/{account_id}/adjust"): dict(data={"amount": "0.01", "reason": "matrix",
                                                                    "idempotency_key": "matrix-web-adjust"}, scoped=True),
        ("POST", "/staff/accounts/{account_id}/refund"): dict(data={"amount": "0.01", "reason": "matrix",
                                                                    "idempotency_key": "matrix-web-refund"}, scoped=True),
        ("POST", "/staff/accounts/{account_id}/tariff"): dict(data={}, scoped=True),
        ("GET", "/staff/meters/{meter_pk}/swap"): dict(scoped=True),
        ("POST", "/staff/meters/{meter_pk}/swap"): dict(data={"new_meter_id": A["meter_name"]}, scoped=True),
        ("POST", "/staff/import"): dict(data={"property_id": A["property"]},
                                        files={"file": ("units.csv", b"unit\nALPHA-101\n")}, scoped=True),
        # apportionment (issue 11b)
        ("GET", "/api/apportionment/pools/{pool_id}"): dict(scoped=True),
        ("POST", "/api/apportionment/pools"): dict(json={"property_id": A["property"], "name": "mx pumps",
                                                         "rule": "equal", "meter_ids": [A["lift"]]}, scoped=True),
        ("PUT", "/api/apportionment/pools/{pool_id}"): dict(json={"name": "%s lift" % ALPHA, "rule": "area",
                                                                  "meter_ids": [A["lift"]], "vacant_weight_pct": 50},
                                                            scoped=True),
        ("GET", "/api/apportionment/preview"): dict(params={"property_id": A["property"], "month": "2020-01"},
                                                    scoped=True),
        ("POST", "/api/apportionment/runs"): dict(json={"property_id": A["property"], "month": "2020-01"}, scoped=True),
        ("GET", "/api/apportionment/runs"): dict(params={"property_id": A["property"]}, scoped=True),
        ("GET", "/api/apportionment/accounts/{account_id}"): dict(scoped=True),
        ("GET", "/staff/apportionment"): dict(params={"property_id": A["property"], "month": "2020-01"}, scoped=True),
        ("POST", "/staff/apportionment/pools"): dict(data={"property_id": A["property"], "name": "mx web pool",
                                                           "meter_ids": [str(A["lift"])]}, scoped=True),
        ("GET", "/staff/apportionment/pools/{pool_id}"): dict(scoped=True),
        ("POST", "/staff/apportionment/pools/{pool_id}"): dict(data={"name": "%s lift" % ALPHA, "rule": "area",
                                                                     "meter_ids": [str(A["lift"])],
                                                                     "vacant_weight_pct": "50", "active": "1"},
                                                               scoped=True),
        ("POST", "/staff/apportionment/post"): dict(data={"property_id": A["property"], "month": "2020-01",
                                                          "idempotency_key": "matrix-apportion"}, scoped=True),
        # monthly statements (issue 11)
        ("POST", "/api/statements/runs"): dict(json={"property_id": A["property"], "month": "2020-01"}, scoped=True),
        ("POST", "/staff/statements/runs"): dict(data={"property_id": A["property"], "month": "2020-01"}, scoped=True),
        ("GET", "/api/statements/{month}/zip"): dict(params={"property_id": A["property"]}, scoped=True),
        ("GET", "/staff/statements/{month}.zip"): dict(params={"property_id": A["property"]}, scoped=True),
        ("GET", "/api/accounts/{account_id}/statements/{month}"): dict(scoped=True),
        ("GET", "/api/accounts/{account_id}/statements/{month}/pdf"): dict(scoped=True),
        ("GET", "/staff/statements/{account_id}/{month}.pdf"): dict(scoped=True),
        ("GET", "/staff/statements"): dict(params={"property_id": A["property"]}, scoped=True),
        ("GET", "/api/portal/accounts/{account_id}/tou-advice"): dict(scoped=True),
        ("GET", "/portal/accounts/{account_id}/advice"): dict(scoped=True),
        ("POST", "/staff/users"): dict(data={"username": "mx-web", "password": "web-password", "role": "viewer",
                                             "property_id": A["property"]}, scoped=True),
    }


LAST = {("POST", "/api/auth/logout"), ("POST", "/logout")}   # they end the session the matrix uses


def call(w, who, method, path, route, web):
    ex = examples(w)
    spec = dict(ex.get((method, path), {}))
    spec.pop("scoped", None)
    url = path
    for name in re.findall(r"{(\w+)}", path):
        url = url.replace("{%s}" % name, str(ex["path"][name]))
    headers, cookies = {}, {}
    if who != "anonymous":
        if web:
            cookies[SESSION_COOKIE] = w.cookie[who]
            headers["X-CSRF-Token"] = w.csrf[who]
        else:
            headers["Authorization"] = "Bearer " + w.bearer[who]
    w.client.cookies.clear()
    for k, v in cookies.items():
        w.client.cookies.set(k, v)
    r = w.client.request(method, url, headers=headers, follow_redirects=False, **spec)
    w.client.cookies.clear()
    return r


def expected(permission, web, who):
    """'allow', 'login' (401 or to the login page), 'deny' (403)."""
    if permission is None:
        return "public"
    if who == "anonymous":
        return "login"
    return "allow" if permission in P.ROLE_PERMISSIONS[ROLE_OF[who]] else "deny"


def test_every_route_declares_a_permission(world):
    for method, path, route in routes(world.app):
        declared_permission(route)      # raises for a route that declares none


def test_a_route_without_a_permission_fails_the_matrix():
    from fastapi import APIRouter, FastAPI
    r = APIRouter()

    @r.get("/api/forgotten")
    def forgotten():
        return {}
    app = FastAPI()
    app.include_router(r)
    route = [r for m, p, r in routes(app) if p == "/api/forgotten"][0]
    with pytest.raises(AssertionError, match="no permission"):
        declared_permission(route)


def test_every_body_taking_route_has_an_example(world):
    ex = examples(world)
    for method, path, route in routes(world.app):
        if route.body_field is not None and (method, path) not in ex:
            raise AssertionError("%s %s takes a body: add it to examples() in this test" % (method, path))


@pytest.mark.parametrize("who", PRINCIPALS)
def test_role_matrix(world, who):
    rows = sorted(routes(world.app), key=lambda x: (x[0], x[1]) in LAST)
    problems = []
    ex = examples(world)
    for method, path, route in rows:
        permission, web = declared_permission(route)
        want = expected(permission, web, who)
        r = call(world, who, method, path, route, web)
        code = r.status_code
        scoped = ex.get((method, path), {}).get("scoped", False)
        if code >= 500:
            problems.append("%s %s: %d (server error)" % (method, path, code))
            continue
        if want == "login":
            ok = code == 401 if not web else (code == 303 and "/login" in r.headers.get("location", ""))
        elif want == "deny":
            ok = code == 403
        elif want == "public":
            ok = code != 403      # anyone may call it (a wrong password still gets its 401)
        elif who == "other_manager" and scoped:
            ok = code in (403, 404)
            want = "refused: not its property"
        elif who == "tenant" and scoped and path.startswith("/api/portal"):
            ok = code not in (401, 403)
        else:
            ok = code not in (401, 403)
        if not ok:
            problems.append("%s %s as %s: %d, expected %s (%s)" % (method, path, who, code, want,
                                                                   r.text[:160].replace("\n", " ")))
        text = r.text
        if who == "other_manager" and ALPHA in text:
            problems.append("%s %s leaks property ALPHA to the other property's manager: %s"
                            % (method, path, text[:200]))
        if who == "tenant" and (NEIGHBOUR in text or BRAVO in text):
            problems.append("%s %s leaks another tenant to a tenant: %s" % (method, path, text[:200]))
    assert not problems, "\n".join(problems)


def test_tenant_enumerating_account_ids_learns_nothing(world):
    """Every id from 1 to past the last: one's own works, the rest all get
    the same refusal, whether the account exists or not."""
    own = world.ids[ALPHA]["account"]
    h = {"Authorization": "Bearer " + fresh_token(world, "tenant")}
    answers = {}
    for acc in range(1, 30):
        for url in ("/api/portal/accounts/%d/ledger", "/api/accounts/%d", "/api/accounts/%d/ledger",
                    "/api/accounts/%d/recharge"):
            method = "POST" if url.endswith("recharge") else "GET"
            r = world.client.request(method, url % acc, headers=h, json={"amount": "1.00"} if method == "POST"
                                     else None)
            if acc == own and url.startswith("/api/portal"):
                assert r.status_code == 200 and r.json()["account_id"] == own
                continue
            assert r.status_code in (403, 404), (url % acc, r.status_code)
            answers.setdefault(url, set()).add((r.status_code, r.text.replace(str(acc), "N")))
    for url, seen in answers.items():
        assert len(seen) == 1, "%s answers differently for existing and missing ids: %s" % (url, seen)
    mine = world.client.get("/api/portal/accounts", headers=h).json()
    assert [a["id"] for a in mine] == [own]
