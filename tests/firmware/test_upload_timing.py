"""When a board sends (issue 13, the firmware's part): the readings of a
record interval go up at a per-board offset into the interval, derived from
the device id (deterministic), so a fleet recording on the same 15-minute
boundary does not arrive in the same second; urgent events (a relay
switched) go at once; a batch nobody acknowledges is resent after 10 s,
then exponentially later with jitter, capped, and an ack resets that."""
from tests.firmware.offline import Board, Server   # (first: sets up the firmware's imports)
from concentrator import protocol as P            # noqa: E402
from concentrator.mqtt import Jitter              # noqa: E402


def _offset(dev, spread=450):
    return Jitter("up:" + dev).next() % spread


def test_a_fleet_spreads_its_uploads_over_the_interval():
    offs = [_offset("site-c%d" % i) for i in range(300)]
    assert offs == [_offset("site-c%d" % i) for i in range(300)], "deterministic"
    per_second = {}
    for o in offs:
        per_second[o] = per_second.get(o, 0) + 1
    assert max(per_second.values()) <= 4, "300 boards never land in one second"
    assert len(per_second) > 200
    assert min(offs) < 60 and max(offs) > 390, "spread over the first half of 15 minutes"


def _board(tmp_path, **kw):
    b = Board(tmp_path, meters=2, **kw)
    srv = Server(b, virtual_net=True)            # network timers on the virtual clock
    return b, srv


def test_readings_go_up_at_the_boards_offset_and_events_at_once(tmp_path):
    b, srv = _board(tmp_path)
    srv.exchange(1)
    fw = b.fw
    off = fw.up_offset_s
    assert 0 <= off < 450 and off == _offset(fw.dev)
    # run to just before the next record boundary, everything acknowledged
    t = fw.hal.time()
    boundary = (t // 900 + 1) * 900
    srv.exchange(boundary - t - 2)
    srv.bodies.clear()
    sent_at = []
    orig = srv._capture

    def capture(topic, payload):
        sent_at.append((fw.hal.time(), P.split(payload)[1]))
        return orig(topic, payload)
    fw.link.publish = capture
    for _ in range(off + 30):
        srv.exchange(1)
    rd = [t for t, body in sent_at if body["t"] == P.RECORDS]
    assert rd, "the interval's readings went up"
    assert boundary + off <= rd[0] <= boundary + off + 3, (rd[0] - boundary, off)
    # a relay event goes at once, whatever the offset
    sent_at.clear()
    srv.send(P.COMMAND, op="relay", m=1, state="open", until=fw.hal.time() + 600)
    srv.exchange(2)
    rd = [body for t, body in sent_at if body["t"] == P.RECORDS]
    assert rd and any(r[1] == P.KIND_EVENT and r[4][0] == P.EV_RELAY_OPEN for r in rd[0]["recs"]), rd[0]["recs"]


def test_unacknowledged_batches_back_off_exponentially_with_jitter(tmp_path):
    b, srv = _board(tmp_path, cfg={"upload_spread_s": 0})
    fw = b.fw
    srv.exchange(1)
    sends = []

    def capture(topic, payload):
        body = P.split(payload)[1]
        if body["t"] == P.RECORDS:
            sends.append(fw.hal.ticks_ms())
        return True                                   # the server never acks
    fw.link.publish = capture
    srv.send(P.COMMAND, op="relay", m=1, state="open", until=fw.hal.time() + 7200)
    b.run(3600)
    gaps = [(y - x) / 1000 for x, y in zip(sends, sends[1:])]
    assert 9 <= gaps[0] <= 12, gaps
    for g1, g2 in zip(gaps, gaps[1:]):
        assert g2 >= g1 * 1.4 or g2 >= 300 * 0.74, gaps    # doubling, +/- 25 %
    assert max(gaps) <= 300 * 1.01 + 1, "capped at resend_max_s"
    assert len(sends) < 25
    # an ack resets the back-off: the next batch is resent after 10 s again
    srv.send(P.ACK, seq=fw.journal.last_seq)
    sends.clear()
    srv.send(P.COMMAND, op="relay", m=1, state="closed", until=fw.hal.time() + 600)
    b.run(60)
    gaps = [(y - x) / 1000 for x, y in zip(sends, sends[1:])]
    assert gaps and 9 <= gaps[0] <= 12, gaps


def test_two_boards_jitter_differently():
    a = Jitter("up:site-c1")
    b = Jitter("up:site-c2")
    sa = [a.spread(10000) for _ in range(8)]
    sb = [b.spread(10000) for _ in range(8)]
    assert sa != sb and all(7500 <= x < 12500 for x in sa + sb)
