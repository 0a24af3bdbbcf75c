"""Provision a concentrator: turn a board with bare MicroPython into a working
Wattkeeper concentrator, over its USB serial port, with mpremote.

    python -m tools.provision --port /dev/ttyUSB0 --config site.json \\
        [--board boards/esp32-wroom-max485.json] [--umqtt local|mip]

Steps: check the configuration; compile the firmware with mpy-cross (.mpy;
boot.py and main.py stay .py); ask the board its MicroPython bytecode version
and refuse a mismatch; install umqtt.simple (`mpremote mip install
umqtt.simple`, or offline the copy that tools/bootstrap.sh put in
build/mplib, compiled); copy the firmware, the board file as /board.json and
the site configuration as /config.json; reset; then read the board's status
back through the console (the firmware runs until MQTT is up and prints
status()). Progress goes to stdout; a failure ends with one line on stderr
starting with "provision: " and exit code 1.

site.json is the board's /config.json: {"dev", "key" (64 hex), "wifi":
{"ssid", "password"}, "broker": {"host", "port", ...}, "meters": [...],
"poll_s", "record_s", ...} (see firmware/concentrator/config.py).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
UMQTT = os.path.join(ROOT, "build", "mplib", "umqtt", "simple.py")
DEFAULT_BOARD = os.path.join(ROOT, "boards", "esp32-wroom-max485.json")
BIN = os.path.dirname(sys.executable)


class ProvisionError(Exception):
    pass


def _tool(name, given=None):
    if given:
        return given
    p = os.path.join(BIN, name)
    return p if os.path.exists(p) else (shutil.which(name) or name)


# ---- the image --------------------------------------------------------------
def mpy_version(mpy_cross):
    """Version of the .mpy bytecode mpy-cross emits (the header's 2nd byte; for
    bytecode without native code that is all a board checks)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "v.py")
        with open(src, "w") as f:
            f.write("x = 1\n")
        out = os.path.join(tmp, "v.mpy")
        r = subprocess.run([mpy_cross, "-o", out, src], capture_output=True, text=True)
        if r.returncode != 0 or not os.path.exists(out):
            raise ProvisionError("mpy-cross does not work: %s" % (r.stderr.strip() or r.returncode))
        with open(out, "rb") as f:
            h = f.read(4)
    if len(h) < 3 or h[0:1] != b"M":
        raise ProvisionError("mpy-cross wrote no .mpy header")
    return h[1]


# mpy-cross options of every deployed module: no source line numbers (a
# traceback names the function, not the line) saves ~8 % of the bytecode,
# which lives in the heap of a board without frozen modules
MPY_FLAGS = ("-X", "no-source-lines")
SERVER_ONLY = ("keyring.py",)     # shared modules the board never imports
SLOT = "fw/a"                     # the provisioned version's folder (fwboot.py)


def compile_package(out_dir, mpy_cross=None, compile=True, prefix="concentrator"):
    """The firmware package compiled with mpy-cross into out_dir/prefix.
    Returns [(relative path, file path)] in a stable order."""
    mpy_cross = _tool("mpy-cross", mpy_cross)
    os.makedirs(os.path.join(out_dir, prefix), exist_ok=True)
    out = []
    pkg = os.path.join(FIRMWARE, "concentrator")
    for name in sorted(os.listdir(pkg)):
        if name.endswith(".py") and name not in SERVER_ONLY:
            rel = prefix + "/" + name
            out.append(_compile(mpy_cross, os.path.join(pkg, name), out_dir, rel, compile))
    return out


def _compile(mpy_cross, src, out_dir, rel, compile=True):
    dst_rel = rel[:-3] + ".mpy" if compile else rel
    dst = os.path.join(out_dir, dst_rel)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if not compile:
        shutil.copy(src, dst)
        return dst_rel, dst
    r = subprocess.run([mpy_cross] + list(MPY_FLAGS) + ["-o", dst, "-s", os.path.basename(src), src],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise ProvisionError("mpy-cross failed on %s: %s" % (src, r.stderr.strip()))
    return dst_rel, dst


def build_image(out_dir, config, board, mpy_cross=None, umqtt=True, compile=True):
    """Write what goes onto the board's flash into out_dir (its root):
    boot.py, main.py, fwboot.mpy (the version switch, never updated over the
    air), fw/a/concentrator/*.mpy (the running version, /boot.json names it),
    lib/umqtt/simple.mpy (umqtt=True), board.json, config.json.
    Returns the list of relative paths."""
    from concentrator import __version__
    mpy_cross = _tool("mpy-cross", mpy_cross)
    files = []
    os.makedirs(out_dir, exist_ok=True)
    for name in ("boot.py", "main.py"):
        shutil.copy(os.path.join(FIRMWARE, name), os.path.join(out_dir, name))
        files.append(name)
    files.append(_compile(mpy_cross, os.path.join(FIRMWARE, "concentrator", "fwboot.py"),
                          out_dir, "fwboot.py", compile)[0])
    files += [rel for rel, _ in compile_package(os.path.join(out_dir, SLOT), mpy_cross, compile)]
    files = [f if not f.startswith("concentrator/") else SLOT + "/" + f for f in files]
    if umqtt:
        if not os.path.exists(UMQTT):
            raise ProvisionError("no %s: run tools/bootstrap.sh, or use --umqtt mip" % UMQTT)
        files.append(_compile(mpy_cross, UMQTT, out_dir, "lib/umqtt/simple.py", compile)[0])
    with open(os.path.join(out_dir, "boot.json"), "w") as f:
        json.dump({"run": "a", "fw": __version__}, f)
    with open(os.path.join(out_dir, "board.json"), "w") as f:
        json.dump(board, f)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f)
    files += ["boot.json", "board.json", "config.json"]
    return files


