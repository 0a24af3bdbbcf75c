# The schema of what a board receives: downlink bodies (docs/protocol.md)
# and its own state file at boot. Shared: the head-end checks with the same
# functions before it sends, and answers 422 with the reason.
#
#   check_policy(p)            -> the complete policy (defaults filled in)
#   check_command(body, n)     -> body          (n: the board's meter count)
#   check_tariff(body)         -> list of tariff versions
#   check_downlink(body, n)    -> body          any downlink type
#   check_state(st, ids)       -> (clean state, [names of the parts dropped])
#
# Each raises ValueError("field: what is wrong") for a bad body, and never
# anything else whatever it is given. Loaded on demand on the board (a
# policy or a command is rare); acks and credits are checked by protocol.py.
from concentrator import protocol as P

MAX_MU = P.MAX_MU
_DAY = 86400


def _int(x, what, lo, hi):
    if type(x) is not int:
        raise ValueError("%s: must be an integer, got %s" % (what, _kind(x)))
    if x < lo or x > hi:
        raise ValueError("%s: must be between %d and %d, got %d" % (what, lo, hi, x))
    return x


def _kind(x):
    if x is None:
        return "null"
    if type(x) is bool:
        return "true/false"
    if type(x) is str:
        return "a string"
    if type(x) is list:
        return "a list"
    if type(x) is dict:
        return "an object"
    if type(x) is int:
        return "an integer"
    return "a number"


def _digits(s, like):
    # s has the shape of `like` ("HH:MM", "YYYY-MM-DD"): digits and separators
    if type(s) is not str or len(s) != len(like):
        return False
    for i in range(len(like)):
        c = s[i]
        if like[i] in ":-":
            if c != like[i]:
                return False
        elif not "0" <= c <= "9":
            return False
    return True


def hhmm(s, what):
    # "HH:MM" -> minutes after midnight
    if not _digits(s, "HH:MM"):
        raise ValueError('%s: must be a time "HH:MM", got %s' % (what, _show(s)))
    h = int(s[:2])
    m = int(s[3:])
    if h > 23 or m > 59:
        raise ValueError('%s: no such time %s' % (what, s))
    return h * 60 + m


def _date(s, what):
    if not _digits(s, "YYYY-MM-DD"):
        raise ValueError('%s: must be a date "YYYY-MM-DD", got %s' % (what, _show(s)))
    y, mo, d = int(s[:4]), int(s[5:7]), int(s[8:])
    if y < 2000 or mo < 1 or mo > 12 or d < 1 or d > _mdays(y, mo):
        raise ValueError("%s: no such date %s" % (what, s))


def _mdays(y, m):
    if m == 2:
        return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _show(x):
    if type(x) is str:
        return repr(x[:24])
    return _kind(x)


# ---- relay policy (docs/relay-policy.md) --------------------------------------
# name -> (lowest, highest) for the integer settings
_INTS = {
    "emergency_mu": (0, MAX_MU),
    "reconnect_mu": (0, MAX_MU),
    "min_switch_s": (0, _DAY),
    "load_limit_w": (0, 1000000),
    "load_reset_s": (0, 7 * _DAY),
}
MAX_WINDOWS = 8
MAX_HOLIDAYS = 64


def check_policy(p):
    # A relay policy (any subset of the settings) -> the complete policy.
    from concentrator.relay import DEFAULT
    if type(p) is not dict:
        raise ValueError("policy: must be an object of settings, got %s" % _kind(p))
    out = {}
    for k in DEFAULT:
        out[k] = DEFAULT[k]
    for k in p:
        if k not in DEFAULT:
            raise ValueError("policy: unknown setting %s (known: %s)" % (
                _show(k), ", ".join(sorted(DEFAULT))))
        v = p[k]
        if k in _INTS:
            lo, hi = _INTS[k]
            _int(v, "policy." + k, lo, hi)
        elif k == "friendly_weekend":
            if type(v) is not bool:
                raise ValueError("policy.friendly_weekend: must be true or false, got %s" % _kind(v))
        elif k == "friendly":
            _windows(v)
            v = [[w[0], w[1]] for w in v]
        elif k == "holidays":
            if type(v) is not list or len(v) > MAX_HOLIDAYS:
                raise ValueError('policy.holidays: must be a list of at most %d dates '
                                 '["YYYY-MM-DD", ...], got %s' % (MAX_HOLIDAYS, _kind(v)))
            for i in range(len(v)):
                _date(v[i], "policy.holidays[%d]" % i)
            v = list(v)
        out[k] = v
    return out


