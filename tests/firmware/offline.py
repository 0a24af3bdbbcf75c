"""One concentrator running the real firmware with simulated meters on a
virtual clock, offline (no broker answers): the tests hand it downlink
messages signed as the head-end signs them (`push`), or any bytes at all
(`deliver`), exactly as the MQTT link would during a step."""
from concentrator import protocol as P
from sim.brokers import free_port
from sim.load import ConstantLoad
from sim.site import Site

PRICE = 6000                      # mu/kWh
TARIFF = [{"version": 1, "effective": 0, "tz_offset_s": 28800, "price": PRICE}]
START = 1793462400 + 8 * 3600     # 2026-11-01 08:00 local (a Sunday)


class Board:
    def __init__(self, tmp_path, policy=None, watts=1200, start=START, meters=2, flash="host",
                 state=None, cfg=None, **site_kw):
        self.site = Site(concentrators=1, meters=meters, broker=("127.0.0.1", free_port()),
                         workdir=str(tmp_path), start_unix=start, tariff=TARIFF, flash=flash,
                         **site_kw)
        self.vc = self.site.concentrators[0]
        if policy is not None:
            self.vc.cfg["policy"] = policy
        self.vc.cfg.update(cfg or {})
        if state is not None:
            self.vc.fw.hal.write_json("/state.json", state)
        if policy is not None or state is not None or cfg:
            self.vc.power_on()
        self.n = 0
        for sm in self.vc.meters:
            sm.load = ConstantLoad(watts)
        self.site.run(120, tick_s=1)      # boot, first polls (baselines)

    @property
    def fw(self):
        return self.vc.fw

    def seal(self, kind, key=None, **fields):
        self.n += 1
        body = P.message(self.fw.dev, self.n, kind, self.fw.hal.time(), **fields)
        return P.seal(body, key or self.fw.key)

    def deliver(self, data):
        """Bytes arriving on the board's downlink topic."""
        self.fw._on_message(P.topic_down(self.fw.dev), data)

    def push(self, kind, key=None, **fields):
        self.deliver(self.seal(kind, key, **fields))

    def credit(self, i=0, bal=0, top=1):
        """Sync meter i so that its local credit is `bal` now (the head-end's
        balance is at the last record: add what was used since)."""
        self.push(P.CREDIT, m=i, bal=bal + self.fw.credits.provisional[i],
                  e=self.fw.meters.last_energy[i],
                  c=self.fw.credits.charged[i], top=top)
        assert self.fw.credit_of(i) == bal

    def closed(self, i=0):
        sm = self.vc.meters[i]
        return sm.relay_closed and sm.supply_closed

    def records(self):
        return self.fw.journal.pending(100000)

    def events(self, code, meter=None):
        return [r for r in self.records()
                if r[1] == P.KIND_EVENT and r[4][0] == code and (meter is None or r[2] == meter)]

    def rejections(self):
        """{reason: count} from the EV_MSG_REJECTED events in the journal."""
        out = {}
        for r in self.events(P.EV_MSG_REJECTED):
            reason = P.REJECT_REASONS[r[4][1]]
            out[reason] = out.get(reason, 0) + (r[4][2] if len(r[4]) > 2 else 1)
        return out

    def run(self, s):
        self.site.run(s, tick_s=1)


