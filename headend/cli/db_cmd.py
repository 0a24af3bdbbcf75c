"""`wattkeeper db ...`"""
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..core import backup as backup_mod
from ..core import db, maintenance, migrate
from .common import console, fail, settings

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


def _progress(title):
    return Progress(TextColumn("[bold]%s[/]" % title), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.description}"), TimeElapsedColumn(), console=console)


def _with_progress(title, fn, *args):
    with _progress(title) as bar:
        task = bar.add_task("", total=None)

        def tick(done, total, what):
            bar.update(task, completed=done, total=total, description=str(what)[:40])
        try:
            fn(*args, progress=tick)
        except backup_mod.BackupError as e:
            fail(str(e))


@app.command()
def backup(path: str = typer.Argument(..., help="the backup file to write")):
    """A consistent copy of the database while the head-end runs: SQLite's
    online backup, or pg_dump (custom format) on PostgreSQL."""
    url = settings().database_url
    _with_progress("backup", backup_mod.backup, url, path)
    console.print("backed up %s to %s" % (url.split("@")[-1], path))


@app.command()
def restore(path: str = typer.Argument(..., help="a file `wattkeeper db backup` wrote"),
            yes: bool = typer.Option(False, "--yes", help="do not ask (the database is replaced)")):
    """Replace the database with a backup (stop the head-end first): SQLite
    pages copied back, or pg_restore --clean in one transaction."""
    url = settings().database_url
    if not yes and not typer.confirm("Replace every table of %s with %s?" % (url.split("@")[-1], path)):
        raise typer.Exit(1)
    _with_progress("restore", backup_mod.restore, url, path)
    console.print("restored %s from %s" % (url.split("@")[-1], path))


@app.command()
def maintain():
    """Create the readings partitions ahead (PostgreSQL) and apply the
    retention settings now (the running head-end does it every
    WK_MAINTENANCE_INTERVAL_S too)."""
    st = settings()
    e = _engine()
    migrate.upgrade(e)
    r = maintenance.run(e, st)
    console.print("partitions created: %s; dropped: %s; readings deleted: %d" % (
        ", ".join(r["partitions_created"]) or "none", ", ".join(r["partitions_dropped"]) or "none",
        r["readings_deleted"]))


@app.command()
def rollups():
    """Recompute every meter's hourly, daily and monthly rollups from its raw
    readings (after an upgrade from a head-end without rollups: until then
    retention keeps every reading)."""
    from ..services import rollups as rollups_mod
    e = _engine()
    migrate.upgrade(e)
    sf = db.session_factory(e)
    with _progress("rollups") as bar, sf() as s:
        task = bar.add_task("", total=None)
        n = rollups_mod.rebuild_all(s, progress=lambda done, total, what: bar.update(
            task, completed=done, total=total, description=what))
        s.commit()
    console.print("rollups rebuilt: %d rows" % n)
