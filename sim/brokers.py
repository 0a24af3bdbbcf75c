"""Brokers the simulator and the tests start and stop: the embedded amqtt
broker and a private Mosquitto, each on a port of its own, so a test can
take the broker away (an outage) and bring it back on the same port."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from headend.transport.broker import free_port


def stop_process(proc, timeout=10, kill=False):
    """Terminate (or kill) a child process and reap it; kill it if it lingers."""
    (proc.kill if kill else proc.terminate)()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_port(host, port, timeout=10.0, up=True):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                if up:
                    return True
        except OSError:
            if not up:
                return True
        time.sleep(0.05)
    return False


class AmqttBroker:
    """The embedded broker (amqtt), in a process of its own so that it does
    not share a GIL with the simulated site (`in_process=True` keeps it in
    this process)."""
    kind = "amqtt"

    def __init__(self, port=None, host="127.0.0.1", in_process=False, password_files=()):
        self.host = host
        self.port = port or free_port(host)
        self.in_process = in_process
        # Mosquitto-format password files (`wattkeeper broker-config`); sim.stack sets them
        self.password_files = list(password_files)
        self._b = None
        self.proc = None

    @property
    def url(self):
        return "mqtt://%s:%d" % (self.host, self.port)

    def start(self):
        if self.in_process:
            from headend.transport.broker import EmbeddedBroker
            self._b = EmbeddedBroker(self.host, self.port, password_files=self.password_files).start()
        else:
            args = [sys.executable, "-m", "headend.transport.broker", "--host", self.host, "--port", str(self.port)]
            for f in self.password_files:
                args += ["--password-file", f]
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.host, self.port, timeout=20):
            self.stop()
            raise RuntimeError("amqtt broker did not start on port %d" % self.port)
        return self

    def stop(self):
        if self._b is not None:
            self._b.stop()
            self._b = None
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        wait_port(self.host, self.port, up=False)


def mosquitto_binary():
    for p in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if p and os.path.exists(p):
            return p
    raise RuntimeError("mosquitto is not installed (bash tools/bootstrap.sh installs it)")


class MosquittoBroker:
    """A private Mosquitto on a free port. `extra` is appended to its config
    (TLS listeners, ACLs, password files...); `conf` runs a complete
    configuration file instead (e.g. one written by `wattkeeper
    broker-config`), whose listener is on `port`."""
    kind = "mosquitto"

    def __init__(self, port=None, host="127.0.0.1", extra="", conf=None):
        self.host = host
        self.port = port or free_port(host)
        self.extra = extra
        self.conf = conf
        self.dir = tempfile.mkdtemp(prefix="wk-mosq-")
        self.proc = None

    @property
    def url(self):
        return "mqtt://%s:%d" % (self.host, self.port)

    def start(self):
        conf = self.conf
        if conf is None:
            conf = os.path.join(self.dir, "mosquitto.conf")
            with open(conf, "w") as f:
                f.write("listener %d %s\nallow_anonymous true\npersistence false\n" % (self.port, self.host))
                f.write(self.extra)
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "ab"))
        if not wait_port(self.host, self.port):
            self.stop()
            raise RuntimeError("mosquitto did not start: " + open(os.path.join(self.dir, "log")).read())
        return self

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, 5)
            self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def make_broker(kind, port=None):
    if kind == "amqtt":
        return AmqttBroker(port)
    if kind == "mosquitto":
        return MosquittoBroker(port)
    raise ValueError("broker must be amqtt or mosquitto, not %r" % kind)
