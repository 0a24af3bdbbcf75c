"""Monthly statements (账单): per account and local calendar month, the
opening balance, every movement of money by kind, the closing balance, the
consumption by price band and tier with its prices, the usage per day and
the TOU advice. Money from the ledger only: opening + movements = closing,
to the mu. Consumption lines from the readings the month's consumption
entries charged, priced with concentrator.tariff (the one tariff
implementation): `band_lines` is the ONE function that computes them
(issue 11a's rollups back it at merge, with the same answer).

A run issues the statements of a property's accounts for a month that has
ended (StatementRun: progress for the CLI and the staff page); a tenant
downloads their own issued statements. PDFs: web/statement_doc.py.
"""
import json
import re
import time

import sqlalchemy as sa
from sqlalchemy import func
from sqlmodel import select

from concentrator import protocol
from concentrator import tariff as T

from ..core import permissions as P
from ..core.money import local_date
from ..models import Account, LedgerEntry, MeterAssignment, Property, Reading, Tenant
from ..models.ledger import ADJUSTMENT, APPORTIONMENT, CONSUMPTION, LEDGER_KINDS, RECHARGE, REFUND, REVERSAL
from ..models.statement import DONE, FAILED, MONTH_PATTERN, RUNNING, Statement, StatementRun
from . import accounts, audit, tariffs
from .errors import Conflict, Invalid, NotFound
from .months import bounds as month_bounds

DAY = 86400
# the order of the summary lines (every ledger kind, consumption and apportionment as debits)
SUMMARY_KINDS = (RECHARGE, REVERSAL, REFUND, CONSUMPTION, APPORTIONMENT, ADJUSTMENT)
assert set(SUMMARY_KINDS) == set(LEDGER_KINDS)
DETAIL_KINDS = (RECHARGE, REVERSAL, REFUND, APPORTIONMENT, ADJUSTMENT)   # listed one by one
COMMIT_EVERY = 25          # statements per progress commit of a run
MONTH_RE = re.compile(MONTH_PATTERN)
_READING_REF = re.compile(r"^reading:([0-9]{1,19})/")


# ------------------------------------------------------------ money, from the ledger
def ledger_part(session, account_id, start, end):
    """Opening balance, totals per kind and the entries (other than
    consumption, one per reading) of [start, end), by entry time."""
    opening = session.exec(select(func.coalesce(func.sum(LedgerEntry.amount_mu), 0)).where(
        LedgerEntry.account_id == account_id, LedgerEntry.created < start)).one()
    totals = {k: 0 for k in SUMMARY_KINDS}
    for kind, mu in session.exec(select(LedgerEntry.kind, func.sum(LedgerEntry.amount_mu)).where(
            LedgerEntry.account_id == account_id, LedgerEntry.created >= start, LedgerEntry.created < end)
            .group_by(LedgerEntry.kind)).all():
        totals[kind] = int(mu)
    entries = session.exec(select(LedgerEntry).where(
        LedgerEntry.account_id == account_id, LedgerEntry.created >= start, LedgerEntry.created < end,
        LedgerEntry.kind.in_(DETAIL_KINDS)).order_by(LedgerEntry.created, LedgerEntry.id)).all()
    opening = int(opening)
    return {"opening_mu": opening, "movements": totals, "closing_mu": opening + sum(totals.values()),
            "entries": entries}


# ------------------------------------------------------------ consumption by band and tier
def _tier_split(tiers, before, wh):
    """[(from_wh, to_wh or None, energy Wh, add mu/kWh)] of `wh` Wh consumed
    after `before` Wh of the cycle, per tier with a surcharge."""
    out = []
    lo_e, hi_e = before, before + wh
    for i, tr in enumerate(tiers):
        lo = tr["from_wh"]
        hi = tiers[i + 1]["from_wh"] if i + 1 < len(tiers) else None
        a, b = max(lo, lo_e), hi_e if hi is None else min(hi, hi_e)
        if b > a and tr["add"]:
            out.append((lo, hi, b - a, tr["add"]))
    return out


