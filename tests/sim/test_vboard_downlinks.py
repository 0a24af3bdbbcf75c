"""The field case of issue 14 on the virtual board (the real MicroPython VM
running the provisioned .mpy firmware, a real Mosquitto): a state file
holding the policy `"friendly": "22:00-07:00"` (what an older firmware
saved) boots into the site's policy with an event instead of a boot loop,
and the same policy sent as a command is refused with an event while the
board keeps working and keeps enforcing the last good policy."""
import json
import os

import pytest

from tests.support import ROOT
from concentrator import protocol as P  # noqa: E402
from sim.brokers import MosquittoBroker  # noqa: E402
from sim.load import ConstantLoad  # noqa: E402
from sim.modbus_meter import PrepaidIntMeter  # noqa: E402
from sim.peer import BoardPeer  # noqa: E402
from sim.vboard_bus import VboardBus  # noqa: E402
from sim.vboard_host import VirtualBoard  # noqa: E402
from tools.provision import build_image  # noqa: E402

pytestmark = pytest.mark.timeout(180)
KEY = "6c" * 32
DEV = "vb-friendly-1"
BAD = {"friendly": "22:00-07:00", "min_switch_s": 0}


def _events(peer, code):
    return [r for b in peer.of_type(P.RECORDS) for r in b["recs"]
            if r[1] == P.KIND_EVENT and r[4][0] == code]


def test_friendly_string_on_the_virtual_board(tmp_path):
    meter = PrepaidIntMeter(1, load=ConstantLoad(500), energy_wh=8000)
    broker = MosquittoBroker().start()
    cfg = {"dev": DEV, "key": KEY, "poll_s": 2, "record_s": 10, "status_s": 5,
           "wifi": {"ssid": "site", "password": "pw"}, "policy": {"min_switch_s": 0},
           "broker": {"host": broker.host, "port": broker.port, "keepalive_s": 10},
           "meters": [{"id": "VB-1", "addr": 1, "model": "prepaid-int"}]}
    with open(os.path.join(ROOT, "boards", "esp32-wroom-max485.json")) as f:
        board = json.load(f)
    flash = str(tmp_path / "flash")
    build_image(flash, cfg, board)
    with open(os.path.join(flash, "state.json"), "w") as f:
        json.dump({"boots": 3, "n_res": 5000, "policy": BAD}, f)
    with VboardBus([meter]) as bus:
        vb = VirtualBoard(flash, bus=bus.address, name=DEV)
        peer = BoardPeer((broker.host, broker.port), DEV, KEY)
        try:
            peer.start()
            vb.start()
            peer.wait(lambda: peer.hello, 30, "hello: the board boots")
            assert peer.hello["boot"] == 4
            peer.wait(lambda: _events(peer, P.EV_STATE_REJECTED), 30, "the state event")
            assert [P.STATE_PARTS[r[4][1]] for r in _events(peer, P.EV_STATE_REJECTED)] == ["policy"]
            peer.command("policy", policy=BAD)
            peer.wait(lambda: _events(peer, P.EV_MSG_REJECTED), 30, "the refusal event")
            ev = _events(peer, P.EV_MSG_REJECTED)[0][4]
            assert P.REJECT_REASONS[ev[1]] == "bad_fields" and ev[2] == 1
            # the board goes on: zero credit opens the relay (site policy, no friendly hours)
            n = len(peer.of_type(P.STATUS))
            peer.send(P.CREDIT, m=0, bal=0, e=0)
            peer.wait(lambda: (bus.advance() or True) and not meter.relay_closed, 30,
                      "the relay to open at zero credit")
            peer.wait(lambda: len(peer.of_type(P.STATUS)) > n + 1, 30, "status messages")
            assert _events(peer, P.EV_RELAY_OPEN)
            # and after a power cycle it boots normally (the bad policy was never saved)
            vb.power_cycle()
            h = len(peer.of_type(P.HELLO))
            peer.wait(lambda: len(peer.of_type(P.HELLO)) > h, 30, "hello after the power cycle")
            with open(os.path.join(flash, "state.json")) as f:
                assert json.load(f)["policy"]["friendly"] == []
        finally:
            peer.stop()
            vb.stop()
            broker.cleanup()
