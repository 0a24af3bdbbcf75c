"""The building of issue 11's check 1, built through the real services and
fed by signed uplinks through the real ingest (used by the apportionment
tests, the browser test and docs/apportionment.md's worked example).

November 2026 (local time, UTC+8; 30 days), price 0.80 a kWh (the
property's flat tariff, 8000 mu/kWh):

    unit  area      occupant                 own use
    U1    80.00 m²  A, all month             300 kWh
    U2   120.00 m²  B, all month             500 kWh
    U3   100.00 m²  vacant (50 %)             20 kWh
    U4    60.00 m²  C until Nov 16 00:00,    150 kWh (C) + 10 kWh (vacant)
                    then vacant

    LIFT    meter: 400     kWh   pool "Lift"      by floor area,  vacant 50 %
    LIGHT   meter: 123.457 kWh   pool "Lighting"  by consumption, vacant 50 %
    MASTER  meter: 1600    kWh   pool "Loss"      equal,          vacant excluded
    loss = 1600 − (300 + 500 + 20 + 160) − (400 + 123.457) = 96.543 kWh
"""
import secrets

from sqlmodel import select

from concentrator import protocol
from concentrator import tariff as T
from headend.ingest import Ingest
from headend.models import Account, Building
from headend.services import apportionment, devices, lifecycle
from headend.services.actor import system_actor
from headend.services.seed import seed_site
from tests.headend.test_headend_ingest import Board

TZ = 28800
DAY = 86400
MONTH = "2026-11"
START = T.days_from_civil(2026, 11, 1) * DAY - TZ
END = T.days_from_civil(2026, 12, 1) * DAY - TZ
MOVE_OUT = T.days_from_civil(2026, 11, 16) * DAY - TZ
PRICE = 8000

# Wh registers: (before the month, just before the move-out, at the month's end)
REGISTERS = {
    "U1": (1000, 151000, 301000),
    "U2": (2000, 252000, 502000),
    "U3": (3000, 13000, 23000),
    "U4": (4000, 154000, 164000),
    "LIFT": (5000, 205000, 405000),
    "LIGHT": (6000, 66000, 129457),
    "MASTER": (7000, 807000, 1607000),
}
ORDER = ("U1", "U2", "U3", "U4", "LIFT", "LIGHT", "MASTER")


class Site:
    pass


def build(sf, name="Check One", dev=None):
    """-> Site with ids: property, building, units, accounts, meters, pools."""
    site = Site()
    dev = dev or "ap-" + secrets.token_hex(3)
    key = secrets.token_hex(32)
    with sf() as s:
        res = seed_site(s, name, [{"dev": dev, "key_hex": key, "building": "A", "meters": [
            {"id": dev + "-U1", "unit": "U1", "floor": 1, "floor_area_dm2": 8000, "tenant": "A Tenant",
             "opening_energy_wh": 0},
            {"id": dev + "-U2", "unit": "U2", "floor": 2, "floor_area_dm2": 12000, "tenant": "B Tenant",
             "opening_energy_wh": 0},
            {"id": dev + "-U3", "unit": "U3", "floor": 3, "floor_area_dm2": 10000, "vacant": True,
             "opening_energy_wh": 0},
            {"id": dev + "-U4", "unit": "U4", "floor": 4, "floor_area_dm2": 6000, "tenant": "C Tenant",
             "opening_energy_wh": 0}]}],
            tariff_price_mu_per_kwh=PRICE, opening_balance_mu=2000 * 10000, commit=False)
        sa = system_actor(s)
        c = res["concentrators"][dev]
        site.pid, site.building = res["property_id"], c["building_id"]
        site.conc = c["id"]
        site.meters = {k[len(dev) + 1:]: v["id"] for k, v in c["meters"].items()}
        site.units = {k[len(dev) + 1:]: v["unit_id"] for k, v in c["meters"].items()}
        site.accounts = {"A": c["meters"][dev + "-U1"]["account_id"], "B": c["meters"][dev + "-U2"]["account_id"],
                         "C": c["meters"][dev + "-U4"]["account_id"]}
        for i, k in enumerate(("LIFT", "LIGHT", "MASTER")):
            site.meters[k] = devices.create_meter(s, sa, c["id"], dev + "-" + k, "sdm120", index=4 + i,
                                                  opening_energy_wh=0).id
        site.accounts["vacancy"] = s.exec(select(Account.id).where(Account.property_id == site.pid,
                                                                   Account.kind == "vacancy")).one()
        assert s.get(Building, site.building).name == "A"
        site.pools = {}
        site.pools["lift"] = apportionment.create_pool(
            s, sa, site.pid, "Lift", "common", "area", site.building, [site.meters["LIFT"]], 50).id
        site.pools["light"] = apportionment.create_pool(
            s, sa, site.pid, "Lighting", "common", "consumption", site.building, [site.meters["LIGHT"]], 50).id
        site.pools["loss"] = apportionment.create_pool(
            s, sa, site.pid, "Loss", "loss", "equal", site.building, [site.meters["MASTER"]], 0).id
        s.commit()
    site.board = Board(dev, key)
    site.now = [START - 2 * 3600]
    site.ingest = Ingest(sf, clock=lambda: site.now[0])
    site.seq = 0
    return site


def send(site, ts, column):
    site.now[0] = ts + 60
    recs = []
    for i, k in enumerate(ORDER):
        site.seq += 1
        recs.append([site.seq, protocol.KIND_READING, i, ts, [REGISTERS[k][column], 500, 0]])
    site.ingest.handle(*site.board.rd(recs))


def feed_month(sf, site):
    """The month's readings, and C's move-out on Nov 16 00:00."""
    send(site, START - 3600, 0)
    send(site, MOVE_OUT - 600, 1)
    with sf() as s:
        lifecycle.move_out(s, system_actor(s), site.accounts["C"], now=MOVE_OUT)
        s.commit()
    send(site, END - 3600, 2)
    site.now[0] = END + 3600
