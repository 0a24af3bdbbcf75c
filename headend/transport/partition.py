"""Boards shared out among head-end workers by a fixed rule (a static
partition), the alternative to a shared subscription on brokers that cannot
pick the worker by topic (Mosquitto).

Worker i of n (`WK_MQTT_PARTITION=i/n`, `wattkeeper worker --partition
i/n`) handles the boards whose id is i modulo n. It subscribes to every
uplink, drops the other workers' boards before reading them, publishes its
boards' replies directly (no outbox round trip, no other worker to race),
and its dispatcher sends only its boards' outbox. Every board has exactly
one worker: its messages are handled in order and never wait for another
worker's lock. A worker that stops leaves its boards unserved until it is
back (systemd restarts it); a shared subscription moves them over at once.
"""
import logging
import threading
import time

from sqlmodel import select

from ..models import Concentrator

log = logging.getLogger("headend.mqtt")

UNKNOWN_TTL_S = 60          # a device the database did not know is looked up again after this
MAX_UNKNOWN = 10000


class Owner:
    """Which boards are this worker's: board id modulo n (the outbox's rows
    carry the id). The device names seen on topics are mapped to ids from a
    cache filled at start and on a miss (a board provisioned since); a
    device the database does not know goes to worker 0, which refuses it."""

    def __init__(self, session_factory, index, count):
        self.session_factory, self.index, self.count = session_factory, index, count
        self._ids = {}
        self._unknown = {}          # dev -> when the database did not know it (a flood costs no queries)
        self._lock = threading.Lock()

    def load(self):
        with self.session_factory() as s:
            rows = s.exec(select(Concentrator.dev, Concentrator.id)).all()
        with self._lock:
            self._ids.update(dict(rows))
        return len(rows)

    def owns_id(self, conc_id):
        return conc_id % self.count == self.index

    def owns(self, dev):
        if dev is None:
            return self.index == 0          # not a board's topic: refused by worker 0
        with self._lock:
            conc_id = self._ids.get(dev)
            seen = self._unknown.get(dev)
        if conc_id is None:
            if seen is not None and time.monotonic() - seen < UNKNOWN_TTL_S:
                return self.index == 0
            try:
                with self.session_factory() as s:
                    conc_id = s.exec(select(Concentrator.id).where(Concentrator.dev == dev)).first()
            except Exception:
                log.exception("partition: looking up %r", dev)
                conc_id = None
            with self._lock:
                if conc_id is None:
                    if len(self._unknown) >= MAX_UNKNOWN:
                        self._unknown.clear()
                    self._unknown[dev] = time.monotonic()
                    return self.index == 0
                self._ids[dev] = conc_id
                self._unknown.pop(dev, None)
        return self.owns_id(conc_id)
