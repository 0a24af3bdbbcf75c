# Start-up on a board: read /board.json and /config.json, build the HAL and
# the concentrator, then loop over step(). Ctrl-C stops the loop and leaves
# the technician at the REPL with the console commands (help()).
import sys

APP = None


def _read(path):
    try:
        import ujson as json
    except ImportError:
        import json
    try:
        with open(path) as f:
            return json.loads(f.read())
    except OSError:
        return None


def build():
    from concentrator.config import check_board
    from concentrator.core import Concentrator
    board = check_board(_read("/board.json"))
    cfg = _read("/config.json")
    if cfg is None:
        raise ValueError("no /config.json: provision the board (see README)")
    if sys.platform == "webassembly":
        from vboard_hal import VboardHal as H
    else:
        from concentrator.hal_esp32 import Esp32Hal as H
    hal = H(board, cfg.get("wifi"))
    return Concentrator(hal, cfg)


def run(app=None):
    # The main loop: the firmware's only `while True`.
    app = app or APP
    sleep = app.hal.sleep_ms
    while True:
        d = app.step()
        if d:
            sleep(d if d < 20 else 20)


def main():
    global APP
    try:
        APP = build()
    except Exception as e:
        print("wattkeeper: not started:", e)
        print("help() lists the console commands")
        return
    try:
        run(APP)
    except KeyboardInterrupt:
        print("\nwattkeeper: stopped; help() lists the console commands, run() resumes")
