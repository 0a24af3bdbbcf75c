"""Over-the-air update with rollback (issue 14, check 4), on the real
firmware over littlefs on the emulated NOR flash: the bundle (the firmware
compiled by mpy-cross, as provisioning installs it) and its signed manifest
arrive in chunks, are staged beside the running version, switched at boot
by one atomic rename (fwboot.py), confirmed by the health check or rolled
back; power cuts at random flash operations during download, switch and
first boot never leave a board without a complete version.

(Under CPython the code that runs is always this firmware package: what
changes with the version is what is on the flash and what the board
reports. The virtual board runs the bundle's own bytecode:
tests/sim/test_ota_vboard.py.)"""
import hashlib
import json
import random

import pytest

from tests.firmware.offline import Board, Server
from concentrator import fwboot  # noqa: E402
from concentrator import ota_format as F  # noqa: E402
from concentrator import protocol as P  # noqa: E402
from sim.flash import PowerCut  # noqa: E402
from tools.ota import bundle  # noqa: E402
from tools.provision import compile_package  # noqa: E402


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    new = bundle("0.2.0")
    old_dir = tmp_path_factory.mktemp("old")
    old = [(rel, open(path, "rb").read()) for rel, path in compile_package(str(old_dir))]
    return {"new": new, "old": F.build(old, "0.1.0")}


def provisioned(vc, old):
    """The flash as tools/provision leaves it: version 0.1.0 in /fw/a."""
    manifest, data = old
    fs = vc.fs
    for d in ("/fw", "/fw/a", "/fw/a/concentrator"):
        fs.mkdir(d)
    pos = 0
    for path, size, sha in json.loads(manifest)["files"]:
        with fs.open("/fw/a/" + path, "wb") as f:
            f.write(data[pos:pos + size])
        pos += size
    with fs.open("/fw/a/manifest.json", "w") as f:
        f.write(manifest)
    fwboot.write(fs, {"run": "a", "fw": "0.1.0"})


