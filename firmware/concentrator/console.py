# The technician's console: short commands at the board's REPL (USB serial,
# 115200 baud). main.py does `from concentrator.console import *`, so after
# Ctrl-C a technician types status(), meters(), read(0), relay(0, 'off')...
# help() lists them. Commands act on concentrator.board.APP.
#
# This module stays in RAM all the time, so it only holds the names: each
# command loads console_cmds.py, runs there and (on MicroPython) drops it
# again, so the commands' bytecode is not kept in the heap while the
# firmware runs.
from concentrator import board as _board
from concentrator import unload as _unload


def _cmd(name, *args):
    from concentrator import console_cmds
    try:
        console_cmds.do(name, *args)
    finally:
        _unload("console_cmds")


def help(*a):
    _cmd("help")


def status():
    _cmd("status")


def meters():
    _cmd("meters")


def read(m=None):
    _cmd("read", m)


def relay(m=None, state=None):
    _cmd("relay", m, state)


def scan(first=1, last=247, dlt=True):
    _cmd("scan", first, last, dlt)


def journal():
    _cmd("journal")


def net():
    _cmd("net")


def config():
    _cmd("config")


def log():
    for line in _board.LOG.items():
        print(line)


def run():
    if _board.APP is None:
        print("run: firmware not started (%s)" % _board.ERROR)
        return
    print("wattkeeper: running (Ctrl-C stops)")
    _board.run(_board.APP)
