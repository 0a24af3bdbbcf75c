"""Ingest: one message, one transaction (ingest/__init__.py)."""
import logging
import threading
import time

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import select

from concentrator import protocol

from ..core.events import EV_OUT_OF_RANGE, EV_UPLINK_REJECTED
from ..models import Concentrator, Event
from ..services import alerts, ota
from ..transport import downlink, outbox
from . import bounds, envelope, records, status
from .billing_run import Biller
from .envelope import Rejected
from .stats import IngestStats

log = logging.getLogger("headend.ingest")

REJECTION_EVENT_INTERVAL_S = 60
REKEY_RESEND_S = 10      # a pending rekey is sent again at most this often (and on every hello)


class Ingest:
    def __init__(self, session_factory, clock=time.time, attempts=3, outbox=False):
        """outbox: the replies are also queued in the outbox in the message's
        transaction (transport.outbox), for a dispatcher to publish in
        counter order: what several workers sharing the ingest need (their
        replies to one board would otherwise race each other)."""
        self.session_factory = session_factory
        self.outbox = outbox
        self.clock = clock
        self.attempts = attempts
        self.stats = IngestStats()
        self.bill = Biller(self.stats)
        self._last_reject_event = {}
        self._reject_lock = threading.Lock()

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
        """One event per board and reason per interval (a flood costs nothing)."""
        key = (r.conc_id, r.reason)
        now = self.clock()
        with self._reject_lock:
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

    def _handle(self, topic, payload):
        dev, payload = envelope.parse(topic, payload)
        now = int(self.clock())
        with self.session_factory() as s:
            seen = alerts.track(s)
            # the row lock serialises workers handling the same device (PostgreSQL)
            conc = s.exec(select(Concentrator).where(Concentrator.dev == dev).with_for_update()).first()
            if conc is None:
                raise Rejected("unknown_device", dev)
            try:
                body, under_confirmed = envelope.verify(s, conc, payload, dev, now)
            except protocol.ProtocolError as e:
                raise Rejected(e.args[0] if e.args else "malformed", "n=%s" % conc.last_up_n, conc.id)
            try:
                problems = bounds.clean_body(body, now)
            except bounds.OutOfRange as e:
                raise Rejected("bad_fields", str(e), conc.id)
            if problems:
                self.stats.inc("fields_out_of_range", len(problems))
                s.add(Event(concentrator_id=conc.id, code=EV_OUT_OF_RANGE, ts=now,
                            message=("%s message: fields out of range, ignored: %s"
                                     % (str(body.get("t"))[:8], bounds.describe(problems)))[:500]))
            envelope.claim_counter(s, conc, body["n"])
            if body.get("v") != protocol.VERSION:
                raise Rejected("bad_fields", "version %r" % body.get("v"), conc.id)
            conc.last_seen = now
            conc.online = True
            t = body["t"]
            pre = []
            resend = downlink.keys_of(conc).resend() if under_confirmed and conc.key_pending else None
            if resend and (t == protocol.HELLO or now - (conc.rekey_sent_at or 0) >= REKEY_RESEND_S):
                # a rekey is pending and the board still signs with the
                # confirmed key: it (re)connected without the command, or
                # lost it. Send it again first (its counter before the replies').
                pre = [downlink.command(s, conc, ts=now, **resend)]
                conc.rekey_sent_at = now
            if t == protocol.HELLO:
                out = pre + status.hello(s, conc, body, now)
                if isinstance(body.get("ota"), dict):
                    out += ota.on_board_report(s, conc, body["ota"], now)
            elif t == protocol.OTA_STATUS:
                if isinstance(body.get("fw"), str):
                    conc.fw = body["fw"][:40]
                out = pre + ota.on_board_report(s, conc, body, now)
            elif t == protocol.RECORDS:
                out = pre + records.records(s, conc, body, now, self.stats, self.bill, seen)
            elif t == protocol.STATUS:
                out = pre + status.status(s, conc, body, now)
            else:
                raise Rejected("bad_fields", "type %r" % t, conc.id)
            s.add(conc)
            # alerts and their notifications, in this very transaction
            alerts.after_ingest(s, conc, now, seen, body if t == protocol.STATUS else None)
            if self.outbox and out:
                outbox.queue_own(s, conc.id, conc.dev, out)
            s.commit()
        return out
