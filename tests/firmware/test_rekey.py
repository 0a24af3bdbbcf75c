"""Key rotation that cannot lock a board out (issue 14, check 5): the board
derives the new key from the key that signed the rekey command and keeps
the previous one for downlinks until the server signs with the new one; the
server (concentrator.keyring, what the head-end keeps) signs with the last
key it has seen the board use and confirms a pending key on the first
uplink under it. Tried as an attacker would: twice in a row, while the board
is unreachable, with the board's reply lost, after a reboot."""
import json

import pytest

from concentrator import protocol as P
from concentrator.keyring import ServerKeys, derive
from tests.firmware.offline import Board, Server

N1, N2, N3 = "11" * 16, "22" * 16, "33" * 16


def reachable(b, srv):
    """One key on both sides, and a command signed with it takes effect."""
    assert not srv.keys.pending, "the rotation completed"
    assert b.fw.key_hex == srv.keys.confirmed
    now = b.fw.hal.time()
    srv.send(P.COMMAND, op="relay", m=1, state="open", until=now + 600, exp=now + 300)
    b.run(5)
    assert not b.closed(1), "a command under the server's key is obeyed"
    srv.send(P.COMMAND, op="relay", m=1, state="auto")
    assert b.fw.key_prev is None, "the previous key is forgotten once the server uses the new one"


def new(tmp_path):
    b = Board(tmp_path, policy={"min_switch_s": 0})
    srv = Server(b)
    b.credit(1, bal=10 ** 7)
    srv.exchange()
    return b, srv


def test_rekey_then_a_forced_second_rekey_before_the_next_uplink(tmp_path):
    b, srv = new(tmp_path)
    k0 = b.fw.key_hex
    srv.lose = False
    srv.rekey(N1)                          # the board takes it ...
    assert b.fw.key_hex == P.hexlify(derive(P.key_from_hex(k0), N1))
    srv.rekey(N2)                          # ... and a second one before it said anything
    assert b.fw.key_hex == P.hexlify(derive(P.key_from_hex(k0), N2)), \
        "the second key derives from the key that signed it, on both sides"
    srv.exchange(10)
    reachable(b, srv)
    assert srv.refused == []
    old = P.seal(P.message(b.fw.dev, 10 ** 6, P.COMMAND, 0, op="time", time=1800000000),
                 P.key_from_hex(k0))
    rejected = b.fw.rejected
    b.deliver(old)
    assert b.fw.rejected == rejected + 1, "the first key no longer opens the board"


def test_rekey_while_the_board_is_unreachable(tmp_path):
    b, srv = new(tmp_path)
    srv.lose = True                        # outage: the command and the uplinks are lost
    srv.rekey(N1)
    srv.rekey(N2)
    srv.exchange(60)
    srv.lose = False
    b.fw.hello_sent = False                # the board reconnects: hello under the old key
    srv.exchange(10)                       # the server sends the pending rekey again
    srv.exchange(10)
    reachable(b, srv)


def test_rekey_with_the_boards_reply_lost(tmp_path):
    b, srv = new(tmp_path)
    srv.rekey(N1)
    assert b.fw.key_prev is not None
    srv.lose = True                        # the board's proof (a status under the new key) is lost
    b.run(5)
    srv.outbox.clear()
    srv.lose = False
    # the server still signs with the old key: the board still obeys it
    srv.send(P.CREDIT, m=1, bal=10 ** 7, e=b.fw.meters.last_energy[1],
             c=b.fw.credits.charged[1], top=1)
    assert b.fw.rejected == 0
    b.fw.next_status_ms = 0                # the next uplink proves the new key
    srv.exchange(5)
    reachable(b, srv)


def test_rekey_survives_a_power_cut_before_the_proof(tmp_path):
    b, srv = new(tmp_path)
    srv.rekey(N1)
    srv.outbox.clear()                     # nothing reached the server
    b.vc.power_cycle()                     # both keys were saved before any uplink used them
    srv.attach()
    b.run(60)
    srv.exchange(10)
    reachable(b, srv)
    srv.rekey(N3)                          # and a rotation after a confirmed one
    srv.exchange(10)
    reachable(b, srv)


