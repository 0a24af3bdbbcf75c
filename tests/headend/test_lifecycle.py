"""The tenant's account from move-in to move-out, through the API and the
real ingest: the final reading separates the old tenant's energy from the
next occupant's to the Wh, a vacant unit is billed to the vacancy account
and its relay follows the property's rule, refund or carry-over at
move-out, the next tenant starts clean; a meter swap keeps the tier counter
and the month's billing; a tariff change of an account keeps the cycle's
energy for the tiers."""
import secrets
import uuid

from sqlmodel import select

from concentrator import protocol
from concentrator import tariff as T
from headend.models import Account, Downlink, LedgerEntry, Meter, MeterAssignment
from headend.models.account import KIND_VACANCY
from headend.models import User
from headend.services import ledger, lifecycle, users
from headend.services.seed import seed_site
from tests.headend.test_tariffs_and_commands import JAN30, Board

PRICE = 6000
TIERED = [{"version": 1, "effective": 0, "tz_offset_s": 28800, "price": PRICE,
           "tiers": [{"from_wh": 0, "add": 0}, {"from_wh": 10_000, "add": 4000}]}]


class Site:
    """One board with one meter in unit U-1 (occupied by a first tenant)."""

    def __init__(self, app, versions):
        self.app = app
        self.dev, key = "lc-" + uuid.uuid4().hex[:8], secrets.token_hex(32)
        with app.state.session_factory() as s:
            seeded = seed_site(s, "site-" + self.dev, [{"dev": self.dev, "key_hex": key, "meters": [
                {"id": "U-1", "unit": "U-1", "tenant": "First tenant", "opening_energy_wh": 0}]}],
                tariff_spec=versions, opening_balance_mu=1_000_000)
        c = seeded["concentrators"][self.dev]
        self.property = seeded["property_id"]
        self.meter, self.unit, self.first = (c["meters"]["U-1"][k] for k in ("id", "unit_id", "account_id"))
        self.board = Board(self.dev, key, versions, JAN30)
        self.t = JAN30
        self.send([self.board.reading(0, self.t, {}, energy0=0)])

    def send(self, recs):
        return self.board.receive(self.app.state.ingest.handle(*self.board.up(protocol.RECORDS, recs=recs)))

    def use(self, *whs, band="flat"):
        recs = []
        for wh in whs:
            self.t += 900
            recs.append(self.board.reading(0, self.t, {band: wh}))
        return self.send(recs)

    def charged(self, account_id):
        with self.app.state.session_factory() as s:
            return -sum(e.amount_mu for e in s.exec(select(LedgerEntry).where(
                LedgerEntry.account_id == account_id, LedgerEntry.kind == "consumption")))

    def vacancy(self):
        with self.app.state.session_factory() as s:
            return s.exec(select(Account).where(Account.property_id == self.property,
                                                Account.kind == KIND_VACANCY)).one().id

    def relay_commands(self):
        """The relay commands queued for the board: [(state, until)]."""
        with self.app.state.session_factory() as s:
            rows = s.exec(select(Downlink).order_by(Downlink.id)).all()
            bodies = [protocol.verify(r.payload, self.board.key) for r in rows if r.topic.endswith(self.dev + "/down")]
        return [(b["state"], b["until"]) for b in bodies if b["t"] == protocol.COMMAND and b["op"] == "relay"]


