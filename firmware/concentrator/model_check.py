# Meter models from the site file: config.json "models" adds or overrides
# entries of profiles.PROFILES on one board, without new firmware
# (docs/meters.md, "A model in the site file"). Checked once at boot (and
# by tools/provision before it writes the file); a bad model is left out
# with its reason, its meters stay offline, the board runs.
#
#   table(models) -> (profiles for MeterBus, [(model name, reason), ...])
#
# A Modbus model may give "fc" and "words" per register, or group registers
# in "blocks" that share them: {"fc": 4, "words": "lo", "regs": [...]}.
from concentrator.profiles import PROFILES

_MB_KEYS = ("proto", "baud", "parity", "stop", "fc", "max_regs", "max_gap", "timeout_ms",
            "regs", "blocks", "billing", "extra", "extra_every", "bands", "relay", "words",
            "note")
_REG_KEYS = ("name", "addr", "type", "scale", "div", "idx", "fc", "words")
_TYPES = ("u16", "s16", "u32", "s32", "f32")
_DLT_ITEMS = ("energy", "voltage", "current", "power", "pf", "balance")
_DLT_KEYS = ("proto", "table", "baud", "parity", "timeout_ms", "retries", "preamble", "bands",
             "block", "extra_every", "status3", "relay_bit", "close_action", "password_level",
             "relay_valid_s", "relay_settle_ms", "date", "time", "note") + _DLT_ITEMS
MAX_MODELS = 16


def _bad(what):
    raise ValueError(what)


def _int(x, what, lo, hi):
    if type(x) is not int or x < lo or x > hi:
        _bad("%s must be an integer %d..%d" % (what, lo, hi))
    return x


def _serial(p):
    if "baud" in p:
        _int(p["baud"], "baud", 300, 115200)
    if "parity" in p and p["parity"] not in ("N", "E", "O"):
        _bad('parity must be "N", "E" or "O"')
    if "stop" in p and p["stop"] not in (1, 2):
        _bad("stop must be 1 or 2")
    if "timeout_ms" in p:
        _int(p["timeout_ms"], "timeout_ms", 10, 5000)


def _reg(e, i, fc, words):
    if type(e) is not dict:
        _bad("regs[%d] must be an object" % i)
    for k in e:
        if k not in _REG_KEYS:
            _bad("regs[%d]: unknown key %s" % (i, k))
    if type(e.get("name")) is not str or not e["name"]:
        _bad("regs[%d]: name missing" % i)
    _int(e.get("addr"), "regs[%d].addr" % i, 0, 0xFFFF)
    if e.get("type") not in _TYPES:
        _bad("regs[%d].type must be one of %s" % (i, ", ".join(_TYPES)))
    _int(e.get("scale", 1), "regs[%d].scale" % i, -1000000, 1000000)
    _int(e.get("div", 1), "regs[%d].div" % i, 1, 1000000)
    if e["name"] == "band":
        _int(e.get("idx"), "regs[%d].idx" % i, 0, 3)
    out = dict(e)
    f = e.get("fc", fc)
    if f is not None:
        if f not in (3, 4):
            _bad("regs[%d].fc must be 3 (holding) or 4 (input registers)" % i)
        out["fc"] = f
    w = e.get("words", words)
    if w is not None:
        if w not in ("hi", "lo"):
            _bad('regs[%d].words must be "hi" or "lo"' % i)
        out["words"] = w
    return out


