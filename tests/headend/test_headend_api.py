"""REST API and dashboard of the head-end, through FastAPI's TestClient on a
real SQLite (WAL) database."""
import os
import secrets
import sys
import uuid

import pytest

from tests.support import ROOT

from concentrator import protocol  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from headend.app import create_app  # noqa: E402
from headend.settings import Settings  # noqa: E402


@pytest.fixture
def client(tmp_path):
    app = create_app(Settings(database_url="sqlite:///" + str(tmp_path / "api.db"), site="test"),
                     start_mqtt=False)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def provisioned(client):
    site = client.post("/api/sites", json={"name": "Block 7"})
    assert site.status_code == 201, site.text
    sid = site.json()["id"]
    conc = client.post("/api/concentrators", json={"site_id": sid, "dev": "api-" + uuid.uuid4().hex[:6]})
    assert conc.status_code == 201, conc.text
    tariff = client.post("/api/tariffs", json={"site_id": sid, "name": "flat", "price_mu_per_kwh": 6000})
    assert tariff.status_code == 201, tariff.text
    acc = client.post("/api/accounts", json={"site_id": sid, "tenant": "Li Wei", "low_balance_threshold_mu": 100000})
    assert acc.status_code == 201, acc.text
    meter = client.post("/api/meters", json={"concentrator_id": conc.json()["id"], "meter_id": "A101",
                                             "model": "sdm120", "account_id": acc.json()["id"],
                                             "opening_energy_wh": 10_000})
    assert meter.status_code == 201, meter.text
    return {"site": sid, "conc": conc.json(), "account": acc.json()["id"], "meter": meter.json()}


def test_provisioning_generates_a_key_and_lists_the_meter(client, provisioned):
    key = provisioned["conc"]["key_hex"]
    assert len(key) == 64 and int(key, 16) >= 0
    # the key is shown once, not in listings
    assert all("key_hex" not in c for c in client.get("/api/concentrators").json())
    rows = client.get("/api/meters").json()
    assert [(r["meter_id"], r["tenant"], r["balance_mu"], r["balance"], r["concentrator"]) for r in rows] == [
        ("A101", "Li Wei", 0, "0.0000", provisioned["conc"]["dev"])]
    assert rows[0]["concentrator_online"] is False and rows[0]["last_seen"] is None


def test_recharge_posts_ledger_entries(client, provisioned):
    acc = provisioned["account"]
    r = client.post("/api/accounts/%d/recharge" % acc, json={"amount": "50.00", "actor": "cashier Zhang"})
    assert r.status_code == 201, r.text
    assert r.json()["balance_mu"] == 500000 and r.json()["balance"] == "50.0000"
    r = client.post("/api/accounts/%d/recharge" % acc, json={"amount_mu": 1234, "actor": "cashier Zhang", "note": "coins"})
    assert r.status_code == 201 and r.json()["balance_mu"] == 501234
    r = client.post("/api/accounts/%d/recharge" % acc, json={"amount": "0.0001", "actor": "x"})
    assert r.json()["balance_mu"] == 501235
    led = client.get("/api/accounts/%d/ledger" % acc).json()
    assert [(e["kind"], e["amount_mu"], e["balance_after_mu"], e["actor"]) for e in led["entries"]] == [
        ("recharge", 1, 501235, "x"), ("recharge", 1234, 501234, "cashier Zhang"),
        ("recharge", 500000, 500000, "cashier Zhang")]
    assert led["balance_mu"] == led["ledger_sum_mu"] == 501235
    assert client.get("/api/meters").json()[0]["balance"] == "50.1235"


@pytest.mark.parametrize("body", [
    {"amount": "-5", "actor": "a"},
    {"amount": "0", "actor": "a"},
    {"amount": "0.00", "actor": "a"},
    {"amount": "1.00001", "actor": "a"},          # finer than 1 mu
    {"amount": "abc", "actor": "a"},
    {"amount": "NaN", "actor": "a"},
    {"amount": "Infinity", "actor": "a"},
    {"amount": "1e30", "actor": "a"},             # absurdly large
    {"amount": 12.5, "actor": "a"},               # a float, not a decimal string
    {"amount_mu": 12.5, "actor": "a"},
    {"amount_mu": "100", "actor": "a"},
    {"amount_mu": -100, "actor": "a"},
    {"amount_mu": 0, "actor": "a"},
    {"amount_mu": True, "actor": "a"},
    {"amount_mu": 100, "amount": "1.00", "actor": "a"},
    {"actor": "a"},
    {"amount": "10.00"},                          # nobody to attribute the money to
    {"amount": "10.00", "actor": "   "},
    {"amount": "10.00", "actor": "a", "extra": 1},
])
def test_bad_recharge_is_rejected_and_moves_no_money(client, provisioned, body):
    acc = provisioned["account"]
    r = client.post("/api/accounts/%d/recharge" % acc, json=body)
    assert r.status_code == 422, (body, r.status_code, r.text)
    assert r.json()["detail"]
    led = client.get("/api/accounts/%d/ledger" % acc).json()
    assert led["entries"] == [] and led["balance_mu"] == 0