class Server:
    """The head-end's side of the conversation with an offline Board, built
    on the shared pieces (protocol, keyring): uplinks the board publishes are
    captured instead of sent (`lose` drops them, as a broker outage would),
    verified with the server's keys and answered with an ack."""

    def __init__(self, board, n=1000, virtual_net=False):
        from concentrator.keyring import ServerKeys
        self.b = board
        self.virtual_net = virtual_net  # network timers on the virtual clock too
        self.down = False               # the board's link is down (no broker)
        self.bundle = None              # (manifest text, bundle bytes, chunk, health_s)
        self.window = 8
        self.mangle = None              # fn(i, data) -> data: a chunk spoiled on the way
        self._link = None
        self.keys = ServerKeys(board.fw.key_hex)
        self.n = n
        self.last_up = -1
        self.lose = False
        self.outbox = []            # what the board published, not yet handled
        self.bodies = []            # verified uplink bodies
        self.refused = []           # uplinks the server could not verify
        self.attach()

    def attach(self):
        """Take the board's link (again after a power cycle: a new firmware
        instance has a new link)."""
        link = self.b.fw.link
        self._link = link
        link.connected = not self.down
        link.step = lambda: 0
        link.publish = self._capture
        if self.virtual_net:
            self.b.vc.virtual_net = True
            self.b.fw.hal.virtual_net = True

    def set_down(self, down):
        self.down = down
        self.attach()
        if not down:
            self.b.fw.link.just_connected = True

    def _capture(self, topic, payload):
        if self.down:
            return False
        if not self.lose:
            self.outbox.append(bytes(payload))
        return True

    def send(self, kind, **fields):
        self.n += 1
        body = P.message(self.b.fw.dev, self.n, kind, self.b.fw.hal.time(), **fields)
        data = P.seal(body, self.keys.signing_key())
        if not self.lose:
            self.b.deliver(data)
        return data

    def rekey(self, nonce):
        return self.send(P.COMMAND, **self.keys.start(nonce))

    def exchange(self, seconds=5):
        """Run the board, handle what it sent (ack records; a hello under the
        confirmed key while a rekey is pending gets the rekey again)."""
        if self._link is not self.b.fw.link:
            self.attach()                 # the board was reset: a new firmware instance
        self.b.run(seconds)
        if self._link is not self.b.fw.link:
            self.attach()
        while self.outbox:
            data = self.outbox.pop(0)
            old_key = bool(self.keys.pending) and self._under_confirmed(data)
            try:
                body, _ = self.keys.verify(data, self.b.fw.dev, self.last_up)
            except P.ProtocolError as e:
                self.refused.append(e.args[0])
                continue
            self.last_up = body["n"]
            self.bodies.append(body)
            if body["t"] == P.HELLO:
                if old_key and self.keys.pending:
                    self.send(P.COMMAND, **self.keys.resend())
                self.send(P.ACK, seq=body["acked"])
                if isinstance(body.get("ota"), dict):
                    self._ota(body["ota"])
            elif body["t"] == P.OTA_STATUS:
                self._ota(body)
            elif body["t"] == P.RECORDS:
                self.send(P.ACK, seq=body["recs"][-1][0])
            self.b.run(1)

    # -- firmware update (what sim/peer.py does over MQTT) -------------------------
    def offer(self, manifest, bundle, chunk=2048, health_s=60):
        from concentrator import ota_format as F
        self.bundle = (manifest, bundle, chunk, health_s)
        return self.send(P.COMMAND, **F.offer_fields(manifest, self.keys.signing_key(), chunk,
                                                    health_s))

    def _ota(self, st):
        from concentrator import ota_format as F
        self.ota_state = st
        b = self.bundle
        if b is None or st.get("id") != F.bundle_id(b[0]):
            return
        if st.get("st") == "idle":
            self.offer(*b)
        elif st.get("st") == "download" and isinstance(st.get("next"), int):
            total = F.nchunks(len(b[1]), b[2])
            for i in range(st["next"], min(total, st["next"] + self.window)):
                f = F.chunk_fields(b[0], b[1], i, b[2])
                if self.mangle is not None:
                    import binascii
                    d = self.mangle(i, binascii.a2b_base64(f["d"]))
                    f["d"] = binascii.b2a_base64(d).decode().strip()
                self.send(P.OTA_CHUNK, **f)

    def _under_confirmed(self, data):
        try:
            P.verify(data, self.keys.signing_key(), self.b.fw.dev)
            return True
        except P.ProtocolError:
            return False
