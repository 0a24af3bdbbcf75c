"""A simulated month through the real stack (issue 12, check 2): a real
board, the Mosquitto broker, the head-end in its own process with its
notification worker, and an SMTP server (aiosmtpd) in this test. A tenant
whose credit runs down gets the low-balance e-mail, by forecast (days left
at the recent use), BEFORE the relay opens, and the relay-opened e-mail
after it; nothing is sent twice; a neighbour with plenty of credit gets
nothing."""
from sqlmodel import select

from concentrator import protocol
from headend.models import Account, Alert, Event, Notification, Tenant
from headend.services import alert_rules, users
from headend.services.actor import system_actor
from sim.load import ConstantLoad
from sim.stack import Stack
from sim.receivers import SmtpSink

DAY = 86400
PRICE = 6000                 # 0.60 a kWh
LOW, RICH = "C1-101", "C1-102"


def test_low_balance_by_forecast_before_the_relay_opens_and_relay_message_after():
    sink = SmtpSink()
    with sink, Stack(broker="mosquitto", concentrators=1, meters=2, price_mu_per_kwh=PRICE,
                     balances={LOW: 30 * 10000, RICH: 5000 * 10000}, poll_s=300, record_s=900,
                     headend_env={"WK_SMTP_URL": sink.url, "WK_NOTIFY_POLL_S": "0.3"}) as st:
        sink.stamp = st.site.now                  # the simulated time each mail arrives at
        vc = st.site.concentrators[0]
        for mc, sm in zip(vc.cfg["meters"], vc.meters):
            sm.load = ConstantLoad(150)           # 3.6 kWh a day: 2.16 a day; 30.00 lasts ~14 days
        account = {mid: st.account_id(mid) for mid in (LOW, RICH)}
        with st.session() as s:
            for mid in (LOW, RICH):
                t = s.get(Tenant, s.get(Account, account[mid]).tenant_id)
                t.email = "%s@tenants.test" % mid.lower()
                s.add(t)
                u = users.create_user(s, system_actor(s), "t-" + mid.lower(), "tenant-password", tenant_id=t.id)
                # warn 5 days ahead (10.80 at this use): the forecast speaks before the 10.00 amount does
                alert_rules.update_preference(s, users.actor_for(s, u), {"days_left": 5})
            s.commit()
        for day in range(30):
            st.site.run(DAY, tick_s=60)
            st.site.settle(60, until=lambda: st.site.pending() == 0)
        st.site.settle(10, until=lambda: len(sink.messages) >= 2)
        low_meter = st.meter(LOW).id
        with st.session() as s:
            acc = account[LOW]
            opened = s.exec(select(Event).where(Event.code == protocol.EV_RELAY_OPEN,
                                                Event.meter_id == low_meter).order_by(Event.id)).all()
            rows = s.exec(select(Notification).order_by(Notification.id)).all()
            raised = s.exec(select(Alert).where(Alert.account_id == acc).order_by(Alert.id)).all()
        why = {"mails": [(m["to"], m["subject"], m["when"]) for m in sink.messages],
               "notifications": [(n.channel, n.recipient, n.state, n.attempts, n.last_error) for n in rows],
               "alerts": [(a.kind, a.ts, a.values) for a in raised],
               "relay_opened": [(e.ts, e.detail) for e in opened]}
        assert opened, why
        open_ts = opened[0].ts
        mails = [m for m in sink.messages if m["to"] == ["c1-101@tenants.test"]]
        assert [m["subject"] for m in mails] == ["电费余额不足提醒", "已断电通知"], why
        low, cut = mails
        assert "约可用" in low["body"] and "天" in low["body"]          # the forecast's template
        assert low["when"] < open_ts < cut["when"], why
        # the warning came days ahead, while the balance was still above the 10.00 amount
        assert open_ts - low["when"] > 3 * DAY, why
        assert "余额不足" in cut["body"] and LOW in cut["body"]
        # nothing twice: one message per alert, each mail once, nothing for the neighbour
        assert len({m["message_id"] for m in sink.messages}) == len(sink.messages) == 2, why
        assert [a.kind for a in raised] == ["low_balance", "relay_opened"], why
        assert [n.state for n in rows] == ["sent", "sent"], why
        # the inbox has both, for staff to acknowledge
        inbox = st.http.get("/api/alerts").json()
        assert {a["kind"] for a in inbox} == {"low_balance", "relay_opened"}