def test_other_bad_requests(client, provisioned):
    assert client.post("/api/accounts/999999/recharge", json={"amount": "1", "actor": "a"}).status_code == 404
    assert client.get("/api/accounts/999999/ledger").status_code == 404
    assert client.post("/api/accounts/1/recharge", content=b"not json",
                       headers={"content-type": "application/json"}).status_code == 422
    dev = provisioned["conc"]["dev"]
    assert client.post("/api/concentrators", json={"site_id": provisioned["site"], "dev": dev}).status_code == 409
    assert client.post("/api/concentrators", json={"site_id": provisioned["site"], "dev": "x/y"}).status_code == 422
    assert client.post("/api/concentrators", json={"site_id": provisioned["site"], "dev": "k1",
                                                   "key_hex": "abcd"}).status_code == 422
    assert client.post("/api/concentrators", json={"site_id": provisioned["site"], "dev": "k2",
                                                   "key_hex": provisioned["conc"]["key_hex"]}).status_code == 409
    assert client.post("/api/meters", json={"concentrator_id": 999999, "meter_id": "Z"}).status_code == 404
    assert client.post("/api/meters", json={"concentrator_id": provisioned["conc"]["id"],
                                            "meter_id": "A101"}).status_code == 409
    assert client.post("/api/sites", json={"name": "Block 7"}).status_code == 409
    assert client.post("/api/tariffs", json={"site_id": provisioned["site"], "name": "t",
                                             "price_mu_per_kwh": -1}).status_code == 422
    assert client.post("/api/tariffs", json={"site_id": provisioned["site"], "name": "t", "kind": "tou",
                                             "price_mu_per_kwh": 1}).status_code == 422


def test_readings_show_up_on_meters_and_ledger(client, provisioned):
    acc = provisioned["account"]
    client.post("/api/accounts/%d/recharge" % acc, json={"amount": "20.00", "actor": "cashier"})
    dev, key = provisioned["conc"]["dev"], protocol.key_from_hex(provisioned["conc"]["key_hex"])
    ingest = client.app.state.ingest
    recs = [[1, 0, 0, 1790000000, [10_500, 800, 0]], [2, 0, 0, 1790000060, [12_345, 900, protocol.FLAG_RELAY_OPEN]]]
    out = ingest.handle(protocol.topic_up(dev), protocol.seal(protocol.message(dev, 1, "rd", 1790000060, recs=recs), key))
    assert out  # ack + credit
    row = client.get("/api/meters").json()[0]
    assert row["last_kwh"] == "12.345" and row["last_power_w"] == 900
    assert row["relay_closed"] is False and row["concentrator_online"] is True
    charged = 12_345 * 6000 // 1000 - 10_000 * 6000 // 1000
    assert row["balance_mu"] == 200000 - charged
    led = client.get("/api/accounts/%d/ledger" % acc).json()
    assert sum(e["amount_mu"] for e in led["entries"] if e["kind"] == "consumption") == -charged
    assert all(e["actor"] == dev for e in led["entries"] if e["kind"] == "consumption")
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["ingest"]["accepted"] == 1
    assert "wk_ingest_accepted_total 1" in client.get("/metrics").text
    # garbage is counted in /api/health
    ingest.handle(protocol.topic_up(dev), secrets.token_bytes(100))
    assert client.get("/api/health").json()["ingest"]["rejected_malformed"] == 1


def test_dashboard_and_docs(client, provisioned):
    client.post("/api/accounts/%d/recharge" % provisioned["account"], json={"amount": "88.50", "actor": "c"})
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "A101" in html and "Li Wei" in html and "88.5000" in html
    assert 'id="recharge"' in html and "/api/meters" in html and "setInterval(refresh, 2000)" in html
    assert "http://" not in html and "https://" not in html  # nothing loaded from elsewhere
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = client.get("/openapi.json").json()
    assert "/api/accounts/{account_id}/recharge" in spec["paths"] and "/api/meters" in spec["paths"]


def test_low_balance_alert_is_listed_in_events(client, provisioned):
    """Crossing the account's threshold (10.00 here) raises event 10, once,
    and GET /api/events shows it; the credit push carries the recharge count."""
    acc = provisioned["account"]
    client.post("/api/accounts/%d/recharge" % acc, json={"amount": "20.00", "actor": "cashier"})
    dev, key = provisioned["conc"]["dev"], protocol.key_from_hex(provisioned["conc"]["key_hex"])
    ingest = client.app.state.ingest
    # 10 000 Wh -> 25 000 Wh at 0.60: 9.00 -> 11.00 left, then 10 000 Wh more: 6.00 -> 5.00, below 10.00
    recs = [[1, 0, 0, 1790000000, [25_000, 800, 0, 0, 0, 0, 0, 0, 0]],
            [2, 0, 0, 1790000900, [35_000, 800, 0, 60000, 0, 0, 10_000, 0, 0]]]
    out = ingest.handle(protocol.topic_up(dev), protocol.seal(protocol.message(dev, 1, "rd", 1790000900, recs=recs), key))
    credits = [protocol.verify(p, key) for _, p in out]
    credits = [b for b in credits if b["t"] == "credit"]
    assert [(b["bal"], b["e"], b["c"], b["top"]) for b in credits] == [(200000 - 90000 - 60000, 35_000, 60000, 1)]
    ev = client.get("/api/events", params={"code": protocol.EV_LOW_CREDIT}).json()
    assert len(ev) == 1 and ev[0]["detail"] == 50000
    assert "below 10.0000: 5.0000" in ev[0]["message"]
    assert [e["code"] for e in client.get("/api/events").json()] == [protocol.EV_LOW_CREDIT]
    assert client.get("/api/meters").json()[0]["low_balance"] is True
