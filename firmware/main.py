# Starts the concentrator. Ctrl-C gives the technician's console: help().
from concentrator.console import *  # noqa: F401,F403  (commands at the REPL)
from concentrator import board
board.main()