def check_config(config, board):
    from concentrator.config import ConfigError, check, check_board
    try:
        c = check(config)
        check_board(board)
    except ConfigError as e:
        raise ProvisionError("config: %s" % e)
    from concentrator import model_check, schema
    _, bad = model_check.table(c.get("models"))
    if bad:
        raise ProvisionError("config: models.%s: %s" % bad[0])
    if c.get("policy") is not None:
        try:
            schema.check_policy(c["policy"])
        except ValueError as e:
            raise ProvisionError("config: %s" % e)
    if not (c.get("wifi") or {}).get("ssid"):
        raise ProvisionError("config: wifi.ssid missing (the board needs a network)")
    return c


# ---- the board ----------------------------------------------------------------
class Board:
    def __init__(self, port, mpremote=None, timeout=20):
        self.port = port
        self.mpremote = _tool("mpremote", mpremote)
        self.timeout = timeout

    def run(self, *args, timeout=None, what="board"):
        cmd = [self.mpremote, "connect", self.port, "resume"] + list(args)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired:
            raise ProvisionError("no board answers on %s (%s timed out: is MicroPython on it, "
                                 "and no other program using the port?)" % (self.port, what))
        if r.returncode != 0:
            err = (r.stderr.strip() or r.stdout.strip()).splitlines()
            msg = err[-1] if err else "exit code %d" % r.returncode
            if "could not" in msg.lower() or "failed to access" in msg.lower() or \
                    "no device" in msg.lower() or "raw repl" in msg.lower():
                raise ProvisionError("no board answers on %s: %s" % (self.port, msg))
            raise ProvisionError("%s: %s" % (what, msg))
        return r.stdout

    def exec(self, code, timeout=None, what="board"):
        return self.run("exec", code, timeout=timeout, what=what)


_PREPARE = """
import os
def rm(p):
    try:
        if os.stat(p)[0] & 0x4000:
            for n in os.listdir(p):
                rm(p + '/' + n)
            os.rmdir(p)
        else:
            os.remove(p)
    except OSError:
        pass
rm('/concentrator')
rm('/fw')
for d in ('/fw', '/fw/a', '/fw/a/concentrator', '/lib', '/lib/umqtt'):
    try:
        os.mkdir(d)
    except OSError:
        pass
for f in ('/main.py', '/boot.py', '/fwboot.mpy', '/boot.json', '/boot.json.tmp', '/ota.json',
          '/lib/umqtt/simple.py'):
    rm(f)
print('ok')
"""


