"""The notification worker: sends the notification outbox (models.Notification)
on its channels (transport/channels.py), retrying with back-off.

It runs as a thread of the head-end (started in main.py's lifespan, like the
MQTT service) and can be driven one step at a time with any clock (tests,
simulated time): Notifier(session_factory, channels, clock).step().

One delivery, in three transactions:

    1. claim     pending -> sending (a conditional UPDATE: one worker wins),
                 attempts + 1, a lease, and a DeliveryAttempt row: the mark
                 BEFORE the send;
    2. send      on the channel, outside any transaction;
    3. finish    sent; or pending again at now + back-off (30 s, 60 s, ...
                 at most 10 min); or failed (permanent error, or older than
                 two days).

A send that failed (server down, 5xx, timeout) was not accepted, so retrying
it cannot deliver twice. The one ambiguous case is a crash between 2 and 3:
the row stays `sending` past its lease. Then channels whose receivers drop
repeats by the idempotency key (webhooks: X-Wattkeeper-Delivery) are sent
again with the same key (at least once), and the others (e-mail, SMS: a
person would read it twice) are marked `uncertain` and not sent again (at
most once); staff see them in the alert's deliveries.
"""
import logging
import threading
import time

from sqlalchemy import update
from sqlmodel import select

from ..models import DeliveryAttempt, Notification, Webhook
from ..models import alert as K
from .channels import DeliveryError

log = logging.getLogger("headend.notify")

BACKOFF_BASE_S = 30
BACKOFF_MAX_S = 600
MAX_AGE_S = 2 * 86400
LEASE_S = 300


def backoff(attempts):
    """Seconds to wait after the `attempts`-th failed try."""
    return min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1))


class Notifier:
    def __init__(self, session_factory, channels, clock=time.time, batch=50, poll_s=5.0, check_s=60.0,
                 lease_s=LEASE_S, checks=None):
        """channels: {name: channel}; checks: callables(session, now) run every
        check_s (e.g. services.alerts.check_silence), each in its transaction."""
        self.session_factory = session_factory
        self.channels = dict(channels)
        self.clock = clock
        self.batch = batch
        self.poll_s = poll_s
        self.check_s = check_s
        self.lease_s = lease_s
        self.checks = list(checks or [])
        self.stats = {"sent": 0, "retried": 0, "failed": 0, "uncertain": 0, "resent": 0}
        self._next_check = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = None

    def now(self):
        return int(self.clock())

    # ------------------------------------------------------------ one step
    def step(self):
        """Recover crashed sends, run the periodic checks when due, send
        what is due. -> number of notifications sent."""
        now = self.now()
        self.recover(now)
        if now >= self._next_check:
            self._next_check = now + int(self.check_s)
            self.run_checks(now)
        sent = 0
        for nid in self.due(now):
            sent += self.deliver(nid)
        return sent

    def due(self, now):
        with self.session_factory() as s:
            return list(s.exec(select(Notification.id).where(
                Notification.state == K.PENDING, Notification.next_attempt <= now, Notification.not_before <= now)
                .order_by(Notification.id).limit(self.batch)).all())

    def run_checks(self, now):
        for check in self.checks:
            try:
                with self.session_factory() as s:
                    check(s, now)
                    s.commit()
            except Exception:
                log.exception("alert check %s", getattr(check, "__name__", check))

    def deliver(self, nid):
        claimed = self._claim(nid)
        if claimed is None:
            return 0
        n, hook, attempt_id = claimed
        channel = self.channels.get(n.channel)
        try:
            if channel is None:
                raise DeliveryError("no %s channel is configured on this head-end" % n.channel, permanent=True)
            provider_id = channel.send(n, hook)
        except DeliveryError as e:
            self._finish(n, attempt_id, False, e.message, e.permanent)
            return 0
        except Exception as e:   # a channel bug must not stop the worker
            log.exception("channel %s", n.channel)
            self._finish(n, attempt_id, False, "%s: %s" % (type(e).__name__, e), False)
            return 0
        self._finish(n, attempt_id, True, provider_id or "", False)
        return 1

    def _claim(self, nid):
        now = self.now()
        with self.session_factory() as s:
            res = s.execute(update(Notification).where(Notification.id == nid, Notification.state == K.PENDING)
                            .values(state=K.SENDING, attempts=Notification.attempts + 1,
                                    lease_until=now + self.lease_s)
                            .execution_options(synchronize_session=False))
            if res.rowcount != 1:
                s.rollback()
                return None       # another worker has it
            n = s.get(Notification, nid)
            s.refresh(n)
            hook = s.get(Webhook, n.webhook_id) if n.webhook_id is not None else None
            attempt = DeliveryAttempt(notification_id=nid, n=n.attempts, started=now)
            s.add(attempt)
            s.commit()
            return n, hook, attempt.id

    def _finish(self, n, attempt_id, ok, detail, permanent):
        now = self.now()
        if ok:
            values = dict(state=K.SENT, sent=now, lease_until=None, provider_id=detail[:200], last_error="")
            outcome = "ok"
            self.stats["sent"] += 1
        elif permanent or now - n.created > MAX_AGE_S:
            values = dict(state=K.FAILED, lease_until=None, last_error=detail[:500])
            outcome = "error"
            self.stats["failed"] += 1
            log.warning("notification %d (%s to %s) failed for good: %s", n.id, n.channel, n.recipient, detail)
        else:
            values = dict(state=K.PENDING, lease_until=None, last_error=detail[:500],
                          next_attempt=now + backoff(n.attempts))
            outcome = "error"
            self.stats["retried"] += 1
        with self.session_factory() as s:
            s.execute(update(Notification).where(Notification.id == n.id, Notification.state == K.SENDING,
                                                 Notification.attempts == n.attempts)
                      .values(**values).execution_options(synchronize_session=False))
            s.execute(update(DeliveryAttempt).where(DeliveryAttempt.id == attempt_id)
                      .values(finished=now, outcome=outcome, detail=(detail if not ok else "")[:500])
                      .execution_options(synchronize_session=False))
            s.commit()

    def recover(self, now):
        """Sends whose worker died between the send and its mark."""
        with self.session_factory() as s:
            rows = s.exec(select(Notification).where(Notification.state == K.SENDING,
                                                     Notification.lease_until < now)).all()
            for n in rows:
                channel = self.channels.get(n.channel)
                again = channel is not None and channel.at_least_once
                new = dict(state=K.PENDING, next_attempt=now) if again else dict(state=K.UNCERTAIN)
                res = s.execute(update(Notification).where(Notification.id == n.id, Notification.state == K.SENDING,
                                                           Notification.attempts == n.attempts)
                                .values(lease_until=None, last_error="the worker stopped during the send", **new)
                                .execution_options(synchronize_session=False))
                if res.rowcount == 1:
                    s.execute(update(DeliveryAttempt).where(DeliveryAttempt.notification_id == n.id,
                                                            DeliveryAttempt.n == n.attempts)
                              .values(finished=now, outcome="crashed",
                                      detail="sent again with the same key" if again
                                      else "may or may not have been sent: not sent again")
                              .execution_options(synchronize_session=False))
                    self.stats["resent" if again else "uncertain"] += 1
            s.commit()

    # ------------------------------------------------------------ thread
    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="wk-notify", daemon=True)
        self._thread.start()
        return self

    def wake(self):
        self._wake.set()

    def stop(self, timeout=10):
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self):
        while not self._stop.is_set():
            try:
                while self.step() and not self._stop.is_set():
                    pass
            except Exception:
                log.exception("notification worker step")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def snapshot(self):
        return dict(self.stats, running=self._thread is not None and self._thread.is_alive())
