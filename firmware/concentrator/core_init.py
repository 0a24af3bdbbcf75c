# The Concentrator's start (Concentrator.__init__ loads this module for the
# start only): the site file checked, the meters, bus, journal and MQTT link
# built, and every attribute the step works with set to its start value.
from concentrator import protocol as P
from concentrator import __version__
from concentrator import unload as _unload
from concentrator.core import Meters, _column
from concentrator.credit import Credits
from concentrator.journal import Journal
from concentrator.meters import MeterBus
from concentrator.mqtt import Jitter, Link


def init(app, hal, cfg, journal=None):
    app.hal = hal
    from concentrator.config import check   # boot only (board.build drops it)
    app.cfg = cfg = check(cfg)
    app.dev = cfg["dev"]
    app.key = P.key_from_hex(cfg["key"])
    app.meters = Meters(cfg["meters"])   # per-meter state, by meter index (core.py)
    n = len(app.meters)
    app.credits = Credits(n)   # local credit, by meter index (credit.py)
    # per-meter times, by meter index (see Meters)
    app.t_poll_ms = [0] * n    # ticks_ms of the next poll
    app.t_due = _column(n)     # wall time of the next poll (multiple of poll_s)
    app.t_rec_next = _column(n)   # next record time (0: record at the next poll)
    app.t_rec = _column(n)     # nominal time of the last record
    app.t_read = _column(n)    # time of the last reading used
    app.due_min = 0            # min(t_due): before it no meter is due (reading a
                               # column allocates: not done every step)
    app.policy = None          # the site's relay policy, checked at boot
    app.tariff = cfg.get("tariff")   # list of tariff versions (docs/tariffs.md)
    if isinstance(app.tariff, dict):
        app.tariff = [app.tariff]
    app.key_hex = cfg["key"]
    app.key_prev = None        # key before the last rekey, until the head-end uses the new one
    app.bad_models = []        # site models refused (name, reason): reported at boot
    app.bus = MeterBus(hal, cfg["meters"], _models(app, cfg.get("models")))
    _unload("profiles")          # the bus keeps the models it uses
    app.journal = journal if journal is not None else Journal(hal, meters=len(app.meters))
    b = cfg["broker"]
    app.link = Link(hal, app.dev, b["host"], b["port"],
                     b.get("user"), b.get("password"),
                     b.get("keepalive_s", 60), app._on_message,
                     P.topic_down(app.dev), b.get("ca"), b.get("tls_host"))
    app.topic_up = P.topic_up(app.dev)
    # uploads: each board sends a record interval's readings at its own
    # offset into the interval (from its device id: deterministic), and
    # resends an unacknowledged batch with exponential back-off + jitter,
    # so a fleet recording on the same boundary does not arrive at once
    spread = cfg.get("upload_spread_s")
    if spread is None:
        spread = cfg["record_s"] // 2
    app.jitter = Jitter("up:" + app.dev)
    app.up_offset_s = app.jitter.next() % spread if spread > 0 else 0
    app.upload_at = 0          # wall time from which pending readings go up
    app.urgent = False         # an event that should not wait for the slot
    app.resend_ms = cfg["ack_timeout_s"] * 1000
    app.n_up = 0
    app.n_res = 0
    app.n_down = -1
    app.boots = 0
    app.hello_sent = False
    app.inflight = 0          # highest seq sent and not yet acknowledged
    app.inflight_ms = 0
    app.next_status_ms = 0
    app.steps = 0
    app.rejected = 0          # downlinks refused since boot
    app.rej = [0] * len(P.REJECT_REASONS)   # ... not yet reported, per reason
    app.rej_pending = False
    app.rej_ms = None          # when they were last reported (ticks)
    app.last_reject = ""       # why the last one was refused (console)
    app.started_ms = hal.ticks_ms()
    app.booted = False
    app.state_dirty = False
    app.unflushed = False      # records appended but not yet flushed
    app.cycle_open = False     # meters still due in this poll cycle
    app.updater = None         # OTA (ota.py), loaded when an update is offered
    app.fw_pointer = None      # /boot.json: the version running (fwboot.py)
    app.fw_version = __version__
    p = hal.read_json("/boot.json", None)
    if isinstance(p, dict):
        app.fw_pointer = p
        if isinstance(p.get("fw"), str) and p["fw"]:
            app.fw_version = p["fw"][:24]
    app.cycles = 0             # complete poll cycles since boot (OTA health check)
    app.answered = 0           # good readings since boot


def _models(app, models):
    # profiles.PROFILES plus the site file's "models" (model_check.py)
    if not models:
        return None
    from concentrator import model_check
    table, app.bad_models = model_check.table(models)
    _unload("model_check")
    for name, why in app.bad_models:
        app.hal.log("model %s refused: %s" % (name, why))
    return table
