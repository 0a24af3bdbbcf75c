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

MAX_ENTRIES = 6


def derive(key, nonce_hex):
    return P.hmac_sha256(key, b"wk-rekey:" + P.key_from_hex(nonce_hex))


class ServerKeys:
    # confirmed: hex key the board is known to use. entries: the rekeys the
    # board may still take, [[nonce, key hex, parent key hex], ...] (newest
    # last), where parent is the key the rekey was derived from (and signed
    # with). Persist confirmed and entries as they are.
    #
    # pending: the entries derived from the confirmed key (sent, resent,
    # waiting for the board to prove one). late: the others. When the board
    # proves one key, the rekeys derived from the same parent stay as late
    # ones: the board still holds that parent as its previous key until it
    # sees a downlink under the new key, so a copy of a sibling rekey still
    # on its way can switch it once more; its uplinks under that key are
    # then recognised instead of locking the board out.
    def __init__(self, confirmed_hex, pending=None):
        self.confirmed = confirmed_hex
        self.entries = []
        for p in (pending or [])[-MAX_ENTRIES:]:
            p = list(p)
            if len(p) == 2:          # stored by an older head-end: derived from the confirmed key
                p.append(confirmed_hex)
            self.entries.append(p)

    @property
    def pending(self):
        return [e for e in self.entries if e[2] == self.confirmed]

    @property
    def late(self):
        return [e for e in self.entries if e[2] != self.confirmed]

    def signing_key(self):
        # the key every downlink is sealed with
        return P.key_from_hex(self.confirmed)

    def start(self, nonce_hex):
        # A rekey with this nonce: returns the fields of the cmd to send
        # (sealed with signing_key()). The new key is pending until the
        # board uses it.
        k = P.hexlify(derive(self.signing_key(), nonce_hex))
        self.entries = [e for e in self.entries if e[1] != k][-(MAX_ENTRIES - 1):] + [[nonce_hex, k, self.confirmed]]
        return {"op": "rekey", "nonce": nonce_hex}

    def resend(self):
        # the cmd fields of the newest pending rekey (None when none is pending):
        # send it again when the board still signs with the confirmed key
        p = self.pending
        if not p:
            return None
        return {"op": "rekey", "nonce": p[-1][0]}

    def verify(self, data, dev, last_n=-1, now=None, parts=None):
        # Verify an uplink: -> (body, confirmed_now). confirmed_now is True
        # when this message completed a rotation (persist the new state).
        # parts: P.split(data), when the caller has it.
        try:
            return P.verify(data, self.signing_key(), dev, last_n, now, parts), False
        except P.ProtocolError as e:
            if not self.entries or not e.args or e.args[0] != "bad_mac":
                raise
        for e in reversed(self.entries):
            try:
                body = P.verify(data, P.key_from_hex(e[1]), dev, last_n, now, parts)
            except P.ProtocolError as x:
                if x.args and x.args[0] == "bad_mac":
                    continue
                raise
            parent = e[2]
            self.entries = [x for x in self.entries if x[2] == parent and x is not e]
            self.confirmed = e[1]
            return body, True
        raise P.ProtocolError("bad_mac")
