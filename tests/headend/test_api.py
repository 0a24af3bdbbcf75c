"""REST API of the head-end, through FastAPI's TestClient on a real SQLite
(WAL) database, logged in as staff of the right roles."""
import secrets
import uuid

import pytest

from concentrator import protocol


@pytest.fixture
def provisioned(admin, login):
    site = admin.post("/api/properties", json={"name": "Block 7"})
    assert site.status_code == 201, site.text
    sid = site.json()["id"]
    conc = admin.post("/api/concentrators", json={"property_id": sid, "dev": "api-" + uuid.uuid4().hex[:6]})
    assert conc.status_code == 201, conc.text
    tariff = admin.post("/api/tariffs", json={"property_id": sid, "name": "flat", "price_mu_per_kwh": 6000})
    assert tariff.status_code == 201, tariff.text
    acc = admin.post("/api/accounts", json={"property_id": sid, "tenant": "Li Wei", "low_balance_threshold_mu": 100000})
    assert acc.status_code == 201, acc.text
    meter = admin.post("/api/meters", json={"concentrator_id": conc.json()["id"], "meter_id": "A101",
                                            "model": "sdm120", "account_id": acc.json()["id"],
                                            "opening_energy_wh": 10_000})
    assert meter.status_code == 201, meter.text
    cashier = login("cashier-zhang", "cashier", property_ids=[sid])
    return {"site": sid, "conc": conc.json(), "account": acc.json()["id"], "meter": meter.json(),
            "admin": admin, "cashier": cashier}


def test_provisioning_generates_a_key_and_lists_the_meter(provisioned):
    api = provisioned["admin"]
    key = provisioned["conc"]["key_hex"]
    assert len(key) == 64 and int(key, 16) >= 0
    # the key is shown once, not in listings
    assert all("key_hex" not in c for c in api.get("/api/concentrators").json())
    rows = api.get("/api/meters").json()
    assert [(r["meter_id"], r["tenant"], r["balance_mu"], r["balance"], r["concentrator"]) for r in rows] == [
        ("A101", "Li Wei", 0, "0.00", provisioned["conc"]["dev"])]
    assert rows[0]["concentrator_online"] is False and rows[0]["last_seen"] is None


def test_recharge_posts_ledger_entries_naming_the_cashier(provisioned):
    acc, cashier = provisioned["account"], provisioned["cashier"]
    r = cashier.post("/api/accounts/%d/recharge" % acc, json={"amount": "50.00"})
    assert r.status_code == 201, r.text
    assert r.json()["balance_mu"] == 500000 and r.json()["balance"] == "50.00"
    r = cashier.post("/api/accounts/%d/recharge" % acc, json={"amount": "0.12", "note": "coins"})
    assert r.status_code == 201 and r.json()["balance_mu"] == 501200
    r = cashier.post("/api/accounts/%d/recharge" % acc, json={"amount": "7"})
    assert r.json()["balance_mu"] == 571200
    led = cashier.get("/api/accounts/%d/ledger" % acc).json()
    assert [(e["kind"], e["amount_mu"], e["balance_after_mu"], e["username"], e["source"])
            for e in led["entries"]] == [
        ("recharge", 70000, 571200, "cashier-zhang", "api"), ("recharge", 1200, 501200, "cashier-zhang", "api"),
        ("recharge", 500000, 500000, "cashier-zhang", "api")]
    assert led["balance_mu"] == led["ledger_sum_mu"] == 571200
    assert cashier.get("/api/meters").json()[0]["balance"] == "57.12"


@pytest.mark.parametrize("body", [
    {"amount": "-5"},
    {"amount": "0"},
    {"amount": "0.00"},
    {"amount": "1.001"},          # finer than a fen
    {"amount": "abc"},
    {"amount": "NaN"},
    {"amount": "Infinity"},
    {"amount": "1e3"},            # an exponent: 1000? no
    {"amount": "1e30"},
    {"amount": "1e400000"},
    {"amount": "１２"},            # full-width digits
    {"amount": "12,50"},
    {"amount": " 1 2"},
    {"amount": "99999999999"},    # more than 1e9
    {"amount": 12.5},             # a float, not a decimal string
    {"amount": 100},
    {"amount": True},
    {"amount_mu": 100},           # the raw unit is not for people
    {},
    {"amount": "10.00", "actor": "someone else"},   # nobody names themselves: the login does
    {"amount": "10.00", "extra": 1},
])
def test_bad_recharge_is_rejected_and_moves_no_money(provisioned, body):
    acc, cashier = provisioned["account"], provisioned["cashier"]
    r = cashier.post("/api/accounts/%d/recharge" % acc, json=body)
    assert r.status_code == 422, (body, r.status_code, r.text)
    assert r.json()["detail"]
    led = cashier.get("/api/accounts/%d/ledger" % acc).json()
    assert led["entries"] == [] and led["balance_mu"] == 0


