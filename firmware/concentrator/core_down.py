# A downlink, from its MAC to its effect (Concentrator._on_message loads this
# module for each message and, on MicroPython, drops it again: the downlink
# path's bytecode is not kept in the heap between messages).
from concentrator import protocol as P
from concentrator import unload as _unload
from concentrator.core import TARIFF


# Every downlink is verified (MAC under the device key, counter, expiry),
# then checked against its schema, and only then applied: a bad one is
# refused whole, the last good settings stay in force, and nothing is
# written to flash for it (rejections are counted and reported at a
# bounded rate, Concentrator._report_rejections).
def on_message(app, topic, data):
    if not app.booted:
        return                   # (the link runs only after boot: never reached)
    try:
        body, key = _verify(app, data)
    except P.ProtocolError as e:
        reject(app, e.args[0] if e.args else "malformed")
        return
    except Exception:
        reject(app, "malformed")
        return
    t = body.get("t")
    try:
        if t == P.ACK:
            P.check_ack(body)
        elif t == P.CREDIT:
            P.check_credit(body, len(app.meters))
        else:
            from concentrator import schema
            try:
                schema.check_downlink(body, len(app.meters))
            finally:
                _unload("schema")
    except Exception as e:       # ValueError from the checks (or a bug in them)
        reject(app, "bad_fields", "%s" % (e.args[0] if e.args else type(e).__name__))
        return
    if key is app.key and app.key_prev is not None:
        # the head-end signs with the new key: it has seen the board use
        # it, the previous one is done with
        app.key_prev = None
        app.state_dirty = True
    _apply(app, body, key)


def _verify(app, data):
    # -> (body, the key that verified it): the current key, or during a
    # rotation the previous one (docs/protocol.md, rekey)
    try:
        return P.verify(data, app.key, app.dev, app.n_down, app.hal.time()), app.key
    except P.ProtocolError as e:
        if app.key_prev is None or not e.args or e.args[0] != "bad_mac":
            raise
    return P.verify(data, app.key_prev, app.dev, app.n_down, app.hal.time()), app.key_prev


def reject(app, reason, why=None):
    app.rejected += 1
    i = P.REJECT_REASONS.index(reason) if reason in P.REJECT_REASONS else 0
    app.rej[i] += 1
    app.rej_pending = True
    app.last_reject = (reason if why is None else reason + ": " + why)[:160]


def _apply(app, body, key):
    t = body["t"]
    app.n_down = body["n"]
    if t == P.ACK:
        seq = body["seq"]
        if 0 < seq <= app.journal.last_seq and seq > app.journal.acked_seq:
            app.journal.ack(seq)
        if seq >= app.inflight:
            app.inflight = 0
            app.resend_ms = app.cfg["ack_timeout_s"] * 1000
        _sync_time(app, body.get("ts", 0))
        return
    i = None
    if t == P.CREDIT:
        i = body["m"]
        before = app.credits.value(i, app.price_hint())
        if app.credits.sync(i, body["bal"], body["e"], body.get("c"), body.get("top")):
            app.meters.rs.armed[i] = 1   # a top-up re-arms the emergency credit
        elif before is not None and app.credits.value(i, app.price_hint()) == before:
            # a confirmation of what the board already knew: no flash write
            return
    elif t == P.TARIFF:
        spec = body["spec"]
        if isinstance(spec, dict):
            spec = [spec]
        app.tariff = spec
        app.hal.write_json(TARIFF, spec)
    elif t == P.COMMAND:
        i = _command(app, body, key)
    elif t == P.OTA_CHUNK:
        app._ota().on_chunk(body)
        return
    app._save_state()
    # act on a new balance or command right away, not at the next poll
    if isinstance(i, int) and 0 <= i < len(app.meters):
        if app._enforce(i):
            app.journal.flush()


def _sync_time(app, ts):
    # The head-end's clock in every ack: follow it when we are off by
    # more than 2 s, and report the correction (drift) as an event.
    if not ts:
        return
    now = app.hal.time()
    d = ts - now
    if not app.hal.time_known() or d > 2 or d < -2:
        app.hal.set_time(ts)
        if app.hal.time() != now:
            app._event(P.EV_TIME_SET, 0, max(-99999, min(99999, d if now else 0)))


def _command(app, body, key):
    # a cmd (passed schema.check_command): commands.py, loaded for it
    from concentrator import commands
    try:
        return commands.run(app, body, key)
    finally:
        _unload("commands")
