"""The demo's apportionment pool (sim/demo.py): building 2's lift and
corridor meter is a common-area meter (no unit, no tenant), its energy is
shared among the building's tenants by floor area, and its relay is held
closed (it is billed to the property, which has no credit)."""
import json

import pytest
from sqlmodel import select

from concentrator import protocol
from concentrator import tariff as T
from headend.core import db
from headend.models import Downlink, Meter, Reading
from headend.services import apportionment
from headend.services.actor import system_actor
from headend.services.seed import seed_site
from sim import demo

TZ = 28800
START = T.days_from_civil(2026, 11, 1) * 86400 - TZ


def _site(s):
    common = demo.COMMON_METER[0]
    boards = [{"dev": "demo-c%d" % k, "meters": [
        dict({"id": "C%d-1%02d" % (k, i), "model": "sdm120", "opening_energy_wh": 0},
             **({"common": True} if "C%d-1%02d" % (k, i) == common else {})) for i in range(1, 9)]}
        for k in (1, 2)]
    return seed_site(s, "Demo Court", boards, tariff_price_mu_per_kwh=6000, commit=False)


@pytest.mark.parametrize("empty_engine", ["sqlite"], indirect=True)
def test_the_lift_meter_is_shared_by_building_2_by_floor_area(engine):
    sf = db.session_factory(engine)
    with sf() as s:
        seeded = _site(s)
        pool = demo.add_demo_pool(s, seeded)
        lift = s.exec(select(Meter).where(Meter.meter_id == demo.COMMON_METER[0])).one()
        assert lift.unit_id is None                         # no unit, no tenant
        c2 = seeded["concentrators"]["demo-c2"]
        assert pool.building_id == c2["building_id"] and pool.meter_ids == [lift.id]
        # the lift used 250 kWh in November
        for seq, (ts, wh) in enumerate([(START + 900, 1000), (START + 20 * 86400, 251000)], 1):
            s.add(Reading(concentrator_id=c2["id"], seq=seq, meter_index=lift.index, meter_id=lift.id, ts=ts,
                          energy_wh=wh, power_w=0, flags=0, bands=[], received=ts))
        s.flush()
        month = apportionment.preview(s, system_actor(s), seeded["property_id"], "2026-11")
        demo.hold_common_relay(s, pool)
        s.commit()
        (got,) = month["pools"]
        assert got["energy_wh"] == 250000 and got["amount_mu"] == 250000 * 6000 // 1000
        tenants_of_2 = {m["account_id"] for mid, m in c2["meters"].items() if mid != demo.COMMON_METER[0]}
        assert {ln["account_id"] for ln in got["lines"]} == tenants_of_2      # building 1 pays nothing
        assert sum(ln["share_mu"] for ln in got["lines"]) == got["amount_mu"]
        assert sum(ln["energy_wh"] for ln in got["lines"]) == 250000
        # by floor area: the larger unit pays more
        by_area = sorted(got["lines"], key=lambda ln: (ln["base"], ln["share_mu"]))
        assert by_area[0]["share_mu"] < by_area[-1]["share_mu"] and by_area[0]["base"] < by_area[-1]["base"]
        # the relay of the lift is held closed
        (cmd,) = [json.loads(protocol.split(d.payload)[0]) for d in
                  s.exec(select(Downlink).where(Downlink.concentrator_id == c2["id"])).all()]
        assert (cmd["t"], cmd["op"], cmd["m"], cmd["state"]) == (protocol.COMMAND, "relay", lift.index, "closed")
