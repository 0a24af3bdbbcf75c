# Runs boot.py / main.py from the flash in __main__, printing errors like a board.
import sys


def run(name):
    import __main__
    try:
        with open(name) as f:
            src = f.read()
    except OSError:
        return
    try:
        exec(compile(src, name, "exec"), __main__.__dict__)
    except BaseException as e:   # noqa: B036  (a board prints and goes on to the REPL)
        if isinstance(e, SystemExit):
            return
        sys.print_exception(e)
