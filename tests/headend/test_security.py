"""An attacker on the broker: forged, replayed and other-device-key credit and
relay commands are all rejected by the board and reported to the head-end."""
import os

import paho.mqtt.client as mqtt
from sqlmodel import select

from concentrator import protocol as P
from headend.models import Event
from sim.load import ConstantLoad
from sim.stack import Stack

PRICE = 6000


def test_attacker_on_the_broker_cannot_give_credit_or_switch_relays():
    with Stack(broker="mosquitto", concentrators=2, meters=2, price_mu_per_kwh=PRICE,
               balances={"C1-102": 3000}) as st:
        vc1, vc2 = st.site.concentrators
        victim = vc1.fw
        meter = vc1.meters[1]             # C1-102, a prepaid meter with its own relay
        meter.load = ConstantLoad(2000)
        # the attacker listens to everything on the broker
        captured = []
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="eve")
        c.on_message = lambda cl, ud, msg: captured.append((msg.topic, bytes(msg.payload)))
        c.connect(st.broker.host, st.broker.port)
        c.subscribe("wk/#", qos=1)
        c.loop_start()
        try:
            st.site.run(3600, tick_s=5)
            st.site.settle(10, until=lambda: st.site.pending() == 0)
            assert not meter.relay_closed, "credit ran out: relay open"
            down = [p for t, p in captured if t == P.topic_down(victim.dev)]
            genuine_credit = [p for p in down if P.split(p)[1]["t"] == P.CREDIT]
            assert genuine_credit, "the attacker saw credit messages"
            before = victim.rejected
            n_hi = victim.n_down + 1000
            now = victim.hal.time()

            def publish(payload):
                c.publish(P.topic_down(victim.dev), payload, qos=1).wait_for_publish(5)

            # 1. forged: a credit message with a made-up MAC and a huge counter
            body = P.message(victim.dev, n_hi, P.CREDIT, now, m=1, bal=10 ** 9, e=0)
            import json
            publish(json.dumps(body).encode() + b"\n" + os.urandom(32).hex().encode())
            # 2. signed with a key the attacker made up
            publish(P.seal(P.message(victim.dev, n_hi + 1, P.COMMAND, now, exp=now + 600,
                                     op="relay", m=1, state="closed", until=now + 86400),
                           os.urandom(32)))
            # 3. another device's key (the attacker owns concentrator 2)
            other_key = P.key_from_hex(vc2.cfg["key"])
            publish(P.seal(P.message(victim.dev, n_hi + 2, P.CREDIT, now, m=1, bal=10 ** 9, e=0),
                           other_key))
            publish(P.seal(P.message(vc2.fw.dev, n_hi + 3, P.COMMAND, now, exp=now + 600,
                                     op="relay", m=1, state="closed", until=now + 86400),
                           other_key))
            # 4. replay: genuine messages captured earlier, published again
            for p in genuine_credit[-3:]:
                publish(p)
            # 5. an expired genuine-looking command cannot be made without the key;
            #    garbage of every shape
            publish(b"\x00\x01garbage")
            publish(b"{}\n" + b"0" * 64)

            st.site.settle(5, until=lambda: victim.rejected >= before + 9)
            assert victim.rejected >= before + 9, victim.rejected - before
            st.site.run(600, tick_s=5)
            assert not meter.relay_closed, "no attack may switch the power on"
            assert victim.credit_of(1) <= 0, "no attack may add credit"
            # reported to the head-end as events with their reasons
            st.site.settle(10, until=lambda: st.site.pending() == 0)
            with st.session() as s:
                ev = [e for e in s.exec(select(Event).where(Event.code == P.EV_MSG_REJECTED))]
            reasons = {P.REJECT_REASONS[e.detail] for e in ev if e.detail is not None}
            assert {"bad_mac", "replay", "malformed"} <= reasons, reasons
            # and a genuine recharge still works
            st.recharge("C1-102", 50000)
            assert st.site.settle(20, until=lambda: meter.relay_closed)
        finally:
            c.loop_stop()
            c.disconnect()
