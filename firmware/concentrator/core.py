# The concentrator: one bounded slice of work per step().
#
#   step(): read the meters that are due (at most polls_per_step), store
#   readings at record boundaries, enforce the relays from local credit,
#   move MQTT traffic (hello, record batches, status, downlink), then return.
#
# Nothing here loops forever or touches hardware except through the HAL.
from concentrator import protocol as P
from concentrator import relay as R
from concentrator import unload as _unload
from concentrator import __version__
from array import array

STATE = "/state.json"
TARIFF = "/tariff.json"
COUNTER_BLOCK = 1000   # uplink counters reserved in flash per write
RELAY_SETTLE_MS = 60   # a contactor's auxiliary contact follows within this


class Meters:
    # What the core keeps of every meter, as columns by meter index: 32
    # objects of 7 attributes (and their relay states) cost ~5 KB of heap,
    # these columns ~1.5 KB. Their times (next poll, records) are the
    # Concentrator's t_* columns (core_init.py): Unix seconds are not small
    # ints in MicroPython, an array("I") holds them in 4 bytes.
    def __init__(self, cfgs):
        n = len(cfgs)
        self.cfg = cfgs                  # the site file's meter dicts
        self.rs = R.Relays(n)            # relay state (relay.py)
        self.policy = [None] * n         # per-meter relay policy (None: the site's)
        self.last_energy = [None] * n    # last cumulative register read (Wh)
        self.relay_closed = [None] * n   # what we believe / read back
        self.online = bytearray(b"\x01" * n)
        self.offline_n = [0] * n         # times the meter went offline since boot

    def __len__(self):
        return len(self.cfg)


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
        ms = self.meters
        for i in range(len(ms)):
            mid = ms.cfg[i]["id"]
            creds[mid] = self.credits.to_state(i)
            relays[mid] = ms.rs.to_state(i)
            recs[mid] = self.t_rec[i]
            if ms.policy[i] is not None:
                mpol[mid] = ms.policy[i]
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
            budget -= 1
            polled = True
            if self._poll_one(i, nominal):
                appended = True
        if polled:
            self.cycles += 1
        if now_ts:
            self.due_min = min(self.t_due)
        return appended

    def _poll_one(self, i, ts):
        r = self.bus.poll(i)
        ms = self.meters
        appended = False
        online = r is not None and r.ok
        if online:
            self.answered += 1
        if online != bool(ms.online[i]):
            ms.online[i] = 1 if online else 0
            if not online:
                ms.offline_n[i] += 1
            self._event(P.EV_METER_ONLINE if online else P.EV_METER_OFFLINE, i)
            appended = True
        rec_s = self.cfg["record_s"]
        if ts and self.t_rec_next[i] == 0:
            # no record known for this interval: take one now
            self.t_rec_next[i] = ts // rec_s * rec_s
        due = (ts >= self.t_rec_next[i]) if ts else False
        cr = self.credits
        if not online:
            if due and ms.last_energy[i] is not None:
                # a gap, never zero consumption
                self.journal.append(P.KIND_READING, i, ts,
                                    (ms.last_energy[i], 0, P.FLAG_MISSING, cr.charged[i]) + cr.band_tuple(i))
                self._advance_record(i, ts)
                appended = True
            return appended
        flags = 0
        last = ms.last_energy[i]
        if last is not None:
            delta = r.energy_wh - last
            last_ts = self.t_read[i]
            dt = ts - last_ts if (ts and last_ts) else self.cfg["poll_s"]
            if delta < 0 or delta * 3600 > self.cfg["max_power_w"] * max(dt, 1) + 3600:
                flags |= P.FLAG_IMPLAUSIBLE
                self._event(P.EV_IMPLAUSIBLE, i, delta)
                appended = True
        if r.relay_closed is not None:
            ms.relay_closed[i] = r.relay_closed
        if not flags & P.FLAG_IMPLAUSIBLE:
            ms.last_energy[i] = r.energy_wh
            self.t_read[i] = ts
            cr.on_poll(i, self.tariff, r.energy_wh, ts)
        if ms.relay_closed[i] is False:
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
        if self._enforce(i, r.power_w):
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

    def _enforce(self, i, power_w=None):
        hal = self.hal
        now = hal.time()
        local = now + self.cfg["tz_offset_s"] if now else 0
        ms = self.meters
        pol = ms.policy[i] or self.policy
        closed = ms.relay_closed[i]
        want, reason = R.decide(pol, ms.rs, i, self.credit_of(i), closed, now, local, power_w)
        if want is None or want == closed:
            return False
        return self.set_relay(i, want, reason)

    def set_relay(self, i, closed, reason):
        # Operate meter i's relay (meter's own, or a GPIO contactor), read it
        # back (retrying twice), and record an event. Returns True (an event
        # was appended).
        ms = self.meters
        rs = ms.rs
        gpio = ms.cfg[i].get("relay")
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
        rs.last_switch[i] = self.hal.time()
        rs.reason[i] = reason
        if ok:
            ms.relay_closed[i] = closed
            rs.failures[i] = 0
        else:
            rs.failures[i] = min(255, rs.failures[i] + 1)
            self._event(P.EV_RELAY_MISMATCH, i, 1 if closed else 0)
        self.state_dirty = True
        return True

    # -- uplink ----------------------------------------------------------------
    def _upload(self):
        hal = self.hal
        if not self.hello_sent:
            ids = [c["id"] for c in self.meters.cfg]
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
        ms = self.meters
        for i in range(len(ms)):
            rc = ms.relay_closed[i]
            rc = None if rc is None else (1 if rc else 0)
            rows.append([i, ms.online[i], rc, self.credit_of(i)])
            st = self.bus.stats(i)
            e = [i, st["timeouts"], st["crc"], st["wrong_address"], st["exceptions"], ms.offline_n[i]]
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
    def _on_message(self, topic, data):
        # every downlink: verified, checked, applied (core_down.py, loaded for it)
        from concentrator import core_down
        try:
            core_down.on_message(self, topic, data)
        finally:
            _unload("core_down")

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

    def _ota(self):
        from concentrator.ota import Updater
        u = self.updater
        if u is None:
            u = self.updater = Updater(self)
        return u


# events the head-end should hear of at once, not at the board's upload slot
_URGENT = (P.EV_RELAY_OPEN, P.EV_RELAY_CLOSE, P.EV_RELAY_MISMATCH, P.EV_OVERRIDE,
           P.EV_REKEY, P.EV_OTA, P.EV_BOOT)

