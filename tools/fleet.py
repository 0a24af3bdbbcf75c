"""Simulated concentrators and head-end workers through a real broker, for
the shared-ingest test (tests/headend/test_shared_workers.py) and
`python -m tools.bench fleet`.

    FleetBoard      one board's uplink side over MQTT: a journal of records,
                    `rd` messages signed with its key, acks, resends of what
                    was not acknowledged within the ack timeout, every
                    downlink verified as the firmware does (its counter must
                    be above the last one: a downlink out of order is dropped);
                    given the property's tariff, its meters are billed by
                    the firmware's own concentrator.credit.Credits (banded
                    readings with the board's charge, credits applied, the
                    local credit in its statuses)
    start_workers   `wattkeeper worker` processes on a shared subscription
"""
import os
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt

from concentrator import protocol

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FleetBoard:
    def __init__(self, dev, key_hex, meters, broker_host, broker_port, t0, ack_timeout_s=10.0, record_s=900,
                 energy0=1000, client=None, resend_max_s=None, versions=None):
        self.dev, self.key = dev, protocol.key_from_hex(key_hex)
        self.versions = versions
        self.credits = None
        if versions:
            from concentrator.credit import Credits
            self.credits = Credits(meters)
            for m in range(meters):
                self.credits.on_poll(m, versions, energy0, 0)     # the first poll: the baseline
        self.credits_heard = 0
        self.records_msgs = 0
        # resend_max_s set: the firmware's back-off (concentrator/core.py): a batch not
        # acknowledged in the ack timeout goes again, then after twice as long each time
        # (+/- 25 %, concentrator.mqtt.Jitter from the device id), at most resend_max_s;
        # an ack resets it. None: every ack timeout (the old behaviour).
        self.resend_max_s = resend_max_s
        self.resend_s = ack_timeout_s
        self.jitter = firmware_jitter("up:" + dev) if resend_max_s else None
        self.up_offset_s = 0
        self.latencies = []          # records message sent -> its last record acknowledged (s)
        self.awaiting = {}           # last seq of a records message -> when it was first sent
        self.meters, self.t0, self.record_s = meters, t0, record_s
        self.ack_timeout_s = ack_timeout_s
        self.n = 0
        self.seq = 0
        self.down_n = -1
        self.energy = [energy0] * meters
        self.journal = {}            # seq -> record, until acknowledged
        self.acked = 0
        self.sent_at = {}            # seq -> last time sent
        self.resent = 0
        self.sent_records = 0
        self.out_of_order = 0        # downlinks dropped: counter below the last one, never seen before
        self.duplicates = 0          # the same downlink twice (a dispatcher died before marking it sent)
        self.bad = 0
        self.seen_n = set()
        self.ooo_log = []            # (counter, the highest seen, kind, s since that highest arrived): diagnosis
        self.down_at = None          # when the highest counter arrived
        self.downlinks = 0
        self.lock = threading.Lock()
        self.acked_at = None
        self.own = client is None
        if client is None:
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fleet-" + dev, clean_session=True)
            client.on_message = self._on_message
            client.connect(broker_host, broker_port, keepalive=60)
            client.subscribe(protocol.topic_down(dev), qos=1)
            client.loop_start()
        self.client = client

    def close(self):
        if self.own:
            self.client.loop_stop()
            self.client.disconnect()

    def _on_message(self, _c, _u, msg):
        try:
            body = protocol.verify(msg.payload, self.key, dev=self.dev)
        except protocol.ProtocolError:
            with self.lock:
                self.bad += 1
            return
        with self.lock:
            n = body["n"]
            if n <= self.down_n:      # the firmware drops it as a replay
                if n in self.seen_n:
                    self.duplicates += 1
                else:
                    self.out_of_order += 1
                    self.ooo_log.append((n, self.down_n, body.get("t"), time.monotonic() - self.down_at))
                return
            self.seen_n.add(n)
            self.down_n = n
            self.down_at = time.monotonic()
            self.downlinks += 1
            if body["t"] == protocol.CREDIT and self.credits is not None:
                self.credits.sync(body["m"], body["bal"], body["e"], body.get("c"), body.get("top"))
                self.credits_heard += 1
            elif body["t"] == protocol.ACK:
                a = body["seq"]
                if a > self.acked:
                    self.acked = a
                for s in [s for s in self.journal if s <= a]:
                    del self.journal[s]
                    self.sent_at.pop(s, None)
                now = time.monotonic()
                for last in [x for x in self.awaiting if x <= a]:
                    self.latencies.append(now - self.awaiting.pop(last))
                self.resend_s = self.ack_timeout_s
                if not self.journal:
                    self.acked_at = time.monotonic()

    def _publish(self, kind, **fields):
        self.n += 1
        body = protocol.message(self.dev, self.n, kind, int(fields.pop("ts", self.t0)), **fields)
        self.client.publish(protocol.topic_up(self.dev), protocol.seal(body, self.key), qos=1)

    def record_interval(self, t):
        """One reading of every meter at time t, into the journal, sent at once."""
        recs = []
        with self.lock:
            for m in range(self.meters):
                self.energy[m] += 50 + (m * 7) % 40
                self.seq += 1
                values = [self.energy[m], 200, 0]
                if self.credits is not None:
                    self.credits.on_poll(m, self.versions, self.energy[m], t)
                    values.append(self.credits.on_record(m, self.versions, t))
                    values.extend(self.credits.band_list(m))
                rec = [self.seq, protocol.KIND_READING, m, t, values]
                self.journal[self.seq] = rec
                self.sent_at[self.seq] = time.monotonic()
                recs.append(rec)
            after = recs[0][0] - 1 if self.acked == recs[0][0] - 1 else None
            self.awaiting[self.seq] = time.monotonic()
        self.sent_records += len(recs)
        self.records_msgs += 1
        fields = {"recs": recs, "ts": t}
        if after is not None:
            fields["after"] = after
        self._publish(protocol.RECORDS, **fields)

    def status(self, t):
        """The firmware's status (core.status_fields): every meter's row
        [index, online, relay closed, local credit] and the bus error
        counters of the meters that have any (none here)."""
        with self.lock:
            credit = [self.local_credit(m) for m in range(self.meters)]
        self._publish(protocol.STATUS, ts=t, up=max(0, t - self.t0), pending=len(self.journal), last=self.seq,
                      acked=self.acked, meters=[[m, 1, 1, credit[m]] for m in range(self.meters)], bus=[])

    def local_credit(self, m):
        """What the board believes meter m has left (mu; None before its first credit)."""
        if self.credits is None:
            return 10 ** 9 - self.energy[m]
        return self.credits.value(m)

    def resend_due(self, now=None):
        """Send again, in one message, what waited longer than the ack timeout."""
        now = now or time.monotonic()
        with self.lock:
            due = sorted(s for s, at in self.sent_at.items() if now - at >= self.resend_s)[:64]
            recs = [self.journal[s] for s in due]
            for s in due:
                self.sent_at[s] = now
            if recs and self.jitter is not None:
                self.resend_s = min(self.jitter.spread(int(self.resend_s * 2000)) / 1000.0, self.resend_max_s)
        if recs:
            self.resent += len(recs)
            self._publish(protocol.RECORDS, recs=recs, ts=recs[-1][3])
        return len(recs)

    def waiting_since(self):
        """When each records message still unacknowledged was first sent."""
        with self.lock:
            return list(self.awaiting.values())

    def missing(self):
        """Counters up to the highest seen that never arrived (lost, or still on their way)."""
        with self.lock:
            return [n for n in range(min(self.seen_n) if self.seen_n else 0, self.down_n) if n not in self.seen_n]

    def done(self):
        with self.lock:
            return not self.journal and self.acked == self.seq


