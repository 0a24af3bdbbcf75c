"""The virtual board (sim/vboard) seen from the host, the way a technician sees an ESP32:
real MicroPython VM under Node, on a pseudo-terminal made by socat, driven by the real
mpremote and pyserial; umqtt.simple inside the board talks to the real Mosquitto."""
import hashlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid

import pytest
import serial

from tests.support import ROOT

from sim.vboard_host import VirtualBoard  # noqa: E402

MPREMOTE = os.path.join(os.path.dirname(sys.executable), "mpremote")
BROKER = ("127.0.0.1", 1883)

pytestmark = pytest.mark.timeout(120)

TIMINGS = {}


@pytest.fixture(scope="module", autouse=True)
def report_timings():
    yield
    if TIMINGS:   # shown with -s: what one mpremote call costs against the virtual board
        print("\nmpremote call times against the virtual board:")
        for k, v in sorted(TIMINGS.items()):
            print("  %-14s n=%-3d median %.3f s  max %.3f s" % (k, len(v), sorted(v)[len(v) // 2], max(v)))


def mpremote(vb, *args, check=True, timeout=30):
    t0 = time.monotonic()
    r = subprocess.run([MPREMOTE, "connect", vb.port, *args], capture_output=True, text=True,
                       timeout=timeout)
    TIMINGS.setdefault(args[0] if args[0] != "fs" else "fs " + args[1], []).append(
        time.monotonic() - t0)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


@pytest.fixture
def board(tmp_path):
    vb = VirtualBoard(str(tmp_path / "flash")).start()
    yield vb
    vb.stop()
    assert not vb.running()


@pytest.fixture(scope="module")
def umqtt_src():
    """micropython-lib's umqtt/simple.py, unchanged (tools/bootstrap.sh puts it in build/mplib)."""
    path = os.path.join(ROOT, "build", "mplib", "umqtt", "simple.py")
    assert os.path.exists(path), "run tools/bootstrap.sh: it fetches umqtt.simple into build/mplib"
    return path


def test_mpremote_fs_exec_eval_run(board, tmp_path):
    src = tmp_path / "hello.py"
    src.write_text("print('hello', 6 * 7)\n")
    assert mpremote(board, "exec", "print(1 + 2)").stdout == "3\n"
    assert mpremote(board, "eval", "2 ** 10").stdout == "1024\n"
    mpremote(board, "fs", "cp", str(src), ":hello.py")
    assert "hello.py" in mpremote(board, "fs", "ls").stdout
    assert mpremote(board, "fs", "cat", "hello.py").stdout == src.read_text()
    assert mpremote(board, "run", str(src)).stdout == "hello 42\n"
    # the file really is in the flash folder on the host
    assert (tmp_path / "flash" / "hello.py").read_text() == src.read_text()
    # the board's flash is the root, as on an ESP32: nothing of the host shows
    assert mpremote(board, "exec", "import os; print(sorted(os.listdir('/')))").stdout == \
        "['hello.py']\n"


def test_missing_file_gives_mpremote_normal_error(board):
    r = mpremote(board, "fs", "cat", ":nope.txt", check=False)
    assert r.returncode == 1
    assert "nope.txt: No such file or directory" in r.stderr
    r = mpremote(board, "fs", "rm", ":nope.txt", check=False)
    assert "No such file or directory" in r.stderr
    mpremote(board, "fs", "mkdir", ":d")
    r = mpremote(board, "fs", "mkdir", ":d", check=False)
    assert "File exists" in r.stderr
    r = mpremote(board, "exec", "import os, errno\ntry:\n os.stat('x')\nexcept OSError as e:\n"
                 " print(e.errno == errno.ENOENT)")
    assert r.stdout == "True\n"


def test_df_reports_a_small_flash(board, tmp_path):
    def df():
        out = mpremote(board, "df").stdout.splitlines()
        row = [ln for ln in out if ln.rstrip().endswith(" /")][0].split()
        return int(row[1]), int(row[2]), int(row[3])
    size, used, avail = df()
    assert size == 1536 * 1024 and used + avail == size and used < 64 * 1024
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(40000))
    mpremote(board, "fs", "cp", str(big), ":big.bin")
    size2, used2, avail2 = df()
    assert size2 == size and used2 - used >= 40000 and avail2 == avail - (used2 - used)
    assert hashlib.sha256(big.read_bytes()).hexdigest() in \
        mpremote(board, "fs", "sha256sum", ":big.bin").stdout


def test_soft_reset_runs_boot_and_main_and_forgets_ram(board, tmp_path):
    (tmp_path / "boot.py").write_text("import builtins\nbuiltins.BOOTED = 1\n")
    (tmp_path / "main.py").write_text("f = open('count.txt', 'a'); f.write('x'); f.close()\n")
    mpremote(board, "fs", "cp", str(tmp_path / "boot.py"), ":boot.py", "+",
             "fs", "cp", str(tmp_path / "main.py"), ":main.py")
    mpremote(board, "exec", "import builtins; builtins.MARK = 5")
    # "resume": no soft reset on connect, the VM still has what the last call left
    assert mpremote(board, "resume", "exec", "print(MARK)").stdout == "5\n"
    mpremote(board, "soft-reset")
    # a fresh VM: RAM forgotten, boot.py ran
    r = mpremote(board, "resume", "exec", "import builtins; print(hasattr(builtins, 'MARK'), BOOTED)")
    assert r.stdout == "False 1\n"
    # main.py runs on a friendly-REPL soft reboot (Ctrl-D at >>>), not in raw REPL
    with serial.Serial(board.port, 115200, timeout=0.2) as s:
        s.write(b"\x03\x02")
        time.sleep(0.2)
        s.read(4096)
        s.write(b"\x04")
        out = _read_until(s, b">>> ", 5)
    assert b"MPY: soft reboot\r\n" in out
    assert mpremote(board, "fs", "cat", ":count.txt").stdout.count("x") == 1


def test_power_cycle_keeps_files(board, tmp_path):
    (tmp_path / "keep.txt").write_text("persist me")
    mpremote(board, "fs", "cp", str(tmp_path / "keep.txt"), ":keep.txt")
    mpremote(board, "exec", "import os; os.mkdir('data'); open('data/j.bin','wb').write(b'\\x00\\x01')")
    boots = board.info()["boots"]
    mpremote(board, "reset")                       # machine.reset(): fresh boot, same process
    wait_boot(board, boots)
    assert mpremote(board, "exec", "import machine; print(machine.reset_cause())").stdout == "5\n"
    board.power_cycle()                            # process restart = power off and on
    assert mpremote(board, "fs", "cat", ":keep.txt").stdout == "persist me"
    r = mpremote(board, "exec", "print(open('data/j.bin','rb').read())")
    assert r.stdout == "b'\\x00\\x01'\n"
    mpremote(board, "fs", "rm", ":keep.txt")
    board.power_cycle()
    assert "keep.txt" not in mpremote(board, "fs", "ls").stdout
    assert board.info()["reset_cause"] == 1


def wait_boot(vb, boots, kind="hard", timeout=10):
    """Wait for a boot of this kind after boot number `boots` (mpremote reset does not wait)."""
    def seen():
        i = vb.info()
        return i.get("boots", 0) > boots and i.get("boot_kind") == kind
    end = time.monotonic() + timeout
    while not seen() and time.monotonic() < end:
        time.sleep(0.02)
    assert seen(), vb.info()


def _read_until(s, token, timeout):
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end and token not in buf:
        buf += s.read(256)
    return buf


def test_pyserial_friendly_repl(board):
    with serial.Serial(board.port, 115200, timeout=0.2) as s:
        s.write(b"\r\x03\x02")   # out of raw REPL, if anything left it there
        time.sleep(0.3)
        s.read(4096)
        s.write(b"1+1\r")
        out = _read_until(s, b"\r\n>>> ", 5)
        assert b"1+1\r\n2\r\n>>> " in out          # echo, answer, prompt, CR-LF endings
        s.write(b"import sys; sys.platform\r")
        assert b"'webassembly'" in _read_until(s, b"\r\n>>> ", 5)
        # Ctrl-C interrupts a running program blocked in a sleep
        s.write(b"import time\rtime.sleep(30)\r")
        time.sleep(0.5)
        s.write(b"\x03")
        assert b"KeyboardInterrupt" in _read_until(s, b"\r\n>>> ", 5)


def test_time_is_esp32_epoch_and_sleep_is_real(board):
    r = mpremote(board, "exec",
                 "import time\nt=time.time(); g=time.gmtime(0)\n"
                 "a=time.ticks_ms(); time.sleep_ms(200); d=time.ticks_diff(time.ticks_ms(), a)\n"
                 "print(t, g[0], g[1], g[2], d, time.localtime()[0])")
    t, y, m, d, slept, year = map(int, r.stdout.split())
    assert abs(t - (time.time() - 946684800)) < 5
    assert (y, m, d) == (2000, 1, 1)
    assert 195 <= slept < 400
    assert year == time.gmtime().tm_year
    r = mpremote(board, "exec", "import machine, time\nmachine.RTC().datetime((2030, 1, 2, 2, 3, 4, 5, 0))\n"
                 "print(time.localtime()[:6])")
    assert r.stdout.startswith("(2030, 1, 2, 3, 4, ")


def test_pins_state_file_and_inputs(board):
    mpremote(board, "exec", "from machine import Pin\nPin(2, Pin.OUT).on(); Pin(4, Pin.OUT, value=0)\n"
                            "Pin(5, Pin.OUT).value(1); Pin(5).off()")
    assert board.pins() == {"2": 1, "4": 0, "5": 0}
    board.set_inputs(pins={34: 1, 35: 0})
    r = mpremote(board, "exec", "from machine import Pin\n"
                 "print(Pin(34, Pin.IN).value(), Pin(35, Pin.IN, Pin.PULL_UP).value(), "
                 "Pin(36, Pin.IN, Pin.PULL_UP).value(), Pin(2, Pin.OUT).value())")
    assert r.stdout == "1 0 1 1\n"
    r = mpremote(board, "exec", "import network\nw = network.WLAN(network.STA_IF); w.active(True)\n"
                 "w.connect('site', 'pw'); print(w.isconnected(), w.ifconfig()[0] != '0.0.0.0')")
    assert r.stdout == "True True\n"
    board.set_inputs(wifi=False)
    r = mpremote(board, "exec", "import network\nw = network.WLAN(network.STA_IF); w.active(True)\n"
                 "w.connect('site', 'pw'); print(w.isconnected())")
    assert r.stdout == "False\n"
    boots = board.info()["boots"]
    mpremote(board, "reset")
    wait_boot(board, boots)
    assert board.pins() == {}                      # a reset releases the GPIOs


class BusServer:
    """Minimal RS485 bus peer speaking the board's framing: type(1) len(2 BE) payload.
    Replies to each 'W' frame with b'ACK' + frame reversed, after 20 ms."""

    def __init__(self):
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]
        self.frames = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _conn(self, c):
        buf = b""
        while True:
            d = c.recv(4096)
            if not d:
                return
            buf += d
            while len(buf) >= 3 and len(buf) >= 3 + struct.unpack(">H", buf[1:3])[0]:
                n = struct.unpack(">H", buf[1:3])[0]
                t, p, buf = buf[:1], buf[3:3 + n], buf[3 + n:]
                self.frames.append((t, p))
                if t == b"W":
                    time.sleep(0.02)
                    r = b"ACK" + p[::-1]
                    c.sendall(b"R" + struct.pack(">H", len(r)) + r)

    def close(self):
        self.srv.close()


def test_uart_talks_to_the_bus_server(tmp_path):
    bus = BusServer()
    vb = VirtualBoard(str(tmp_path / "flash"), bus="127.0.0.1:%d" % bus.port, name="cc-7").start()
    try:
        r = mpremote(vb, "exec",
                     "from machine import UART\nimport time\n"
                     "u = UART(2, 9600, bits=8, parity=0, stop=1, timeout=500, timeout_char=10)\n"
                     "t = time.ticks_ms(); n = u.write(b'\\x01\\x03\\x00\\x00'); u.flush()\n"
                     "tx = time.ticks_diff(time.ticks_ms(), t)\n"
                     "print(n, u.read(64), tx >= 4)\n"
                     "u.init(timeout=100)\nt = time.ticks_ms(); x = u.read(8)\n"
                     "print(x, time.ticks_diff(time.ticks_ms(), t) >= 95)")
        assert r.stdout == "4 b'ACK\\x00\\x00\\x03\\x01' True\nNone True\n"
        kinds = [f[0] for f in bus.frames]
        assert bus.frames[0] == (b"H", b"cc-7")
        assert (b"C", b"9600,8,E,1") in bus.frames
        assert kinds.count(b"W") == 1
    finally:
        vb.stop()
        bus.close()


def test_host_driven_steps_collect_garbage_and_ctrl_c_stops_them(board, tmp_path):
    """main.py hands its loop to the host (vboard.run_forever); the heap stays flat,
    and mpremote can still break in (Ctrl-C) as on a board running its firmware."""
    (tmp_path / "main.py").write_text(
        "import gc, sys\n"
        "class App:\n"
        "    n = 0\n"
        "    def step(self):\n"
        "        junk = [bytearray(200) for i in range(50)]\n"   # 10 KB churn per step
        "        App.n += 1\n"
        "        if App.n in (100, 3000):\n"
        "            f = open('heap%d.txt' % App.n, 'w'); f.write(str(gc.mem_alloc())); f.close()\n"
        "app = App()\n"
        "if sys.platform == 'webassembly':\n"
        "    import vboard\n"
        "    vboard.run_forever(app.step)\n")
    mpremote(board, "fs", "cp", str(tmp_path / "main.py"), ":main.py")
    board.power_cycle()                            # power on runs main.py: steps forever
    done = tmp_path / "flash" / "heap3000.txt"
    end = time.monotonic() + 60
    while not done.exists() and time.monotonic() < end:
        time.sleep(0.1)                            # the flash reaches the host while stepping
    assert done.exists()
    h100 = int((tmp_path / "flash" / "heap100.txt").read_text())
    h3000 = int(done.read_text())
    assert h3000 < h100 + 20000, (h100, h3000)    # 3000 steps x 10 KB would be 30 MB
    r = mpremote(board, "exec", "print(open('heap3000.txt').read())")
    assert int(r.stdout) == h3000


def test_watchdog_resets_a_board_that_stops_feeding(board):
    mpremote(board, "exec", "from machine import WDT\nw = WDT(timeout=300)\nw.feed()")
    boots = board.info()["boots"]
    time.sleep(1.0)                                # idle at the REPL, nobody feeds it
    assert board.info()["boots"] > boots and board.info()["reset_cause"] == 3
    assert mpremote(board, "exec", "import machine; print(machine.reset_cause())").stdout == "3\n"


def test_umqtt_simple_against_mosquitto(board, umqtt_src, tmp_path):
    import paho.mqtt.client as mqtt
    tag = uuid.uuid4().hex[:8]
    up, down = "vbtest/%s/up" % tag, "vbtest/%s/down" % tag
    got = []
    ready = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="vbtest-" + tag)
    sub.on_connect = lambda c, u, f, rc, p=None: c.subscribe(up, qos=1)
    sub.on_subscribe = lambda *a: ready.set()
    sub.on_message = lambda c, u, m: got.append(m.payload)
    sub.connect(*BROKER)
    sub.loop_start()
    try:
        assert ready.wait(5)
        mpremote(board, "fs", "mkdir", ":lib", "+", "fs", "mkdir", ":lib/umqtt", "+",
                 "fs", "cp", umqtt_src, ":lib/umqtt/simple.py")
        script = tmp_path / "mq.py"
        script.write_text(
            "import time\n"
            "from umqtt.simple import MQTTClient\n"
            "msgs = []\n"
            "c = MQTTClient('vb-%s', '127.0.0.1', 1883, keepalive=30)\n"
            "c.set_callback(lambda t, m: msgs.append((t, m)))\n"
            "c.connect()\n"
            "c.subscribe(b'%s', qos=1)\n"
            "c.publish(b'%s', b'hello from the board', qos=1)\n"
            "t = time.ticks_ms()\n"
            "while not msgs and time.ticks_diff(time.ticks_ms(), t) < 8000:\n"
            "    c.check_msg(); time.sleep_ms(20)\n"
            "print('RX', msgs)\n"
            "c.sock.settimeout(0.3)\n"
            "t = time.ticks_ms()\n"
            "try:\n"
            "    c.wait_msg()\n"
            "except OSError as e:\n"
            "    print('TIMEOUT', e.errno, time.ticks_diff(time.ticks_ms(), t) >= 290)\n"
            "import socket\n"
            "s = socket.socket()\n"
            "try:\n"
            "    s.connect(('127.0.0.1', 1))\n"
            "except OSError as e:\n"
            "    print('REFUSED', e.errno)\n"
            "c.disconnect()\n" % (tag, down, up))

        def answer():
            end = time.monotonic() + 20
            while not got and time.monotonic() < end:
                time.sleep(0.02)
            sub.publish(down, b"hello from the test", qos=1)
        threading.Thread(target=answer, daemon=True).start()
        r = mpremote(board, "run", str(script), timeout=60)
        assert got == [b"hello from the board"]
        assert "RX [(b'%s', b'hello from the test')]" % down in r.stdout
        assert "TIMEOUT 110 True" in r.stdout
        assert "REFUSED 111" in r.stdout
    finally:
        sub.loop_stop()
        sub.disconnect()
