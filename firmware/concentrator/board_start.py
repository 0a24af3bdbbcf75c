# Start-up of a board (board.py loads this module for the start only):
# read /board.json and /config.json, build the HAL and the concentrator;
# and wait_ready() for tools/provision.
from concentrator.board import PERIOD_MS


def read(path):
    try:
        import ujson as json
    except ImportError:
        import json
    try:
        with open(path) as f:
            return json.loads(f.read())
    except OSError:
        return None


def build(log):
    from concentrator.config import check_board
    from concentrator.core import Concentrator
    from concentrator.hal_esp32 import Esp32Hal
    board = check_board(read("/board.json"))
    cfg = read("/config.json")
    if cfg is None:
        raise ValueError("no /config.json: provision the board (tools/provision)")
    hal = Esp32Hal(board, cfg.get("wifi"))
    hal.log = log
    hal.board = board
    app = Concentrator(hal, cfg)
    from concentrator import unload
    unload("config")               # checked once at boot: not kept in RAM
    return app


def wait_ready(app, error, timeout_s=15):
    # Step the firmware until MQTT is up and the hello is sent (or timeout),
    # then print the status (tools/provision uses this to verify a board).
    if app is None:
        print("wattkeeper: not started:", error)
        return False
    hal = app.hal
    t0 = hal.ticks_ms()
    while hal.ticks_diff(hal.ticks_ms(), t0) < timeout_s * 1000:
        d = app.step()
        if app.link.connected and app.hello_sent and app.steps > len(app.meters):
            break
        hal.sleep_ms(d if 0 < d < PERIOD_MS else 5)
    from concentrator.console import status
    status()
    return app.link.connected