def _windows(v):
    if type(v) is not list:
        raise ValueError('policy.friendly: must be a list of ["HH:MM", "HH:MM"] pairs, got %s'
                         ' (write [["22:00", "07:00"]])' % (
                             ("a string " + _show(v)) if type(v) is str else _kind(v)))
    if len(v) > MAX_WINDOWS:
        raise ValueError("policy.friendly: at most %d windows, got %d" % (MAX_WINDOWS, len(v)))
    for i in range(len(v)):
        w = v[i]
        if type(w) is not list or len(w) != 2:
            raise ValueError('policy.friendly[%d]: must be a pair ["HH:MM", "HH:MM"], got %s'
                             % (i, _kind(w)))
        a = hhmm(w[0], "policy.friendly[%d][0]" % i)
        b = hhmm(w[1], "policy.friendly[%d][1]" % i)
        if a == b:
            raise ValueError("policy.friendly[%d]: start and end are the same time" % i)


# ---- commands ----------------------------------------------------------------
T_MIN = 1500000000          # plausible Unix times (2017 .. 2106)
T_MAX = 0xFFFFFFFF


def _meter(body, n, what, required=True):
    if "m" not in body and not required:
        return None
    return _int(body.get("m"), what + ".m", 0, n - 1 if n > 0 else -1)


def _only(body, allowed, what):
    for k in body:
        if k not in allowed and k not in P.ENVELOPE:
            raise ValueError("%s: unknown field %s" % (what, _show(k)))


def check_command(body, n):
    op = body.get("op")
    w = "cmd %s" % (op if type(op) is str else "")
    if "exp" in body:
        _int(body["exp"], w + ".exp", 0, T_MAX)
    if op == "relay":
        _only(body, ("op", "exp", "m", "state", "until"), w)
        _meter(body, n, w)
        s = body.get("state")
        if s not in ("open", "closed", "auto"):
            raise ValueError('%s.state: must be "open", "closed" or "auto", got %s' % (w, _show(s)))
        if s != "auto":
            _int(body.get("until"), w + ".until", 1, T_MAX)
        elif "until" in body:
            _int(body["until"], w + ".until", 0, T_MAX)
    elif op == "time":
        _only(body, ("op", "exp", "time"), w)
        _int(body.get("time"), w + ".time", T_MIN, T_MAX)
    elif op == "policy":
        _only(body, ("op", "exp", "m", "policy"), w)
        _meter(body, n, w, False)
        check_policy(body.get("policy"))
    elif op == "rekey":
        _only(body, ("op", "exp", "nonce"), w)
        nonce = body.get("nonce")
        if not hexstr(nonce, 16, 128):
            raise ValueError("%s.nonce: must be 16 to 128 hex digits, got %s" % (w, _show(nonce)))
    elif op == "ota":
        from concentrator import ota_format
        ota_format.check_offer(body)
    else:
        raise ValueError("cmd: unknown op %s (relay, time, policy, rekey, ota)" % _show(op))
    return body


def hexstr(s, lo, hi):
    if type(s) is not str or len(s) < lo or len(s) > hi or len(s) % 2:
        return False
    for c in s:
        if not ("0" <= c <= "9" or "a" <= c <= "f" or "A" <= c <= "F"):
            return False
    return True


def check_tariff(body):
    spec = body.get("spec")
    if type(spec) is dict:
        spec = [spec]
    if type(spec) is not list or not spec or len(spec) > 16:
        raise ValueError("tariff.spec: must be a list of 1 to 16 tariff versions, got %s" % _kind(spec))
    from concentrator import tariff
    try:
        tariff.validate_versions(spec)
    except ValueError:
        raise
    except Exception as e:             # a check that tripped over a bad value
        raise ValueError("tariff.spec: %s" % type(e).__name__)
    return spec


def check_downlink(body, n):
    # Any downlink body (after protocol.verify) for a board with n meters.
    t = body.get("t")
    if t == P.ACK:
        P.check_ack(body)
    elif t == P.CREDIT:
        P.check_credit(body, n)
    elif t == P.TARIFF:
        check_tariff(body)
    elif t == P.COMMAND:
        check_command(body, n)
    elif t == P.OTA_CHUNK:
        from concentrator import ota_format
        ota_format.check_chunk(body)
    else:
        raise ValueError("t: unknown message type %s" % _show(t))
    return body


