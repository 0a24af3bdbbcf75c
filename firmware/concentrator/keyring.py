# Key rotation, the server's side (docs/protocol.md, "Key rotation"): what a
# head-end keeps per board so that no rekey can lock the board out.
# The board's side is in core.py (Concentrator._command "rekey").
#
#   new key = HMAC-SHA256(K, "wk-rekey:" + nonce bytes)
#
# where K is the key that signed the rekey command. The server signs every
# downlink, the rekey command included, with the CONFIRMED key: the last
# key it has seen the board use. A rekey only adds a pending key; the first
# uplink that verifies under a pending key confirms it (and drops every
# other pending key). So a repeated rekey, a forced second one, a command
# lost in an outage or a reply lost on the way back all end with both sides
# on one key: the board keeps its previous key for downlinks until the
# server signs with the new one.
#
# Server-only: the board never imports this module (tools/provision leaves
# it out of the image).
from concentrator import protocol as P

MAX_PENDING = 4


def derive(key, nonce_hex):
    return P.hmac_sha256(key, b"wk-rekey:" + P.key_from_hex(nonce_hex))


class ServerKeys:
    # confirmed: hex key the board is known to use; pending: [[nonce, key hex], ...]
    # (newest last), both to be persisted by the server as they are.
    def __init__(self, confirmed_hex, pending=None):
        self.confirmed = confirmed_hex
        self.pending = [list(p) for p in (pending or [])][-MAX_PENDING:]

    def signing_key(self):
        # the key every downlink is sealed with
        return P.key_from_hex(self.confirmed)

    def start(self, nonce_hex):
        # A rekey with this nonce: returns the fields of the cmd to send
        # (sealed with signing_key()). The new key is pending until the
        # board uses it.
        k = P.hexlify(derive(self.signing_key(), nonce_hex))
        self.pending = [p for p in self.pending if p[1] != k][-(MAX_PENDING - 1):] + [[nonce_hex, k]]
        return {"op": "rekey", "nonce": nonce_hex}

    def resend(self):
        # the cmd fields of the newest pending rekey (None when none is pending):
        # send it again when the board still signs with the confirmed key
        if not self.pending:
            return None
        return {"op": "rekey", "nonce": self.pending[-1][0]}

    def verify(self, data, dev, last_n=-1, now=None):
        # Verify an uplink: -> (body, confirmed_now). confirmed_now is True
        # when this message completed a rotation (persist the new state).
        try:
            return P.verify(data, self.signing_key(), dev, last_n, now), False
        except P.ProtocolError as e:
            if not self.pending or not e.args or e.args[0] != "bad_mac":
                raise
        for p in reversed(self.pending):
            try:
                body = P.verify(data, P.key_from_hex(p[1]), dev, last_n, now)
            except P.ProtocolError as e:
                if e.args and e.args[0] == "bad_mac":
                    continue
                raise
            self.confirmed = p[1]
            self.pending = []
            return body, True
        raise P.ProtocolError("bad_mac")
