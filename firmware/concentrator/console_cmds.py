# The technician's console commands (console.py holds the names typed at
# the REPL and loads this module for the duration of one command).
# Plain text, at most 80 columns. A wrong command or argument prints one
# line, never a traceback. Commands act on concentrator.board.APP.
from concentrator import board as _board

_HELP = """Wattkeeper console (Ctrl-C stops the firmware, run() resumes it)
  status()           device, uptime, clock, MQTT, journal, meters summary
  meters()           every meter: address, model, online, relay, credit
  read(m)            read meter m now (m = index 0..n-1 or meter id)
  relay(m, 'on')     switch meter m's supply: 'on'/'off' (logged + reported)
  scan()             look for meters on the bus, print a meter list (JSON)
  scan(1, 32)        only Modbus addresses 1..32 (faster)
  journal()          stored records: sequence numbers, pending, flash use
  net()              Wi-Fi and MQTT link
  config()           the board's settings (key hidden)
  log()              the last log lines
  run()              resume the firmware loop"""


class _Err(Exception):
    pass


def _app(cmd):
    a = _board.APP
    if a is None:
        raise _Err("%s: firmware not started (%s)" % (cmd, _board.ERROR))
    _board.feed_console()
    return a


def _do(cmd, f, *args):
    # run a command: one-line errors, never a traceback
    try:
        f(*args)
    except _Err as e:
        print(e.args[0])
    except KeyboardInterrupt:
        print(cmd + ": interrupted")
    except Exception as e:
        print("%s: error %s: %s" % (cmd, type(e).__name__, e))


def _meter(cmd, app, m):
    n = len(app.meters)
    if isinstance(m, int) and not isinstance(m, bool):
        if 0 <= m < n:
            return m
    elif isinstance(m, str):
        for i in range(n):
            if app.meters.cfg[i]["id"] == m:
                return i
        if m.isdigit() and int(m) < n:
            return int(m)
    raise _Err("%s: no meter %r (0..%d or an id)" % (cmd, m, n - 1))


def _t(s):
    # Unix seconds -> "2026-11-01 08:00:00 UTC"
    import time
    try:
        g = time.gmtime(s - 946684800 if time.gmtime(0)[0] == 2000 else s)
    except (OverflowError, ValueError):
        return str(s)
    return "%04d-%02d-%02d %02d:%02d:%02d UTC" % g[:6]


