"""The MQTT side of the head-end (paho-mqtt v2 API).

MqttService subscribes to wk/+/up (or the shared subscription
$share/wk-headend/wk/+/up so several workers split the load), hands the
messages to the ingest in a worker thread (never in paho's network thread):
what it finds queued, up to batch_max messages, in one transaction
(Ingest.handle_batch), and publishes the replies with QoS 1 once it has
committed. paho reconnects by itself when the
broker goes away; on_connect subscribes again.

With a session factory it also runs the outbox dispatcher: messages that
people caused (sales, tariff changes, commands; transport.outbox), from this
process or any other, are published in counter order while connected.
"""
import logging
import queue
import ssl
import threading
import time
import uuid

import paho.mqtt.client as mqtt

from concentrator import protocol

from ..core.config import parse_mqtt_url
from . import outbox
from . import partition as partition_mod

log = logging.getLogger("headend.mqtt")

UP_TOPIC = "wk/+/up"
SHARED_GROUP = "wk-headend"


class MqttService:
    def __init__(self, ingest, url="mqtt://127.0.0.1:1883", shared=False, client_id=None,
                 queue_size=10000, keepalive=30, shared_group=SHARED_GROUP, session_factory=None,
                 ca_file=None, outbox_poll_s=0.5, batch_max=64, linger_s=0.0, partition=None):
        """partition: (i, n), this worker's share of the boards
        (transport/partition.py; needs session_factory; not with shared)."""
        self.ingest = ingest
        if partition is not None and (shared or session_factory is None):
            raise ValueError("a partitioned worker needs the database and no shared subscription")
        self.partition = partition
        self.owner = partition_mod.Owner(session_factory, *partition) if partition is not None else None
        self.batch_max = max(1, int(batch_max))
        self.linger_s = max(0.0, float(linger_s))
        self.session_factory = session_factory
        self.outbox_poll_s = outbox_poll_s
        self._wake = threading.Event()
        self._dispatcher = None
        # one publisher at a time: the outbox and the ingest's replies leave in counter order
        self._publish_lock = threading.Lock()
        self.cfg = parse_mqtt_url(url)
        self.shared = shared
        self.shared_group = shared_group
        self.client_id = client_id or ("wk-headend-" + uuid.uuid4().hex[:10])
        self.keepalive = keepalive
        self.queue = queue.Queue(maxsize=queue_size)
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.stats = {"connects": 0, "disconnects": 0, "received": 0, "published": 0,
                      "queue_full": 0, "outbox_sent": 0}
        self._stop = threading.Event()
        self._worker = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  clean_session=True)
        if self.cfg["username"]:
            self.client.username_pw_set(self.cfg["username"], self.cfg["password"])
        if self.cfg["tls"]:
            self.client.tls_set(ca_certs=ca_file or None, cert_reqs=ssl.CERT_REQUIRED)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.max_queued_messages_set(10000)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    @property
    def topic(self):
        return ("$share/%s/%s" % (self.shared_group, UP_TOPIC)) if self.shared else UP_TOPIC

    # ------------------------------------------------------------- lifecycle
    def start(self):
        self._stop.clear()
        if self.owner is not None:
            n = self.owner.load()
            log.info("partition %d/%d: %d boards known", self.owner.index, self.owner.count, n)
        self._worker = threading.Thread(target=self._work, name="wk-ingest", daemon=True)
        self._worker.start()
        if self.session_factory is not None:
            self._dispatcher = threading.Thread(target=self._dispatch, name="wk-outbox", daemon=True)
            self._dispatcher.start()
        # connect_async + loop_start: the first connection and every reconnection
        # are retried in paho's thread, also when the broker is not up yet
        self.client.connect_async(self.cfg["host"], self.cfg["port"], keepalive=self.keepalive)
        self.client.loop_start()
        return self

    def stop(self, timeout=5):
        self._stop.set()
        try:
            self.client.disconnect()
        except Exception:
            pass
        self.client.loop_stop()
        if self._worker is not None:
            self.queue.put(None)
            self._worker.join(timeout)
        self._wake.set()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout)

    def wait_ready(self, timeout=10):
        """True once connected and subscribed."""
        return self.subscribed.wait(timeout)

    # ------------------------------------------------------------- callbacks
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.warning("MQTT connect refused: %s", reason_code)
            return
        self.stats["connects"] += 1
        self.connected.set()
        log.info("MQTT connected to %s:%d, subscribing %s", self.cfg["host"], self.cfg["port"], self.topic)
        client.subscribe(self.topic, qos=1)
        self._wake.set()   # publish what waited in the outbox

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        self.subscribed.clear()
        self.stats["disconnects"] += 1
        if not self._stop.is_set():
            log.warning("MQTT disconnected (%s); paho reconnects", reason_code)

    def _on_message(self, client, userdata, msg):
        if self.owner is not None and not self.owner.owns(protocol.device_of_topic(msg.topic)):
            self.stats["other_partition"] = self.stats.get("other_partition", 0) + 1
            return                  # another worker's board
        self.stats["received"] += 1
        try:
            self.queue.put_nowait((msg.topic, bytes(msg.payload)))
        except queue.Full:
            # the board re-sends anything that was not acknowledged
            self.stats["queue_full"] += 1

    # ---------------------------------------------------------------- worker
    def _work(self):
        stop = False
        while not stop and not self._stop.is_set():
            item = self.queue.get()
            if item is None:
                break
            batch = [item]
            # what else waits already (or arrives within linger_s): one transaction for all of it
            until = time.monotonic() + self.linger_s if self.linger_s else None
            while len(batch) < self.batch_max:
                try:
                    if until is None:
                        item = self.queue.get_nowait()
                    else:
                        item = self.queue.get(timeout=max(0.0, until - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                if len(batch) > 1 and hasattr(self.ingest, "handle_batch"):
                    outs = self.ingest.handle_batch(batch)
                else:
                    outs = [self.ingest.handle(topic, payload) for topic, payload in batch]
            except Exception:  # the ingest should never raise; keep the worker alive anyway
                log.exception("ingest raised")
                continue
            self.stats["batches"] = self.stats.get("batches", 0) + 1
            if getattr(self.ingest, "outbox", False) and self.session_factory is not None:
                if any(outs):
                    self._wake.set()     # the replies are in the outbox: the dispatcher sends them in order
            else:
                self.reply(*outs)

    def reply(self, *replies):
        """Publish the ingest's replies (each message's [(topic, payload)],
        in order), after whatever the outbox holds for their boards with a
        lower counter: a sale made elsewhere (the desk, the CLI) may have
        sealed its credit just before these replies, and a board drops any
        counter below one it has already seen. One look at the outbox for
        the whole batch (it was one per message: a quarter of a partitioned
        worker's time in the fleet bench)."""
        replies = [msgs for msgs in replies if msgs]
        if not replies:
            return
        with self._publish_lock:
            if self.session_factory is not None:
                try:
                    self._send_outbox_below(outbox.lowest_counters(m for msgs in replies for m in msgs))
                except Exception:
                    log.exception("outbox before replies")
            for msgs in replies:
                self.publish(msgs)

    # ------------------------------------------------------------- outbox
    def wake(self):
        """Something was queued in the outbox: publish it now."""
        self._wake.set()

    def _dispatch(self):
        while not self._stop.is_set():
            self._wake.wait(self.outbox_poll_s)
            self._wake.clear()
            if self._stop.is_set() or not self.connected.is_set():
                continue
            try:
                self.send_outbox()
            except Exception:
                log.exception("outbox dispatch")

    def send_outbox(self):
        """Publish every unsent outbox message (oldest counter first per board)."""
        with self._publish_lock:
            self._send_outbox()

    def _send_outbox(self):
        while True:
            with self.session_factory() as s:
                rows = outbox.pending(s, exclusive=self.shared, partition=self.partition)
                self._send_rows(s, rows)
            if len(rows) < outbox.MAX_BATCH:
                return

    def _send_outbox_below(self, below):
        """Publish and mark sent the outbox's messages of the boards in
        `below` {dev: counter} whose counter is below the board's."""
        with self.session_factory() as s:
            self._send_rows(s, outbox.pending_below(s, below, partition=self.partition))

    def _send_rows(self, s, rows):
        if not rows:
            return
        # several dispatchers: marked sent only once the broker has them
        self.publish([(r.topic, r.payload) for r in rows], wait_s=10 if self.shared else None, whole=True)
        outbox.mark_sent(s, [r.id for r in rows])
        s.commit()
        self.stats["outbox_sent"] += len(rows)

    def publish(self, msgs, wait_s=None, whole=False):
        """Publish [(topic, payload), ...] with QoS 1 (queued by paho while
        disconnected). wait_s: until the broker has acknowledged them (so a
        board's next messages, sent by another dispatcher, cannot overtake
        them); raises TimeoutError. whole (the outbox's): raises as soon as
        paho refuses one (its queue is full), the rest is not offered."""
        info = None
        for topic, payload in msgs:
            info = self.client.publish(topic, payload, qos=1)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                # paho's queue is full and dropped it. The outbox's (whole): none after it may
                # leave before it (a board drops a counter below one it has seen); they stay
                # unsent and go again, in order. A direct reply (an ack) is just lost: the board
                # sends its records again and the next ack covers them.
                self.stats["queue_refused"] = self.stats.get("queue_refused", 0) + 1
                if whole:
                    raise TimeoutError("paho's outgoing queue is full")
                continue
            self.stats["published"] += 1
        if wait_s and info is not None:
            info.wait_for_publish(wait_s)
            if not info.is_published():
                raise TimeoutError("the broker did not acknowledge the outbox batch")

    def snapshot(self):
        d = dict(self.stats)
        d["connected"] = self.connected.is_set()
        d["queue"] = self.queue.qsize()
        d["topic"] = self.topic
        return d
