"""Head-end billing through concentrator.tariff (issue 4), against real
databases (SQLite file in WAL mode and a fresh PostgreSQL database), and the
tariff / command API through FastAPI's TestClient."""
import copy
import os
import random
import secrets
import sys
import time
import uuid

import pytest

from tests.support import ROOT

from concentrator import protocol  # noqa: E402
from concentrator import tariff as T  # noqa: E402
from sqlmodel import select  # noqa: E402

from headend.core import db
from headend.services import ledger  # noqa: E402
from headend.core.events import EV_BILLING_MISMATCH, EV_COMMAND, EV_REKEYED
from headend.ingest import Ingest
from headend.models import Account, Concentrator, Downlink, Event, LedgerEntry, Meter  # noqa: E402
from headend.services.seed import seed_site  # noqa: E402

OPENING = 10_000_000      # mu (1000.00)
TZ = 28800
DAY = 86400
# 2027-01-30 00:00 local (UTC+8): the runs below cross the February cycle start
JAN30 = T.days_from_civil(2027, 1, 30) * DAY - TZ

TOU_TIERS = {
    "version": 1, "effective": 0, "tz_offset_s": TZ, "name": "TOU + tiers",
    "prices": {"sharp": 12000, "peak": 9000, "flat": 6000, "valley": 3000},
    "tou": {"days": {"workday": [["00:00", "valley"], ["08:00", "flat"], ["10:00", "peak"],
                                 ["19:00", "sharp"], ["21:00", "flat"], ["23:00", "valley"]],
                     "restday": [["00:00", "valley"], ["08:00", "flat"]]},
            "seasons": [{"from": "01-01", "to": "12-31", "weekday": "workday", "weekend": "restday"}]},
    "tiers": [{"from_wh": 0, "add": 0}, {"from_wh": 230000, "add": 500}, {"from_wh": 400000, "add": 3000}],
}


class Board:
    """The board side: real protocol module, and the board's own billing
    (tariff.charge_registers on the band registers) for charged_mu."""

    def __init__(self, dev, key_hex, versions, now):
        self.dev = dev
        self.key = protocol.key_from_hex(key_hex)
        self.n = 0
        self.down_n = -1
        self.seq = 0
        self.versions = versions
        self.now = now
        self.state = {}      # meter index -> tariff state
        self.regs = {}       # meter index -> [5 band registers]
        self.energy = {}

    def up(self, kind, **fields):
        self.n += 1
        body = protocol.message(self.dev, self.n, kind, self.now, **fields)
        return protocol.topic_up(self.dev), protocol.seal(body, self.key)

    def receive(self, msgs, key=None):
        bodies = []
        for topic, payload in msgs:
            assert topic == protocol.topic_down(self.dev)
            body = protocol.verify(payload, key or self.key, dev=self.dev, last_n=self.down_n)
            self.down_n = body["n"]
            bodies.append(body)
        return bodies

    def reading(self, idx, ts, band_wh, energy0=0, ts_sent=None, charged=None):
        """A reading record after `band_wh` ({band: Wh}) more consumption."""
        self.seq += 1
        regs = self.regs.setdefault(idx, [0] * 5)
        self.energy.setdefault(idx, energy0)
        for b, wh in band_wh.items():
            regs[T.BANDS.index(b)] += wh
            self.energy[idx] += wh
        st = self.state.setdefault(idx, T.new_state())
        T.charge_registers(self.versions, st, dict(zip(T.BANDS, regs)), ts - 1)
        c = T.total_charged(st) if charged is None else charged
        return [self.seq, protocol.KIND_READING, idx, ts if ts_sent is None else ts_sent,
                [self.energy[idx], 1000, 0, c] + list(regs)]


def _seed(sf, versions, meters, threshold=0):
    dev = "tt-" + uuid.uuid4().hex[:8]
    key = secrets.token_hex(32)
    with sf() as s:
        res = seed_site(s, "site-" + dev, [{"dev": dev, "key_hex": key, "meters": meters}],
                        tariff_spec=versions, opening_balance_mu=OPENING,
                        low_balance_threshold_mu=threshold)
    c = res["concentrators"][dev]
    return dev, key, [c["meters"][m["id"]]["account_id"] for m in meters]


def _balance(sf, acc):
    with sf() as s:
        return s.get(Account, acc).balance_mu


