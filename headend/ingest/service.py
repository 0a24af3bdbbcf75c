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


DEFERRED = object()      # a batch's message whose board another worker holds: handled next


class Done:
    """A message handled one by one (after its batch failed): its replies."""

    def __init__(self, out):
        self.out = out


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
        """One message in its own transaction -> its replies ([] when it
        was rejected or failed)."""
        self.stats.inc("received")
        return self._one(topic, payload)

    def handle_batch(self, items):
        """Several messages [(topic, payload)] as a worker found them
        queued, in ONE transaction -> one reply list per message, in order.

        Every message is checked (signature, counter, fields) before it
        changes anything: a forged, replayed or malformed one is rejected
        as handle() would and the others go on. When the transaction fails
        (a concurrent worker, a busy database, a bug), the batch is handled
        again one message at a time, so every good message is stored exactly
        once. The replies are returned after the commit: an ack means stored."""
        items = list(items)
        if len(items) <= 1:
            return [self.handle(t, p) for t, p in items]
        self.stats.inc("received", len(items))
        # boards another worker holds right now (its batch has their other
        # messages) are not waited for: their messages go in a second
        # transaction, after the first one's commit, still in arrival order
        results = self._batch(items, skip_locked=True)
        later = [i for i, r in enumerate(results) if r is DEFERRED]
        if later:
            self.stats.inc("batch_deferred", len(later))
            for i, r in zip(later, self._batch([items[i] for i in later], skip_locked=False)):
                results[i] = r
        return [self._result(topic, res) for (topic, _p), res in zip(items, results)]

    def _batch(self, items, skip_locked):
        try:
            results = self._transaction(items, skip_locked=skip_locked)
        except Exception as e:
            self.stats.inc("batch_fallbacks")
            log.info("ingest batch of %d failed (%s: %s): one message at a time", len(items), type(e).__name__, e)
            return [Done(self._one(t, p)) for t, p in items]
        self.stats.inc("batches")
        return results

    def _one(self, topic, payload):
        try:
            for attempt in range(self.attempts):
                try:
                    return self._result(topic, self._transaction([(topic, payload)])[0])
                except (IntegrityError, OperationalError) as e:
                    # a concurrent worker stored the same seq, or the database was busy
                    if attempt + 1 == self.attempts:
                        raise
                    log.info("ingest retry after %s", type(e).__name__)
                    time.sleep(0.05 * (attempt + 1))
        except Rejected as r:
            self._rejected(topic, r)
        except Exception:
            self.stats.inc("errors")
            log.exception("ingest error on %r", topic)
        return []

    def _result(self, topic, res):
        if isinstance(res, Done):
            return res.out          # handled (and counted) one by one
        if isinstance(res, Rejected):
            self._rejected(topic, res)
            return []
        self.stats.inc("accepted")
        self.stats.inc("downlinks", len(res))
        return res

    def _rejected(self, topic, r):
        self.stats.inc("rejected")
        self.stats.inc("rejected_" + r.reason)
        log.warning("uplink rejected on %r: %s %s", topic, r.reason, r.detail)
        if r.conc_id is not None:
            self._rejection_event(r)

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

    def _transaction(self, items, skip_locked=False):
        """Handle items [(topic, payload)] in one transaction -> for each,
        its replies or the Rejected it was refused with (refused while
        checked: nothing of it was written), or DEFERRED (skip_locked: its
        board was locked by another transaction). Raises when the
        transaction fails (nothing of any message is stored then)."""
        now = int(self.clock())
        results = [None] * len(items)
        todo = []                      # (index, dev, envelope.Uplink, unverified type)
        for i, (topic, payload) in enumerate(items):
            try:
                dev, up = envelope.parse(topic, payload)
                todo.append((i, dev, up, up.body.get("t")))
            except Rejected as r:
                results[i] = r
        if not todo:
            return results
        with self.session_factory() as s:
            seen = alerts.track(s)
            # the row locks serialise workers handling the same device (PostgreSQL),
            # taken in id order (then the accounts, in id order: no deadlock)
            devs = sorted({dev for _i, dev, _p, _t in todo})
            boards = {c.dev: c for c in s.exec(select(Concentrator).where(Concentrator.dev.in_(devs))
                                                .order_by(Concentrator.id)
                                                .with_for_update(skip_locked=skip_locked)).all()}
            busy = set()
            if skip_locked and len(boards) < len(devs):
                busy = set(s.exec(select(Concentrator.dev).where(
                    Concentrator.dev.in_([d for d in devs if d not in boards]))).all())
                for i, dev, _p, _t in todo:
                    if dev in busy:
                        results[i] = DEFERRED
                todo = [x for x in todo if x[1] not in busy]
            work = records.Work(s, now, self.bill, self.stats)
            work.preload([boards[dev] for _i, dev, _p, t in todo if t == protocol.RECORDS and dev in boards],
                         unlocked=[boards[dev] for _i, dev, _p, t in todo if t == protocol.STATUS and dev in boards])
            handled = {}               # board id -> (conc, its last status body)
            replies = []               # (conc, replies) in message order
            for i, dev, up, _t in todo:
                conc = boards.get(dev)
                try:
                    if conc is None:
                        raise Rejected("unknown_device", dev)
                    checked = self._check(conc, up, dev, now)
                except Rejected as r:
                    results[i] = r
                    continue
                out = results[i] = self._apply(s, work, conc, checked, now)
                replies.append((conc, out))
                body = checked[0]
                status_body = body if body["t"] == protocol.STATUS else None
                if conc.id not in handled or status_body is not None:
                    handled[conc.id] = (conc, status_body)
            work.flush()
            s.flush()
            # alerts and their notifications, in this very transaction
            hooks = []
            for conc, status_body in handled.values():
                s.add(conc)
                mine = alerts.Seen()
                mine.events = [e for e in seen.events if e.concentrator_id == conc.id]
                mine.entries = work.entries_of.get(conc.id, [])
                hooks.append((conc, mine, status_body))
            alerts.after_ingest_many(s, hooks, now)
            if self.outbox:
                outbox.queue_replies(s, [(conc.id, conc.dev, out) for conc, out in replies if out])
            s.commit()
        return results

    def _check(self, conc, up, dev, now):
        """Everything that can refuse a message (envelope.Uplink), before it
        writes anything -> (body, keys, confirmed_now, fields out of range,
        checked records)."""
        try:
            body, keys, confirmed_now = envelope.check(conc, up, dev, now)
        except protocol.ProtocolError as e:
            raise Rejected(e.args[0] if e.args else "malformed", "n=%s" % conc.last_up_n, conc.id)
        try:
            problems = bounds.clean_body(body, now)
        except bounds.OutOfRange as e:
            raise Rejected("bad_fields", str(e), conc.id)
        envelope.check_counter(conc, body["n"])
        if body.get("v") != protocol.VERSION:
            raise Rejected("bad_fields", "version %r" % body.get("v"), conc.id)
        t = body["t"]
        if t not in (protocol.HELLO, protocol.OTA_STATUS, protocol.RECORDS, protocol.STATUS):
            raise Rejected("bad_fields", "type %r" % t, conc.id)
        recs = records.check(conc, body, self.stats, now) if t == protocol.RECORDS else None
        return body, keys, confirmed_now, problems, recs

    def _apply(self, s, work, conc, checked, now):
        """Store one checked message -> its replies (a records message's
        are filled in when work.flush() seals them)."""
        body, keys, confirmed_now, problems, recs = checked
        if confirmed_now:
            envelope.confirm_key(s, conc, keys, now)
        under_confirmed = not confirmed_now
        if problems:
            self.stats.inc("fields_out_of_range", len(problems))
            s.add(Event(concentrator_id=conc.id, code=EV_OUT_OF_RANGE, ts=now,
                        message=("%s message: fields out of range, ignored: %s"
                                 % (str(body.get("t"))[:8], bounds.describe(problems)))[:500]))
        envelope.claim_counter(s, conc, body["n"])
        conc.last_seen = now
        conc.online = True
        t = body["t"]
        out = []
        resend = downlink.keys_of(conc).resend() if under_confirmed and conc.key_pending else None
        if resend and (t == protocol.HELLO or now - (conc.rekey_sent_at or 0) >= REKEY_RESEND_S):
            # a rekey is pending and the board still signs with the
            # confirmed key: it (re)connected without the command, or
            # lost it. Send it again first (its counter before the replies').
            work.flush()
            out.append(downlink.command(s, conc, ts=now, **resend))
            conc.rekey_sent_at = now
        if t == protocol.RECORDS:
            records.records(work, conc, body, now, recs, out)
            return out
        if t == protocol.STATUS:
            return status.status(s, conc, body, now, work=work, out=out)
        # the other kinds read and write through the ORM: what is pending
        # goes first (and their counters), the board's meters are read again after
        work.flush()
        work.forget(conc.id)
        if t == protocol.HELLO:
            out += status.hello(s, conc, body, now)
            if isinstance(body.get("ota"), dict):
                out += ota.on_board_report(s, conc, body["ota"], now)
        elif t == protocol.OTA_STATUS:
            if isinstance(body.get("fw"), str):
                conc.fw = body["fw"][:40]
            out += ota.on_board_report(s, conc, body, now)
        return out