def test_move_out_and_in_split_the_energy_at_the_final_reading(app, client, admin):
    site = Site(app, TIERED)
    site.use(2000, 3000)                                   # the first tenant: 5 kWh
    acc = "/api/accounts/%d" % site.first
    r = admin.post(acc + "/move-out", json={"settlement": "refund", "method": "cash"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["final"] == [{"meter_id": "U-1", "energy_wh": 5000, "ts": site.t}]
    assert out["closed"] and out["vacant_relay"] == "open"
    assert out["refund"]["receipt"]["amount"] == "-97.00" and out["refund"]["balance_mu"] == 0   # 100 - 5 kWh x 0.6
    assert site.relay_commands()[-1][0] == "open"           # a vacant unit: power off
    site.use(1000)                                         # vacant: the vacancy account pays
    vac = site.vacancy()
    assert site.charged(vac) == 1000 * PRICE // 1000
    assert admin.post(acc + "/recharge", json={"amount": "1.00"}).status_code == 422      # closed
    # the next tenant starts clean: a new account, its own tier counter, from the current reading
    nxt = admin.post("/api/accounts", json={"property_id": site.property, "tenant": "Next tenant"}).json()["id"]
    r = admin.post("/api/accounts/%d/move-in" % nxt, json={"unit_id": site.unit, "opening_credit": "80.00",
                                                           "method": "alipay"})
    assert r.status_code == 201, r.text
    assert r.json()["opening"] == [{"meter_id": "U-1", "energy_wh": 6000, "ts": site.t}]
    assert r.json()["sale"]["receipt"]["method"] == "alipay" and r.json()["sale"]["balance"] == "80.00"
    assert site.relay_commands()[-1] == ("auto", 0)          # back to the credit rule
    site.use(4000, 7000)                                   # 11 kWh: the new tenant crosses its own 10 kWh tier
    assert site.charged(site.first) == 5000 * PRICE // 1000
    assert site.charged(nxt) == 11000 * PRICE // 1000 + 1000 * 4000 // 1000
    assert site.charged(vac) == 1000 * PRICE // 1000
    with app.state.session_factory() as s:
        hist = s.exec(select(MeterAssignment).where(MeterAssignment.meter_id == site.meter)
                      .order_by(MeterAssignment.id)).all()
        assert [(h.account_id, h.start_energy_wh, h.end_energy_wh) for h in hist] == [
            (site.first, 0, 5000), (vac, 5000, 6000), (nxt, 6000, None)]
        assert ledger.check_cache(s) == []


def test_carry_over_keeps_the_balance_and_debt_is_not_refunded(app, client, admin, login):
    site = Site(app, TIERED)
    cashier = login("lc-cashier", "cashier", property_ids=[site.property])
    acc = "/api/accounts/%d" % site.first
    assert cashier.post(acc + "/move-out", json={"settlement": "refund"}).status_code == 403   # refunds: managers
    r = cashier.post(acc + "/move-out", json={"settlement": "carry_over"})
    assert r.status_code == 200 and not r.json()["closed"] and r.json()["refund"] is None
    assert cashier.get(acc).json()["balance"] == "100.00" and cashier.get(acc).json()["status"] == "open"
    assert cashier.post(acc + "/move-out", json={}).status_code == 422                       # no unit left
    # moving into the unit again (choosing a tariff is a manager's); consume more than the credit;
    # a refund is refused while in debt
    tariff = admin.get("/api/tariffs", params={"property_id": site.property}).json()[0]["id"]
    assert cashier.post(acc + "/move-in", json={"unit_id": site.unit, "tariff_id": tariff}).status_code == 403
    assert cashier.post(acc + "/move-in", json={"unit_id": site.unit}).status_code == 201
    site.use(90000, 90000)
    assert cashier.get(acc).json()["balance_mu"] < 0
    r = admin.post(acc + "/move-out", json={"settlement": "refund"})
    assert r.status_code == 409 and "owes" in r.json()["detail"]


def test_the_vacant_unit_rule_follows_the_settings(app, client, admin):
    site = Site(app, TIERED)
    admin.post("/api/accounts/%d/move-out" % site.first, json={})
    assert site.relay_commands()[-1][0] == "open"
    r = admin.put("/api/properties/%d/settings" % site.property, json={"vacant_relay": "closed"})
    assert r.status_code == 200 and r.json()["vacant_relay"] == "closed"
    state, until = site.relay_commands()[-1]
    assert state == "closed" and until > JAN30 + 365 * 86400        # power stays on while vacant
    admin.put("/api/properties/%d/settings" % site.property, json={"vacant_relay": "credit"})
    assert site.relay_commands()[-1] == ("auto", 0)
    assert admin.put("/api/properties/%d/settings" % site.property, json={"vacant_relay": "maybe"}).status_code == 422


def test_a_meter_swap_keeps_the_tier_counter_and_covers_the_old_meters_readings(app, client, admin, login):
    site = Site(app, TIERED)
    tech = login("lc-tech", "technician", property_ids=[site.property])
    site.use(4000, 4000)                                    # 8 kWh this month
    with app.state.session_factory() as s:
        before = s.get(Meter, site.meter).tariff_state
    assert T.cycle_wh(before) == 8000
    # a new meter with a new id: the residual to its final reading is charged now
    assert tech.post("/api/meters/%d/swap" % site.meter, json={"new_meter_id": "U-1-B",
                                                               "final_kwh": "7.999"}).status_code == 422   # below
    with app.state.session_factory() as s:
        swap, residual = lifecycle.swap_meter(s, users.actor_for(s, s.exec(select(User).where(
            User.username == "lc-tech")).one()), site.meter, "U-1-B", None, 8500, 20, now=site.t + 60)
        s.commit()
    assert residual == 500 * PRICE // 1000 and swap.final_energy_wh == 8500
    # a reading the old meter took before the swap arrives late: covered by the final reading
    site.board.seq += 1
    site.send([[site.board.seq, protocol.KIND_READING, 0, site.t, [9000, 0, 0, 0, 0, 0, 9000, 0, 0]]])
    # the new meter counts from its opening reading; the board starts a new count for the new id
    for e, flat, charged in ((2020, 0, 0), (4020, 2000, 12000)):
        site.t += 900
        site.board.seq += 1
        site.send([[site.board.seq, protocol.KIND_READING, 0, site.t, [e, 1000, 0, charged, 0, 0, flat, 0, 0]]])
    # 8 kWh + 0.5 kWh residual + 4 kWh on the new meter: 12.5 kWh, 2.5 of them above the 10 kWh tier
    assert site.charged(site.first) == 12500 * PRICE // 1000 + 2500 * 4000 // 1000
    with app.state.session_factory() as s:
        m = s.get(Meter, site.meter)
        assert m.meter_id == "U-1-B" and T.cycle_wh(m.tariff_state) == 12500
        assert ledger.check_cache(s) == []
    assert len(admin.get("/api/meters/%d/history" % site.meter).json()["swaps"]) == 1


def test_a_tariff_change_of_an_account_keeps_the_cycles_energy_for_the_tiers(app, client, admin):
    site = Site(app, TIERED)
    site.use(6000)                                          # 6 kWh at 0.60
    own = admin.post("/api/tariffs", json={"property_id": site.property, "name": "shop", "property_default": False,
                                           "spec": {"price": 5000, "tiers": [{"from_wh": 0, "add": 0},
                                                                             {"from_wh": 10_000, "add": 4000}]}})
    assert own.status_code == 201, own.text
    r = admin.put("/api/accounts/%d/tariff" % site.first, json={"tariff_id": own.json()["id"]})
    assert r.status_code == 200 and r.json()["tariff_id"] == own.json()["id"]
    nxt = admin.post("/api/accounts", json={"property_id": site.property, "tenant": "Shop two"}).json()["id"]
    admin.post("/api/accounts/%d/move-out" % site.first, json={"settlement": "carry_over"})
    r = admin.post("/api/accounts/%d/move-in" % nxt, json={"unit_id": site.unit, "tariff_id": own.json()["id"]})
    assert r.status_code == 201 and admin.get("/api/accounts/%d" % nxt).json()["tariff_id"] == own.json()["id"]
    admin.post("/api/accounts/%d/move-out" % nxt, json={})
    admin.post("/api/accounts/%d/move-in" % site.first, json={"unit_id": site.unit})
    site.use(6000)                                          # 6 kWh more: 2 of them above the shared 10 kWh tier
    assert site.charged(site.first) == 6000 * PRICE // 1000 + 4000 * 5000 // 1000 + 2000 * 9000 // 1000
    with app.state.session_factory() as s:
        entries = s.exec(select(LedgerEntry).where(LedgerEntry.account_id == site.first,
                                                   LedgerEntry.kind == "consumption")).all()
        assert all(e.amount_mu < 0 for e in entries)
