"""Issue 6: a bus scan's proposed meter list is imported on the head-end
(POST /api/concentrators/{dev}/meters/import), and per-meter bus error
counters from a board's status message show up in GET /api/meters."""
import json
import os
import sys
import time
import uuid

import pytest

from tests.support import ROOT

from concentrator import protocol  # noqa: E402

# what the console's scan() prints: one JSON object per line
SCAN = """\
{"addr": 1, "proto": "modbus", "model": "prepaid-int"}
{"addr": 2, "proto": "modbus", "model": "sdm120"}

{"addr": "000000001234", "proto": "dlt645", "model": "dlt645-2007"}
{"addr": "202611220007", "proto": "dlt645", "model": "dlt645-2007-prepaid", "id": "B-207"}
"""


@pytest.fixture
def client(admin):
    """Logged in as an admin (a technician would do: see the role matrix)."""
    return admin


@pytest.fixture
def conc(client):
    sid = client.post("/api/properties", json={"name": "Block 9"}).json()["id"]
    dev = "imp-" + uuid.uuid4().hex[:6]
    c = client.post("/api/concentrators", json={"property_id": sid, "dev": dev})
    assert c.status_code == 201, c.text
    # one meter provisioned by hand already holds index 0
    acc = client.post("/api/accounts", json={"property_id": sid, "tenant": "Old"}).json()["id"]
    r = client.post("/api/meters", json={"concentrator_id": c.json()["id"], "meter_id": "OLD-1",
                                         "model": "sdm120", "account_id": acc})
    assert r.status_code == 201, r.text
    return c.json()


def _rows(client, dev):
    return sorted(((r["index"], r["meter_id"], r["model"], r["account_id"] is not None)
                   for r in client.get("/api/meters").json() if r["concentrator"] == dev))


def test_scan_output_is_imported_with_the_next_free_indexes(client, conc):
    dev = conc["dev"]
    r = client.post("/api/concentrators/%s/meters/import?accounts=true" % dev, content=SCAN,
                    headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(c["index"], c["id"], c["addr"], c["model"]) for c in body["created"]] == [
        (1, dev + "-1", 1, "prepaid-int"),
        (2, dev + "-2", 2, "sdm120"),
        (3, dev + "-000000001234", "000000001234", "dlt645-2007"),
        (4, "B-207", "202611220007", "dlt645-2007-prepaid")]
    # the entries the board's /config.json needs, in index order
    assert body["board_meters"][2] == {"id": dev + "-000000001234", "addr": "000000001234",
                                       "model": "dlt645-2007"}
    assert _rows(client, dev) == [(0, "OLD-1", "sdm120", True), (1, dev + "-1", "prepaid-int", True),
                                  (2, dev + "-2", "sdm120", True),
                                  (3, dev + "-000000001234", "dlt645-2007", True),
                                  (4, "B-207", "dlt645-2007-prepaid", True)]
    # the same scan again changes nothing
    again = client.post("/api/concentrators/%s/meters/import" % dev, content=SCAN)
    assert again.status_code == 200, again.text
    assert again.json()["created"] == [] and len(again.json()["skipped"]) == 4
    assert len(_rows(client, dev)) == 5
    # a JSON array with one new meter: next index is 5
    arr = [{"addr": 9, "proto": "modbus", "model": "sdm630"}]
    r = client.post("/api/concentrators/%s/meters/import" % dev, json=arr)
    assert r.status_code == 200 and r.json()["created"][0]["index"] == 5
    assert r.json()["created"][0]["account_id"] is None


@pytest.mark.parametrize("line, why", [
    ('{"addr": 0, "proto": "modbus", "model": "sdm120"}', "1..247"),
    ('{"addr": 300, "proto": "modbus", "model": "sdm120"}', "1..247"),
    ('{"addr": "7", "proto": "modbus", "model": "sdm120"}', "1..247"),
    ('{"addr": 1234, "proto": "dlt645", "model": "dlt645-2007"}', "12 digits"),
    ('{"addr": "99999999999A", "proto": "dlt645", "model": "dlt645-2007"}', "12 digits"),
    ('{"addr": 3, "proto": "modbus", "model": "dlt645-2007"}', "speaks dlt645"),
    ('{"addr": 3, "proto": "modbus", "model": "acme-9000"}', "unknown model"),
    ('{"addr": 3, "proto": "mbus", "model": "sdm120"}', "proto"),
    ('{"addr": 3, "proto": "modbus", "model": "sdm120", "baud": 9600}', "unknown field"),
    ('{"addr": 3, "proto": "modbus", "model": "sdm120"', "not JSON"),
    ('{"addr": 1, "proto": "modbus", "model": "sdm120"}', "twice"),
])
def test_a_bad_line_rejects_the_whole_import(client, conc, line, why):
    dev = conc["dev"]
    text = '{"addr": 1, "proto": "modbus", "model": "prepaid-int"}\n' + line + "\n"
    r = client.post("/api/concentrators/%s/meters/import" % dev, content=text)
    assert r.status_code == 422, r.text
    assert why in r.json()["detail"]
    assert _rows(client, dev) == [(0, "OLD-1", "sdm120", True)], "nothing may be created"


