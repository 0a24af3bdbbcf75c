"""What no request may do: ids past what the database holds, text it cannot
store (NUL, lone surrogates), bodies without end, relay policies and tariff
prices the boards and the ledger cannot carry. Each gets a 4xx with the
reason, and nothing is created or moved."""
import json

import pytest
from fastapi.testclient import TestClient

from headend.core.config import Settings
from headend.main import create_app
from tests.headend.conftest import As, make_user, token_for

HUGE = [2 ** 31, 2 ** 63, 2 ** 64, 10 ** 30]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory):
    """An admin's client on SQLite and on PostgreSQL, with a property ready
    (one per module: every test leaves it as it found it)."""
    from tests.conftest import pg_database
    tmp = tmp_path_factory.mktemp("limits")
    url, drop = (("sqlite:///" + str(tmp / "lim.db"), None) if request.param == "sqlite" else pg_database())
    app = create_app(Settings(database_url=url, max_body_bytes=64 * 1024), start_mqtt=False)
    _uid, pw = make_user(app, "lim-admin", "admin")
    with TestClient(app) as c:
        a = As(c, token_for(c, "lim-admin", pw))
        pid = a.post("/api/properties", json={"name": "Limits Court"}).json()["id"]
        conc = a.post("/api/concentrators", json={"property_id": pid, "dev": "lim-c1"}).json()
        acc = a.post("/api/accounts", json={"property_id": pid, "tenant": "Wang Fang"}).json()
        yield a, {"property": pid, "conc": conc, "account": acc["id"]}
    app.state.engine.dispose()
    if drop:
        drop()


def post_json(a, path, body):
    """JSON as a client may send it: any string, escaped as \\uXXXX."""
    return a.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def counts(a):
    return {path: len(a.get(path).json()) for path in ("/api/organisations", "/api/properties", "/api/accounts",
                                                        "/api/concentrators", "/api/users", "/api/tariffs")}


@pytest.mark.parametrize("huge", HUGE)
def test_ids_past_the_database_are_refused_by_name(api, huge):
    a, w = api
    before = counts(a)
    bodies = {
        "/api/accounts": ({"property_id": huge, "tenant": "x"}, "property_id"),
        "/api/buildings": ({"property_id": huge, "name": "B"}, "property_id"),
        "/api/units": ({"building_id": huge, "name": "U"}, "building_id"),
        "/api/concentrators": ({"property_id": huge, "dev": "lim-x"}, "property_id"),
        "/api/meters": ({"concentrator_id": huge, "meter_id": "M"}, "concentrator_id"),
        "/api/users": ({"username": "lim-u", "password": "long-password", "role": "viewer",
                        "property_ids": [w["property"], huge]}, "property_ids"),
        "/api/tariffs": ({"property_id": huge, "name": "t", "price_mu_per_kwh": 1}, "property_id"),
    }
    for path, (body, field) in bodies.items():
        r = a.post(path, json=body)
        assert r.status_code == 422, (path, r.status_code, r.text)
        assert field in r.text, (path, r.text)
    for path in ("/api/accounts/%d" % huge, "/api/accounts/%d/ledger" % huge, "/api/users/%d" % huge,
                 "/api/accounts?property_id=%d" % huge, "/api/audit?user_id=%d" % huge):
        assert a.get(path).status_code == 422, path
    assert a.put("/api/meters/1/account", json={"account_id": huge}).status_code == 422
    assert counts(a) == before


@pytest.mark.parametrize("text", ["nul\x00inside", "\ud800 lone surrogate"])
def test_text_no_database_stores_is_refused(api, text):
    a, w = api
    before = counts(a)
    for path, body in (("/api/organisations", {"name": text}), ("/api/properties", {"name": text}),
                       ("/api/accounts", {"property_id": w["property"], "tenant": text}),
                       ("/api/auth/tokens", {"name": text})):
        r = post_json(a, path, body)
        assert r.status_code == 422, (path, r.status_code, r.text)
    r = post_json(a, "/api/accounts/%d/recharge" % w["account"], {"amount": "5.00", "note": text})
    assert r.status_code == 422
    assert a.get("/api/accounts/%d/ledger" % w["account"]).json()["entries"] == []
    assert counts(a) == before
    assert a.client.post("/api/auth/token", data={"username": "a\x00", "password": "x"}).status_code == 422
    assert a.get("/api/audit", params={"action": "login\x00"}).status_code == 422


def test_bodies_are_bounded(api):
    a, w = api
    big = b'{"amount": "5.00", "note": "' + b"x" * 70000 + b'"}'
    r = a.post("/api/accounts/%d/recharge" % w["account"], content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "larger than" in r.json()["detail"]

    def chunks():
        for _ in range(100):
            yield b"y" * 4096
    r = a.post("/api/concentrators/lim-c1/meters/import", content=chunks())
    assert r.status_code == 413
    assert a.get("/api/accounts/%d/ledger" % w["account"]).json()["entries"] == []


@pytest.mark.parametrize("policy", [
    {"emergency_mu": 2 ** 63}, {"emergency_mu": -1}, {"min_switch_s": 10 ** 9}, {"load_limit_w": "5"},
    {"friendly": [["25:00", "07:00"]]}, {"friendly": [["22:00"]]}, {"holidays": ["2026-13-01"]},
    {"holidays": ["x"] * 500}, {"unknown_setting": 1}, {"emergency_mu": 1.5},
])
def test_relay_policies_are_checked_before_they_reach_a_board(api, policy):
    a, w = api
    r = a.post("/api/concentrators/lim-c1/policy", json={"policy": policy})
    assert r.status_code == 422, (policy, r.text)


def test_a_valid_relay_policy_is_sent_without_nulls(api):
    a, w = api
    r = a.post("/api/concentrators/lim-c1/policy", json={"policy": {"friendly": [["22:00", "07:00"]],
                                                                      "emergency_mu": 50000, "holidays": None}})
    assert r.status_code == 202 and r.json()["queued"] == 1, r.text
    sent = r.json()["message"]
    # null means "its default": the board gets the checked, complete policy and never a null
    assert '"emergency_mu": 50000' in sent and '"holidays": []' in sent and "null" not in sent


@pytest.mark.parametrize("spec, word", [
    ({"prices": {"flat": 6000, "peak": 10 ** 12}, "tou": {
        "days": {"workday": [["00:00", "flat"], ["08:00", "peak"]]},
        "seasons": [{"from": "01-01", "to": "12-31", "weekday": "workday"}]}}, "too high"),
    ({"price": 10 ** 10}, "too high"),
    ({"price": 6000, "tiers": [{"from_wh": 0, "add": 0}, {"from_wh": 10 ** 15, "add": 1}]}, "too large"),
    ({"price": 6000, "version": 2 ** 40}, "too large"),
])
def test_tariff_numbers_the_ledger_cannot_carry_are_refused(api, spec, word):
    a, w = api
    r = a.post("/api/tariffs", json={"property_id": w["property"], "name": "huge", "spec": spec})
    assert r.status_code == 422 and word in r.json()["detail"], r.text
    assert a.get("/api/tariffs").json() == []
