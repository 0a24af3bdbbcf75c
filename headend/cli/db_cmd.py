"""`wattkeeper db ...`"""
import typer

from ..core import db, migrate
from .common import console, settings

app = typer.Typer(no_args_is_help=True)


def _engine():
    return db.make_engine(settings().database_url)


@app.command()
def upgrade(revision: str = typer.Argument("head")):
    """Bring the database to the newest schema (also run by serve and demo)."""
    e = _engine()
    migrate.upgrade(e, revision)
    console.print("database at %s: %s" % (", ".join(migrate.current(e)), settings().database_url))


@app.command()
def downgrade(revision: str = typer.Argument(..., help="a revision, or base")):
    """Go back to an older schema."""
    e = _engine()
    migrate.downgrade(e, revision)
    console.print("database at %s" % (", ".join(migrate.current(e)) or "base"))


@app.command()
def current():
    """The schema revision of the database."""
    console.print(", ".join(migrate.current(_engine())) or "empty")


@app.command()
def check():
    """Fail when the models and the migrated database differ."""
    migrate.check(_engine())
    console.print("models and migrations agree")