def complete(fs, slot):
    """True when the version in `slot` has every file of its manifest, intact."""
    d = fwboot.slot_path(slot)
    try:
        with fs.open(d + "/manifest.json", "r") as f:
            m = F.parse_manifest(f.read())
        for path, size, sha in m["files"]:
            with fs.open(d + "/" + path, "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != sha:
                    return False
    except OSError:
        return False
    return True


def board(tmp_path, bundles, **kw):
    b = Board(tmp_path, meters=2, flash="littlefs", **kw)
    provisioned(b.vc, bundles["old"])
    b.vc.power_cycle()
    srv = Server(b, virtual_net=True)
    srv.exchange(60)
    assert b.fw.fw_version == "0.1.0"
    return b, srv


def ota_events(srv):
    """EV_OTA details the server received (records are deleted once acknowledged)."""
    return [r[4][1] for x in srv.bodies if x["t"] == P.RECORDS for r in x["recs"]
            if r[1] == P.KIND_EVENT and r[4][0] == P.EV_OTA]


def run_until(srv, pred, seconds=3600, step=5):
    for _ in range(seconds // step):
        srv.exchange(step)
        if pred():
            return True
    return False


def test_update_that_passes_its_health_check_stays(tmp_path, bundles):
    b, srv = board(tmp_path, bundles)
    manifest, data = bundles["new"]
    srv.offer(manifest, data, chunk=2048)
    assert run_until(srv, lambda: (fwboot.read(b.vc.fs) or {}).get("confirmed_id"))
    p = fwboot.read(b.vc.fs)
    assert p["run"] == "b" and p["fw"] == "0.2.0" and not p.get("trial")
    assert complete(b.vc.fs, "b") and complete(b.vc.fs, "a")
    assert b.vc.resets == 1, "one reset: the switch"
    srv.exchange(5)
    hello = [x for x in srv.bodies if x["t"] == P.HELLO][-1]
    assert hello["fw"] == "0.2.0"
    srv.exchange(5)
    codes = ota_events(srv)
    assert P.OTA_STAGED in codes and P.OTA_CONFIRMED in codes, codes
    sts = [x["st"] for x in srv.bodies if x["t"] == P.OTA_STATUS]
    assert sts[0] == "download" and "staged" in sts and sts[-1] == "confirmed"
    # the board keeps working on the new version
    assert b.fw.journal.acked_seq == b.fw.journal.last_seq or run_until(
        srv, lambda: b.fw.journal.acked_seq == b.fw.journal.last_seq, 600)


def test_update_that_fails_its_health_check_rolls_back(tmp_path, bundles):
    b, srv = board(tmp_path, bundles)
    manifest, data = bundles["new"]
    srv.offer(manifest, data, chunk=4096, health_s=60)

    def on_boot(vc):
        if (vc.boot_pointer or {}).get("trial"):
            srv.down = True            # the new version never reaches the broker
    b.vc.on_boot = on_boot
    assert run_until(srv, lambda: (fwboot.read(b.vc.fs) or {}).get("failed") == "b", 600)
    p = fwboot.read(b.vc.fs)
    assert p["run"] == "a" and p["fw"] == "0.1.0" and b.vc.resets == 2
    srv.set_down(False)
    srv.exchange(30)
    hello = [x for x in srv.bodies if x["t"] == P.HELLO][-1]
    assert hello["fw"] == "0.1.0"
    assert hello["ota"] == {"id": F.bundle_id(manifest), "st": "rolled_back", "fw": "0.2.0"}
    assert P.OTA_ROLLED_BACK in ota_events(srv) + [r[4][1] for r in b.events(P.EV_OTA)]


def test_a_bundle_not_signed_with_the_device_key_is_refused(tmp_path, bundles):
    b, srv = board(tmp_path, bundles)
    manifest, data = bundles["new"]
    f = F.offer_fields(manifest, bytes(32))
    srv.send(P.COMMAND, **f)
    srv.exchange(5)
    st = [x for x in srv.bodies if x["t"] == P.OTA_STATUS][-1]
    assert st["st"] == "refused" and "signature" in st["why"]
    assert fwboot.read(b.vc.fs) == {"run": "a", "fw": "0.1.0"}


def test_a_spoiled_chunk_is_fetched_again(tmp_path, bundles):
    b, srv = board(tmp_path, bundles)
    manifest, data = bundles["new"]
    spoiled = set()

    def mangle(i, d):
        if i == 7 and i not in spoiled:           # signed fine, but the bytes are wrong
            spoiled.add(i)
            return bytes([d[0] ^ 1]) + d[1:]
        return d
    srv.mangle = mangle
    srv.offer(manifest, data, chunk=2048)
    assert run_until(srv, lambda: (fwboot.read(b.vc.fs) or {}).get("confirmed_id"))
    assert complete(b.vc.fs, "b") and spoiled == {7}


def test_download_resumes_after_a_power_cycle(tmp_path, bundles):
    b, srv = board(tmp_path, bundles)
    manifest, data = bundles["new"]
    srv.window = 4
    srv.offer(manifest, data, chunk=2048)
    srv.exchange(1)
    srv.exchange(1)
    n = b.fw.updater.off
    assert 0 < n < len(data)
    b.vc.power_cycle()
    srv.exchange(30)
    sts = [x for x in srv.bodies if x["t"] == P.HELLO][-1]["ota"]
    assert sts["st"] == "download" and sts["next"] >= n // 2048
    assert run_until(srv, lambda: (fwboot.read(b.vc.fs) or {}).get("confirmed_id"))


def test_power_cuts_during_download_switch_and_first_boot(tmp_path, bundles):
    """>= 200 power cuts at random flash operations; at every boot the
    version that boots is complete, and the update ends confirmed."""
    b, srv = board(tmp_path, bundles)
    vc = b.vc
    manifest, data = bundles["new"]
    rng = random.Random(14)
    boots = []

    def on_boot(v):
        p = v.boot_pointer
        slot = p["run"] if p else ""
        assert complete(v.fs, slot), "boots a complete version (%r)" % (p,)
        boots.append(slot)
    vc.on_boot = on_boot
    srv.offer(manifest, data, chunk=4096, health_s=60)
    cuts0 = vc.cuts
    armed = None
    for rounds in range(6000):
        if vc.cuts - cuts0 >= 210:
            break
        if armed is None:
            vc.flash.cut_after(rng.randint(1, 40))
            armed = vc.cuts
        try:
            srv.exchange(2)
        except PowerCut:                  # while a downlink was handed over
            vc.cuts += 1
            vc.power_cycle()
        if vc.cuts != armed:
            armed = None
        p = fwboot.read(vc.fs) or {}
        if p.get("failed") or p.get("confirmed_id"):
            # done (either way): offer a version again, so the cuts go on
            # hitting OTA work
            vc.flash.cut_after(10 ** 12)
            armed = None
            if p.get("confirmed_id"):
                fwboot.write(vc.fs, {"run": p["run"], "fw": p["fw"]})
                manifest, data = bundles["old" if p["fw"] == "0.2.0" else "new"]
            srv.exchange(1)               # (booted: a board takes messages after boot)
            srv.offer(manifest, data, chunk=4096, health_s=60)
    vc.flash.cut_after(10 ** 12)
    assert vc.cuts - cuts0 >= 200, vc.cuts - cuts0
    assert "b" in boots and "a" in boots, "cuts hit both versions' boots"
    # without cuts the last offer completes
    srv.exchange(1)
    srv.offer(manifest, data, chunk=4096, health_s=60)
    assert run_until(srv, lambda: (fwboot.read(vc.fs) or {}).get("confirmed_id"), 3600)
    p = fwboot.read(vc.fs)
    assert complete(vc.fs, p["run"])
