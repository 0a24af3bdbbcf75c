"""OTA end to end in the site simulator (issue 14, check 4): a real
Mosquitto, the real firmware on littlefs over the emulated NOR flash, and
the server side built on the shared pieces (sim/peer.py: ota_format,
keyring, protocol). An update that passes its health check stays; one whose
board cannot read its meters after the switch rolls back by itself."""
from concentrator import fwboot
from concentrator import ota_format as F
from concentrator import protocol as P
from sim.brokers import MosquittoBroker
from sim.peer import BoardPeer
from sim.site import Site
from tests.firmware.test_ota import bundles, complete, provisioned  # noqa: F401


def test_ota_through_mosquitto_passes_then_a_bad_one_rolls_back(bundles):  # noqa: F811
    broker = MosquittoBroker().start()
    site = Site(concentrators=1, meters=2, broker=(broker.host, broker.port), flash="littlefs",
                keepalive_s=5)
    vc = site.concentrators[0]
    provisioned(vc, bundles["old"])
    vc.power_cycle()
    peer = BoardPeer((broker.host, broker.port), vc.dev, vc.cfg["key"])
    try:
        peer.start()
        assert site.settle(20, until=lambda: peer.hello is not None)
        assert peer.hello["fw"] == "0.1.0"
        manifest, data = bundles["new"]
        peer.offer(manifest, data, chunk=4096, health_s=20)
        assert site.settle(60, until=lambda: (peer.ota_state or {}).get("st") == "confirmed"), \
            (peer.ota_state, vc.fw.hal.lines[-5:])
        assert site.settle(10, until=lambda: peer.hello["fw"] == "0.2.0")
        assert fwboot.read(vc.fs)["run"] == "b" and complete(vc.fs, "b")
        assert peer.chunks_sent >= F.nchunks(len(data), 4096)
        # the next one: after its switch the board hears none of its meters
        def on_boot(v):
            if (v.boot_pointer or {}).get("trial"):
                for sm in v.meters:
                    sm.dead = True
        vc.on_boot = on_boot
        manifest2, data2 = bundles["old"]
        peer.offer(manifest2, data2, chunk=4096, health_s=10)
        assert site.settle(60, until=lambda: (peer.hello.get("ota") or {}).get("st") == "rolled_back"), \
            (peer.ota_state, vc.fw.hal.lines[-5:])
        for sm in vc.meters:
            sm.dead = False
        p = fwboot.read(vc.fs)
        assert p["run"] == "b" and p["failed"] == "a" and peer.hello["fw"] == "0.2.0"
        rd = [r for b in peer.of_type(P.RECORDS) for r in b["recs"]
              if r[1] == P.KIND_EVENT and r[4][0] == P.EV_OTA]
        assert P.OTA_ROLLED_BACK in [r[4][1] for r in rd] or site.settle(
            20, until=lambda: any(r[4][1] == P.OTA_ROLLED_BACK for b in peer.of_type(P.RECORDS)
                                  for r in b["recs"] if r[1] == P.KIND_EVENT and r[4][0] == P.EV_OTA))
    finally:
        peer.stop()
        site.close()
        broker.cleanup()