def play(boards, intervals, t0, record_s=900, status_every=4, at=None, pause_s=0.05):
    """Every board records each interval (and sends a status every
    `status_every`); at(i) after interval i's messages (a kill, a sale)."""
    for i in range(intervals):
        t = t0 + record_s * (i + 1)
        for b in boards:
            b.record_interval(t)
            if i % status_every == status_every - 1:
                b.status(t)
        if at is not None:
            at(i)
        time.sleep(pause_s)


def settle(boards, timeout_s):
    """Resend what waits, as the boards do, until every record is acked -> all done."""
    deadline = time.monotonic() + timeout_s
    while not all(b.done() for b in boards) and time.monotonic() < deadline:
        for b in boards:
            b.resend_due()
        time.sleep(0.2)
    return all(b.done() for b in boards)


def seed_boards(session, name, keys, meters, opening_wh=1000, **site):
    """A property of boards {dev: key hex} with `meters` single-phase
    meters each (ids "<dev>-<index>"), as the fleet's boards expect them;
    site: seed_site's other arguments (tariff, opening balance)."""
    from headend.services.seed import seed_site
    return seed_site(session, name, [{"dev": d, "key_hex": k, "meters": [
        {"id": "%s-%02d" % (d, m), "model": "sdm120", "opening_energy_wh": opening_wh} for m in range(meters)]}
        for d, k in keys.items()], **site)


