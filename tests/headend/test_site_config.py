"""HEADEND-TODO 6 and 7 (issue 13/14): `wattkeeper provision concentrator`
emits the board's `broker` block (TLS, its own credential from the site's
broker folder) and the site's meter models; the meter import knows the
site's models (checked with the board's own model_check)."""
import json
import os
import queue
import shutil
import ssl
import subprocess
import sys
import tempfile

import paho.mqtt.client as mqtt
import pytest

from concentrator import config as board_config
from headend.cli.broker_cmd import default_owner
from headend.transport import broker_config as bc
from headend.transport.broker import free_port
from headend.models import AuditLog
from headend.services import property_settings
from headend.services.actor import system_actor
from headend.services.errors import Invalid
from sim.brokers import MosquittoBroker
from sqlmodel import select
from tests.support import ROOT

# the unseen meter of issue 14: energy in holding registers, voltage as word-swapped floats
ACME = {"proto": "modbus", "baud": 9600, "parity": "N", "timeout_ms": 1000,
        "blocks": [{"fc": 3, "regs": [{"name": "energy_wh", "addr": 256, "type": "u32", "scale": 10},
                                      {"name": "power_w", "addr": 260, "type": "s16"}]},
                   {"fc": 4, "words": "lo", "regs": [{"name": "voltage_dv", "addr": 0, "type": "f32",
                                                      "scale": 10}]}],
        "billing": ["energy_wh", "power_w"], "extra": ["voltage_dv"], "extra_every": 1}


def cli(url, *args, ok=True):
    r = subprocess.run([sys.executable, "-m", "headend.cli", "--db", url, *args], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    if ok:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def last_json(text):
    return json.loads(text[text.index("{"):text.rindex("}") + 1])


@pytest.fixture
def db_url(tmp_path):
    return "sqlite:///%s" % (tmp_path / "wk.db")


@pytest.fixture
def models_file(tmp_path):
    p = tmp_path / "models.json"
    p.write_text(json.dumps({"models": {"acme-dds2": ACME}}))
    return str(p)


def test_site_models_go_into_the_board_config_and_the_meter_import(db_url, models_file, tmp_path):
    cli(db_url, "provision", "property", "Acme Court")
    # before the site knows the model, a scan naming it is refused, naming the known ones
    out = last_json(cli(db_url, "provision", "concentrator", "--property", "Acme Court", "--dev", "acme-1").stdout)
    assert "models" not in out["config"]
    r = cli(db_url, "provision", "models", "--property", "Acme Court", models_file)
    assert last_json(r.stdout)["models"] == ["acme-dds2"]
    out = last_json(cli(db_url, "provision", "config", "--dev", "acme-1").stdout)
    cfg = out["config"]
    assert cfg["dev"] == "acme-1" and cfg["models"] == {"acme-dds2": ACME} and cfg["tz_offset_s"] == 28800
    # the config is one the board takes (with its meters and Wi-Fi added by tools/provision)
    from tools.provision import check_config
    board = json.load(open(os.path.join(ROOT, "boards", "esp32-wroom-max485.json")))
    full = dict(cfg, wifi={"ssid": "s", "password": "p"}, meters=[{"id": "X7", "addr": 7, "model": "acme-dds2"}])
    assert check_config(full, board)["models"]["acme-dds2"]["proto"] == "modbus"

    # a bad model is refused with the board's own reason, the good ones stay
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"acme-dds2": dict(ACME, blocks=[{"fc": 5, "regs": ACME["blocks"][0]["regs"]}])}))
    r = cli(db_url, "provision", "models", "--property", "Acme Court", str(bad), ok=False)
    assert r.returncode != 0 and "models.acme-dds2" in r.stderr and "fc" in r.stderr
    assert last_json(cli(db_url, "provision", "config", "--dev", "acme-1").stdout)["config"]["models"] == \
        {"acme-dds2": ACME}


def test_meter_import_uses_the_site_models(app, admin):
    sid = admin.post("/api/properties", json={"name": "Acme Plaza"}).json()["id"]
    c = admin.post("/api/concentrators", json={"property_id": sid, "dev": "acme-imp"})
    assert c.status_code == 201, c.text
    scan = '{"addr": 7, "proto": "modbus", "model": "acme-dds2", "id": "X7"}\n'
    r = admin.post("/api/concentrators/acme-imp/meters/import", content=scan)
    assert r.status_code == 422 and "unknown model 'acme-dds2'" in r.text
    with app.state.session_factory() as s:
        property_settings.set_meter_models(s, system_actor(s), sid, {"acme-dds2": ACME})
        s.commit()
        row = s.exec(select(AuditLog).where(AuditLog.action == "property.meter_models")).one()
        assert row.property_id == sid
    r = admin.post("/api/concentrators/acme-imp/meters/import", content=scan)
    assert r.status_code == 200, r.text
    assert r.json()["board_meters"] == [{"id": "X7", "addr": 7, "model": "acme-dds2"}]
    # the firmware's own models still work beside the site's
    r = admin.post("/api/concentrators/acme-imp/meters/import",
                   content='{"addr": 8, "proto": "modbus", "model": "sdm120"}\n')
    assert r.status_code == 200, r.text


