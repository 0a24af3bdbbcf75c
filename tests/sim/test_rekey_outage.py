"""Key rotation across a broker outage (issue 14, check 5), with real parts:
Mosquitto restarted on its port, the real firmware on littlefs over the
emulated NOR flash, and the server side built on the shared pieces
(sim/peer.py: concentrator.keyring, what the head-end keeps). The rekey
commands go out while the broker is down; the board must end up reachable
under one key whatever got through."""
from concentrator import protocol as P
from sim.brokers import MosquittoBroker
from sim.peer import BoardPeer
from sim.site import Site


def test_rekey_during_a_broker_outage_ends_on_one_key():
    broker = MosquittoBroker().start()
    site = Site(concentrators=1, meters=2, broker=(broker.host, broker.port), flash="littlefs",
                keepalive_s=2, record_s=300)
    vc = site.concentrators[0]
    peer = BoardPeer((broker.host, broker.port), vc.dev, vc.cfg["key"])
    try:
        peer.start()
        assert site.settle(20, until=lambda: peer.hello is not None), "the board said hello"
        k0 = vc.fw.key_hex
        broker.stop()                                  # outage
        site.settle(3, until=lambda: not vc.fw.link.connected)
        peer.rekey("aa" * 16)                          # both go into paho's queue ...
        peer.rekey("bb" * 16)                          # ... a forced second one
        site.run(600, tick_s=5)
        broker.start()                                 # same port
        ok = site.settle(40, until=lambda: not peer.keys.pending and
                         vc.fw.key_hex == peer.keys.confirmed and vc.fw.link.connected)
        assert ok, (peer.keys.pending, vc.fw.last_reject, dict(peer.refused))
        assert vc.fw.key_hex != k0
        # reachable: a command under the server's key is obeyed
        now = vc.fw.hal.time()
        peer.command("relay", m=1, state="open", until=now + 3600)
        assert site.settle(20, until=lambda: vc.fw.meters.relay_closed[1] is False), \
            "the board obeys the server after the rotation"
        assert site.settle(10, until=lambda: vc.fw.key_prev is None)
        # and a power cycle keeps the rotated key
        vc.power_cycle()
        n = len(peer.of_type(P.HELLO))
        assert site.settle(20, until=lambda: len(peer.of_type(P.HELLO)) > n)
        assert vc.fw.key_hex == peer.keys.confirmed
    finally:
        peer.stop()
        site.close()
        broker.cleanup()