def _events(sf, code):
    with sf() as s:
        return s.exec(select(Event).where(Event.code == code).order_by(Event.id)).all()


def _consistent(sf):
    with sf() as s:
        assert ledger.check_cache(s) == []


def test_tou_and_tiers_billing_equals_the_tariff_module(engine):
    """Four days of 15-minute records (bands as the board attributes them,
    tiers crossed, a cycle start on February 1st), sent in batches of up to
    32: the ledger equals tariff.charge_registers computed directly, to the
    mu, the board's charged_mu never disagrees, and the credit push carries
    the reference the board needs."""
    sf = db.session_factory(engine)
    versions = [TOU_TIERS]
    dev, key, (acc,) = _seed(sf, versions, [{"id": "M0", "opening_energy_wh": 50_000}])
    board = Board(dev, key, versions, JAN30 + 4 * DAY)
    ing = Ingest(sf, clock=lambda: JAN30 + 4 * DAY)
    rnd = random.Random(4)
    recs = [board.reading(0, JAN30, {}, energy0=50_000)]      # baseline = opening: nothing to bill
    t = JAN30
    while t < JAN30 + 4 * DAY:
        t += 900
        band = T.band_at(versions, t - 1)                      # the board's attribution
        recs.append(board.reading(0, t, {band: rnd.randint(0, 2500)}))
    expected = T.total_charged(board.state[0])
    assert T.cycle_wh(board.state[0]) < board.energy[0] - 50_000     # the cycle restarted on Feb 1st
    assert expected > 0
    out = []
    i = 0
    while i < len(recs):
        k = rnd.randint(1, 32)
        out = board.receive(ing.handle(*board.up(protocol.RECORDS, recs=recs[i:i + k])))
        i += k
    assert _balance(sf, acc) == OPENING - expected
    credit = [b for b in out if b["t"] == protocol.CREDIT][-1]
    assert credit == dict(credit, m=0, bal=OPENING - expected, e=board.energy[0],
                          c=recs[-1][4][3], top=1)
    assert _events(sf, EV_BILLING_MISMATCH) == []
    with sf() as s:
        entries = s.exec(select(LedgerEntry).where(LedgerEntry.account_id == acc,
                                                   LedgerEntry.kind == "consumption")).all()
        assert sum(-e.amount_mu for e in entries) == expected
        conc_id = s.exec(select(Concentrator.id).where(Concentrator.dev == dev)).one()
        assert all(e.concentrator_id == conc_id and "/seq:" in e.reference for e in entries)
        m = s.exec(select(Meter).where(Meter.meter_id == "M0")).one()
        assert m.tariff_state == board.state[0] and m.board_charged_mu == recs[-1][4][3]
    _consistent(sf)