def firmware_jitter(seed_text):
    """The firmware's own concentrator.mqtt.Jitter (its module needs umqtt.simple, fetched by bootstrap)."""
    if "umqtt.simple" not in sys.modules:
        from sim.firmware import load_umqtt
        load_umqtt()
    from concentrator.mqtt import Jitter
    return Jitter(seed_text)


def upload_offset_s(dev, record_s=900, spread_s=None):
    """The board's upload offset into a record interval, as concentrator/core_init.py computes it."""
    spread = record_s // 2 if spread_s is None else spread_s
    return firmware_jitter("up:" + dev).next() % spread if spread > 0 else 0


class FleetMux:
    """Many boards over one MQTT connection (a fleet on one machine): each
    board keeps its own journal, counters and key; downlinks are routed to
    their board by topic."""

    def __init__(self, host, port, name="fleet-mux"):
        self.boards = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, clean_session=True)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_message = self._route
        self.client.connect(host, port, keepalive=60)
        self.client.subscribe("wk/+/down", qos=1)
        self.client.loop_start()

    def add(self, dev, key_hex, meters, t0, **kw):
        b = FleetBoard(dev, key_hex, meters, None, None, t0, client=self.client, **kw)
        self.boards[dev] = b
        return b

    def _route(self, c, u, msg):
        b = self.boards.get(protocol.device_of_topic(msg.topic))
        if b is not None:
            b._on_message(c, u, msg)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def start_workers(db_url, mqtt_url, count, env=None, wait=True, partitioned=False):
    """`wattkeeper worker` processes sharing the ingest -> [Popen]
    (wait=False: started, not waited for: wait_workers; partitioned: each
    owns a share of the boards, `--partition i/count`, instead of the
    shared subscription)."""
    e = dict(os.environ, **(env or {}))
    e["PYTHONPATH"] = os.pathsep.join([ROOT, os.path.join(ROOT, "firmware"), e.get("PYTHONPATH", "")])
    procs = []
    for i in range(count):
        share = ["--partition", "%d/%d" % (i, count)] if partitioned else []
        procs.append(subprocess.Popen([sys.executable, "-m", "headend.cli", "--db", db_url, "worker", "--mqtt",
                                       mqtt_url, "--client-id", "wk-worker-%d-%d" % (os.getpid(), i)] + share,
                                      cwd=ROOT, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    for p in procs:
        p.ready = threading.Event()
        p.log = []
        threading.Thread(target=_drain, args=(p,), daemon=True).start()
    if wait:
        wait_workers(procs)
    return procs


def wait_workers(procs):
    """Until each worker has subscribed."""
    for p in procs:
        if not p.ready.wait(60):
            raise RuntimeError("worker did not start: %s" % "".join(p.log[-20:]))
    return procs


def worker_stats(p):
    """A worker's last `stats` line (WK_WORKER_STATS_S) as {name: int}, or None before its first."""
    lines = [x.split() for x in p.log if x.startswith("stats ")]
    return {k: int(v) for k, v in (kv.split("=", 1) for kv in lines[-1][1:])} if lines else None


def _drain(p):
    for line in p.stdout:
        p.log.append(line)
        if "ingest worker" in line:
            p.ready.set()


def stop_workers(procs):
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
