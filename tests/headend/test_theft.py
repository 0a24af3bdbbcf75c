"""Bypass and theft detection (issue 11, check 4): a simulated month of
signed hourly uplinks through the real ingest, the notification worker's
periodic check running as it does in production (transport/notifier.py with
services/theft.check); one tenant's meter bypassed on day 20: the alert
names that meter within a day, and nothing is raised before. Plus energy
while the relay reports open, reverse energy and the meters' tamper and
cover-open events."""
import pytest
from sqlmodel import select

from concentrator import protocol
from headend.core import db
from headend.models import Alert, Meter
from headend.services import messages, theft
from headend.transport.notifier import Notifier
from tests.headend import apportion_site as AS

H = 3600
BYPASS_AT = AS.START + 19 * AS.DAY + 10 * H          # Nov 20, 10:00 local
# a unit's power (W) by local hour: evenings high, nights low
PROFILE = [150] * 7 + [400] * 2 + [250] * 8 + [600] * 5 + [300] * 2
SCALE = {"U1": 100, "U2": 160, "U3": 0, "U4": 80, "LIFT": 120, "LIGHT": 40}    # percent of PROFILE
LINE_LOSS_PCT = 3


@pytest.fixture
def month(tmp_path):
    engine = db.make_engine("sqlite:///" + str(tmp_path / "theft.db"))
    from headend.core import migrate
    migrate.upgrade(engine)
    sf = db.session_factory(engine)
    site = AS.build(sf, "Theft Court")
    return sf, site


def test_check_4_a_bypassed_meter_is_named_within_a_day(month):
    sf, site = month
    notifier = Notifier(sf, {}, clock=lambda: site.now[0], check_s=60, checks=[theft.check])
    reg = {k: 0 for k in AS.ORDER}
    t = AS.START
    while t < AS.END:
        hour = ((t + AS.TZ) // H) % 24
        use = {k: PROFILE[hour] * SCALE.get(k, 0) // 100 for k in AS.ORDER if k != "MASTER"}
        use["MASTER"] = sum(use.values()) * (100 + LINE_LOSS_PCT) // 100     # the master sees everything
        if t >= BYPASS_AT:
            use["U2"] = 0                                                     # U2's load goes around its meter
        t += H
        recs = []
        for i, k in enumerate(AS.ORDER):
            reg[k] += use[k]
            site.seq += 1
            recs.append([site.seq, protocol.KIND_READING, i, t, [reg[k], use[k], 0]])
        site.now[0] = t + 60
        site.ingest.handle(*site.board.rd(recs))
        notifier.step()
    with sf() as s:
        found = s.exec(select(Alert).where(Alert.kind == "bypass").order_by(Alert.id)).all()
        u2 = s.get(Meter, site.meters["U2"])
        assert found, "no bypass alert in the month"
        first = found[0]
        assert first.ts > BYPASS_AT, "a false alarm before the bypass"
        assert first.ts - BYPASS_AT < AS.DAY
        assert first.meter_id == u2.id and first.values["meter"] == u2.meter_id
        assert first.account_id == site.accounts["B"]
        v = first.values
        assert v["pool"] == "Loss" and v["hours"] == 24 and v["tolerance_pct"] == 8
        assert v["master_wh"] - v["sub_wh"] == v["loss_wh"] and v["loss_wh"] * 100 > 8 * v["master_wh"]
        assert v["link"] == theft.meter_link(u2.id)
        line = messages.staff_line("bypass", "en", v)
        assert u2.meter_id in line and "suspected bypass" in line and "%s%%" % v["loss_pct"] in line
        # once a day at most for the pool, while the loss lasts
        assert all(b.ts - a.ts >= AS.DAY for a, b in zip(found, found[1:]))
        assert s.exec(select(Alert).where(Alert.kind.in_(["energy_relay_open", "reverse_energy"]))).all() == []


def test_energy_while_switched_off_reverse_energy_tamper_and_cover(month):
    sf, site = month
    t0 = AS.START + 3 * H
    rows = []     # (meter, ts, energy, power, flags)
    for k in range(4):                         # U1: relay open, yet the register climbs 0.5 kWh each half hour
        ts = t0 + k * H // 2
        rows.append(("U1", ts, 1000 + 500 * k, 0, protocol.FLAG_RELAY_OPEN))
        rows.append(("U3", ts, 2000, 0, protocol.FLAG_RELAY_OPEN))      # open and still: fine
        rows.append(("U4", ts, 3000, -450 if k >= 2 else 200, 0))      # power backwards
    for m, ts, wh, p, fl in rows:
        site.seq += 1
        site.now[0] = ts + 60
        site.ingest.handle(*site.board.rd([[site.seq, protocol.KIND_READING, AS.ORDER.index(m), ts, [wh, p, fl]]]))
    for code, m in ((protocol.EV_TAMPER, "U2"), (protocol.EV_COVER_OPEN, "LIFT")):
        site.seq += 1
        site.ingest.handle(*site.board.rd([[site.seq, protocol.KIND_EVENT, AS.ORDER.index(m), site.now[0],
                                            [code, 0]]]))
    now = t0 + 2 * H
    with sf() as s:
        raised = theft.check(s, now)
        s.commit()
        assert theft.check(s, now + 60) == []              # the same hour: not looked at again
        by_kind = {a.kind: a for a in s.exec(select(Alert)).all()}
        off = by_kind["energy_relay_open"]
        assert off.meter_id == site.meters["U1"] and off.values["wh"] == 1500 and off.values["kwh"] == "1.500"
        assert off.values["link"] == theft.meter_link(site.meters["U1"])
        rev = by_kind["reverse_energy"]
        assert rev.meter_id == site.meters["U4"] and rev.values["power_w"] == -450 and rev.values["readings"] == 2
        assert {a.kind for a in raised} == {"energy_relay_open", "reverse_energy"}
        assert not [a for a in s.exec(select(Alert)).all() if a.meter_id == site.meters["U3"]]
        thefts = s.exec(select(Alert).where(Alert.kind == "theft").order_by(Alert.id)).all()
        assert [(a.meter_id, a.values["sign"]) for a in thefts] == [(site.meters["U2"], "tamper"),
                                                                    (site.meters["LIFT"], "cover open")]
        assert "cover opened" in messages.staff_line("theft", "en", thefts[1].values)
        assert "表盖被打开" in messages.staff_line("theft", "zh-CN", thefts[1].values)
        # an hour later the same signs are within the rule's repeat (a day): nothing new
        assert theft.check(s, now + H) == []
