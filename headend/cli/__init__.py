"""The `wattkeeper` command line (Typer + Rich)."""


def main(argv=None):
    from .app import run
    return run(argv)