def check_modbus(p):
    for k in p:
        if k not in _MB_KEYS:
            _bad("unknown key %s" % k)
    _serial(p)
    if "fc" in p and p["fc"] not in (3, 4):
        _bad("fc must be 3 (holding) or 4 (input registers)")
    if "words" in p and p["words"] not in ("hi", "lo"):
        _bad('words must be "hi" or "lo"')
    _int(p.get("max_regs", 60), "max_regs", 1, 125)
    if "max_gap" in p:
        _int(p["max_gap"], "max_gap", 0, 125)
    regs = []
    groups = [(None, None, p.get("regs") or [])]
    for b in p.get("blocks") or []:
        if type(b) is not dict or type(b.get("regs")) is not list:
            _bad('blocks: each is {"fc": 3 or 4, "words": "hi"/"lo", "regs": [...]}')
        for k in b:
            if k not in ("fc", "words", "regs"):
                _bad("blocks: unknown key %s" % k)
        groups.append((b.get("fc"), b.get("words"), b["regs"]))
    for fc, words, lst in groups:
        if type(lst) is not list:
            _bad("regs must be a list")
        for e in lst:
            regs.append(_reg(e, len(regs), fc, words))
    if not regs or len(regs) > 32:
        _bad("a model needs 1 to 32 registers")
    names = [e["name"] for e in regs]
    if "energy_wh" not in names:
        _bad("no energy_wh register: that is what is billed")
    for k in ("billing", "extra"):
        v = p.get(k, ())
        if type(v) not in (list, tuple):
            _bad("%s must be a list of register names" % k)
        for n in v:
            if n not in names:
                _bad("%s names %s, which is not a register" % (k, n))
    if "energy_wh" not in p.get("billing", ()):
        _bad("billing must include energy_wh")
    if "extra_every" in p:
        _int(p["extra_every"], "extra_every", 1, 1000)
    if "bands" in p:
        _int(p["bands"], "bands", 0, 4)
    rl = p.get("relay")
    if rl is not None:
        if type(rl) is not dict or rl.get("kind") not in ("gpio", "modbus"):
            _bad('relay must be {"kind": "gpio"} or {"kind": "modbus", ...}')
        if rl["kind"] == "modbus":
            if rl.get("fc", 6) not in (5, 6):
                _bad("relay.fc must be 5 (coil) or 6 (register)")
            _int(rl.get("addr"), "relay.addr", 0, 0xFFFF)
            _int(rl.get("on"), "relay.on", 0, 0xFFFF)
            _int(rl.get("off"), "relay.off", 0, 0xFFFF)
            if "status" in rl and rl["status"] not in names:
                _bad("relay.status names %s, which is not a register" % rl["status"])
    out = {}
    for k in p:
        if k != "blocks":
            out[k] = p[k]
    out["regs"] = regs
    for k in ("billing", "extra"):
        if k in out:
            out[k] = tuple(out[k])
    return out


def check_dlt645(p):
    from concentrator import dlt645
    for k in p:
        if k not in _DLT_KEYS:
            _bad("unknown key %s" % k)
    t = p.get("table", "dlt645-2007")
    if t not in dlt645.PROFILES:
        _bad("table must be one of %s" % ", ".join(sorted(dlt645.PROFILES)))
    _serial(p)
    for k in _DLT_ITEMS:
        v = p.get(k)
        if v is None:
            continue
        if type(v) is not list or len(v) != 5:
            _bad("%s must be [data id, bytes, mul, div, signed]" % k)
        _int(v[0], k + " data id", 0, 0xFFFFFFFF)
        _int(v[1], k + " bytes", 1, 8)
        _int(v[2], k + " mul", 1, 1000000)
        _int(v[3], k + " div", 1, 1000000)
        if type(v[4]) is not bool:
            _bad(k + " signed must be true or false")
    b = p.get("bands")
    if b is not None and (type(b) is not list or len(b) != 4):
        _bad("bands must list 4 data ids, or be null")
    out = dict(p)
    out["table"] = t
    for k in _DLT_ITEMS:
        if type(out.get(k)) is list:
            out[k] = tuple(out[k])
    if type(out.get("bands")) is list:
        out["bands"] = tuple(out["bands"])
    return out


def check_model(p):
    if type(p) is not dict:
        _bad("a model must be an object")
    proto = p.get("proto")
    if proto == "modbus":
        return check_modbus(p)
    if proto == "dlt645":
        return check_dlt645(p)
    _bad('proto must be "modbus" or "dlt645"')


def table(models):
    # -> (PROFILES with the site's models added / replaced, [(name, reason)])
    bad = []
    out = dict(PROFILES)
    if models is None:
        return out, bad
    if type(models) is not dict or len(models) > MAX_MODELS:
        return out, [("models", "must be an object of at most %d models" % MAX_MODELS)]
    for name in models:
        try:
            if type(name) is not str or not name or len(name) > 32:
                _bad("a model name is a short string")
            out[name] = check_model(models[name])
        except ValueError as e:
            bad.append((str(name)[:32], str(e)))
        except Exception as e:             # a check that tripped over a value
            bad.append((str(name)[:32], type(e).__name__))
    return out, bad
