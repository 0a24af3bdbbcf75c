# Commands from the head-end (`cmd`, docs/protocol.md): relay override,
# clock, relay policy, key rotation, firmware update offer. Loaded for the
# command only (Concentrator._command); the body already passed
# schema.check_command.
from concentrator import protocol as P
from concentrator import unload as _unload


def run(app, body, key):
    # body passed schema.check_command
    op = body["op"]
    if op == "relay":
        i = body["m"]
        state = body["state"]
        if state == "auto":
            override(app, i, None, 0)
        else:
            override(app, i, state == "closed", body["until"])
        return None
    if op == "time":
        app.hal.set_time(body["time"])
        return None
    if op == "policy":
        from concentrator import schema
        pol = schema.check_policy(body["policy"])
        _unload("schema")
        i = body.get("m")
        if i is None:
            app.policy = pol
            mp = app.meters.policy
            for k in range(len(mp)):
                mp[k] = None         # the site's policy for every meter
        else:
            app.meters.policy[i] = pol
        return i
    if op == "rekey":
        # new key = HMAC(the key that signed this command, nonce): the
        # head-end signs it with the last key it has seen the board use,
        # so a repeated, forced or late rekey derives from the same key
        # on both sides. The previous key stays valid for downlinks until
        # the head-end uses the new one. Saved before any uplink uses it.
        nonce = P.key_from_hex(body["nonce"])
        from_prev = 0 if key is app.key else 1
        app.key = P.hmac_sha256(key, b"wk-rekey:" + nonce)
        app.key_hex = P.hexlify(app.key)
        app.key_prev = key
        app._event(P.EV_REKEY, 0, from_prev)
        app.next_status_ms = app.hal.ticks_ms()   # prove the new key at once
        return None
    if op == "ota":
        app._ota().on_offer(body, key)
        return None
    raise ValueError(op)


def override(app, i, closed, until, reason=P.R_OVERRIDE):
    # Staff or technician override: keep the relay closed/open until
    # `until` (Unix s); closed=None ends an override.
    rs = app.meters.rs
    if closed is None:
        rs.override[i] = None
        rs.reason[i] = 0
        app._enforce(i)
    else:
        rs.override[i] = [bool(closed), until]
        app._event(P.EV_OVERRIDE, i, reason * 10 + (1 if closed else 0))
        if app.meters.relay_closed[i] != bool(closed):
            app.set_relay(i, bool(closed), reason)
    app._save_state()
    app.journal.flush()

