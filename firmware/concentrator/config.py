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
    "ack_timeout_s": 10,   # re-send a batch not acknowledged in this time,
    "resend_max_s": 300,   # ... then twice as long each time (+/- 25 %), at most this
    "upload_spread_s": None,  # readings go up at a per-board offset in [0, this)
                              # into the record interval (None: record_s / 2; 0: at once)
    "batch": 32,           # records per uplink message
    "max_power_w": 23000,
    "price": 0,            # mu/kWh until the head-end pushes a tariff  # above this average power a delta is implausible
    "broker": {"host": "127.0.0.1", "port": None, "user": None,
               "password": None, "keepalive_s": 60, "ca": None, "tls_host": None},
               # port None: 8883 with TLS ("ca": CA file on the board), else 1883
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
    for k in ("poll_s", "record_s", "status_s", "polls_per_step", "batch", "ack_timeout_s",
              "resend_max_s"):
        if not isinstance(c[k], int) or c[k] <= 0:
            raise ConfigError(k + ": must be a positive integer")
    sp = c["upload_spread_s"]
    if sp is not None and (type(sp) is not int or sp < 0 or sp > c["record_s"]):
        raise ConfigError("upload_spread_s: must be 0 .. record_s seconds")
    b = c["broker"]
    if b["port"] is not None and (type(b["port"]) is not int or not 0 < b["port"] < 65536):
        raise ConfigError("broker.port: must be a TCP port number")
    if b["ca"] is not None and (type(b["ca"]) is not str or b["ca"][:1] != "/"):
        raise ConfigError("broker.ca: must be the path of the CA file on the board, e.g. /ca.pem")
    if b["port"] is None:
        b["port"] = 8883 if b["ca"] else 1883
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
