# The concentrator: one bounded slice of work per step().
#
#   step(): read the meters that are due (at most polls_per_step), store
#   readings at record boundaries, enforce the relays from local credit,
#   move MQTT traffic (hello, record batches, status, downlink), then return.
#
# Nothing here loops forever or touches hardware except through the HAL.
from concentrator import protocol as P
from concentrator import relay as R
from concentrator import __version__
from array import array

STATE = "/state.json"
TARIFF = "/tariff.json"
COUNTER_BLOCK = 1000   # uplink counters reserved in flash per write
RELAY_SETTLE_MS = 60   # a contactor's auxiliary contact follows within this


class MeterState:
    # What the core keeps of one meter. Its times (next poll, records) are
    # kept apart, in the Concentrator's columns (t_* arrays, core_init.py): Unix
    # seconds are not small ints in MicroPython, and 4 of them per meter as
    # attributes cost ~5 KB of heap for 32 meters.
    def __init__(self, cfg):
        self.cfg = cfg
        self.rs = R.RelayState()
        self.policy = None          # per-meter relay policy (None: the site's)
        self.last_energy = None     # last cumulative register read (Wh)
        self.relay_closed = None    # what we believe / read back
        self.online = True
        self.offline_n = 0          # times this meter went offline since boot


def _column(n):
    # n unsigned 32-bit times (Unix s), 0 = none
    return array("I", bytes(4 * n))


