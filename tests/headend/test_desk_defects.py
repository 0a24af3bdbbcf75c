"""The three defects issue 10 was filed with, each as it was seen:

1. a recharge made with the CLI never reached the board: its credit, sealed
   in the outbox, was published after the ingest's next reply had used a
   higher counter, and the board dropped it as a replay (the relay stayed
   open: a board without power sends no consumption, so no later credit);
2. a meter put on an account with its own tariff booked *positive*
   "consumption" entries (the old accumulator priced again at the new
   price) and a billing mismatch on every reading;
3. a meter taken off its account was billed to nobody (free power).
"""
import secrets
import uuid

from sqlmodel import select

from concentrator import protocol
from concentrator import tariff as T
from headend.cli import main as cli
from headend.core import db, migrate
from headend.core.config import Settings
from headend.core.events import EV_BILLING_MISMATCH
from headend.ingest import Ingest
from headend.main import create_app
from headend.models import Account, Event, LedgerEntry, Meter
from headend.models.account import KIND_VACANCY
from headend.services import ledger
from headend.services.seed import seed_site
from headend.transport.mqtt import MqttService
from tests.headend.conftest import make_user
from tests.headend.test_mqtt import MOSQUITTO
from tests.headend.test_mqtt import Board as MqttBoard
from tests.headend.test_tariffs_and_commands import JAN30, Board

PRICE, CHEAP = 6000, 4000
FLAT = [{"version": 1, "effective": 0, "tz_offset_s": 28800, "price": PRICE}]


def test_a_cli_recharge_reaches_the_board_whatever_the_ingest_replies_meanwhile(tmp_path):
    url = "sqlite:///" + str(tmp_path / "cli.db")
    engine = db.make_engine(url)
    migrate.upgrade(engine)
    sf = db.session_factory(engine)
    dev, key = "d1-" + uuid.uuid4().hex[:8], secrets.token_hex(32)
    with sf() as s:
        seeded = seed_site(s, "site-" + dev, [{"dev": dev, "key_hex": key, "meters": [
            {"id": dev + "-m0", "model": "sdm120", "opening_energy_wh": 1000}]}],
            tariff_price_mu_per_kwh=PRICE, opening_balance_mu=0)
    acc = seeded["concentrators"][dev]["meters"][dev + "-m0"]["account_id"]
    app = create_app(Settings(database_url=url), start_mqtt=False, engine=engine, migrate_db=False)
    make_user(app, "cashier-cli", "cashier", [seeded["property_id"]])
    # the outbox is polled seldom here, so that the ingest's reply always goes first
    mq = MqttService(Ingest(sf), "mqtt://%s:%d" % MOSQUITTO, session_factory=sf, outbox_poll_s=60).start()
    board = None
    try:
        assert mq.wait_ready(10)
        board = MqttBoard(MOSQUITTO[0], MOSQUITTO[1], dev, key)
        board.send(protocol.HELLO, fw="t", boot=1, last=0, acked=0, meters=[dev + "-m0"])
        assert board.wait_for(protocol.CREDIT, m=0)["bal"] == 0        # no credit: the relay is open
        assert cli(["--db", url, "recharge", str(acc), "20.00", "--as", "cashier-cli", "--wait", "0"]) == 0
        # the board, without power, reports an unchanged register: the reply is an ack
        board.send(protocol.RECORDS, recs=[[1, protocol.KIND_READING, 0, 1790000000,
                                            [1000, 0, protocol.FLAG_RELAY_OPEN]]])
        credit = board.wait_for(protocol.CREDIT, timeout=5, m=0)      # in counter order, or refused
        assert credit["bal"] == 200000 and credit["top"] == 1      # the first sale
        board.wait_for(protocol.ACK, seq=1)
    finally:
        if board is not None:
            board.close()
        mq.stop()
        engine.dispose()