# ---- the state file (/state.json), checked at boot -----------------------------
def check_state(st, ids):
    # -> (state with every bad part replaced by its default, [parts dropped]).
    # ids: the meters' ids in config order.
    bad = []
    if type(st) is not dict:
        return {}, (["file"] if st is not None else [])
    out = {}
    for k, lo, hi, dflt in (("boots", 0, 1 << 31, 0), ("n_res", 0, P.MAX_N, 0),
                            ("n_down", -1, P.MAX_N, -1), ("jseq", 0, P.MAX_JSEQ, 0)):
        v = st.get(k, dflt)
        if type(v) is int and lo <= v <= hi:
            out[k] = v
        else:
            out[k] = dflt
            bad.append(k)
    for k in ("key", "key_prev"):
        v = st.get(k)
        if v is None:
            continue
        if hexstr(v, 32, 128):
            out[k] = v
        else:
            bad.append(k)
    if "policy" in st and st["policy"] is not None:
        try:
            out["policy"] = check_policy(st["policy"])
        except ValueError:
            bad.append("policy")
    for part, check in (("credit", _credit_state), ("relay", _relay_state),
                        ("rec", _rec_state), ("mpol", _mpol_state)):
        d = st.get(part)
        if d is None:
            continue
        if type(d) is not dict:
            bad.append(part)
            continue
        clean = {}
        for mid in ids:
            if mid in d:
                try:
                    clean[mid] = check(d[mid])
                except ValueError:
                    bad.append(part)
        out[part] = clean
    return out, bad


def _opt_int(x, lo, hi):
    if x is not None and (type(x) is not int or x < lo or x > hi):
        raise ValueError


def _credit_state(d):
    if type(d) is not dict:
        raise ValueError
    b = d.get("b")
    if type(b) is not list or len(b) != 5:
        raise ValueError
    for x in b:
        _opt_int(x, 0, P.MAX_WH)
        if x is None:
            raise ValueError
    _opt_int(d.get("el"), 0, P.MAX_WH)
    _opt_int(d.get("ch", 0), -MAX_MU, MAX_MU)
    _opt_int(d.get("bal"), -MAX_MU, MAX_MU)
    _opt_int(d.get("cr"), -MAX_MU, MAX_MU)
    _opt_int(d.get("er", 0), 0, P.MAX_WH)
    _opt_int(d.get("top", 0), 0, 1 << 31)
    s = d.get("s")
    if s is not None:
        _tariff_state(s)
    return d


def _tariff_state(s):
    # the shape of tariff.new_state(): ints, and {band: Wh} for "e" / "reg"
    if type(s) is not dict:
        raise ValueError
    for k in ("ver", "eff", "cyc", "cwh", "seg", "done", "wh"):
        if k not in s:
            raise ValueError
        _opt_int(s[k], -MAX_MU, MAX_MU)
        if s[k] is None and k != "ver":
            raise ValueError
    for k in ("e", "reg"):
        d = s.get(k)
        if d is None and k == "reg":
            continue
        if type(d) is not dict or len(d) > 8:
            raise ValueError
        for b in d:
            if type(b) is not str or type(d[b]) is not int or d[b] < 0 or d[b] > P.MAX_WH:
                raise ValueError


def _relay_state(r):
    # relay.Relays.to_state(i): [override, armed, trip_until, last_switch, reason]
    if type(r) is not list or len(r) != 5:
        raise ValueError
    ov = r[0]
    if ov is not None:
        if type(ov) is not list or len(ov) != 2 or type(ov[0]) is not bool:
            raise ValueError
        _opt_int(ov[1], 0, T_MAX)
        if ov[1] is None:
            raise ValueError
    if type(r[1]) is not bool:
        raise ValueError
    for x in r[2:4]:
        _opt_int(x, 0, T_MAX)
        if x is None:
            raise ValueError
    _opt_int(r[4], 0, 99)
    if r[4] is None:
        raise ValueError
    return r


def _rec_state(v):
    _opt_int(v, 0, T_MAX)
    if v is None:
        raise ValueError
    return v


def _mpol_state(p):
    return check_policy(p)