def _reading_id_of(session, ref):
    """SQL: the reading id in a consumption entry's reference "reading:ID/seq:N"."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(func.split_part(func.substr(ref, 9), "/", 1), sa.BigInteger)
    return sa.cast(func.substr(ref, 9, func.instr(ref, "/") - 9), sa.Integer)


def _readings_charged(session, account_id, start, end):
    """The readings the account's consumption entries of [start, end)
    charged (one join: each entry finds its reading by primary key), and
    the mu those entries charged in all and for readings. SQLAlchemy Core
    on the tables: a month of rows without ORM objects."""
    L, R = LedgerEntry.__table__.c, Reading.__table__.c
    conn = session.connection()
    window = (L.account_id == account_id, L.kind == CONSUMPTION, L.created >= start, L.created < end)
    charged = -int(conn.execute(sa.select(func.coalesce(func.sum(L.amount_mu), 0)).where(*window)).scalar())
    q = (sa.select(R.id, R.meter_id, R.ts, R.seq, R.energy_wh, sa.type_coerce(R.bands, sa.String), R.received,
                   L.amount_mu)
         .select_from(LedgerEntry.__table__.join(Reading.__table__, R.id == _reading_id_of(session, L.reference)))
         .where(*window, L.reference.like("reading:%")))
    rows, by_reading, seen = [], 0, set()
    for r in conn.execute(q).all():
        by_reading -= r[7]
        if r[0] in seen:
            continue
        seen.add(r[0])
        rows.append(_Row(*r[:7]))
    return rows, charged, by_reading


class _Row:
    """What band_lines reads of a reading (plain columns: no ORM objects for a month of readings)."""
    __slots__ = ("id", "meter_id", "ts", "seq", "energy_wh", "bands", "received")

    def __init__(self, id, meter_id, ts, seq, energy_wh, bands, received):
        self.id, self.meter_id, self.ts, self.seq, self.energy_wh, self.received = id, meter_id, ts, seq, energy_wh, \
            received
        self.bands = json.loads(bands) if isinstance(bands, str) else (bands or [])


def band_lines(session, account, start, end, versions=None):
    """What the account's consumption charges of [start, end) were for:

    {"lines": [{"kind": "band", "band", "energy_wh", "price_mu_per_kwh", "amount_mu", "version"} and
               {"kind": "tier", "from_wh", "to_wh", "energy_wh", "price_mu_per_kwh" (the surcharge),
                "amount_mu", "version"}],
     "segments": [{"version", "effective", "prices" {band: mu/kWh} or None, "bands" {band: Wh}}],
     "energy_wh", "charged_mu" (the ledger's consumption), "lines_mu", "rounding_mu" (charged for
     readings - lines: each line is rounded down to the mu), "other_mu" (consumption not from a
     reading: a swapped meter's final reading), "days" [Wh per local day of the month]}

    The energy of each charged reading is the rise of its band registers
    since the meter's previous reading (a reading without band registers,
    or taken without a clock: its energy in the band in force when it was
    billed); each is priced with the tariff version and billing cycle in
    force then (concentrator.tariff.spec_at, cycle_start_day), tiers by the
    cycle's energy in the month."""
    if versions is None:
        try:
            versions = tariffs.versions_for_account(session, account, account.property_id)
        except ValueError:
            versions = []
    rows, charged, by_reading = _readings_charged(session, account.id, start, end)
    ndays = (end - start) // DAY
    days = [0] * max(ndays, 1)
    segs = {}
    by_meter = {}
    for r in rows:
        by_meter.setdefault(r.meter_id, []).append(r)
    present = Reading.flags.op("&")(protocol.FLAG_MISSING) == 0
    for mid, rs in by_meter.items():
        rs.sort(key=lambda r: (r.ts, r.seq))
        first = rs[0]
        prev = session.exec(select(Reading.ts, Reading.seq, Reading.energy_wh, Reading.bands)
                            .where(Reading.meter_id == mid, present, Reading.ts <= first.ts, Reading.id != first.id)
                            .order_by(Reading.ts.desc(), Reading.seq.desc()).limit(1)).first()
        if prev is not None and (prev[0], prev[1]) > (first.ts, first.seq):
            prev = None
        if prev is None:
            # the meter's first reading: billed from the register it was commissioned (or moved in) at
            last_e = session.exec(select(MeterAssignment.start_energy_wh).where(
                MeterAssignment.meter_id == mid, MeterAssignment.account_id == account.id,
                MeterAssignment.start <= (first.ts or first.received)).order_by(MeterAssignment.start.desc())
                .limit(1)).first()
            last_b = None
        else:
            last_e, last_b = prev[2], prev[3]
        for r in rs:
            t = (r.ts or r.received) - 1
            spec = T.spec_at(versions, t) if versions else None
            split = {}
            banded = len(r.bands or ()) >= 5 and last_b is not None and len(last_b) >= 5 and r.ts
            if banded:
                for i, b in enumerate(T.BANDS):
                    d = r.bands[i] - last_b[i]
                    if d > 0:
                        split[b] = d
            elif last_e is not None and r.energy_wh > last_e:
                band = T.band_at_local(spec, t + spec["tz_offset_s"]) if spec else "flat"
                split[band] = r.energy_wh - last_e
            last_e, last_b = r.energy_wh, r.bands
            if not split:
                continue
            wh = sum(split.values())
            di = (t - start) // DAY
            days[min(max(di, 0), len(days) - 1)] += wh
            key = ((spec["effective"], spec["version"], T.cycle_start_day(spec, t)) if spec else (0, 0, 0))
            seg = segs.get(key)
            if seg is None:
                seg = segs[key] = {"spec": spec, "bands": {}}
            for b, e in split.items():
                seg["bands"][b] = seg["bands"].get(b, 0) + e
    lines, out_segs, cycle_wh = [], [], {}
    for key in sorted(segs):
        spec, bands = segs[key]["spec"], segs[key]["bands"]
        tot = sum(bands.values())
        ver = spec["version"] if spec else None
        prices = dict(spec["prices"]) if spec and spec.get("tou") else None
        out_segs.append({"version": ver, "effective": key[0], "prices": prices, "bands": dict(bands),
                         "flat_price": spec.get("price") if spec and not spec.get("tou") else None})
        if spec is None:
            lines.append({"kind": "band", "band": "flat", "energy_wh": tot, "price_mu_per_kwh": None,
                          "amount_mu": 0, "version": None})
            continue
        if prices is not None:
            for b in T.BANDS:
                e = bands.get(b, 0)
                if e:
                    p = prices.get(b)
                    lines.append({"kind": "band", "band": b, "energy_wh": e, "price_mu_per_kwh": p,
                                  "amount_mu": e * p // 1000 if p is not None else 0, "version": ver})
        else:
            lines.append({"kind": "band", "band": "flat", "energy_wh": tot, "price_mu_per_kwh": spec["price"],
                          "amount_mu": tot * spec["price"] // 1000, "version": ver})
        before = cycle_wh.get(key[2], 0)
        for lo, hi, e, add in _tier_split(spec.get("tiers") or [], before, tot):
            lines.append({"kind": "tier", "from_wh": lo, "to_wh": hi, "energy_wh": e, "price_mu_per_kwh": add,
                          "amount_mu": e * add // 1000, "version": ver})
        cycle_wh[key[2]] = before + tot
    lines_mu = sum(ln["amount_mu"] for ln in lines)
    return {"lines": lines, "segments": out_segs, "energy_wh": sum(days), "charged_mu": charged,
            "lines_mu": lines_mu, "rounding_mu": by_reading - lines_mu, "other_mu": charged - by_reading,
            "days": days, "day_starts": [start + i * DAY for i in range(len(days))], "versions": versions}


# ------------------------------------------------------------ one statement
def document(session, account, month, now=None, advice_share_pct=None):
    """Everything a statement shows (numbers; web/statement_doc.py words them)."""
    from . import tou_advice
    prop = session.get(Property, account.property_id)
    tz = prop.tz_offset_s
    start, end = month_bounds(month, tz)
    money = ledger_part(session, account.id, start, end)
    cons = band_lines(session, account, start, end)
    tenant = session.get(Tenant, account.tenant_id) if account.tenant_id else None
    receipts = _receipt_numbers(session, [e.id for e in money["entries"]])
    return {
        "account": account, "property": prop.name, "tz": tz, "month": month, "start": start, "end": end,
        "last_day": local_date(end - 1, tz), "first_day": local_date(start, tz),
        "tenant": tenant.name if tenant is not None else account.name,
        "units": [u.name for u in accounts.units_of(session, account.id)],
        "opening_mu": money["opening_mu"], "closing_mu": money["closing_mu"], "movements": money["movements"],
        "entries": [{"created": e.created, "kind": e.kind, "amount_mu": e.amount_mu,
                     "text": e.note or e.reference, "receipt_no": receipts.get(e.id)} for e in money["entries"]],
        "consumption": cons,
        "advice": tou_advice.from_lines(cons, tou_advice.DEFAULT_SHARE_PCT if advice_share_pct is None
                                        else advice_share_pct),
        "issued": int(now if now is not None else time.time()),
    }


def _receipt_numbers(session, entry_ids):
    if not entry_ids:
        return {}
    from ..models.receipt import Receipt
    from .property_settings import of as settings_of
    from .receipts import receipt_no
    out = {}
    for r in session.exec(select(Receipt).where(Receipt.ledger_entry_id.in_(entry_ids))).all():
        out[r.ledger_entry_id] = receipt_no(settings_of(session, r.property_id).receipt_prefix, r.number)
    return out


def staff_document(session, actor, account_id, month, now=None):
    """Any account's statement of a month, for staff of its property (also
    a month not issued yet or still running: as of now)."""
    a = accounts.get_account(session, actor, account_id)
    actor.check(P.REPORTS_READ, a.property_id)
    return document(session, a, month, now=now)


def tenant_document(session, actor, month, account_id=None, now=None, advice_share_pct=None):
    """One of the tenant's own issued statements; NotFound for anything else."""
    actor.check(P.PORTAL)
    if account_id is None:
        mine = accounts.list_accounts(session, actor)
        if not mine:
            raise NotFound("no statement %s" % month)
        account_id = mine[0].id
    a = accounts.get_account(session, actor, account_id)
    if not re.match(MONTH_PATTERN, month or "") or session.exec(select(Statement.id).where(
            Statement.account_id == a.id, Statement.month == month)).first() is None:
        raise NotFound("no statement %s" % month)
    return document(session, a, month, now=now, advice_share_pct=advice_share_pct)


def issued(session, account_id, limit=24):
    """The account's issued statements, newest first."""
    return session.exec(select(Statement).where(Statement.account_id == account_id)
                        .order_by(Statement.month.desc()).limit(limit)).all()


def list_statements(session, actor, property_id, month, paging=None):
    """Issued statements of a property's month, with the account's name: a Page of (Statement, name)."""
    actor.check_visible(property_id, "property %s" % property_id)
    actor.check(P.REPORTS_READ, property_id)
    q = (select(Statement, Account.name).join(Account, Account.id == Statement.account_id)
         .where(Statement.property_id == property_id, Statement.month == month).order_by(Statement.account_id))
    from ..core.paging import paginate, search
    if paging is None:
        return session.exec(q).all()
    return paginate(session, search(q, paging.q, Account.name), paging, scalars=False)


def issued_documents(session, actor, property_id, month, limit=None):
    """-> (how many, the documents of a property's issued statements of
    `month` one by one): a ZIP of the month's PDFs. NotFound when none was issued."""
    rows = list_statements(session, actor, property_id, month)
    if not rows:
        raise NotFound("no statements of %s issued for property %s: issue them first" % (month, property_id))
    if limit is not None and len(rows) > limit:
        raise Invalid("%d statements: more than %d in one download, ask for them by API one by one"
                      % (len(rows), limit))
    return len(rows), (staff_document(session, actor, st.account_id, month) for st, _name in rows)


# ------------------------------------------------------------ runs
def run_accounts(session, property_id, start, end):
    """Ids of the property's accounts not closed before [start, end) (an
    account opened after the month with nothing in it is skipped: empty())."""
    return list(session.exec(select(Account.id).where(
        Account.property_id == property_id,
        (Account.closed.is_(None)) | (Account.closed >= start)).order_by(Account.id)).all())


def empty(account, doc):
    """Nothing to say: opened after the month, no balance, no movement."""
    return (account.opened >= doc["end"] and not doc["opening_mu"] and not any(doc["movements"].values())
            and not doc["consumption"]["energy_wh"])


def start_run(session, actor, property_id, month, now=None):
    """A run issuing the statements of a property's month (which must have
    ended). Flushed, not committed; execute() does the work."""
    prop = session.get(Property, property_id)
    if prop is None or not actor.sees(property_id):
        raise NotFound("no property %s" % property_id)
    actor.check(P.STATEMENTS_RUN, property_id)
    now = int(now if now is not None else time.time())
    start, end = month_bounds(month, prop.tz_offset_s)
    if end > now:
        raise Invalid("%s has not ended yet: statements are issued for a month that is over" % month)
    busy = session.exec(select(StatementRun).where(StatementRun.property_id == property_id,
                                                   StatementRun.month == month,
                                                   StatementRun.status == RUNNING)).first()
    if busy is not None and now - busy.started < 3600:
        raise Conflict("statements of %s for %s are being issued (run %d)" % (prop.name, month, busy.id))
    run = StatementRun(property_id=property_id, month=month, user_id=actor.user_id, started=now,
                       total=len(run_accounts(session, property_id, start, end)))
    session.add(run)
    session.flush()
    audit.record(session, actor, "statements.run", "statement_run", run.id, property_id=property_id,
                 after={"month": month, "accounts": run.total})
    return run


def issue(session, run, account, doc):
    """Keep one statement as issued (a second run of the month replaces the numbers)."""
    st = session.exec(select(Statement).where(Statement.account_id == account.id,
                                              Statement.month == run.month)).first()
    if st is None:
        st = Statement(run_id=run.id, property_id=account.property_id, account_id=account.id, month=run.month,
                       opening_mu=0, closing_mu=0)
    st.run_id, st.opening_mu, st.closing_mu = run.id, doc["opening_mu"], doc["closing_mu"]
    st.movements, st.energy_wh, st.issued = dict(doc["movements"]), doc["consumption"]["energy_wh"], doc["issued"]
    session.add(st)
    return st


def execute(session_factory, run_id, progress=None, render=None, now=None):
    """Issue every statement of run `run_id`, committing progress as it
    goes; `render(account, doc)` (optional) gets each statement (the CLI
    writes PDFs with it); `progress(done, total)` after each. Returns the run."""
    with session_factory() as s:
        run = s.get(StatementRun, run_id)
        if run is None:
            raise NotFound("no statement run %s" % run_id)
        prop = s.get(Property, run.property_id)
        start, end = month_bounds(run.month, prop.tz_offset_s)
        ids = run_accounts(s, run.property_id, start, end)
        run.total, run.done, run.status = len(ids), 0, RUNNING
        s.add(run)
        s.commit()
        try:
            for i, aid in enumerate(ids):
                a = s.get(Account, aid)
                doc = document(s, a, run.month, now=now)
                if not empty(a, doc):
                    issue(s, run, a, doc)
                    if render is not None:
                        render(a, doc)
                run.done = i + 1
                if run.done % COMMIT_EVERY == 0 or run.done == len(ids):
                    s.add(run)
                    s.commit()
                if progress is not None:
                    progress(run.done, run.total)
            run.status, run.finished = DONE, int(time.time())
            s.add(run)
            s.commit()
        except Exception as e:           # the run says why it stopped; what was issued stays issued
            s.rollback()
            run = s.get(StatementRun, run_id)
            run.status, run.finished, run.error = FAILED, int(time.time()), ("%s: %s" % (type(e).__name__, e))[:500]
            s.add(run)
            s.commit()
            raise
        return run


def get_run(session, actor, run_id):
    run = session.get(StatementRun, run_id)
    if run is None or not actor.sees(run.property_id):
        raise NotFound("no statement run %s" % run_id)
    actor.check(P.REPORTS_READ, run.property_id)
    return run


def recent_runs(session, actor, property_id, limit=10):
    actor.check_visible(property_id, "property %s" % property_id)
    return session.exec(select(StatementRun).where(StatementRun.property_id == property_id)
                        .order_by(StatementRun.id.desc()).limit(limit)).all()
