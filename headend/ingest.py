"""MQTT ingest, independent of any MQTT client library.

    Ingest(session_factory).handle(topic, payload) -> [(topic, payload), ...]

returns the downlink messages to publish (already sealed), built inside the
same transaction as the data and returned only after it committed: an `ack`
therefore always means "stored". handle() never raises: a bad message is
logged, counted (Ingest.stats) and dropped.
"""
import copy
import json
import logging
import threading
import time

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import select

from concentrator import protocol, tariff

from . import billing, downlink, ledger, provision
from .models import Account, Concentrator, Event, Meter, Reading

log = logging.getLogger("headend.ingest")

# Head-end's own event codes (the board's codes are 1..99, see protocol.py)
EV_UPLINK_REJECTED = 100   # detail = index in protocol.REJECT_REASONS
EV_BAD_RECORD = 101        # a record that failed check_record (stored to keep seqs contiguous)
EV_NOT_BILLED = 102        # reading not billed (register went backwards, ...)
EV_METER_LIST = 103        # board's meter list differs from the head-end's
EV_JOURNAL_RESET = 104     # board's journal is behind what the head-end committed
EV_BILLING_MISMATCH = 105  # the board's charged_mu delta differs from the head-end's charge
EV_COMMAND = 106           # a command sent to a board (actor = who asked)
EV_REKEYED = 107           # a board switched to its new key
EV_LOW_BALANCE = protocol.EV_LOW_CREDIT

MAX_RECORDS = 64
REJECTION_EVENT_INTERVAL_S = 60

_EVENT_TEXT = {
    protocol.EV_BOOT: "boot",
    protocol.EV_RELAY_OPEN: "relay opened",
    protocol.EV_RELAY_CLOSE: "relay closed",
    protocol.EV_RELAY_MISMATCH: "relay read-back mismatch",
    protocol.EV_METER_OFFLINE: "meter offline",
    protocol.EV_METER_ONLINE: "meter online",
    protocol.EV_JOURNAL_THINNED: "journal thinned",
    protocol.EV_MSG_REJECTED: "downlink rejected",
    protocol.EV_IMPLAUSIBLE: "implausible delta",
    protocol.EV_LOW_CREDIT: "low credit",
    protocol.EV_OVERRIDE: "override",
    getattr(protocol, "EV_TIME_SET", 12): "clock set from the head-end",
    getattr(protocol, "EV_REKEY", 13): "device key rotated",
}
_REJECT_TEXT = {
    "malformed": "not a well-formed message",
    "too_long": "longer than %d bytes" % protocol.MAX_MESSAGE,
    "bad_mac": "signature does not verify with the board's key",
    "wrong_device": "addressed to another device",
    "replay": "counter not above the last one accepted",
    "expired": "command past its expiry time",
    "unknown_device": "unknown device",
    "bad_fields": "fields missing or invalid",
}
_RELAY_REASON = {1: "credit", 2: "staff override", 3: "technician", 4: "load limit", 5: "boot"}


def describe_event(code, detail):
    text = _EVENT_TEXT.get(code, "event %d" % code)
    if code in (protocol.EV_RELAY_OPEN, protocol.EV_RELAY_CLOSE) and detail in _RELAY_REASON:
        text += " (%s)" % _RELAY_REASON[detail]
    elif code == protocol.EV_MSG_REJECTED:
        if isinstance(detail, int) and 0 <= detail < len(protocol.REJECT_REASONS):
            reason = protocol.REJECT_REASONS[detail]
            text = "downlink rejected by the board: %s (%s)" % (reason, _REJECT_TEXT.get(reason, ""))
        else:
            text = "downlink rejected by the board (reason %r)" % (detail,)
    return text


class Rejected(Exception):
    def __init__(self, reason, detail="", conc_id=None):
        Exception.__init__(self, reason, detail)
        self.reason = reason
        self.detail = detail
        self.conc_id = conc_id


