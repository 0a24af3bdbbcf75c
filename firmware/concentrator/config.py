# The board's settings: /config.json (site: device id, key, broker, meters)
# and /board.json (hardware: pins, baud). Checked once at boot, with an error
# that names the field, so a technician sees what to fix.

DEFAULTS = {
    "site": "site",
    "tz_offset_s": 28800,
    "poll_s": 60,          # how often every meter is read (credit enforcement)
    "record_s": 900,       # interval of stored readings (15 min)
    "status_s": 300,       # status message period
    "polls_per_step": 8,   # most meters read in one step (bounds a step)
    "ack_timeout_s": 10,   # re-send a batch not acknowledged in this time
    "batch": 32,           # records per uplink message
    "max_power_w": 23000,
    "price": 0,            # mu/kWh until the head-end pushes a tariff  # above this average power a delta is implausible
    "broker": {"host": "127.0.0.1", "port": 1883, "user": None,
               "password": None, "keepalive_s": 60},
    "wifi": {"ssid": "", "password": ""},
    "meters": [],
}

BOARD_DEFAULTS = {
    "name": "generic",
    "uart": {"id": 1, "tx": 17, "rx": 16, "de": 4, "baud": 9600, "parity": "E"},
    "relays": [],
    "feedback": [],
    "led": None,
}


class ConfigError(Exception):
    pass


def _merge(defaults, given):
    out = {}
    for k in defaults:
        out[k] = defaults[k]
    for k in given:
        v = given[k]
        if isinstance(v, dict) and isinstance(defaults.get(k), dict):
            v = _merge(defaults[k], v)
        out[k] = v
    return out


def check(cfg):
    # Returns the complete configuration or raises ConfigError("field: why").
    if not isinstance(cfg, dict):
        raise ConfigError("config: not a JSON object")
    c = _merge(DEFAULTS, cfg)
    dev = c.get("dev")
    if not isinstance(dev, str) or not dev or "/" in dev or "+" in dev or "#" in dev:
        raise ConfigError("dev: device id missing or has / + #")
    key = c.get("key")
    if not isinstance(key, str) or len(key) < 32 or len(key) % 2:
        raise ConfigError("key: hex device key missing (at least 16 bytes)")
    for k in ("poll_s", "record_s", "status_s", "polls_per_step", "batch"):
        if not isinstance(c[k], int) or c[k] <= 0:
            raise ConfigError(k + ": must be a positive integer")
    ids = {}
    for i, m in enumerate(c["meters"]):
        if not isinstance(m, dict) or not m.get("id") or m.get("addr") is None:
            raise ConfigError("meters[%d]: needs id and addr" % i)
        if m["id"] in ids:
            raise ConfigError("meters[%d]: duplicate id %s" % (i, m["id"]))
        ids[m["id"]] = i
        if not m.get("model"):
            raise ConfigError("meters[%d]: model missing" % i)
    if len(c["meters"]) > 255:
        raise ConfigError("meters: at most 255 per concentrator")
    return c


def check_board(board):
    if board is None:
        board = {}
    return _merge(BOARD_DEFAULTS, board)