def test_price_change_at_midnight_bills_each_side_at_its_version(engine):
    sf = db.session_factory(engine)
    midnight = JAN30 + DAY
    versions = [{"version": 1, "effective": 0, "tz_offset_s": TZ, "price": 5000},
                {"version": 2, "effective": midnight, "tz_offset_s": TZ, "price": 8000}]
    dev, key, (acc,) = _seed(sf, versions, [{"id": "M1"}])
    board = Board(dev, key, versions, midnight + 3600)
    ing = Ingest(sf, clock=lambda: midnight + 3600)
    # the hello answer carries every version, the scheduled one included
    tar = [b for b in board.receive(ing.handle(*board.up(protocol.HELLO, fw="1", boot=1, last=0, acked=0,
                                                         meters=["M1"]))) if b["t"] == protocol.TARIFF]
    assert [tar[0]["spec"]] == [versions]
    recs = [board.reading(0, midnight - 900, {}, energy0=100_000),     # baseline
            board.reading(0, midnight, {"flat": 1000}),                 # [23:45, 24:00): version 1
            board.reading(0, midnight + 900, {"flat": 1500})]           # [00:00, 00:15): version 2
    board.receive(ing.handle(*board.up(protocol.RECORDS, recs=recs)))
    assert _balance(sf, acc) == OPENING - (1000 * 5000 // 1000) - (1500 * 8000 // 1000)
    assert T.total_charged(board.state[0]) == 5000 + 12000
    assert _events(sf, EV_BILLING_MISMATCH) == []


def test_first_reading_bills_the_energy_since_commissioning(engine):
    sf = db.session_factory(engine)
    versions = [TOU_TIERS]
    dev, key, (acc,) = _seed(sf, versions, [{"id": "M2", "opening_energy_wh": 100_000}])
    t1 = JAN30 + 20 * 3600          # Saturday 2027-01-30 20:00 local: restday, "flat"
    board = Board(dev, key, versions, t1 + 900)
    ing = Ingest(sf, clock=lambda: t1 + 900)
    # the board's journal starts at 103 000 Wh: 3 kWh were used since commissioning
    first = board.reading(0, t1, {"flat": 0}, energy0=103_000)
    nxt = board.reading(0, t1 + 900, {"flat": 700})
    board.receive(ing.handle(*board.up(protocol.RECORDS, recs=[first, nxt])))
    band = T.band_at(versions, t1 - 1)
    assert band == "flat"
    expected = 3000 * 6000 // 1000 + 700 * 6000 // 1000
    assert _balance(sf, acc) == OPENING - expected
    # the board's own charged_mu only counts from its baseline: no disagreement
    assert _events(sf, EV_BILLING_MISMATCH) == []
    _consistent(sf)


def test_reading_without_time_is_rerated_at_receive_time(engine):
    """ts = 0: the board did not know the time and put the energy in its most
    expensive band; the head-end bills it in the band and version in force
    when it received the reading."""
    sf = db.session_factory(engine)
    v2_from = JAN30 + DAY
    v2 = dict(copy.deepcopy(TOU_TIERS), version=2, effective=v2_from,
              prices={"sharp": 20000, "peak": 15000, "flat": 10000, "valley": 4000})
    versions = [TOU_TIERS, v2]
    dev, key, (acc, acc_legacy) = _seed(sf, versions, [{"id": "M3"}, {"id": "M4"}])
    recv = JAN30 + 3 * DAY + 2 * 3600       # Monday 02:00 local: valley, version 2
    board = Board(dev, key, versions, recv)
    ing = Ingest(sf, clock=lambda: recv)
    base = board.reading(0, JAN30 + 3600, {}, energy0=10_000)              # version 1
    blind = board.reading(0, JAN30 + 7200, {"sharp": 2000}, ts_sent=0)     # clock lost
    legacy = [[board.seq + 1, 0, 1, JAN30 + 3600, [5000, 10, 0]], [board.seq + 2, 0, 1, 0, [6000, 10, 0]]]
    board.seq += 2
    board.receive(ing.handle(*board.up(protocol.RECORDS, recs=[base, blind] + legacy)))
    assert T.band_at(versions, recv - 1) == "valley"
    assert _balance(sf, acc) == OPENING - 2000 * 4000 // 1000
    assert _balance(sf, acc_legacy) == OPENING - 1000 * 4000 // 1000
    assert _events(sf, EV_BILLING_MISMATCH) == []      # no comparison without the board's time
    # the next timed reading continues from the re-rated registers
    nxt = board.reading(0, recv + 900, {"valley": 500})
    board.receive(ing.handle(*board.up(protocol.RECORDS, recs=[nxt])))
    assert _balance(sf, acc) == OPENING - 2000 * 4000 // 1000 - 500 * 4000 // 1000
    _consistent(sf)


def test_disagreement_with_the_board_is_reported_and_low_balance_alerts(engine):
    sf = db.session_factory(engine)
    versions = [{"version": 1, "effective": 0, "tz_offset_s": TZ, "price": 6000}]
    dev, key, (acc,) = _seed(sf, versions, [{"id": "M5", "opening_energy_wh": 0}],
                             threshold=OPENING - 10_000)
    board = Board(dev, key, versions, JAN30)
    ing = Ingest(sf, clock=lambda: JAN30 + 3600)
    recs = [board.reading(0, JAN30, {}, energy0=0),
            board.reading(0, JAN30 + 900, {"flat": 1000}),                     # 6000 mu, board agrees
            board.reading(0, JAN30 + 1800, {"flat": 1000}, charged=6000 + 5990)]   # board says 5990
    out = board.receive(ing.handle(*board.up(protocol.RECORDS, recs=recs)))
    ev = _events(sf, EV_BILLING_MISMATCH)
    assert len(ev) == 1 and ev[0].values == [6000, 5990, 11990]
    assert "disagree by -10 mu" in ev[0].message and "head-end charged 6000" in ev[0].message
    assert [b["c"] for b in out if b["t"] == protocol.CREDIT] == [11990]
    # the balance crossed OPENING - 10 000 with the second charge: one event 10
    low = _events(sf, protocol.EV_LOW_CREDIT)
    assert len(low) == 1 and low[0].detail == OPENING - 12000 and "below" in low[0].message
    # and the staff inbox has the mismatch (issue 12), once per meter per day
    from headend.models import Alert
    ing.handle(*board.up(protocol.RECORDS, recs=[board.reading(0, JAN30 + 2700, {"flat": 1000},
                                                               charged=6000 + 5990 + 5000)]))
    with sf() as s:
        alerts = s.exec(select(Alert).where(Alert.kind == "billing_mismatch")).all()
    assert len(_events(sf, EV_BILLING_MISMATCH)) == 2
    assert len(alerts) == 1 and alerts[0].values["meter"] == "M5" and alerts[0].event_id == ev[0].id


# ------------------------------------------------------------------------ API
class Outbox:
    """What the head-end queued for the boards (the downlink outbox), oldest first."""

    def __init__(self, app):
        self.app = app

    def _rows(self):
        with self.app.state.session_factory() as s:
            return [(r.topic, r.payload) for r in s.exec(select(Downlink).order_by(Downlink.id))]

    def __getitem__(self, i):
        return self._rows()[i]

    def __len__(self):
        return len(self._rows())


@pytest.fixture
def app_client(login):
    c = login("manager-liu", "admin")
    c.sent = Outbox(c.app)
    return c


def _site(client):
    sid = client.post("/api/properties", json={"name": "Block 9"}).json()["id"]
    conc = client.post("/api/concentrators", json={"property_id": sid, "dev": "k-" + uuid.uuid4().hex[:6]}).json()
    return sid, conc


def test_tariff_api_validates_schedules_and_pushes(app_client):
    client = app_client
    sid, conc = _site(client)
    key = protocol.key_from_hex(conc["key_hex"])
    r = client.post("/api/tariffs", json={"property_id": sid, "name": "home", "spec": dict(TOU_TIERS, version=1)})
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    assert r.json()["kind"] == "tou+tiers" and r.json()["tariff_pushed"] == 1
    pushed = protocol.verify(client.sent[-1][1], key)
    assert pushed["t"] == "tariff" and pushed["spec"] == [dict(TOU_TIERS, version=1)]
    # errors carry the tariff module's message
    bad = copy.deepcopy(TOU_TIERS)
    bad["tiers"][1]["from_wh"] = 0
    r = client.post("/api/tariffs", json={"property_id": sid, "name": "bad", "spec": bad})
    assert r.status_code == 422
    assert r.json()["detail"] == "tariff version 1: tiers[1].from_wh must be greater than tiers[0].from_wh"
    r = client.post("/api/tariffs", json={"property_id": sid, "name": "bad", "spec": dict(TOU_TIERS, colour="red")})
    assert r.status_code == 422 and "unknown key 'colour'" in r.json()["detail"]
    r = client.post("/api/tariffs", json={"property_id": sid, "name": "bad", "spec": {"price": 1.5}})
    assert r.status_code == 422 and "price must be an integer" in r.json()["detail"]
    assert client.post("/api/tariffs", json={"property_id": sid, "name": "bad", "price_mu_per_kwh": 1,
                                             "spec": {"price": 1}}).status_code == 422
    assert client.post("/api/tariffs", json={"property_id": sid, "name": "bad"}).status_code == 422
    # schedule a price change for a future midnight
    eff = (int(time.time()) // DAY + 2) * DAY - TZ
    v2 = dict(copy.deepcopy(TOU_TIERS), prices={"sharp": 13000, "peak": 9500, "flat": 6500, "valley": 3200})
    del v2["version"], v2["effective"]
    n_sent = len(client.sent)
    r = client.post("/api/tariffs/%d/versions" % tid, json={"spec": v2, "effective": eff})
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2 and r.json()["effective"] == eff
    pushed = protocol.verify(client.sent[n_sent][1], key)
    assert [v["version"] for v in pushed["spec"]] == [1, 2]
    assert pushed["spec"][1]["effective"] == eff
    lst = client.get("/api/tariffs/%d/versions" % tid).json()
    assert [(v["version"], v["in_force"], v["scheduled"]) for v in lst["versions"]] == [(1, True, False),
                                                                                       (2, False, True)]
    assert lst["property_default"] is True and "sharp 1.3000" in lst["versions"][1]["summary"]
    # a version in the past, or a version number taken, is refused
    r = client.post("/api/tariffs/%d/versions" % tid, json={"price_mu_per_kwh": 1, "effective": 1000})
    assert r.status_code == 422 and "past" in r.json()["detail"]
    r = client.post("/api/tariffs/%d/versions" % tid, json={"spec": dict(v2, version=2), "effective": eff + DAY})
    assert r.status_code == 422 and "appears twice" in r.json()["detail"]
    # a flat tariff by price is stored as a version spec
    r = client.post("/api/tariffs", json={"property_id": sid, "name": "flat", "price_mu_per_kwh": 5880,
                                          "property_default": False})
    assert r.status_code == 201 and r.json()["tariff_pushed"] == 0
    assert r.json()["spec"] == {"version": 1, "effective": 0, "tz_offset_s": 28800, "price": 5880}


def test_commands_override_policy_rekey(app_client):
    client = app_client
    sid, conc = _site(client)
    dev, old_key = conc["dev"], protocol.key_from_hex(conc["key_hex"])
    client.post("/api/tariffs", json={"property_id": sid, "name": "flat", "price_mu_per_kwh": 6000})
    acc = client.post("/api/accounts", json={"property_id": sid, "tenant": "Wang"}).json()["id"]
    meter = client.post("/api/meters", json={"concentrator_id": conc["id"], "meter_id": "R1", "account_id": acc,
                                             "opening_energy_wh": 1000}).json()
    ing = client.app.state.ingest
    up_n = [0]

    def up(kind, key, **fields):
        up_n[0] += 1
        return ing.handle(protocol.topic_up(dev), protocol.seal(
            protocol.message(dev, up_n[0], kind, int(time.time()), **fields), key))

    # relay override
    until = int(time.time()) + 3600
    r = client.post("/api/meters/%d/override" % meter["id"], json={"state": "closed", "until": until})
    assert r.status_code == 202, r.text
    cmd = protocol.verify(client.sent[-1][1], old_key, dev=dev)
    assert (cmd["t"], cmd["op"], cmd["m"], cmd["state"], cmd["until"]) == ("cmd", "relay", 0, "closed", until)
    assert cmd["exp"] == cmd["ts"] + 300
    ev = client.get("/api/events", params={"code": EV_COMMAND}).json()
    assert "closed until" in ev[0]["message"] and ev[0]["message"].endswith("(by manager-liu)")
    assert ev[0]["user_id"] is not None
    assert client.post("/api/meters/%d/override" % meter["id"],
                       json={"state": "open"}).status_code == 422      # no until
    assert client.post("/api/meters/%d/override" % meter["id"],
                       json={"state": "on", "until": until}).status_code == 422
    # policy: checked with the board's own schema, sent complete
    from concentrator import schema
    r = client.post("/api/concentrators/%s/policy" % dev, json={"m": 0, "policy": {"emergency_mu": 5000}})
    assert r.status_code == 202, r.text
    cmd = protocol.verify(client.sent[-1][1], old_key, dev=dev)
    assert (cmd["op"], cmd["m"]) == ("policy", 0)
    assert cmd["policy"] == schema.check_policy({"emergency_mu": 5000}) and cmd["policy"]["emergency_mu"] == 5000
    assert client.post("/api/concentrators/%s/policy" % dev, json={"m": 7, "policy": {}}).status_code == 404
    # rekey: sealed with the confirmed key, the new key pending until the board uses it
    r = client.post("/api/concentrators/%s/rekey" % dev, json={})
    assert r.status_code == 202, r.text
    cmd = protocol.verify(client.sent[-1][1], old_key, dev=dev)
    assert cmd["op"] == "rekey" and len(bytes.fromhex(cmd["nonce"])) == 16
    new_key = protocol.hmac_sha256(old_key, b"wk-rekey:" + bytes.fromhex(cmd["nonce"]))
    # a second rekey before the board answered: another pending key, still sealed with the confirmed one
    r = client.post("/api/concentrators/%s/rekey" % dev, json={"force": True})
    assert r.status_code == 202
    cmd2 = protocol.verify(client.sent[-1][1], old_key, dev=dev)
    assert cmd2["nonce"] != cmd["nonce"]
    # downlinks keep the confirmed key until the board proves a new one
    client.post("/api/accounts/%d/recharge" % acc, json={"amount": "10.00"})
    credit = protocol.verify(client.sent[-1][1], old_key, dev=dev)
    assert (credit["t"], credit["bal"], credit["top"]) == ("credit", 100000, 1)
    # the board reconnects without having seen the commands: the newest one again, first
    out = up(protocol.HELLO, old_key, fw="1", boot=1, last=0, acked=0, meters=["R1"])
    first = protocol.verify(out[0][1], old_key, dev=dev)
    assert first["op"] == "rekey" and first["nonce"] == cmd2["nonce"]
    ns = [protocol.verify(p, old_key, dev=dev)["n"] for _, p in out]
    assert ns == sorted(ns)
    # the board took only the FIRST rekey: an uplink under that key completes the rotation
    assert up(protocol.RECORDS, new_key, recs=[[1, 0, 0, int(time.time()), [1500, 10, 0]]])
    with client.app.state.session_factory() as s:
        c = s.exec(select(Concentrator).where(Concentrator.dev == dev)).one()
        assert c.key_hex == new_key.hex()
        # nothing outstanding; the second rekey stays recognisable should its copy still switch the board
        from headend.transport.downlink import keys_of
        assert keys_of(c).pending == [] and [e[0] for e in keys_of(c).late] == [cmd2["nonce"]]
    assert client.get("/api/events", params={"code": EV_REKEYED}).json()
    # from now on the new key, and the old key is dead
    client.post("/api/accounts/%d/recharge" % acc, json={"amount": "1.00"})
    assert protocol.verify(client.sent[-1][1], new_key, dev=dev)["t"] == "credit"
    assert up(protocol.STATUS, old_key, up=1, pending=0, last=1, acked=1, meters=[]) == []
    assert ing.stats.get("rejected_bad_mac") == 1
    # a board's rejection event gets a readable message
    bad_mac = protocol.REJECT_REASONS.index("bad_mac")
    up(protocol.RECORDS, new_key, recs=[[2, 1, 0, int(time.time()), [protocol.EV_MSG_REJECTED, bad_mac]]])
    ev = client.get("/api/events", params={"code": protocol.EV_MSG_REJECTED}).json()
    assert "downlink rejected by the board: bad_mac" in ev[0]["message"]


def test_a_policy_the_board_would_refuse_is_refused_here(app_client):
    """`"friendly": "22:00-07:00"` (a string for a list of pairs) once made
    every step of the board fail: the head-end answers 422 with the board's
    own reason, and nothing is sent or recorded as a change."""
    client = app_client
    sid, conc = _site(client)
    client.post("/api/meters", json={"concentrator_id": conc["id"], "meter_id": "F1"})
    n_sent = len(client.sent)
    for bad, why in [({"friendly": "22:00-07:00"}, "policy.friendly: must be a list"),
                     ({"friendy": [["22:00", "07:00"]]}, "unknown setting"),
                     ({"emergency_mu": "5000"}, "emergency_mu"),
                     ({"emergency_mu": 10 ** 20}, "emergency_mu")]:
        r = client.post("/api/concentrators/%s/policy" % conc["dev"], json={"policy": bad})
        assert r.status_code == 422, (bad, r.text)
        assert why in r.json()["detail"], (why, r.json())
    assert "write [[\"22:00\", \"07:00\"]]" in client.post(
        "/api/concentrators/%s/policy" % conc["dev"], json={"policy": {"friendly": "22:00-07:00"}}).json()["detail"]
    assert len(client.sent) == n_sent
    with client.app.state.session_factory() as s:
        from headend.models import AuditLog
        assert s.exec(select(AuditLog).where(AuditLog.action == "policy.change")).all() == []
    r = client.post("/api/concentrators/%s/policy" % conc["dev"], json={"policy": {"friendly": [["22:00", "07:00"]]}})
    assert r.status_code == 202, r.text
