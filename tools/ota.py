"""Firmware bundles for over-the-air updates (docs/protocol.md, "Firmware
update"; the format is concentrator/ota_format.py).

    python -m tools.ota build --fw 0.2.0 --out bundle/        # manifest.json + bundle.bin
    python -m tools.ota push --bundle bundle/ --broker 127.0.0.1:1883 \\
        --dev site-c1 --key HEX [--ca ca.pem] [--health-s 300]

`build` compiles the firmware package with mpy-cross (what provisioning
installs). `push` updates ONE board without the head-end (a bench, a site
without a server yet): it offers the bundle, sends the chunks the board asks
for and reports how the switch and the health check went. A site's boards
are updated by the head-end's rollout (one board, a percentage, all).
"""
import argparse
import json
import os
import sys
import tempfile
import time

from concentrator import ota_format as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bundle(fw, mpy_cross=None, compile=True, umqtt=False, change=None):
    """-> (manifest text, bundle bytes) of the firmware in this tree.
    change(files) may edit the [(path, bytes)] list first (tests)."""
    from tools.provision import UMQTT, _compile, _tool, compile_package, mpy_version
    mpy_cross = _tool("mpy-cross", mpy_cross)
    with tempfile.TemporaryDirectory(prefix="wk-ota-") as tmp:
        files = []
        for rel, path in compile_package(tmp, mpy_cross, compile):
            with open(path, "rb") as f:
                files.append((rel, f.read()))
        if umqtt:
            rel, path = _compile(mpy_cross, UMQTT, tmp, "lib/umqtt/simple.py", compile)
            with open(path, "rb") as f:
                files.append((rel, f.read()))
        mpy = mpy_version(mpy_cross) if compile else 0
    if change is not None:
        files = change(files)
    return F.build(files, fw, mpy)


def save(out_dir, manifest, data):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        f.write(manifest)
    with open(os.path.join(out_dir, "bundle.bin"), "wb") as f:
        f.write(data)


def load(folder):
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = f.read()
    with open(os.path.join(folder, "bundle.bin"), "rb") as f:
        data = f.read()
    F.parse_manifest(manifest)
    return manifest, data


def push(manifest, data, broker, dev, key_hex, ca=None, chunk=F.DEFAULT_CHUNK,
         health_s=F.DEFAULT_HEALTH_S, timeout=900, out=None, user=None, password=None):
    """Update one board; returns its final OTA state ("confirmed", "rolled_back", ...)."""
    from sim.peer import BoardPeer
    out = out or sys.stdout
    bid = F.bundle_id(manifest)
    with BoardPeer(broker, dev, key_hex, tls_ca=ca, user=user, password=password) as peer:
        out.write("waiting for %s to say hello (it does after every (re)connect)...\n" % dev)
        peer.wait(lambda: peer.hello, timeout, "hello from " + dev)
        peer.offer(manifest, data, chunk, health_s)
        out.write("offered %s (%s, %d bytes, %d chunks)\n" % (
            bid, json.loads(manifest)["fw"], len(data), F.nchunks(len(data), chunk)))
        last = None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            st = peer.ota_state or {}
            if st.get("id") == bid and st.get("st") != last:
                last = st.get("st")
                out.write("board: %s%s\n" % (last, (" (%s)" % st["why"]) if st.get("why") else ""))
                if last in ("confirmed", "rolled_back", "refused"):
                    return last
            time.sleep(0.2)
        return last or "no answer"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.ota", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="compile the firmware into a bundle")
    b.add_argument("--fw", required=True, help="version name the board reports")
    b.add_argument("--out", required=True)
    b.add_argument("--umqtt", action="store_true", help="include lib/umqtt/simple.mpy")
    p = sub.add_parser("push", help="update one board over MQTT")
    p.add_argument("--bundle", required=True)
    p.add_argument("--broker", required=True, help="HOST:PORT")
    p.add_argument("--dev", required=True)
    p.add_argument("--key", required=True, help="the board's key (64 hex)")
    p.add_argument("--ca", help="CA file of a TLS broker")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--chunk", type=int, default=F.DEFAULT_CHUNK)
    p.add_argument("--health-s", type=int, default=F.DEFAULT_HEALTH_S)
    p.add_argument("--timeout", type=int, default=900)
    a = ap.parse_args(argv)
    if a.cmd == "build":
        manifest, data = bundle(a.fw, umqtt=a.umqtt)
        save(a.out, manifest, data)
        print("bundle %s: %d files, %d bytes in %s" % (
            F.bundle_id(manifest), len(json.loads(manifest)["files"]), len(data), a.out))
        return 0
    host, _, port = a.broker.rpartition(":")
    manifest, data = load(a.bundle)
    r = push(manifest, data, (host, int(port)), a.dev, a.key, a.ca, a.chunk, a.health_s,
             a.timeout, user=a.user, password=a.password)
    print("result: %s" % r)
    return 0 if r == "confirmed" else 1


if __name__ == "__main__":
    sys.exit(main())
