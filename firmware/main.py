# Starts the concentrator. Ctrl-C gives the technician's console: help().
try:
    from concentrator.console import *  # noqa: F401,F403  (commands at the REPL)
    from concentrator import board
except Exception as e:
    # a new version that cannot even be imported: roll back (on trial only)
    import sys
    sys.print_exception(e)
    import fwboot
    fwboot.failed()
    raise
board.main()
