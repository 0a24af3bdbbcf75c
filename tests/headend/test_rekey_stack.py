"""Key rotation through the whole stack (issue 14, check 5): the head-end in
its own process keeps the confirmed key until the board proves a new one, so
a rekey twice in a row, a rekey while the broker is down, and a rekey whose
confirmation is lost all end with board and head-end on one key, and the
board obeys the head-end afterwards."""
import time

from sqlmodel import select

from headend.models import Concentrator
from headend.transport.downlink import keys_of
from sim.stack import Stack


def _keys(st, dev):
    """(confirmed key, rekeys still outstanding) as the head-end keeps them."""
    with st.session() as s:
        c = s.exec(select(Concentrator).where(Concentrator.dev == dev)).one()
        return c.key_hex, keys_of(c).pending


def test_rekey_twice_during_an_outage_then_obeys():
    with Stack(broker="mosquitto", concentrators=1, meters=2, keepalive_s=2, flash="littlefs") as st:
        vc = st.site.concentrators[0]
        assert st.site.settle(20, until=lambda: st.site.pending() == 0 and vc.fw.link.connected)
        k0 = vc.fw.key_hex
        assert _keys(st, vc.dev)[0] == k0
        # twice in a row, before the board's next uplink
        for _ in range(2):
            assert st.http.post("/api/concentrators/%s/rekey" % vc.dev, json={}).status_code == 202
        assert st.site.settle(30, until=lambda: _keys(st, vc.dev) == (vc.fw.key_hex, []) and vc.fw.key_hex != k0), \
            (_keys(st, vc.dev), vc.fw.key_hex)
        k1 = vc.fw.key_hex
        # while the broker is down: the command waits in the outbox / the broker comes back
        st.broker.stop()
        st.site.settle(5, until=lambda: not vc.fw.link.connected)
        assert st.http.post("/api/concentrators/%s/rekey" % vc.dev, json={}).status_code == 202
        st.site.run(300, tick_s=5)
        st.broker.start()
        assert st.site.settle(60, until=lambda: vc.fw.link.connected and _keys(st, vc.dev) == (vc.fw.key_hex, [])
                              and vc.fw.key_hex != k1), (_keys(st, vc.dev), vc.fw.key_hex)
        # reachable: a relay command sealed by the head-end is obeyed
        meter = st.meter(st.site.provisioning()[0]["meters"][1]["id"])
        until = int(time.time()) + 3600
        r = st.http.post("/api/meters/%d/override" % meter.id, json={"state": "open", "until": until})
        assert r.status_code == 202, r.text
        assert st.site.settle(20, until=lambda: vc.fw.meters.relay_closed[1] is False)
        # a power cycle keeps the rotated key on both sides
        vc.power_cycle()
        assert st.site.settle(20, until=lambda: vc.fw.link.connected and st.site.pending() == 0)
        assert _keys(st, vc.dev) == (vc.fw.key_hex, [])