# ------------------------------------------------------------------ through the API and the real ingest
def _site(app, meters):
    dev, key = "d-" + uuid.uuid4().hex[:8], secrets.token_hex(32)
    with app.state.session_factory() as s:
        seeded = seed_site(s, "site-" + dev, [{"dev": dev, "key_hex": key, "meters": meters}],
                           tariff_spec=FLAT, opening_balance_mu=10_000_000)
    c = seeded["concentrators"][dev]
    return seeded["property_id"], dev, key, c


def _feed(app, board, t, readings, wh):
    """`readings` records of `wh` Wh each, 15 minutes apart, from t on; -> the last time."""
    recs = []
    for _ in range(readings):
        t += 900
        recs.append(board.reading(0, t, {"flat": wh}))
    for k in range(0, len(recs), 32):
        board.receive(app.state.ingest.handle(*board.up(protocol.RECORDS, recs=recs[k:k + 32])))
    return t


def _consumption(app, account_id):
    with app.state.session_factory() as s:
        return [e.amount_mu for e in s.exec(select(LedgerEntry).where(LedgerEntry.account_id == account_id,
                                                                      LedgerEntry.kind == "consumption"))]


def test_a_meter_on_an_account_with_its_own_tariff_is_billed_at_that_tariff_without_mismatch(app, client, admin):
    pid, dev, key, c = _site(app, [{"id": "OWN-1", "opening_energy_wh": 0}])
    meter = c["meters"]["OWN-1"]
    cheap = admin.post("/api/tariffs", json={"property_id": pid, "name": "cheap", "price_mu_per_kwh": CHEAP,
                                             "property_default": False}).json()["id"]
    shop = admin.post("/api/accounts", json={"property_id": pid, "tenant": "Shop with its own tariff",
                                             "tariff_id": cheap}).json()["id"]
    board = Board(dev, key, FLAT, JAN30)        # the board bills with the property's tariff
    board.receive(app.state.ingest.handle(*board.up(protocol.RECORDS, recs=[board.reading(0, JAN30, {}, energy0=0)])))
    t = _feed(app, board, JAN30, 3, 1000)
    assert admin.put("/api/meters/%d/account" % meter["id"], json={"account_id": shop}).status_code == 200
    _feed(app, board, t, 5, 500)
    old, new = _consumption(app, meter["account_id"]), _consumption(app, shop)
    assert all(a < 0 for a in old + new), "no positive consumption entries"
    assert sum(old) == -3 * 1000 * PRICE // 1000
    assert sum(new) == -5 * 500 * CHEAP // 1000             # the account's own tariff, from the next reading
    with app.state.session_factory() as s:
        assert s.exec(select(Event).where(Event.code == EV_BILLING_MISMATCH)).all() == [], \
            "the board bills with the property's tariff: no disagreement"
        assert ledger.check_cache(s) == []


def test_a_meter_taken_off_its_account_is_billed_to_the_vacancy_account(app, client, admin):
    pid, dev, key, c = _site(app, [{"id": "OFF-1", "opening_energy_wh": 0}])
    meter = c["meters"]["OFF-1"]
    board = Board(dev, key, FLAT, JAN30)
    board.receive(app.state.ingest.handle(*board.up(protocol.RECORDS, recs=[board.reading(0, JAN30, {}, energy0=0)])))
    t = _feed(app, board, JAN30, 2, 700)
    r = admin.put("/api/meters/%d/account" % meter["id"], json={"account_id": None})
    assert r.status_code == 200 and r.json()["account_id"] not in (None, meter["account_id"])
    _feed(app, board, t, 56, 100)
    with app.state.session_factory() as s:
        vacancy = s.exec(select(Account).where(Account.property_id == pid, Account.kind == KIND_VACANCY)).one()
        assert s.get(Meter, meter["id"]).account_id == vacancy.id
    charged = _consumption(app, meter["account_id"]) + _consumption(app, vacancy.id)
    assert len(_consumption(app, vacancy.id)) == 56, "every reading is charged to someone"
    assert sum(charged) == -T.total_charged(board.state[0])
    assert sum(_consumption(app, vacancy.id)) == -56 * 100 * PRICE // 1000