def test_bad_site_models_are_refused_with_the_boards_reason(app, admin):
    sid = admin.post("/api/properties", json={"name": "Acme Bad"}).json()["id"]
    with app.state.session_factory() as s:
        for models, why in (([], "JSON object"), ({"x": {"proto": 7}}, "models.x"),
                            ({"m%d" % i: ACME for i in range(17)}, "at most 16")):
            with pytest.raises(Invalid, match=why):
                property_settings.set_meter_models(s, system_actor(s), sid, models)
        assert property_settings.model_table(s, sid).get("acme-dds2") is None


def test_provisioning_emits_a_broker_block_the_broker_accepts(db_url, tmp_path):
    out = tempfile.mkdtemp(prefix="wk-broker-")   # (not under pytest's 0700 folder)
    os.chmod(out, 0o755)          # Mosquitto reads it after dropping root
    site = bc.write_site(out, ["old-1"], ["127.0.0.1"], port=free_port(), headend_port=free_port(),
                         bind="127.0.0.1", owner=default_owner())
    old_password = site.device_passwords["old-1"]
    cli(db_url, "provision", "property", "Tls Court")
    r = cli(db_url, "provision", "concentrator", "--property", "Tls Court", "--dev", "new-1", "--broker-dir", out)
    cfg = last_json(r.stdout)["config"]
    b = cfg["broker"]
    assert b["user"] == "new-1" and b["ca"] == "/ca.pem" and b["port"] == site.devices_listener.port
    assert b["host"] == "127.0.0.1" and len(b["password"]) >= 16
    assert "ca.pem" in r.stdout and "kill -HUP" in r.stdout
    # the board takes it: TLS on its port, the CA from its flash
    c = board_config.check(dict(cfg, meters=[]))
    assert c["broker"]["port"] == site.devices_listener.port and c["broker"]["ca"] == "/ca.pem"
    # the folder knows the new board, the old board keeps its password
    creds = bc.read_credentials(out)
    assert creds["devices"]["old-1"] == old_password and creds["devices"]["new-1"] == b["password"]
    assert creds["boards"]["new-1"]["password"] == b["password"]
    # asking again gives the same credential (nothing rotated)
    again = last_json(cli(db_url, "provision", "config", "--dev", "new-1", "--broker-dir", out).stdout)
    assert again["config"]["broker"] == b
    # the real broker lets the new board in with exactly that credential, and refuses a wrong one
    broker = MosquittoBroker(port=site.devices_listener.port, conf=site.path("conf")).start()
    try:
        assert _connect(site, "new-1", b["password"]) == 0
        assert _connect(site, "new-1", "wrong-" + b["password"]) != 0
        assert _connect(site, "old-1", old_password) == 0
    finally:
        broker.cleanup()
        shutil.rmtree(out, ignore_errors=True)


def test_provisioning_without_a_broker_configuration_says_what_to_do(db_url, tmp_path):
    cli(db_url, "provision", "property", "Empty Court")
    r = cli(db_url, "provision", "concentrator", "--property", "Empty Court", "--dev", "e-1",
            "--broker-dir", str(tmp_path / "nothing"), ok=False)
    assert r.returncode != 0 and "wattkeeper broker-config" in r.stderr
    # nothing was created: the same command works once the broker is configured
    assert "e-1" not in cli(db_url, "provision", "config", "--dev", "e-1", ok=False).stdout


def _connect(site, user, password):
    """CONNACK reason code of a TLS connection as `user` (0: accepted)."""
    got = queue.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user)
    c.username_pw_set(user, password)
    c.tls_set(ca_certs=site.path("ca_cert"), cert_reqs=ssl.CERT_REQUIRED)
    c.on_connect = lambda cl, ud, flags, rc, props=None: got.put(rc.value if hasattr(rc, "value") else rc)
    c.connect("127.0.0.1", site.devices_listener.port)
    c.loop_start()
    try:
        return got.get(timeout=10)
    except queue.Empty:
        return -1
    finally:
        c.loop_stop()
        c.disconnect()
