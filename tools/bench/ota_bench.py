"""ota: a firmware update of one board over simulated Wi-Fi.

The virtual board (the real MicroPython VM running the provisioned .mpy
firmware) polls a simulated meter and reaches a real Mosquitto through
sim/wifi.py (1 Mbit/s each way, 20 ms one way); the server side is
sim/peer.py. The bundle is the firmware as tools/ota.py builds it (mpy-cross
output of the whole package), sent in 4 KB chunks.

    ota_bundle_bytes     size of the bundle (the .mpy files, back to back)
    ota_manifest_bytes   size of the signed manifest
    ota_chunks           chunk messages the board asked for and got
    ota_download_s       wall seconds from the offer to "staged" (verified)
    ota_wall_s           wall seconds from the offer to "confirmed": download,
                         verification, reset, switch, boot, health check
"""
import json
import os
import shutil
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(quick=False):
    from sim.brokers import MosquittoBroker
    from sim.load import ConstantLoad
    from sim.modbus_meter import PrepaidIntMeter
    from sim.peer import BoardPeer
    from sim.vboard_bus import VboardBus
    from sim.vboard_host import VirtualBoard
    from sim.wifi import WifiLink
    from tools.ota import bundle
    from tools.provision import build_image
    key = "3e" * 32
    dev = "ota-bench-%d" % os.getpid()
    tmp = tempfile.mkdtemp(prefix="wk-ota-")
    broker = MosquittoBroker().start()
    wifi = WifiLink((broker.host, broker.port), rate_bps=1000000, latency_ms=20).start()
    meters = [PrepaidIntMeter(1, load=ConstantLoad(300), energy_wh=5000)]
    cfg = {"dev": dev, "key": key, "poll_s": 5, "record_s": 60, "status_s": 30,
           "wifi": {"ssid": "site", "password": "pw"},
           "broker": {"host": wifi.address[0], "port": wifi.address[1], "keepalive_s": 30},
           "meters": [{"id": "B-1", "addr": 1, "model": "prepaid-int"}]}
    with open(os.path.join(ROOT, "boards", "esp32-wroom-max485.json")) as f:
        board = json.load(f)
    flash = os.path.join(tmp, "flash")
    build_image(flash, cfg, board)
    manifest, data = bundle("0.2.0")
    bus = VboardBus(meters).start()
    vb = VirtualBoard(flash, bus=bus.address, name=dev)
    peer = BoardPeer((broker.host, broker.port), dev, key)
    try:
        peer.start()
        vb.start()
        peer.wait(lambda: peer.hello, 60, "hello")
        t0 = time.monotonic()
        peer.offer(manifest, data, chunk=4096, health_s=120)
        peer.wait(lambda: (peer.ota_state or {}).get("st") in ("staged", "confirmed"), 300,
                  "the bundle to be staged")
        t_staged = time.monotonic() - t0
        peer.wait(lambda: (peer.ota_state or {}).get("st") == "confirmed", 300,
                  "the health check")
        t_all = time.monotonic() - t0
    finally:
        peer.stop()
        vb.stop()
        bus.stop()
        wifi.stop()
        broker.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"ota_bundle_bytes": len(data), "ota_manifest_bytes": len(manifest),
            "ota_chunks": peer.chunks_sent, "ota_download_s": round(t_staged, 2),
            "ota_wall_s": round(t_all, 2)}
