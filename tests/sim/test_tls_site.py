"""Issue 13, check 4's last part: the site simulator end to end over TLS
against a Mosquitto configured by `wattkeeper broker-config` (per-device
credentials, ACLs, client ids bound to user names, the CA it generated):
the real firmware of a simulated board connects with its own credentials and
the CA of its config, the head-end with its own on its listener; readings
are stored, billed and acknowledged, and the board's credit comes back."""
import os
import shutil
import tempfile

import pytest
from sqlmodel import select

from headend.cli.broker_cmd import default_owner
from headend.core import db, migrate
from headend.ingest import Ingest
from headend.models import LedgerEntry, Reading
from headend.services.seed import seed_site
from headend.transport import broker_config as bc
from headend.transport.broker import free_port
from headend.transport.mqtt import MqttService
from sim.brokers import MosquittoBroker
from sim.site import Site


@pytest.fixture
def tls_site(tmp_path):
    out = tempfile.mkdtemp(prefix="wk-tls-site-")
    os.chmod(out, 0o755)          # Mosquitto reads it after dropping root
    dev_port = free_port()
    site = Site(concentrators=1, meters=2, broker=("127.0.0.1", dev_port), workdir=str(tmp_path / "site"),
                keepalive_s=5)
    conf = bc.write_site(out, [vc.dev for vc in site.concentrators], ["127.0.0.1"], port=dev_port,
                         headend_port=free_port(), bind="127.0.0.1", owner=default_owner(),
                         passwords=site.broker_passwords())
    broker = MosquittoBroker(port=dev_port, conf=conf.path("conf")).start()
    yield site, conf
    site.close()
    broker.cleanup()
    shutil.rmtree(out, ignore_errors=True)


def test_site_runs_end_to_end_over_tls_with_broker_config(tls_site, tmp_path):
    site, conf = tls_site
    eng = db.make_engine("sqlite:///" + str(tmp_path / "tls.db"))
    migrate.upgrade(eng)
    sf = db.session_factory(eng)
    with sf() as s:
        seed_site(s, site.name, site.provisioning(), tariff_price_mu_per_kwh=6000, opening_balance_mu=10 ** 7)
        s.commit()
    svc = MqttService(Ingest(sf), conf.headend_url(), ca_file=conf.path("ca_cert"), session_factory=sf).start()
    vc = site.concentrators[0]
    try:
        assert svc.wait_ready(10), svc.snapshot()
        with open(conf.path("ca_cert"), "rb") as f, vc.fs.open("/ca.pem", "wb") as g:
            g.write(f.read())
        vc.cfg["broker"]["ca"] = "/ca.pem"
        assert vc.cfg["broker"]["user"] == vc.dev and vc.cfg["broker"]["password"]
        vc.power_on()
        assert site.settle(20, until=lambda: vc.fw.link.connected), vc.fw.link.last_error
        site.run(3600, tick_s=5)
        assert site.settle(30, until=lambda: vc.fw.journal.last_seq > 4 and
                           vc.fw.journal.acked_seq == vc.fw.journal.last_seq), vc.fw.link.last_error
        with sf() as s:
            readings = s.exec(select(Reading)).all()
            charged = s.exec(select(LedgerEntry).where(LedgerEntry.kind == "consumption")).all()
        assert len(readings) >= 4 and all(r.billed or r.flags & 1 for r in readings)
        assert charged, "consumption billed"
        # the credit came back down over TLS: each board meter holds a synced balance (None until then)
        assert all(vc.fw.credits.known(i) for i in range(len(vc.fw.meters)))
    finally:
        svc.stop()
        eng.dispose()
