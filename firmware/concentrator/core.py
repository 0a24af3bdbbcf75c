# The concentrator: one bounded slice of work per step().
#
#   step(): read the meters that are due (at most polls_per_step), store
#   readings at record boundaries, enforce the relays from local credit,
#   move MQTT traffic (hello, record batches, status, downlink), then return.
#
# Nothing here loops forever or touches hardware except through the HAL.
from concentrator import protocol as P
from concentrator.config import check
from concentrator.credit import Credit, relay_wanted
from concentrator.journal import Journal
from concentrator.meters import MeterBus
from concentrator.mqtt import Link
from concentrator import __version__

STATE = "/state.json"
COUNTER_BLOCK = 1000   # uplink counters reserved in flash per write


class MeterState:
    def __init__(self, cfg):
        self.cfg = cfg
        self.credit = Credit()
        self.next_poll_ms = 0
        self.next_record_ts = 0
        self.last_energy = None     # last cumulative register read (Wh)
        self.last_read_ts = 0
        self.relay_closed = None    # what we believe / read back
        self.relay_reason = 0
        self.online = True


class Concentrator:
    def __init__(self, hal, cfg, journal=None):
        self.hal = hal
        self.cfg = cfg = check(cfg)
        self.dev = cfg["dev"]
        self.key = P.key_from_hex(cfg["key"])
        self.meters = [MeterState(m) for m in cfg["meters"]]
        for m in self.meters:
            m.credit.set_price(cfg["price"])
        self.bus = MeterBus(hal, cfg["meters"])
        self.journal = journal if journal is not None else Journal(hal)
        b = cfg["broker"]
        self.link = Link(hal, self.dev, b["host"], b.get("port", 1883),
                         b.get("user"), b.get("password"),
                         b.get("keepalive_s", 60), self._on_message,
                         P.topic_down(self.dev))
        self.topic_up = P.topic_up(self.dev)
        self.n_up = 0
        self.n_res = 0
        self.n_down = -1
        self.boots = 0
        self.hello_sent = False
        self.inflight = 0          # highest seq sent and not yet acknowledged
        self.inflight_ms = 0
        self.next_status_ms = 0
        self.steps = 0
        self.rejected = 0
        self.started_ms = hal.ticks_ms()
        self.booted = False

    # -- boot ----------------------------------------------------------------
    def boot(self):
        hal = self.hal
        self.journal.recover()
        st = hal.read_json(STATE, {}) or {}
        self.boots = st.get("boots", 0) + 1
        self.n_res = st.get("n_res", 0)
        self.n_up = self.n_res
        self.n_down = st.get("n_down", -1)
        creds = st.get("credit", {})
        for m in self.meters:
            m.credit.from_state(creds.get(m.cfg["id"]))
        self._save_state(reserve=True)
        self._event(P.EV_BOOT, 0, self.boots)
        self.journal.flush()
        self.booted = True

    def _save_state(self, reserve=False):
        if reserve or self.n_up >= self.n_res:
            self.n_res = self.n_up + COUNTER_BLOCK
        creds = {}
        for m in self.meters:
            creds[m.cfg["id"]] = m.credit.to_state()
        self.hal.write_json(STATE, {"boots": self.boots, "n_res": self.n_res,
                                    "n_down": self.n_down, "credit": creds})

    # -- helpers ---------------------------------------------------------------
    def _event(self, code, meter, detail=0):
        self.journal.append(P.KIND_EVENT, meter, self.hal.time(), (code, detail))

    def _next_n(self):
        self.n_up += 1
        if self.n_up >= self.n_res:
            self._save_state()
        return self.n_up

    def _send(self, kind, **fields):
        body = P.message(self.dev, self._next_n(), kind, self.hal.time(), **fields)
        return self.link.publish(self.topic_up, P.seal(body, self.key))

    # -- the step ------------------------------------------------------------
    def step(self):
        # One bounded slice of work. Returns ms until the next meter is due
        # (0 when there is more work right now).
        if not self.booted:
            self.boot()
        hal = self.hal
        hal.feed()
        self.steps += 1
        appended = self._poll_due()
        if appended:
            self.journal.flush()
        self.link.step()
        if self.link.just_connected:
            self.link.just_connected = False
            self.hello_sent = False
            self.inflight = 0
        if self.link.connected:
            self._upload()
        return self._idle_ms()

    def _idle_ms(self):
        now = self.hal.ticks_ms()
        wait = 1000
        for m in self.meters:
            d = m.next_poll_ms - now
            if d < wait:
                wait = d
        return wait if wait > 0 else 0

    # -- meters ----------------------------------------------------------------
    def _poll_due(self):
        hal = self.hal
        budget = self.cfg["polls_per_step"]
        appended = False
        for i in range(len(self.meters)):
            if budget <= 0:
                break
            m = self.meters[i]
            now = hal.ticks_ms()
            if hal.ticks_diff(now, m.next_poll_ms) < 0:
                continue
            budget -= 1
            m.next_poll_ms = now + self.cfg["poll_s"] * 1000
            if self._poll_one(i, m):
                appended = True
        return appended

    def _poll_one(self, i, m):
        hal = self.hal
        r = self.bus.poll(i)
        ts = hal.time()
        appended = False
        online = r is not None and r.ok
        if online != m.online:
            m.online = online
            self._event(P.EV_METER_ONLINE if online else P.EV_METER_OFFLINE, i)
            appended = True
        if m.next_record_ts == 0:
            rs = self.cfg["record_s"]
            m.next_record_ts = (ts // rs) * rs
        due = ts >= m.next_record_ts
        if not online:
            if due and m.last_energy is not None:
                # a gap, never zero consumption
                self.journal.append(P.KIND_READING, i, ts, (m.last_energy, 0, P.FLAG_MISSING))
                self._advance_record(m, ts)
                appended = True
            return appended
        flags = 0
        if m.last_energy is not None:
            delta = r.energy_wh - m.last_energy
            dt = ts - m.last_read_ts if m.last_read_ts else self.cfg["poll_s"]
            if delta < 0 or delta * 3600 > self.cfg["max_power_w"] * max(dt, 1) + 3600:
                flags |= P.FLAG_IMPLAUSIBLE
                self._event(P.EV_IMPLAUSIBLE, i, delta)
                appended = True
        if r.relay_closed is not None:
            m.relay_closed = r.relay_closed
        if not flags & P.FLAG_IMPLAUSIBLE:
            m.last_energy = r.energy_wh
            m.last_read_ts = ts
            m.credit.update(r.energy_wh)
        if m.relay_closed is False:
            flags |= P.FLAG_RELAY_OPEN
        if due or flags & P.FLAG_IMPLAUSIBLE:
            vals = (r.energy_wh, r.power_w, flags)
            if r.bands:
                vals = vals + tuple(r.bands)
            self.journal.append(P.KIND_READING, i, ts, vals)
            self._advance_record(m, ts)
            appended = True
        if self._enforce(i, m):
            appended = True
        return appended

    def _advance_record(self, m, ts):
        rs = self.cfg["record_s"]
        m.next_record_ts = (ts // rs + 1) * rs

    def _enforce(self, i, m):
        want = relay_wanted(m.credit, m.relay_closed is not False)
        if want is None:
            return False
        return self.set_relay(i, want, P.R_CREDIT)

    def set_relay(self, i, closed, reason):
        # Operate meter i's relay (meter's own, or a GPIO contactor), read it
        # back, and record an event. Returns True (an event was appended).
        m = self.meters[i]
        gpio = m.cfg.get("relay")
        if gpio is not None:
            self.hal.relay_set(gpio, closed)
            fb = self.hal.relay_get(gpio)
            ok = fb is None or fb == closed
        else:
            ok = self.bus.set_relay(i, closed)
        self._event(P.EV_RELAY_CLOSE if closed else P.EV_RELAY_OPEN, i, reason)
        if ok:
            m.relay_closed = closed
            m.relay_reason = reason
        else:
            self._event(P.EV_RELAY_MISMATCH, i, 1 if closed else 0)
        return True

    # -- uplink ----------------------------------------------------------------
    def _upload(self):
        hal = self.hal
        if not self.hello_sent:
            ids = [m.cfg["id"] for m in self.meters]
            if not self._send(P.HELLO, fw=__version__, boot=self.boots,
                              last=self.journal.last_seq,
                              acked=self.journal.acked_seq, meters=ids):
                return
            self.hello_sent = True
        now = hal.net_ticks_ms()
        if self.inflight and now - self.inflight_ms < self.cfg["ack_timeout_s"] * 1000:
            pass
        else:
            recs = self.journal.pending(self.cfg["batch"])
            if recs:
                out = [[r[0], r[1], r[2], r[3], list(r[4])] for r in recs]
                # `after`: the batch holds every record still in the journal
                # above it (gaps are records thinned away on a full flash)
                if self._send(P.RECORDS, recs=out, after=self.journal.acked_seq):
                    self.inflight = recs[-1][0]
                    self.inflight_ms = now
        t = hal.ticks_ms()
        if hal.ticks_diff(t, self.next_status_ms) >= 0:
            self.next_status_ms = t + self.cfg["status_s"] * 1000
            self._send(P.STATUS, **self.status_fields())

    def status_fields(self):
        rows = []
        for i in range(len(self.meters)):
            m = self.meters[i]
            rc = None if m.relay_closed is None else (1 if m.relay_closed else 0)
            rows.append([i, 1 if m.online else 0, rc, m.credit.value()])
        up = self.hal.ticks_diff(self.hal.ticks_ms(), self.started_ms) // 1000
        return {"up": up, "pending": self.journal.last_seq - self.journal.acked_seq,
                "last": self.journal.last_seq, "acked": self.journal.acked_seq,
                "meters": rows}

    # -- downlink ----------------------------------------------------------------
    def _on_message(self, topic, data):
        try:
            body = P.verify(data, self.key, self.dev, self.n_down, self.hal.time())
            self._apply(body)
        except P.ProtocolError as e:
            self._reject(e.args[0] if e.args else "malformed")
        except (KeyError, TypeError, ValueError, IndexError):
            self._reject("bad_fields")

    def _reject(self, reason):
        self.rejected += 1
        code = P.REJECT_REASONS.index(reason) if reason in P.REJECT_REASONS else 0
        self._event(P.EV_MSG_REJECTED, 0, code)
        self.journal.flush()

    def _apply(self, body):
        t = body["t"]
        self.n_down = body["n"]
        if t == P.ACK:
            seq = body["seq"]
            if 0 < seq <= self.journal.last_seq and seq > self.journal.acked_seq:
                self.journal.ack(seq)
            if seq >= self.inflight:
                self.inflight = 0
            ts = body.get("ts", 0)
            if ts and abs(ts - self.hal.time()) > 2:
                self.hal.set_time(ts)
            return
        if t == P.CREDIT:
            m = self.meters[body["m"]]
            bal = body["bal"]
            e = body["e"]
            if not isinstance(bal, int) or not isinstance(e, int):
                raise ValueError
            before = m.credit.value()
            m.credit.sync(bal, e)
            if before is not None and m.credit.value() == before and not body.get("price"):
                # a confirmation of what the board already knew: no flash write
                return
            if isinstance(body.get("price"), int):
                m.credit.set_price(body["price"])
        elif t == P.TARIFF:
            spec = body["spec"]
            price = spec.get("price")
            if isinstance(price, int):
                for m in self.meters:
                    m.credit.set_price(price)
        elif t == P.COMMAND:
            self._command(body)
        else:
            raise ValueError
        self._save_state()
        # act on a new balance right away, not at the next poll
        i = body.get("m")
        if isinstance(i, int) and 0 <= i < len(self.meters):
            if self._enforce(i, self.meters[i]):
                self.journal.flush()

    def _command(self, body):
        op = body["op"]
        if op == "relay":
            i = body["m"]
            state = body["state"]
            if state in ("open", "closed"):
                self.set_relay(i, state == "closed", P.R_OVERRIDE)
                self.journal.flush()
        elif op == "time":
            self.hal.set_time(body["time"])
        else:
            raise ValueError