def provision(port, config, board, umqtt="local", mpy_cross=None, mpremote=None,
              ready_timeout=20, out=None, ca=None):
    """Provision the board on `port`. Returns the status text the board printed.
    ca: the broker's CA certificate (PEM or DER) to install as /ca.pem (TLS).
    Raises ProvisionError with a one-line reason."""
    out = out or sys.stdout
    if ca:
        if not os.path.exists(ca):
            raise ProvisionError("CA file %s not found" % ca)
        config = json.loads(json.dumps(config))
        config.setdefault("broker", {})["ca"] = "/ca.pem"
    steps = 7

    def say(k, text):
        out.write("[%d/%d] %s\n" % (k, steps, text))
        out.flush()
    if not os.path.exists(port):
        raise ProvisionError("port %s not found (board not plugged in? see `mpremote devs`)" % port)
    c = check_config(config, board)
    say(1, "configuration: dev %s, %d meters, broker %s:%s" % (
        c["dev"], len(c["meters"]), c["broker"]["host"], c["broker"].get("port", 1883)))
    mpy_cross = _tool("mpy-cross", mpy_cross)
    ver = mpy_version(mpy_cross)
    b = Board(port, mpremote)
    info = b.exec("import sys\nprint(sys.implementation._mpy, sys.platform, "
                  "'.'.join(str(v) for v in sys.implementation.version[:3]))",
                  timeout=15, what="asking the board its version").split()
    if len(info) < 3 or not info[0].isdigit():
        raise ProvisionError("no board answers on %s (unexpected reply %r)" % (port, " ".join(info)))
    mpy = int(info[0]) & 0xFF
    if mpy != ver:
        raise ProvisionError(
            "MicroPython %s on the board loads .mpy v%d, mpy-cross makes v%d: flash a "
            "matching MicroPython or install the matching mpy-cross" % (info[2], mpy, ver))
    say(2, "board answers: MicroPython %s on %s, .mpy v%d" % (info[2], info[1], ver))
    with tempfile.TemporaryDirectory(prefix="wk-image-") as img:
        files = build_image(img, config, board, mpy_cross, umqtt=(umqtt == "local"))
        size = sum(os.path.getsize(os.path.join(img, f)) for f in files)
        say(3, "compiled %d files (%d KB) with mpy-cross" % (len(files), (size + 1023) // 1024))
        if b.exec(_PREPARE, what="preparing the flash").strip() != "ok":
            raise ProvisionError("could not prepare the board's flash")
        if umqtt == "mip":
            say(4, "installing umqtt.simple with mip (the board needs the internet)")
            b.run("mip", "install", "umqtt.simple", timeout=120, what="mip install umqtt.simple")
        else:
            say(4, "installing umqtt.simple (lib/umqtt/simple.mpy)")
        args = []
        code = [f for f in files if f not in ("board.json", "config.json", "boot.json")]
        for f in code:
            args += ["fs", "cp", os.path.join(img, f), ":" + f, "+"]
        b.run(*args[:-1], timeout=120, what="copying the firmware")
        say(5, "copied the firmware (%d files)" % len(code))
        b.run("fs", "cp", os.path.join(img, "board.json"), ":board.json", "+",
              "fs", "cp", os.path.join(img, "config.json"), ":config.json", "+",
              "fs", "cp", os.path.join(img, "boot.json"), ":boot.json",
              what="copying board.json, config.json and boot.json")
        if ca:
            b.run("fs", "cp", ca, ":ca.pem", what="copying the broker's CA certificate")
        say(6, "copied board.json (%s) and config.json" % board.get("name", "?"))
    # reset, then let the firmware start and report
    b.run("reset", what="reset")
    time.sleep(1.0)
    text = b.exec("from concentrator import board\nboard.wait_ready(%d)" % ready_timeout,
                  timeout=ready_timeout + 20, what="reading the status")
    ok_dev = ("dev %s " % c["dev"]) in text
    if "not started" in text or not ok_dev:
        last = [ln for ln in text.splitlines() if ln.strip()]
        raise ProvisionError("the firmware did not start: %s" % (last[-1] if last else "no output"))
    b.run("reset", what="reset")      # leave it running on its own
    if "mqtt connected" not in text:
        raise ProvisionError("firmware runs but MQTT is not connected to %s:%s (check Wi-Fi and "
                             "broker settings; console: net())" % (
                                 c["broker"]["host"], c["broker"].get("port", 1883)))
    say(7, "board status:")
    for ln in text.splitlines():
        if ln.strip():
            out.write("      " + ln + "\n")
    out.flush()
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.provision",
                                 description="provision a Wattkeeper concentrator over USB serial")
    ap.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    ap.add_argument("--config", required=True, help="site configuration (the board's /config.json)")
    ap.add_argument("--board", default=DEFAULT_BOARD, help="board file (boards/*.json)")
    ap.add_argument("--umqtt", choices=("local", "mip"), default="local",
                    help="umqtt.simple from build/mplib (default) or `mpremote mip install`")
    ap.add_argument("--mpy-cross", help="mpy-cross binary")
    ap.add_argument("--mpremote", help="mpremote binary")
    ap.add_argument("--ca", help="the broker's CA certificate: installed as /ca.pem, TLS on")
    ap.add_argument("--ready-timeout", type=int, default=20,
                    help="seconds the firmware gets to connect before the status is read")
    a = ap.parse_args(argv)
    try:
        try:
            with open(a.config) as f:
                config = json.load(f)
        except (OSError, ValueError) as e:
            raise ProvisionError("cannot read %s: %s" % (a.config, e))
        try:
            with open(a.board) as f:
                board = json.load(f)
        except (OSError, ValueError) as e:
            raise ProvisionError("cannot read %s: %s" % (a.board, e))
        provision(a.port, config, board, a.umqtt, a.mpy_cross, a.mpremote, a.ready_timeout,
                  ca=a.ca)
    except ProvisionError as e:
        sys.stdout.flush()
        print("provision: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("provision: interrupted", file=sys.stderr)
        return 1
    print("provisioned %s on %s" % (config.get("dev"), a.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