class IngestStats:
    """Thread-safe counters, exposed by /api/health and /metrics."""

    def __init__(self):
        self._lock = threading.Lock()
        self._c = {"received": 0, "accepted": 0, "rejected": 0, "errors": 0,
                   "records_stored": 0, "records_duplicate": 0, "bad_records": 0,
                   "readings_billed": 0, "readings_not_billed": 0, "downlinks": 0}
        for r in protocol.REJECT_REASONS:
            self._c["rejected_" + r] = 0

    def inc(self, name, k=1):
        with self._lock:
            self._c[name] = self._c.get(name, 0) + k

    def get(self, name):
        with self._lock:
            return self._c.get(name, 0)

    def snapshot(self):
        with self._lock:
            return dict(self._c)


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


BUS_ERROR_KEYS = ("timeouts", "crc", "wrong_address", "exceptions", "offline")


class Ingest:
    def __init__(self, session_factory, clock=time.time, attempts=3):
        self.session_factory = session_factory
        self.clock = clock
        self.attempts = attempts
        self.stats = IngestStats()
        self._last_reject_event = {}
        # meter pk -> bus error counters of the board's last status (since
        # its boot): {"timeouts", "crc", "wrong_address", "exceptions",
        # "offline", "ts"}; shown by GET /api/meters as "bus_errors"
        self.bus_errors = {}

    # ------------------------------------------------------------------ entry
    def handle(self, topic, payload):
        self.stats.inc("received")
        try:
            for attempt in range(self.attempts):
                try:
                    out = self._handle(topic, payload)
                    self.stats.inc("accepted")
                    self.stats.inc("downlinks", len(out))
                    return out
                except (IntegrityError, OperationalError) as e:
                    # a concurrent worker stored the same seq, or the database was busy
                    if attempt + 1 == self.attempts:
                        raise
                    log.info("ingest retry after %s", type(e).__name__)
                    time.sleep(0.05 * (attempt + 1))
        except Rejected as r:
            self.stats.inc("rejected")
            self.stats.inc("rejected_" + r.reason)
            log.warning("uplink rejected on %r: %s %s", topic, r.reason, r.detail)
            if r.conc_id is not None:
                self._rejection_event(r)
        except Exception:
            self.stats.inc("errors")
            log.exception("ingest error on %r", topic)
        return []

    def _rejection_event(self, r):
        key = (r.conc_id, r.reason)
        now = self.clock()
        if now - self._last_reject_event.get(key, -1e9) < REJECTION_EVENT_INTERVAL_S:
            return
        self._last_reject_event[key] = now
        try:
            with self.session_factory() as s:
                idx = protocol.REJECT_REASONS.index(r.reason) if r.reason in protocol.REJECT_REASONS else None
                s.add(Event(concentrator_id=r.conc_id, code=EV_UPLINK_REJECTED, detail=idx,
                            ts=int(now), message=("uplink rejected: %s %s" % (r.reason, r.detail)).strip()[:500]))
                s.commit()
        except Exception:
            log.exception("could not store rejection event")

    # --------------------------------------------------------------- envelope
    def _handle(self, topic, payload):
        try:
            dev = protocol.device_of_topic(topic)
        except Exception:
            dev = None
        if isinstance(topic, (bytes, bytearray)):
            topic = bytes(topic).decode("utf-8", "replace")
        if dev is None or not topic.endswith("/up"):
            raise Rejected("malformed", "bad topic")
        if isinstance(payload, str):
            payload = payload.encode()
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise Rejected("malformed", "payload type")
        payload = bytes(payload)
        try:
            protocol.split(payload)
        except protocol.ProtocolError as e:
            raise Rejected(e.args[0] if e.args else "malformed")
        now = int(self.clock())
        with self.session_factory() as s:
            # the row lock serialises workers handling the same device (PostgreSQL)
            conc = s.exec(select(Concentrator).where(Concentrator.dev == dev).with_for_update()).first()
            if conc is None:
                raise Rejected("unknown_device", dev)
            old_key = False
            try:
                body = self._verify(s, conc, payload, dev, now)
                old_key = conc.key_next_hex is not None
            except protocol.ProtocolError as e:
                raise Rejected(e.args[0] if e.args else "malformed", "n=%s" % conc.last_up_n, conc.id)
            n = body["n"]
            res = s.execute(update(Concentrator)
                            .where(Concentrator.id == conc.id, Concentrator.last_up_n < n)
                            .values(last_up_n=n))
            if res.rowcount != 1:
                raise Rejected("replay", "n=%d" % n, conc.id)
            if body.get("v") != protocol.VERSION:
                raise Rejected("bad_fields", "version %r" % body.get("v"), conc.id)
            conc.last_seen = now
            conc.online = True
            t = body["t"]
            pre = []
            if old_key and (t == protocol.HELLO or (t == protocol.RECORDS and self._rejected_bad_mac(body))):
                # a rekey is pending and the board still signs with the old
                # key: it (re)connected without the command, or rejects the
                # new key's downlinks. Send the command again first (its
                # counter must come before the replies').
                pre = [downlink.rekey_command(s, conc, ts=now)]
            if t == protocol.HELLO:
                out = pre + self._hello(s, conc, body, now)
            elif t == protocol.RECORDS:
                out = pre + self._records(s, conc, body, now)
            elif t == protocol.STATUS:
                out = self._status(s, conc, body, now)
            else:
                raise Rejected("bad_fields", "type %r" % t, conc.id)
            s.add(conc)
            s.commit()
        return out

    def _verify(self, s, conc, payload, dev, now):
        """Verify under the device key; during a rekey also under the new key,
        and switch to it for good on the first valid uplink that uses it."""
        try:
            return protocol.verify(payload, protocol.key_from_hex(conc.key_hex), dev=dev,
                                   last_n=conc.last_up_n, now=now)
        except protocol.ProtocolError as e:
            if not conc.key_next_hex or (e.args and e.args[0] != "bad_mac"):
                raise
        body = protocol.verify(payload, protocol.key_from_hex(conc.key_next_hex), dev=dev,
                               last_n=conc.last_up_n, now=now)
        s.add(Event(concentrator_id=conc.id, code=EV_REKEYED, ts=now,
                    message="rekey complete: %s signs with the new key (nonce %s, asked at %s)"
                    % (conc.dev, conc.rekey_nonce, conc.rekey_started)))
        conc.key_hex = conc.key_next_hex
        conc.key_next_hex = None
        conc.rekey_nonce = None
        conc.rekey_started = None
        return body

    @staticmethod
    def _rejected_bad_mac(body):
        recs = body.get("recs")
        bad_mac = protocol.REJECT_REASONS.index("bad_mac")
        for r in recs if isinstance(recs, list) else ():
            if (isinstance(r, list) and len(r) == 5 and r[1] == protocol.KIND_EVENT and isinstance(r[4], list)
                    and len(r[4]) > 1 and r[4][0] == protocol.EV_MSG_REJECTED and r[4][1] == bad_mac):
                return True
        return False

    # ------------------------------------------------------------------ hello
    def _hello(self, s, conc, body, now):
        if isinstance(body.get("fw"), str):
            conc.fw = body["fw"][:40]
        if _is_int(body.get("boot")):
            conc.boot = body["boot"]
        last = body.get("last")
        if _is_int(last):
            conc.journal_last = last
            if last < conc.acked_seq:
                s.add(Event(concentrator_id=conc.id, code=EV_JOURNAL_RESET, ts=now,
                            message="board journal last=%d is behind committed seq %d (journal wiped?)"
                            % (last, conc.acked_seq)))
        acked = body.get("acked")
        if _is_int(acked) and acked > conc.acked_seq:
            # the board deleted everything <= acked: it will never send it again
            conc.acked_seq = acked
            self._advance(s, conc)
        meters = s.exec(select(Meter).where(Meter.concentrator_id == conc.id).order_by(Meter.index)).all()
        board_ids = body.get("meters")
        if isinstance(board_ids, list):
            ours = {m.index: m.meter_id for m in meters}
            theirs = {i: str(x) for i, x in enumerate(board_ids)}
            if ours != theirs:
                s.add(Event(concentrator_id=conc.id, code=EV_METER_LIST, ts=now,
                            message=("meter list differs: board %s, head-end %s"
                                     % (json.dumps(board_ids), json.dumps([ours[k] for k in sorted(ours)])))[:1000]))
        out = [downlink.seal(s, conc, protocol.ACK, ts=now, seq=conc.acked_seq)]
        try:
            spec = billing.tariff_spec(provision.site_versions(s, conc.site_id))
        except ValueError:
            log.exception("%s: the site's tariff is invalid; not pushed", conc.dev)
            spec = None
        if spec is not None:
            out.append(downlink.tariff_message(s, conc, spec, ts=now))
        out += downlink.credit_for_meters(s, meters, ts=now)
        return out

    # ----------------------------------------------------------------- status
    def _status(self, s, conc, body, now):
        if _is_int(body.get("pending")):
            conc.pending = body["pending"]
        if _is_int(body.get("last")):
            conc.journal_last = body["last"]
        rows = body.get("meters")
        if isinstance(rows, list):
            by_index = {m.index: m for m in s.exec(select(Meter).where(Meter.concentrator_id == conc.id)).all()}
            for row in rows:
                if not isinstance(row, list) or len(row) < 4 or not _is_int(row[0]):
                    continue
                m = by_index.get(row[0])
                if m is None:
                    continue
                if row[1] in (0, 1):
                    m.online = bool(row[1])
                if row[2] in (0, 1):
                    m.relay_closed = bool(row[2])
                if _is_int(row[3]):
                    m.local_credit_mu = row[3]
                s.add(m)
            bus = body.get("bus")
            if isinstance(bus, list):
                # [[index, timeouts, crc, wrong_address, exceptions, offline], ...]
                # for the meters with any non-zero counter; the others are 0
                # (unless "bus_all" is false: the board cut the list short)
                for m in by_index.values() if body.get("bus_all", True) is not False else ():
                    e = dict.fromkeys(BUS_ERROR_KEYS, 0)
                    e["ts"] = now
                    self.bus_errors[m.id] = e
                for row in bus:
                    if not isinstance(row, list) or len(row) != 1 + len(BUS_ERROR_KEYS) \
                            or not all(_is_int(x) and x >= 0 for x in row):
                        continue
                    m = by_index.get(row[0])
                    if m is not None:
                        e = dict(zip(BUS_ERROR_KEYS, row[1:]))
                        e["ts"] = now
                        self.bus_errors[m.id] = e
        acked = body.get("acked")
        if _is_int(acked) and acked < conc.acked_seq:
            # the board missed an ack: repeat it
            return [downlink.seal(s, conc, protocol.ACK, ts=now, seq=conc.acked_seq)]
        return []

    # ---------------------------------------------------------------- records
    def _records(self, s, conc, body, now):
        recs = body.get("recs")
        if not isinstance(recs, list) or len(recs) > MAX_RECORDS:
            raise Rejected("bad_fields", "recs", conc.id)
        good, bad = [], []
        seen = set()
        for r in recs:
            try:
                rec = protocol.check_record(r)
            except protocol.ProtocolError:
                self.stats.inc("bad_records")
                if isinstance(r, list) and r and _is_int(r[0]) and r[0] > 0 and r[0] not in seen:
                    seen.add(r[0])
                    bad.append(r)
                log.warning("%s: bad record %r", conc.dev, r)
                continue
            if rec[0] in seen:
                continue
            seen.add(rec[0])
            good.append(rec)
        candidates = [x for x in seen if x > conc.acked_seq]
        existing = set()
        if candidates:
            existing.update(s.exec(select(Reading.seq).where(Reading.concentrator_id == conc.id,
                                                             Reading.seq.in_(candidates))).all())
            existing.update(s.exec(select(Event.seq).where(Event.concentrator_id == conc.id,
                                                           Event.seq.in_(candidates))).all())
        meters = {m.index: m for m in s.exec(select(Meter).where(Meter.concentrator_id == conc.id)).all()}
        new_readings = []
        stored = 0
        for r in bad:
            if r[0] <= conc.acked_seq or r[0] in existing:
                continue
            s.add(Event(concentrator_id=conc.id, seq=r[0], code=EV_BAD_RECORD, ts=now,
                        message=("malformed record " + json.dumps(r))[:500]))
            stored += 1
        for seq, kind, idx, ts, values in sorted(good):
            if seq <= conc.acked_seq or seq in existing:
                self.stats.inc("records_duplicate")
                continue
            m = meters.get(idx)
            stored += 1
            if kind == protocol.KIND_READING:
                rd = Reading(concentrator_id=conc.id, seq=seq, meter_index=idx,
                             meter_id=m.id if m else None, ts=ts, energy_wh=values[0],
                             power_w=values[1], flags=values[2], bands=list(values[4:]),
                             charged_mu=values[3] if len(values) > 3 else None, received=now)
                s.add(rd)
                new_readings.append((rd, m))
                if m is not None and not (values[2] & protocol.FLAG_MISSING) and seq > (m.last_seq or 0):
                    m.last_seq, m.last_energy_wh, m.last_power_w, m.last_ts = seq, values[0], values[1], ts
                    m.relay_closed = not (values[2] & protocol.FLAG_RELAY_OPEN)
                    m.online = True
                    s.add(m)
            else:
                code = values[0]
                detail = values[1] if len(values) > 1 else None
                s.add(Event(concentrator_id=conc.id, seq=seq, meter_index=idx,
                            meter_id=m.id if m else None, code=code, detail=detail, values=list(values),
                            ts=ts or now, message=describe_event(code, detail)))
                if m is not None and seq > (m.last_seq or 0):
                    if code == protocol.EV_RELAY_OPEN:
                        m.relay_closed = False
                    elif code == protocol.EV_RELAY_CLOSE:
                        m.relay_closed = True
                    elif code == protocol.EV_METER_OFFLINE:
                        m.online = False
                    elif code == protocol.EV_METER_ONLINE:
                        m.online = True
                    s.add(m)
        self.stats.inc("records_stored", stored)
        s.flush()
        changed_accounts = set()
        cache = {}   # per batch (handle() may run in several threads)
        with s.no_autoflush:  # one flush for the whole batch, not one per ledger entry
            for rd, m in new_readings:
                acc = self._bill(s, conc, m, rd, now, cache)
                if acc is not None:
                    changed_accounts.add(acc)
        s.flush()
        after = body.get("after")
        if _is_int(after) and seen and after <= conc.acked_seq:
            # The board says this batch holds every record it still has above
            # `after`: sequence numbers missing from it were dropped by the
            # journal's full-flash thinning (and reported by event 7), so
            # they must not hold the ack back.
            top = max(seen)
            if top > conc.acked_seq:
                conc.acked_seq = top
        self._advance(s, conc)
        out = [downlink.seal(s, conc, protocol.ACK, ts=now, seq=conc.acked_seq)]
        out += downlink.credit_for_accounts(s, changed_accounts, ts=now)
        return out

    def _advance(self, s, conc):
        """Move acked_seq to the highest contiguous committed sequence."""
        cur = conc.acked_seq
        seqs = set(s.exec(select(Reading.seq).where(Reading.concentrator_id == conc.id, Reading.seq > cur)).all())
        seqs.update(x for x in s.exec(select(Event.seq).where(Event.concentrator_id == conc.id,
                                                              Event.seq > cur)).all() if x is not None)
        while cur + 1 in seqs:
            cur += 1
        conc.acked_seq = cur

    # ---------------------------------------------------------------- billing
    def _versions(self, s, conc, account, cache):
        """Tariff versions for a meter: its account's tariff, else the site's."""
        key = ("tariff", account.tariff_id) if account is not None and account.tariff_id is not None \
            else ("site", conc.site_id)
        if key not in cache:
            try:
                cache[key] = (provision.versions_for_tariff(s, key[1]) if key[0] == "tariff"
                              else provision.site_versions(s, conc.site_id))
            except ValueError as e:
                log.error("%s: invalid tariff %r: %s", conc.dev, key, e)
                cache[key] = []
        return cache[key]

    def _not_billed(self, s, conc, m, rd, code, text):
        self.stats.inc("readings_not_billed")
        s.add(Event(concentrator_id=conc.id, meter_index=rd.meter_index, meter_id=m.id, code=code,
                    detail=rd.seq, ts=rd.ts or rd.received, message=text[:500]))

    def _bill(self, s, conc, m, rd, now, cache):
        """Bill one new reading through concentrator.tariff (billing.bill_reading).
        Returns the account id whose balance or credit reference changed."""
        if m is None:
            return None
        if m.billed_seq is not None and rd.seq <= m.billed_seq:
            return None          # older than what was billed: already covered (cumulative)
        if rd.flags & protocol.FLAG_MISSING:
            return None          # a gap, not zero: the next real reading covers it
        if rd.flags & protocol.FLAG_IMPLAUSIBLE:
            self._not_billed(s, conc, m, rd, protocol.EV_IMPLAUSIBLE,
                             "reading seq %d (%d Wh) flagged implausible by the board: not billed"
                             % (rd.seq, rd.energy_wh))
            return None
        account = s.get(Account, m.account_id) if m.account_id is not None else None
        versions = self._versions(s, conc, account, cache)
        if not versions:
            self.stats.inc("readings_not_billed")
            return None          # no price yet: keep the pointer, bill later
        banded = len(rd.bands) >= 5 and rd.charged_mu is not None
        bands = rd.bands[:5] if banded else None
        # ts = 0: the board did not know the time; rate at the head-end's receive time
        t = rd.ts if rd.ts else rd.received or now
        state = copy.deepcopy(m.tariff_state) if m.tariff_state else tariff.new_state()
        prev = m.billed_energy_wh
        amount = 0
        if prev is not None and rd.energy_wh < prev:
            # meter replaced or reset: restart the baseline here, charge nothing
            self._not_billed(s, conc, m, rd, EV_NOT_BILLED,
                             "register went backwards on %s: %d Wh after %d Wh (seq %d): not billed, "
                             "billing restarts from this reading" % (m.meter_id, rd.energy_wh, prev, rd.seq))
            if bands is not None:
                state["reg"] = dict(zip(billing.BANDS, bands))
        else:
            try:
                amount = billing.bill_reading(versions, state, rd.energy_wh, bands, prev, t, rerate=not rd.ts)
            except ValueError as e:
                self._not_billed(s, conc, m, rd, EV_NOT_BILLED,
                                 "reading seq %d of %s cannot be billed: %s" % (rd.seq, m.meter_id, e))
                return None      # pointer and state unchanged: billed with a later reading
            self.stats.inc("readings_billed")
        new_ref = prev is None or (banded and m.board_charged_mu is None)
        if banded:
            first = m.tariff_state is None or m.tariff_state.get("reg") is None
            if (not first and rd.ts and m.board_charged_mu is not None
                    and rd.charged_mu - m.board_charged_mu != amount):
                board = rd.charged_mu - m.board_charged_mu
                s.add(Event(concentrator_id=conc.id, meter_index=m.index, meter_id=m.id,
                            code=EV_BILLING_MISMATCH, detail=rd.seq, ts=now,
                            values=[amount, board, rd.charged_mu],
                            message=("board and head-end disagree by %d mu on %s, reading seq %d: "
                                     "head-end charged %d mu, board %d mu (board charged_mu %d -> %d)"
                                     % (board - amount, m.meter_id, rd.seq, amount, board,
                                        m.board_charged_mu, rd.charged_mu))[:500]))
            m.board_charged_mu = rd.charged_mu
        m.tariff_state = state
        m.billed_seq, m.billed_energy_wh, m.billed_ts = rd.seq, rd.energy_wh, t
        rd.billed = True
        rd.billed_mu = amount
        s.add(m)
        s.add(rd)
        if account is None:
            return None
        if amount == 0:
            # a first reference (e, c): the board gets its first credit
            return account.id if new_ref else None
        entry = ledger.post(s, account.id, "consumption", -amount, actor=conc.dev,
                            reference="reading:%d/seq:%d" % (rd.id, rd.seq), created=now)
        before = entry.balance_after_mu + amount
        thr = account.low_balance_threshold_mu
        if thr and entry.balance_after_mu < thr <= before:
            s.add(Event(concentrator_id=conc.id, meter_index=m.index, meter_id=m.id, code=EV_LOW_BALANCE,
                        detail=entry.balance_after_mu, ts=now,
                        message="balance of %s below %s: %s" % (account.tenant, ledger.format_mu(thr),
                                                               ledger.format_mu(entry.balance_after_mu))))
        return account.id