def test_a_replayed_or_foreign_rekey_is_refused(tmp_path):
    b, srv = new(tmp_path)
    data = srv.rekey(N1)
    srv.exchange(5)
    k = b.fw.key_hex
    b.deliver(data)                        # the same command again: a replay
    forged = P.seal(P.message(b.fw.dev, 10 ** 7, P.COMMAND, 0, op="rekey", nonce=N2),
                    bytes(32))
    b.deliver(forged)
    assert b.fw.key_hex == k
    assert b.fw.last_reject.startswith("bad_mac")


def test_server_keys_bookkeeping():
    k0 = "0f" * 32
    keys = ServerKeys(k0)
    keys.start(N1)
    keys.start(N2)
    keys.start(N2)                         # same nonce: one pending entry
    assert [p[0] for p in keys.pending] == [N1, N2]
    assert keys.signing_key() == P.key_from_hex(k0), "downlinks stay on the confirmed key"
    k1 = derive(P.key_from_hex(k0), N1)
    up = P.seal(P.message("c1", 5, P.STATUS, 0), k1)
    body, confirmed = keys.verify(up, "c1")
    assert confirmed and keys.confirmed == P.hexlify(k1) and keys.pending == []
    with pytest.raises(P.ProtocolError, match="bad_mac"):
        keys.verify(P.seal(P.message("c1", 6, P.STATUS, 0), bytes(32)), "c1")


def test_a_sibling_rekey_arriving_after_the_confirmation_does_not_lock_the_board_out():
    """Two rekeys from k0 are on their way. The board takes the first, proves
    it (the server confirms k1), and only then the second arrives: still
    signed with k0, which the board keeps as its previous key, so the board
    switches to k2. Its uplinks under k2 must still be recognised, and
    nothing derived from a stale key may be resent."""
    k0 = "0f" * 32
    keys = ServerKeys(k0)
    keys.start(N1)
    keys.start(N2)
    k1 = derive(P.key_from_hex(k0), N1)
    k2 = derive(P.key_from_hex(k0), N2)
    _body, confirmed = keys.verify(P.seal(P.message("c1", 5, P.STATUS, 0), k1), "c1")
    assert confirmed and keys.confirmed == P.hexlify(k1)
    assert keys.pending == [] and keys.resend() is None, "nothing stale is sent again"
    assert [e[0] for e in keys.late] == [N2]
    # the late sibling switched the board: recognised, and it becomes the confirmed key
    _body, confirmed = keys.verify(P.seal(P.message("c1", 6, P.STATUS, 0), k2), "c1")
    assert confirmed and keys.confirmed == P.hexlify(k2) and keys.resend() is None
    # a new rotation starts from the key the board proved; the stored form round-trips
    keys.start(N1)
    again = ServerKeys(keys.confirmed, keys.entries)
    assert [e[0] for e in again.pending] == [N1] and again.resend() == {"op": "rekey", "nonce": N1}
    # entries stored by an older head-end ([nonce, key]) count as derived from the confirmed key
    old = ServerKeys(k0, [[N1, P.hexlify(k1)]])
    assert [e[0] for e in old.pending] == [N1]


def test_verify_with_the_body_already_split_checks_the_same():
    """The head-end decodes an uplink's body once (P.split, its own JSON
    decoder) and hands the parts to verify: a bad signature, another
    device, a replayed counter are refused as without them, and a pending
    key still completes a rotation."""
    k0 = "0f" * 32
    keys = ServerKeys(k0)
    keys.start(N1)
    k1 = derive(P.key_from_hex(k0), N1)
    good = P.seal(P.message("c1", 5, P.STATUS, 0), P.key_from_hex(k0))
    for data, dev, last_n, reason in ((P.seal(P.message("c1", 5, P.STATUS, 0), bytes(32)), "c1", -1, "bad_mac"),
                                      (good, "c2", -1, "wrong_device"), (good, "c1", 5, "replay")):
        with pytest.raises(P.ProtocolError, match=reason):
            keys.verify(data, dev, last_n, parts=P.split(data, json.loads))
    assert keys.verify(good, "c1", parts=P.split(good))[0]["n"] == 5
    up = P.seal(P.message("c1", 6, P.STATUS, 0), k1)
    body, confirmed = keys.verify(up, "c1", parts=P.split(up))
    assert confirmed and body["n"] == 6 and keys.confirmed == P.hexlify(k1)
