"""A simulated month on a tiered + time-of-use tariff with a tariff change in
the middle of the month and a two-day broker outage: the board's own charges
and the head-end's ledger agree to the smallest money unit."""
from sqlmodel import select

from headend.models import LedgerEntry
from sim.load import ConstantLoad
from sim.site import DEFAULT_START
from sim.stack import Stack

DAY = 86400
TZ = 28800
BANDS = {"workday": [["00:00", "valley"], ["08:00", "flat"], ["10:00", "peak"],
                     ["12:00", "flat"], ["18:00", "sharp"], ["20:00", "peak"],
                     ["22:00", "valley"]],
         "restday": [["00:00", "valley"], ["08:00", "flat"], ["22:00", "valley"]]}


def version(v, effective, scale):
    return {"version": v, "effective": effective, "tz_offset_s": TZ,
            "prices": {"sharp": 12000 * scale // 10, "peak": 9000 * scale // 10,
                       "flat": 6000 * scale // 10, "valley": 3000 * scale // 10},
            "tou": {"days": BANDS,
                    "seasons": [{"from": "01-01", "to": "12-31", "weekday": "workday",
                                 "weekend": "restday"}],
                    "weekend_days": [5, 6]},
            "tiers": [{"from_wh": 0, "add": 0}, {"from_wh": 150000, "add": 500},
                      {"from_wh": 300000, "add": 3000}],
            "cycle": {"day": 1}}


def test_month_tiered_tou_board_and_headend_agree():
    mid_month = DEFAULT_START + 15 * DAY          # local midnight, 2026-11-16
    tariff = [version(1, 0, 10), version(2, mid_month, 12)]
    with Stack(broker="mosquitto", concentrators=1, meters=4, tariff=tariff,
               opening_balance_mu=10 ** 9, poll_s=300, record_s=900) as st:
        vc = st.site.concentrators[0]
        for k, sm in enumerate(vc.meters):
            sm.load = ConstantLoad(300 + 250 * k)
        def days(n):
            # a day at a time, letting the head-end keep up between days
            for _ in range(n):
                st.site.run(DAY, tick_s=60)
                st.site.settle(60, until=lambda: st.site.pending() == 0)

        days(10)
        st.broker.stop()
        st.site.run(2 * DAY, tick_s=60)               # two days offline
        assert vc.fw.journal.last_seq - vc.fw.journal.acked_seq > 100
        st.broker.start()
        days(18)
        for sm in vc.meters:
            sm.advance(vc.clock.now_us)
            sm.load = ConstantLoad(0)
        st.site.run(3600, tick_s=60)
        assert st.site.settle(120, until=lambda: st.site.pending() == 0)
        st.site.settle(3)                              # last credit pushes

        for i, mc in enumerate(vc.cfg["meters"]):
            aid = st.account_id(mc["id"])
            with st.session() as s:
                charges = [e.amount_mu for e in s.exec(select(LedgerEntry).where(
                    LedgerEntry.account_id == aid, LedgerEntry.kind == "consumption")
                    .order_by(LedgerEntry.id))]
            billed = [r.billed_mu for r in st.readings(mc["id"]) if r.billed_mu is not None]
            assert -sum(charges) == sum(billed)
            charged = vc.fw.credits.charged[i]
            assert charged > 0
            # the first billed reading carries only the commissioning charge
            # (opening register to the board's first record, which is the
            # board's own billing baseline); every mu after it must agree
            assert sum(billed[1:]) == charged, (mc["id"], sum(billed[1:]), charged)
            assert vc.fw.credit_of(i) == st.balance(mc["id"]), mc["id"]
            assert st.ledger_sum(mc["id"]) == st.balance(mc["id"])
        # the tiers and the version change really mattered: the biggest user
        # crossed into the third tier in both halves of the month
        big = vc.fw.credits.state[3]
        assert big["ver"] == 2