def test_other_bad_requests(provisioned):
    api = provisioned["admin"]
    assert api.post("/api/accounts/999999/recharge", json={"amount": "1"}).status_code == 404
    assert api.get("/api/accounts/999999/ledger").status_code == 404
    assert api.get("/api/accounts/99999999999999999999/ledger").status_code == 422   # ids are bounded
    assert api.post("/api/accounts/1/recharge", content=b"not json",
                    headers={"content-type": "application/json"}).status_code == 422
    dev = provisioned["conc"]["dev"]
    pid = provisioned["site"]
    assert api.post("/api/concentrators", json={"property_id": pid, "dev": dev}).status_code == 409
    assert api.post("/api/concentrators", json={"property_id": pid, "dev": "x/y"}).status_code == 422
    assert api.post("/api/concentrators", json={"property_id": pid, "dev": "k1", "key_hex": "abcd"}).status_code == 422
    assert api.post("/api/concentrators", json={"property_id": pid, "dev": "k2",
                                                "key_hex": provisioned["conc"]["key_hex"]}).status_code == 409
    assert api.post("/api/meters", json={"concentrator_id": 999999, "meter_id": "Z"}).status_code == 404
    assert api.post("/api/meters", json={"concentrator_id": provisioned["conc"]["id"],
                                         "meter_id": "A101"}).status_code == 409
    assert api.post("/api/properties", json={"name": "Block 7"}).status_code == 409
    assert api.post("/api/tariffs", json={"property_id": pid, "name": "t", "price_mu_per_kwh": -1}).status_code == 422
    assert api.post("/api/tariffs", json={"property_id": pid, "name": "t", "kind": "tou",
                                          "price_mu_per_kwh": 1}).status_code == 422
    assert api.post("/api/tariffs", json={"property_id": pid, "name": "t", "price_mu_per_kwh": "1"}).status_code == 422


def test_readings_show_up_on_meters_and_ledger(provisioned, client):
    acc, api = provisioned["account"], provisioned["cashier"]
    api.post("/api/accounts/%d/recharge" % acc, json={"amount": "20.00"})
    dev, key = provisioned["conc"]["dev"], protocol.key_from_hex(provisioned["conc"]["key_hex"])
    ingest = client.app.state.ingest
    recs = [[1, 0, 0, 1790000000, [10_500, 800, 0]], [2, 0, 0, 1790000060, [12_345, 900, protocol.FLAG_RELAY_OPEN]]]
    out = ingest.handle(protocol.topic_up(dev), protocol.seal(protocol.message(dev, 1, "rd", 1790000060, recs=recs), key))
    assert out  # ack + credit
    row = api.get("/api/meters").json()[0]
    assert row["last_kwh"] == "12.345" and row["last_power_w"] == 900
    assert row["relay_closed"] is False and row["concentrator_online"] is True
    charged = 12_345 * 6000 // 1000 - 10_000 * 6000 // 1000
    assert row["balance_mu"] == 200000 - charged
    led = api.get("/api/accounts/%d/ledger" % acc).json()
    assert sum(e["amount_mu"] for e in led["entries"] if e["kind"] == "consumption") == -charged
    assert all(e["concentrator_id"] == provisioned["conc"]["id"] and e["user_id"] is None
               for e in led["entries"] if e["kind"] == "consumption")
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["ingest"]["accepted"] == 1
    assert "wk_ingest_accepted_total 1" in client.get("/metrics").text
    # garbage is counted in /api/health
    ingest.handle(protocol.topic_up(dev), secrets.token_bytes(100))
    assert client.get("/api/health").json()["ingest"]["rejected_malformed"] == 1


def test_openapi_lists_the_routes(client):
    spec = client.get("/openapi.json").json()
    assert "/api/accounts/{account_id}/recharge" in spec["paths"] and "/api/meters" in spec["paths"]
    assert "/api/auth/token" in spec["paths"]


def test_low_balance_alert_is_listed_in_events(provisioned, client):
    """Crossing the account's threshold (10.00 here) raises event 10, once,
    and GET /api/events shows it; the credit push carries the recharge count."""
    acc, api = provisioned["account"], provisioned["cashier"]
    api.post("/api/accounts/%d/recharge" % acc, json={"amount": "20.00"})
    dev, key = provisioned["conc"]["dev"], protocol.key_from_hex(provisioned["conc"]["key_hex"])
    ingest = client.app.state.ingest
    # 10 000 Wh -> 25 000 Wh at 0.60: 9.00 -> 11.00 left, then 10 000 Wh more: 6.00 -> 5.00, below 10.00
    recs = [[1, 0, 0, 1790000000, [25_000, 800, 0, 0, 0, 0, 0, 0, 0]],
            [2, 0, 0, 1790000900, [35_000, 800, 0, 60000, 0, 0, 10_000, 0, 0]]]
    out = ingest.handle(protocol.topic_up(dev), protocol.seal(protocol.message(dev, 1, "rd", 1790000900, recs=recs), key))
    credits = [protocol.verify(p, key) for _, p in out]
    credits = [b for b in credits if b["t"] == "credit"]
    assert [(b["bal"], b["e"], b["c"], b["top"]) for b in credits] == [(200000 - 90000 - 60000, 35_000, 60000, 1)]
    ev = api.get("/api/events", params={"code": protocol.EV_LOW_CREDIT}).json()
    assert len(ev) == 1 and ev[0]["detail"] == 50000
    assert "below 10.00: 5.00" in ev[0]["message"]
    assert [e["code"] for e in api.get("/api/events").json()] == [protocol.EV_LOW_CREDIT]
    assert api.get("/api/meters").json()[0]["low_balance"] is True
