"""The server's side of ONE board's MQTT conversation, built only on the
shared pieces the head-end also uses (concentrator.protocol, .keyring,
.ota_format): verify the board's uplinks, acknowledge its records, seal
downlinks with its own counter, rotate its key, and send it a firmware
bundle in chunks when it asks for them.

It is what the firmware tests and tools talk to when the whole head-end is
not the point (`tools/ota.py push`, the OTA benchmark, the rekey and TLS
tests); the head-end does the same for every board of a site.

    with BoardPeer(("127.0.0.1", 1883), "c1", key_hex) as peer:
        peer.wait(lambda: peer.hello)          # the board said hello
        peer.command("relay", m=0, state="open", until=..., exp=...)
        peer.offer(manifest_text, bundle)      # OTA: chunks go out as the board asks
"""
import collections
import ssl
import threading
import time
import uuid

import paho.mqtt.client as mqtt

from concentrator import ota_format as F
from concentrator import protocol as P
from concentrator.keyring import ServerKeys


class BoardPeer:
    def __init__(self, broker, dev, key_hex, n=None, ack=True, window=8, tls_ca=None,
                 user=None, password=None, command_ttl_s=300):
        self.broker = tuple(broker)
        self.dev = dev
        self.keys = ServerKeys(key_hex)
        # downlink counter: above anything an earlier server used for this board
        self.n = n if n is not None else int(time.time() * 1000)
        self.ack = ack
        self.window = window           # OTA chunks sent per request of the board
        self.command_ttl_s = command_ttl_s
        self.last_up = -1
        self.lock = threading.RLock()
        self.bodies = collections.deque(maxlen=2000)   # verified uplinks, oldest first
        self.refused = collections.Counter()           # uplinks that did not verify, by reason
        self.hello = None              # the last hello body
        self.status = None             # the last st body
        self.ota_state = None          # the last otast body
        self.acked = 0
        self.sent = 0                  # downlinks published
        self.chunks_sent = 0
        self.lose_downlinks = False    # drop what we would send (tests: a lost reply)
        self._bundle = None            # (manifest text, bundle bytes, chunk, health_s)
        self._rekey_sent = 0.0
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id="wk-peer-" + uuid.uuid4().hex[:8], clean_session=True)
        if user:
            self.client.username_pw_set(user, password)
        if tls_ca:
            self.client.tls_set(ca_certs=tls_ca, cert_reqs=ssl.CERT_REQUIRED)
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=2)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message

    # -- life cycle ------------------------------------------------------------
    def start(self, timeout=10):
        self.client.connect_async(self.broker[0], self.broker[1], keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.stop()
            raise RuntimeError("peer: no broker at %s:%d" % self.broker)
        return self

    def stop(self):
        try:
            self.client.disconnect()
        except Exception:
            pass
        self.client.loop_stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _on_connect(self, client, userdata, flags, reason, properties=None):
        client.subscribe(P.topic_up(self.dev), qos=1)
        self.connected.set()

    # -- downlink --------------------------------------------------------------
    def send(self, kind, **fields):
        with self.lock:
            self.n += 1
            body = P.message(self.dev, self.n, kind, int(time.time()), **fields)
            data = P.seal(body, self.keys.signing_key())
            if not self.lose_downlinks:
                self.client.publish(P.topic_down(self.dev), data, qos=1)
                self.sent += 1
            return data

    def command(self, op, **fields):
        now = int(time.time())
        fields.setdefault("exp", now + self.command_ttl_s)
        return self.send(P.COMMAND, op=op, **fields)

    def rekey(self, nonce_hex):
        with self.lock:
            f = self.keys.start(nonce_hex)
            self._rekey_sent = time.monotonic()
            return self.command(**f)

    # -- uplink ----------------------------------------------------------------
    def _on_message(self, client, userdata, msg):
        data = msg.payload
        with self.lock:
            old_key = bool(self.keys.pending) and self._signed_with(data, self.keys.signing_key())
            try:
                body, _ = self.keys.verify(data, self.dev, self.last_up)
            except P.ProtocolError as e:
                self.refused[e.args[0] if e.args else "malformed"] += 1
                return
            self.last_up = body["n"]
            self.bodies.append(body)
            t = body["t"]
            if old_key and self.keys.pending and (
                    t == P.HELLO or time.monotonic() - self._rekey_sent > 10):
                # the board still signs with the confirmed key: it missed the rekey
                self._rekey_sent = time.monotonic()
                self.command(**self.keys.resend())
            if t == P.HELLO:
                self.hello = body
                if self.ack:
                    self._ack(body.get("acked", 0))
                ota = body.get("ota")
                if isinstance(ota, dict):
                    self._on_ota(ota)
            elif t == P.RECORDS:
                if self.ack and body.get("recs"):
                    self._ack(body["recs"][-1][0])
            elif t == P.STATUS:
                self.status = body
            elif t == P.OTA_STATUS:
                self._on_ota(body)

    def _ack(self, seq):
        self.acked = max(self.acked, seq)
        self.send(P.ACK, seq=seq)

    @staticmethod
    def _signed_with(data, key):
        try:
            raw, _ = P.split(data)
            return P._same(bytes(data[len(raw) + 1:]), P.hexlify(P.hmac_sha256(key, raw)).encode())
        except P.ProtocolError:
            return False

    # -- firmware update ---------------------------------------------------------
    def offer(self, manifest_text, bundle, chunk=F.DEFAULT_CHUNK, health_s=F.DEFAULT_HEALTH_S):
        """Offer a bundle to the board; chunks follow as the board asks."""
        with self.lock:
            self._bundle = (manifest_text, bundle, chunk, health_s)
            return self.command(**F.offer_fields(manifest_text, self.keys.signing_key(), chunk,
                                                 health_s))

    def _on_ota(self, st):
        self.ota_state = st
        b = self._bundle
        if b is None or st.get("id") != F.bundle_id(b[0]):
            return
        if st.get("st") == "idle":
            # the board lost (or never got) the offer: offer it again
            self.command(**F.offer_fields(b[0], self.keys.signing_key(), b[2], b[3]))
            return
        if st.get("st") != "download":
            return
        nxt = st.get("next")
        if not isinstance(nxt, int):
            return
        total = F.nchunks(len(b[1]), b[2])
        for i in range(nxt, min(total, nxt + self.window)):
            self.send(P.OTA_CHUNK, **F.chunk_fields(b[0], b[1], i, b[2]))
            self.chunks_sent += 1

    # -- waiting -----------------------------------------------------------------
    def wait(self, pred, timeout=30, what="condition", poll=None):
        """Wait (wall time) until pred() is true; `poll()` runs meanwhile
        (e.g. stepping a simulated site). Returns pred()'s value."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                v = pred()
            if v:
                return v
            if poll is not None:
                poll()
            else:
                time.sleep(0.05)
        raise TimeoutError("peer: timed out waiting for " + what)

    def of_type(self, kind):
        with self.lock:
            return [b for b in self.bodies if b["t"] == kind]
