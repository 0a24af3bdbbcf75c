"""The board connects over TLS with the CA named in its config (issue 13,
the firmware's part): a Mosquitto with a TLS listener, a CA and a server
certificate made in the test (openssl), the real firmware under CPython
(the simulator's HAL wraps the board's socket with CPython's ssl; the board
uses MicroPython's). The certificate is really checked: a board given
another CA does not connect."""
import os
import shutil
import tempfile

import pytest

from concentrator import protocol as P
from sim.brokers import MosquittoBroker, free_port
from sim.peer import BoardPeer
from sim.site import Site
from tests.sim.tls_certs import make_ca, tls_listener


@pytest.fixture(scope="module")
def tls_broker():
    d = tempfile.mkdtemp(prefix="wk-ca-")        # (pytest's folders are private to root)
    os.chmod(d, 0o755)
    files = make_ca(os.path.join(d, "good"))
    files["other_ca"] = make_ca(os.path.join(d, "other"), "someone else")["ca"]
    port = free_port()
    b = MosquittoBroker(extra=tls_listener(port, files)).start()
    b.tls_port = port
    b.files = files
    yield b
    b.cleanup()
    shutil.rmtree(d, ignore_errors=True)


def _site(tls_broker, ca_file, port, tmp_path, der=False):
    site = Site(concentrators=1, meters=2, broker=("127.0.0.1", port), workdir=str(tmp_path),
                keepalive_s=5)
    vc = site.concentrators[0]
    with open(ca_file, "rb") as f:
        data = f.read()
    with vc.fs.open("/ca.pem", "wb") as f:
        f.write(data)
    vc.cfg["broker"]["ca"] = "/ca.pem"
    vc.power_on()
    return site, vc


@pytest.mark.parametrize("fmt", ["pem", "der"])
def test_board_speaks_tls_to_mosquitto_with_the_ca_of_its_config(tls_broker, tmp_path, fmt):
    ca = tls_broker.files["ca" if fmt == "pem" else "ca_der"]
    site, vc = _site(tls_broker, ca, tls_broker.tls_port, tmp_path)
    peer = BoardPeer(("127.0.0.1", tls_broker.tls_port), vc.dev, vc.cfg["key"],
                     tls_ca=tls_broker.files["ca"])
    try:
        peer.start()
        assert site.settle(20, until=lambda: peer.hello is not None), vc.fw.link.last_error
        site.run(1800, tick_s=5)
        assert site.settle(20, until=lambda: vc.fw.journal.last_seq > 2 and
                           vc.fw.journal.acked_seq == vc.fw.journal.last_seq), \
            "records acknowledged over TLS"
        # and downlinks arrive through it
        now = vc.fw.hal.time()
        peer.command("relay", m=1, state="open", until=now + 3600)
        assert site.settle(10, until=lambda: vc.fw.meters.relay_closed[1] is False)
        assert peer.refused == {}
    finally:
        peer.stop()
        site.close()


def test_a_board_with_another_ca_does_not_connect(tls_broker, tmp_path):
    site, vc = _site(tls_broker, tls_broker.files["other_ca"], tls_broker.tls_port, tmp_path)
    try:
        site.settle(3, until=lambda: vc.fw.link.failures >= 1)
        assert not vc.fw.link.connected
        assert "certificate" in vc.fw.link.last_error.lower(), vc.fw.link.last_error
    finally:
        site.close()


def test_tls_config_on_a_plain_port_fails_cleanly(tls_broker, tmp_path):
    site, vc = _site(tls_broker, tls_broker.files["ca"], tls_broker.port, tmp_path)
    try:
        site.settle(3, until=lambda: vc.fw.link.failures >= 1)
        assert not vc.fw.link.connected and vc.fw.link.failures >= 1
        assert vc.fw.steps > 0 and P.topic_up(vc.dev)
    finally:
        site.close()