def test_unknown_concentrator_and_taken_id(client, conc):
    r = client.post("/api/concentrators/nope/meters/import", content=SCAN)
    assert r.status_code == 404
    # an id that exists on another concentrator: 409, and nothing created
    r = client.post("/api/concentrators/%s/meters/import" % conc["dev"],
                    content='{"addr": 5, "proto": "modbus", "model": "sdm120"}\n'
                            '{"addr": 6, "proto": "modbus", "model": "sdm120", "id": "OLD-1"}\n')
    assert r.status_code == 200, r.text    # OLD-1 is on this concentrator: skipped
    assert [s["id"] for s in r.json()["skipped"]] == ["OLD-1"]
    sid = client.get("/api/properties").json()[0]["id"]
    other = client.post("/api/concentrators", json={"property_id": sid, "dev": "other-" + uuid.uuid4().hex[:4]}).json()
    r = client.post("/api/concentrators/%s/meters/import" % other["dev"],
                    content='{"addr": 7, "proto": "modbus", "model": "sdm120"}\n'
                            '{"addr": 8, "proto": "modbus", "model": "sdm120", "id": "OLD-1"}\n')
    assert r.status_code == 409, r.text
    assert _rows(client, other["dev"]) == []


def test_status_bus_error_counters_shown_per_meter(client, conc):
    dev = conc["dev"]
    client.post("/api/concentrators/%s/meters/import" % dev, content=SCAN)
    key = protocol.key_from_hex(conc["key_hex"])
    ingest = client.app.state.ingest
    now = int(time.time())
    rows = [[i, 1, 1, 0] for i in range(5)]
    # the proposed compact field: only meters with a non-zero counter
    # [index, timeouts, crc, wrong_address, exceptions, offline]
    body = protocol.message(dev, 1, protocol.STATUS, now, up=10, pending=0, last=0, acked=0,
                            meters=rows, bus=[[2, 7, 1, 0, 0, 1], [3, 0, 0, 2, 5, 0], [4, -1, 0, 0, 0, 0]])
    ingest.handle(protocol.topic_up(dev), protocol.seal(body, key))
    assert ingest.stats.get("rejected") == 0
    got = {r["meter_id"]: r["bus_errors"] for r in client.get("/api/meters").json() if r["concentrator"] == dev}
    strip = {k: (None if v is None else {x: y for x, y in v.items() if x != "ts"}) for k, v in got.items()}
    zero = {"timeouts": 0, "crc": 0, "wrong_address": 0, "exceptions": 0, "offline": 0}
    assert strip == {
        "OLD-1": zero, dev + "-1": zero,
        dev + "-2": {"timeouts": 7, "crc": 1, "wrong_address": 0, "exceptions": 0, "offline": 1},
        dev + "-000000001234": {"timeouts": 0, "crc": 0, "wrong_address": 2, "exceptions": 5, "offline": 0},
        "B-207": zero}   # a malformed row (negative) is ignored
    # a status without the field (older firmware) leaves the last counters
    body = protocol.message(dev, 2, protocol.STATUS, now, up=20, pending=0, last=0, acked=0, meters=rows)
    ingest.handle(protocol.topic_up(dev), protocol.seal(body, key))
    again = {r["meter_id"]: r["bus_errors"] for r in client.get("/api/meters").json() if r["concentrator"] == dev}
    assert again[dev + "-2"]["timeouts"] == 7
    # a list the board cut short ("bus_all": false) leaves the unlisted meters alone
    body = protocol.message(dev, 3, protocol.STATUS, now, up=30, pending=0, last=0, acked=0,
                            meters=rows, bus=[[3, 1, 1, 1, 1, 1]], bus_all=False)
    ingest.handle(protocol.topic_up(dev), protocol.seal(body, key))
    again = {r["meter_id"]: r["bus_errors"] for r in client.get("/api/meters").json() if r["concentrator"] == dev}
    assert again[dev + "-2"]["timeouts"] == 7 and again[dev + "-000000001234"]["offline"] == 1
    # a complete list zeroes the meters it does not name (board rebooted)
    body = protocol.message(dev, 4, protocol.STATUS, now, up=1, pending=0, last=0, acked=0,
                            meters=rows, bus=[])
    ingest.handle(protocol.topic_up(dev), protocol.seal(body, key))
    again = {r["meter_id"]: r["bus_errors"] for r in client.get("/api/meters").json() if r["concentrator"] == dev}
    assert again[dev + "-2"]["timeouts"] == 0 and again[dev + "-000000001234"]["offline"] == 0
    json.dumps(again)