def _dur(s):
    return "%dd %02d:%02d:%02d" % (s // 86400, s // 3600 % 24, s // 60 % 60, s % 60)


def _relay_str(v):
    return "-" if v is None else ("closed" if v else "OPEN")


def _mem():
    try:
        import gc
        gc.collect()
        return "heap used %d free %d" % (gc.mem_alloc(), gc.mem_free())
    except (ImportError, AttributeError):
        return "heap ?"


# ---- commands ---------------------------------------------------------------
def do(cmd, *args):
    # run console command `cmd` (status, meters, read, ...) with its arguments
    if cmd == "help":
        print(_HELP)
        return
    _do(cmd, globals()["_" + cmd], *args)


def _status():
    app = _app("status")
    from concentrator import __version__
    hal = app.hal
    f = app.status_fields()
    print("wattkeeper %s  dev %s  boot %d  up %s" % (__version__, app.dev, app.boots,
                                                    _dur(f["up"])))
    now = hal.time()
    print("clock %s" % (_t(now) if now else "not set"))
    ln = app.link
    print("mqtt %s %s:%d  connects %d failures %d" % (
        "connected" if ln.connected else "DOWN", ln.host, ln.port, ln.connects, ln.failures))
    print("journal last %d acked %d pending %d" % (f["last"], f["acked"], f["pending"]))
    on = 0
    op = 0
    for r in f["meters"]:
        on += r[1]
        op += 1 if r[2] == 0 else 0
    print("meters %d: %d online, %d offline, %d relay open" % (
        len(f["meters"]), on, len(f["meters"]) - on, op))
    print(_mem())


def _meters():
    app = _app("meters")
    print(" #  id           model         addr      online relay   credit mu"
          "   energy Wh")
    rd = app.bus.readings.energy_wh
    ms = app.meters
    for i in range(len(ms)):
        c = ms.cfg[i]
        cr = app.credit_of(i)
        e = ms.last_energy[i] if ms.last_energy[i] is not None else rd[i]
        print("%2d  %-12s %-13s %-9s %-6s %-6s %10s %11s" % (
            i, c["id"][:12], c.get("model", "?")[:13], str(c["addr"])[:9],
            "yes" if ms.online[i] else "NO", _relay_str(ms.relay_closed[i]),
            "-" if cr is None else cr, "-" if e is None else e))


def _read(m):
    app = _app("read")
    i = _meter("read", app, m)
    bus = app.bus
    c = app.meters.cfg[i]
    p = bus.profile(i)
    if p is None:
        raise _Err("read: meter %d %s: unknown model %r" % (i, c["id"], c.get("model")))
    from concentrator.meters import Reading
    r = Reading()
    d = bus.driver(p["proto"])
    st = bus.stats(i)
    before = st["requests"]
    ok = d is not None and d.read(c, p, r)
    if not ok:
        print("read: meter %d %s addr %s: no valid answer (%d requests, timeouts %d,"
              " crc %d)" % (i, c["id"], c["addr"], st["requests"] - before,
                            st["timeouts"], st["crc"]))
        return
    print("meter %d %s addr %s (%s)" % (i, c["id"], c["addr"], c.get("model")))
    for name, unit, div in (("energy_wh", "Wh", 1), ("power_w", "W", 1),
                            ("voltage_dv", "V", 10), ("current_ma", "A", 1000)):
        v = getattr(r, name)
        if v is None:
            continue
        if div == 1:
            print("  %-10s %d %s" % (name, v, unit))
        else:
            print("  %-10s %d.%0*d %s" % (name, v // div, len(str(div)) - 1, v % div, unit))
    if r.bands:
        print("  bands Wh   " + " ".join(str(b) for b in r.bands))
    if r.relay_closed is not None:
        print("  relay      " + _relay_str(r.relay_closed))
    print("  rtt %d ms, requests %d, ok %d, timeouts %d, crc %d" % (
        st.get("rtt_ms", -1), st["requests"], st["ok"], st["timeouts"], st["crc"]))


_ON = ("on", "close", "closed", "1", 1, True)
_OFF = ("off", "open", "0", 0, False)


def _relay(m, state):
    app = _app("relay")
    i = _meter("relay", app, m)
    if isinstance(state, str):
        state = state.lower()
    if state in _ON:
        closed = True
    elif state in _OFF:
        closed = False
    else:
        raise _Err("relay: state %r: use 'on' (closed) or 'off' (open)" % (state,))
    from concentrator import protocol as P
    ms = app.meters
    c = ms.cfg[i]
    app._event(P.EV_OVERRIDE, i, P.R_TECHNICIAN)
    app.set_relay(i, closed, P.R_TECHNICIAN)
    app.journal.flush()
    _board.log("technician: relay %d %s -> %s" % (i, c["id"], "on" if closed else "off"))
    got = ms.relay_closed[i]
    gpio = c.get("relay")
    if got != closed and gpio is not None:
        # a contactor's auxiliary contact follows 10-50 ms later: look again
        app.hal.sleep_ms(200)
        fb = app.hal.relay_get(gpio)
        if fb is not None:
            got = fb
            if fb == closed:
                ms.relay_closed[i] = fb
                ms.rs.reason[i] = P.R_TECHNICIAN
    if got == closed:
        print("relay %d %s: %s (read back %s)" % (i, c["id"], _relay_str(closed),
                                                 _relay_str(got)))
    else:
        print("relay %d %s: MISMATCH: commanded %s, read back %s" % (
            i, c["id"], _relay_str(closed), _relay_str(got)))


def _journal():
    app = _app("journal")
    j = app.journal
    s = j.stats()
    print("journal last %d acked %d pending %d" % (s["last_seq"], s["acked_seq"], s["pending"]))
    print("  segments %d, %d bytes, thinned %d" % (s["segments"], s["bytes"], s["thinned"]))
    recs = j.pending(5)
    if recs:
        print("  oldest pending: [seq, kind, meter, ts, values]")
        for r in recs:
            line = "  %s" % ([r[0], r[1], r[2], r[3], list(r[4])],)
            print(line[:80])


def _net():
    app = _app("net")
    hal = app.hal
    w = getattr(hal, "wlan", None)
    ssid = (app.cfg.get("wifi") or {}).get("ssid") or "-"
    if w is None:
        print("wifi %s: not configured" % ssid)
    else:
        up = w.isconnected()
        ip = w.ifconfig()[0] if up else "-"
        print("wifi %s: %s  ip %s" % (ssid, "connected" if up else "DOWN", ip))
    ln = app.link
    print("mqtt %s:%d %s  client %s" % (ln.host, ln.port,
                                       "connected" if ln.connected else "DOWN", ln.client_id))
    print("  connects %d failures %d backoff %d ms" % (ln.connects, ln.failures, ln.backoff_ms))
    if ln.last_error:
        print("  last error " + ln.last_error[:66])
    print("  sent n %d, hello %s, in flight seq %d, rejected downlinks %d" % (
        app.n_up, "yes" if app.hello_sent else "no", app.inflight, app.rejected))


def _config():
    app = _app("config")
    c = app.cfg
    for k in sorted(c):
        if k == "meters":
            continue
        v = c[k]
        if k == "key":
            v = v[:4] + "..." + " (%d hex digits)" % len(v)
        elif isinstance(v, dict):
            v = dict(v)
            if v.get("password"):
                v["password"] = "***"
        print(("%-14s %s" % (k, v))[:80])
    hb = getattr(app.hal, "board", None)
    if hb:
        print(("%-14s %s" % ("board", hb.get("name")))[:80])
    print("meters (%d):" % len(c["meters"]))
    for m in c["meters"]:
        d = {}
        for k in m:
            if k != "stats":
                d[k] = m[k]
        print(("  " + _json(d))[:80])


def _json(o):
    try:
        import ujson as json
    except ImportError:
        import json
    return json.dumps(o)


class _Shim:
    # a HAL for scan() when the firmware did not start (no /config.json yet)
    def __init__(self):
        import time
        from concentrator.hal_esp32 import Uart
        from concentrator.config import check_board
        self.uart = Uart(check_board(_board._read("/board.json"))["uart"])
        self.ticks_ms = time.ticks_ms
        self.ticks_diff = time.ticks_diff
        self.sleep_ms = time.sleep_ms


def _scan(first, last, dlt):
    if not (isinstance(first, int) and isinstance(last, int) and 1 <= first <= last <= 247):
        raise _Err("scan: addresses must be 1 <= first <= last <= 247")
    app = _board.APP
    if app is not None:
        _board.feed_console()
    hal = app.hal if app is not None else _Shim()
    from concentrator import discovery
    print("scanning Modbus %d..%d at 9600 E and 9600 N, then DL/T 645 (Ctrl-C stops)"
          % (first, last))

    def progress(a, baud, par):
        if a % 16 == 0 or a == first:
            _board.feed_console()
            print("  ... %d %d%s" % (a, baud, par))
    found = discovery.scan(hal, first, last, dlt=dlt, progress=progress)
    if app is not None:
        app.bus._last = None          # the drivers' line settings changed
        for d in app.bus._drv.values():
            if hasattr(d, "_cfg"):
                d._cfg = None
    print("found %d meter(s); proposed meter list (JSON lines):" % len(found))
    from concentrator.profiles import PROFILES
    for m in found:
        # id, addr, model first; line settings only where the model's differ
        p = PROFILES.get(m["model"]) or {}
        s = '{"id":%s,"addr":%s,"model":%s' % (_json(m["id"]), _json(m["addr"]),
                                              _json(m["model"]))
        for k in ("baud", "parity"):
            if p.get(k) != m[k]:
                s += ',"%s":%s' % (k, _json(m[k]))
        print(s + "}")