class Concentrator:
    def __init__(self, hal, cfg, journal=None):
        # the settings checked and every part built (core_init.py, loaded
        # for the start only: see there what each attribute holds)
        from concentrator import core_init
        try:
            core_init.init(self, hal, cfg, journal)
        finally:
            _unload("core_init")

    # -- boot ----------------------------------------------------------------
    def boot(self):
        # the state file, tariff and policy checked and restored (core_boot.py,
        # loaded for the boot only)
        from concentrator import core_boot
        core_boot.boot(self)
        _unload("core_boot")
        if (self.fw_pointer or {}).get("trial") or self.hal.exists("/ota.json"):
            self._ota()              # a version on trial, or an update to resume

    def _save_state(self, reserve=False):
        if reserve or self.n_up >= self.n_res:
            self.n_res = self.n_up + COUNTER_BLOCK
        creds = {}
        relays = {}
        recs = {}
        mpol = {}
        for i in range(len(self.meters)):
            m = self.meters[i]
            mid = m.cfg["id"]
            creds[mid] = self.credits.to_state(i)
            relays[mid] = m.rs.to_state()
            recs[mid] = self.t_rec[i]
            if m.policy is not None:
                mpol[mid] = m.policy
        st = {"boots": self.boots, "n_res": self.n_res, "n_down": self.n_down,
              "credit": creds, "relay": relays, "key": self.key_hex, "rec": recs,
              "jseq": self.journal.last_seq, "policy": self.policy, "mpol": mpol}
        if self.key_prev is not None:
            st["key_prev"] = P.hexlify(self.key_prev)
        self.hal.write_json(STATE, st)
        self.state_dirty = False

    # -- helpers ---------------------------------------------------------------
    def _event(self, code, meter, detail=0, *more):
        self.journal.append(P.KIND_EVENT, meter, self.hal.time(), (code, detail) + more)
        if code in _URGENT:
            self.urgent = True

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
        if self._poll_due():
            self.unflushed = True
        if self.rej_pending:
            self._report_rejections()
        if self.unflushed and not self.cycle_open:
            # one flush per poll cycle (all the meters due now, maybe over
            # several steps): littlefs copies the tail block at every flush
            if self.state_dirty:
                # state first: a record in flash must never be ahead of the
                # band counters it was computed from (they are cumulative)
                self._save_state()
            self.journal.flush()
            self.unflushed = False
        if self.updater is not None:
            self.updater.step()
            if self.updater.idle():
                self.updater = None
                for name in ("ota", "ota_format", "fwboot"):
                    _unload(name)
        self.link.step()
        if self.link.just_connected:
            self.link.just_connected = False
            self.hello_sent = False
            self.inflight = 0
        if self.link.connected and not self.unflushed:
            self._upload()      # (pending() would flush a half-done cycle)
        return self._idle_ms()

    def _idle_ms(self):
        now = self.hal.ticks_ms()
        wait = 1000
        for t in self.t_poll_ms:
            d = self.hal.ticks_diff(t, now)
            if d < wait:
                wait = d
        return wait if wait > 0 else 0

    # -- meters ----------------------------------------------------------------
    def _poll_due(self):
        # Meters are polled on whole multiples of poll_s of the wall clock and
        # their readings stamped with that nominal time, so records fall on
        # the 15-minute boundaries and tariff band changes on the minute are
        # exact. Without a known time, every poll_s of the tick clock.
        hal = self.hal
        poll_s = self.cfg["poll_s"]
        budget = self.cfg["polls_per_step"]
        self.cycle_open = False
        appended = False
        now_ts = hal.time() if hal.time_known() else 0
        if now_ts and now_ts < self.due_min:
            return False
        polled = False
        for i in range(len(self.meters)):
            if budget <= 0:
                self.cycle_open = True   # more meters due: the next step goes on
                return appended
            now = hal.ticks_ms()
            if now_ts:
                due = self.t_due[i]
                if now_ts < due:
                    continue
                nominal = due if now_ts - due < poll_s else now_ts // poll_s * poll_s
                due = (now_ts // poll_s + 1) * poll_s
                self.t_due[i] = due
                self.t_poll_ms[i] = now + (due - now_ts) * 1000
            else:
                if hal.ticks_diff(now, self.t_poll_ms[i]) < 0:
                    continue
                nominal = 0
                self.t_due[i] = 0
                self.t_poll_ms[i] = now + poll_s * 1000
            m = self.meters[i]
            budget -= 1
            polled = True
            if self._poll_one(i, m, nominal):
                appended = True
        if polled:
            self.cycles += 1
        if now_ts:
            self.due_min = min(self.t_due)
        return appended

    def _poll_one(self, i, m, ts):
        r = self.bus.poll(i)
        appended = False
        online = r is not None and r.ok
        if online:
            self.answered += 1
        if online != m.online:
            m.online = online
            if not online:
                m.offline_n += 1
            self._event(P.EV_METER_ONLINE if online else P.EV_METER_OFFLINE, i)
            appended = True
        rec_s = self.cfg["record_s"]
        if ts and self.t_rec_next[i] == 0:
            # no record known for this interval: take one now
            self.t_rec_next[i] = ts // rec_s * rec_s
        due = (ts >= self.t_rec_next[i]) if ts else False
        cr = self.credits
        if not online:
            if due and m.last_energy is not None:
                # a gap, never zero consumption
                self.journal.append(P.KIND_READING, i, ts,
                                    (m.last_energy, 0, P.FLAG_MISSING, cr.charged[i]) + cr.band_tuple(i))
                self._advance_record(i, ts)
                appended = True
            return appended
        flags = 0
        if m.last_energy is not None:
            delta = r.energy_wh - m.last_energy
            last_ts = self.t_read[i]
            dt = ts - last_ts if (ts and last_ts) else self.cfg["poll_s"]
            if delta < 0 or delta * 3600 > self.cfg["max_power_w"] * max(dt, 1) + 3600:
                flags |= P.FLAG_IMPLAUSIBLE
                self._event(P.EV_IMPLAUSIBLE, i, delta)
                appended = True
        if r.relay_closed is not None:
            m.relay_closed = r.relay_closed
        if not flags & P.FLAG_IMPLAUSIBLE:
            m.last_energy = r.energy_wh
            self.t_read[i] = ts
            cr.on_poll(i, self.tariff, r.energy_wh, ts)
        if m.relay_closed is False:
            flags |= P.FLAG_RELAY_OPEN
        if due or flags & P.FLAG_IMPLAUSIBLE:
            if due and not flags & P.FLAG_IMPLAUSIBLE:
                cr.on_record(i, self.tariff, ts)
                self.state_dirty = True
            # power comes from the "extra" registers, read every few polls: it
            # can still be unknown (None) here, which the journal cannot encode
            vals = (r.energy_wh, r.power_w if r.power_w is not None else 0, flags,
                    cr.charged[i]) + cr.band_tuple(i)
            self.journal.append(P.KIND_READING, i, ts, vals)
            if due:
                self._advance_record(i, ts)
            appended = True
        if self._enforce(i, m, r.power_w):
            appended = True
        return appended

    def _advance_record(self, i, ts):
        rs = self.cfg["record_s"]
        self.t_rec_next[i] = (ts // rs + 1) * rs
        self.t_rec[i] = ts
        self.state_dirty = True
        at = ts - ts % rs + self.up_offset_s
        if at > self.upload_at:
            self.upload_at = at

    def price_hint(self):
        # mu/kWh for the rough estimate before the first head-end sync
        if not self.tariff:
            return self.cfg["price"]
        from concentrator import tariff as T
        spec = T.spec_at(self.tariff, self.hal.time() or 0x7FFFFFFF)
        if spec.get("tou"):
            return max(spec["prices"][b] for b in spec["prices"])
        return spec["price"]

    def credit_of(self, i):
        return self.credits.value(i, self.price_hint())

    def _enforce(self, i, m, power_w=None):
        hal = self.hal
        now = hal.time()
        local = now + self.cfg["tz_offset_s"] if now else 0
        pol = m.policy or self.policy
        closed = m.relay_closed
        want, reason = R.decide(pol, m.rs, self.credit_of(i), closed, now, local, power_w)
        if want is None or want == closed:
            return False
        return self.set_relay(i, want, reason)

    def set_relay(self, i, closed, reason):
        # Operate meter i's relay (meter's own, or a GPIO contactor), read it
        # back (retrying twice), and record an event. Returns True (an event
        # was appended).
        m = self.meters[i]
        gpio = m.cfg.get("relay")
        ok = False
        for _ in range(3):
            if gpio is not None:
                self.hal.relay_set(gpio, closed)
                self.hal.sleep_ms(RELAY_SETTLE_MS)   # auxiliary contacts lag
                fb = self.hal.relay_get(gpio)
                ok = fb is None or fb == closed
            else:
                ok = self.bus.set_relay(i, closed)
            if ok:
                break
        self._event(P.EV_RELAY_CLOSE if closed else P.EV_RELAY_OPEN, i, reason)
        m.rs.last_switch = self.hal.time()
        m.rs.reason = reason
        if ok:
            m.relay_closed = closed
            m.rs.failures = 0
        else:
            m.rs.failures += 1
            self._event(P.EV_RELAY_MISMATCH, i, 1 if closed else 0)
        self.state_dirty = True
        return True

    # -- uplink ----------------------------------------------------------------
    def _upload(self):
        hal = self.hal
        if not self.hello_sent:
            ids = [m.cfg["id"] for m in self.meters]
            ota = self.ota_status()
            extra = {"ota": ota} if ota else {}
            # fw: the version /boot.json names; code: the package's own
            # __version__ (the same on a board; the simulator runs its own code)
            if not self._send(P.HELLO, fw=self.fw_version, code=__version__, boot=self.boots,
                              last=self.journal.last_seq,
                              acked=self.journal.acked_seq, meters=ids, **extra):
                return
            self.hello_sent = True
        now = hal.net_ticks_ms()
        if self.inflight:
            if now - self.inflight_ms >= self.resend_ms:
                # not acknowledged: send again, waiting longer each time
                self.inflight = 0
                self.resend_ms = min(self.jitter.spread(self.resend_ms * 2),
                                     self.cfg["resend_max_s"] * 1000)
        if not self.inflight:
            ts = hal.time() if hal.time_known() else 0
            # (a slot more than an interval ahead: the clock was set back)
            due = self.urgent or not ts or ts >= self.upload_at or \
                self.upload_at - ts > self.cfg["record_s"]
            recs = self.journal.pending(self.cfg["batch"]) if due else None
            if recs:
                out = [[r[0], r[1], r[2], r[3], list(r[4])] for r in recs]
                # `after`: the batch holds every record still in the journal
                # above it (gaps are records thinned away on a full flash)
                if self._send(P.RECORDS, recs=out, after=self.journal.acked_seq):
                    self.inflight = recs[-1][0]
                    self.inflight_ms = now
                    self.urgent = False
        t = hal.ticks_ms()
        if hal.ticks_diff(t, self.next_status_ms) >= 0:
            self.next_status_ms = t + self.cfg["status_s"] * 1000
            self._send(P.STATUS, **self.status_fields())

    def ota_status(self):
        # where a firmware update stands (hello "ota"), or None
        if self.updater is not None:
            return self.updater.status()
        p = self.fw_pointer or {}
        if p.get("failed_id"):
            return {"id": p["failed_id"], "st": "rolled_back", "fw": p.get("failed_fw")}
        if p.get("confirmed_id"):
            return {"id": p["confirmed_id"], "st": "confirmed"}
        return None

    def status_fields(self):
        # meters: [index, online, relay closed, local credit]; bus: error
        # counters [index, timeouts, crc, wrong address, exceptions, times
        # offline] of the meters that have any (the message stays small)
        rows = []
        bus = []
        for i in range(len(self.meters)):
            m = self.meters[i]
            rc = None if m.relay_closed is None else (1 if m.relay_closed else 0)
            rows.append([i, 1 if m.online else 0, rc, self.credit_of(i)])
            st = self.bus.stats(i)
            e = [i, st["timeouts"], st["crc"], st["wrong_address"], st["exceptions"], m.offline_n]
            if e[1] or e[2] or e[3] or e[4] or e[5]:
                bus.append(e)
        up = self.hal.ticks_diff(self.hal.ticks_ms(), self.started_ms) // 1000
        out = {"up": up, "pending": self.journal.last_seq - self.journal.acked_seq,
               "last": self.journal.last_seq, "acked": self.journal.acked_seq,
               "meters": rows, "bus": bus[:64]}
        if len(bus) > 64:
            out["bus_all"] = False   # the head-end leaves unlisted meters alone
        return out

    # -- downlink ----------------------------------------------------------------
    # Every downlink is verified (MAC under the device key, counter, expiry),
    # then checked against its schema, and only then applied: a bad one is
    # refused whole, the last good settings stay in force, and nothing is
    # written to flash for it (rejections are counted and reported at a
    # bounded rate, _report_rejections).
    def _on_message(self, topic, data):
        if not self.booted:
            return                   # (the link runs only after boot: never reached)
        try:
            body, key = self._verify(data)
        except P.ProtocolError as e:
            self._reject(e.args[0] if e.args else "malformed")
            return
        except Exception:
            self._reject("malformed")
            return
        t = body.get("t")
        try:
            if t == P.ACK:
                P.check_ack(body)
            elif t == P.CREDIT:
                P.check_credit(body, len(self.meters))
            else:
                from concentrator import schema
                try:
                    schema.check_downlink(body, len(self.meters))
                finally:
                    _unload("schema")
        except Exception as e:       # ValueError from the checks (or a bug in them)
            self._reject("bad_fields", "%s" % (e.args[0] if e.args else type(e).__name__))
            return
        if key is self.key and self.key_prev is not None:
            # the head-end signs with the new key: it has seen the board use
            # it, the previous one is done with
            self.key_prev = None
            self.state_dirty = True
        self._apply(body, key)

    def _verify(self, data):
        # -> (body, the key that verified it): the current key, or during a
        # rotation the previous one (docs/protocol.md, rekey)
        try:
            return P.verify(data, self.key, self.dev, self.n_down, self.hal.time()), self.key
        except P.ProtocolError as e:
            if self.key_prev is None or not e.args or e.args[0] != "bad_mac":
                raise
        return P.verify(data, self.key_prev, self.dev, self.n_down, self.hal.time()), self.key_prev

    def _reject(self, reason, why=None):
        self.rejected += 1
        i = P.REJECT_REASONS.index(reason) if reason in P.REJECT_REASONS else 0
        self.rej[i] += 1
        self.rej_pending = True
        self.last_reject = (reason if why is None else reason + ": " + why)[:160]

    def _report_rejections(self):
        # at most once per record interval (rejections.py, loaded then)
        now = self.hal.ticks_ms()
        if self.rej_ms is not None and \
                self.hal.ticks_diff(now, self.rej_ms) < self.cfg["record_s"] * 1000:
            return
        self.rej_ms = now
        from concentrator import rejections
        try:
            rejections.report(self)
        finally:
            _unload("rejections")

    def _apply(self, body, key):
        t = body["t"]
        self.n_down = body["n"]
        if t == P.ACK:
            seq = body["seq"]
            if 0 < seq <= self.journal.last_seq and seq > self.journal.acked_seq:
                self.journal.ack(seq)
            if seq >= self.inflight:
                self.inflight = 0
                self.resend_ms = self.cfg["ack_timeout_s"] * 1000
            self._sync_time(body.get("ts", 0))
            return
        i = None
        if t == P.CREDIT:
            i = body["m"]
            m = self.meters[i]
            before = self.credits.value(i, self.price_hint())
            if self.credits.sync(i, body["bal"], body["e"], body.get("c"), body.get("top")):
                m.rs.armed = True      # a top-up re-arms the emergency credit
            elif before is not None and self.credits.value(i, self.price_hint()) == before:
                # a confirmation of what the board already knew: no flash write
                return
        elif t == P.TARIFF:
            spec = body["spec"]
            if isinstance(spec, dict):
                spec = [spec]
            self.tariff = spec
            self.hal.write_json(TARIFF, spec)
        elif t == P.COMMAND:
            i = self._command(body, key)
        elif t == P.OTA_CHUNK:
            self._ota().on_chunk(body)
            return
        self._save_state()
        # act on a new balance or command right away, not at the next poll
        if isinstance(i, int) and 0 <= i < len(self.meters):
            if self._enforce(i, self.meters[i]):
                self.journal.flush()

    def _sync_time(self, ts):
        # The head-end's clock in every ack: follow it when we are off by
        # more than 2 s, and report the correction (drift) as an event.
        if not ts:
            return
        now = self.hal.time()
        d = ts - now
        if not self.hal.time_known() or d > 2 or d < -2:
            self.hal.set_time(ts)
            if self.hal.time() != now:
                self._event(P.EV_TIME_SET, 0, max(-99999, min(99999, d if now else 0)))

    def _command(self, body, key):
        # a cmd (passed schema.check_command): commands.py, loaded for it
        from concentrator import commands
        try:
            return commands.run(self, body, key)
        finally:
            _unload("commands")

    def _ota(self):
        from concentrator.ota import Updater
        u = self.updater
        if u is None:
            u = self.updater = Updater(self)
        return u


# events the head-end should hear of at once, not at the board's upload slot
_URGENT = (P.EV_RELAY_OPEN, P.EV_RELAY_CLOSE, P.EV_RELAY_MISMATCH, P.EV_OVERRIDE,
           P.EV_REKEY, P.EV_OTA, P.EV_BOOT)


def _unload(name):
    # forget a module used only now and then (MicroPython: its bytecode is
    # freed from the heap); CPython keeps it
    import sys
    if sys.implementation.name == "micropython":
        sys.modules.pop("concentrator." + name, None)
        pkg = sys.modules.get("concentrator")
        if pkg is not None:
            pkg.__dict__.pop(name, None)
