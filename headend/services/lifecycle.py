"""The tenant's account from move-in to move-out, meter swaps and vacancy.

At every instant each meter's consumption belongs to exactly one account:
bill_to() is the only way a meter changes account, and it records from which
reading (models.meter_history.MeterAssignment). A unit nobody occupies has
its meters billed to the property's vacancy account, and their relays follow
the property's vacant-unit rule (models.property_settings).

The final reading of a move-out is the meter's last reading the head-end has
billed (shown with its time): everything before it is the old tenant's,
everything after it the next occupant's. The board locks of move-in and
move-out serialise them with the ingest of the same board."""
import copy
import time

from sqlmodel import func, select

from concentrator import tariff as T

from ..core import permissions as P
from ..core.money import MU_PER_CENT, format_exact
from ..models import Account, Concentrator, Meter, MeterAssignment, MeterSwap, Occupancy, Unit
from ..models.account import KIND_TENANT
from ..models.ledger import CONSUMPTION
from ..models.meter_history import ASSIGN, COMMISSION, MOVE_IN, MOVE_OUT
from ..models.property_settings import VACANT_CLOSED, VACANT_CREDIT, VACANT_OPEN
from . import audit, commands, corrections, ledger, property_settings, pushes, tariffs
from .accounts import get_account, vacancy_account
from .errors import Conflict, Invalid, NotFound

VACANT_HOLD_S = 10 * 365 * 86400     # the vacant-unit override lasts until someone moves in
REFUND, CARRY_OVER = "refund", "carry_over"
SETTLEMENTS = (REFUND, CARRY_OVER)
RELAY_OF_RULE = {VACANT_OPEN: "open", VACANT_CLOSED: "closed", VACANT_CREDIT: "auto"}


def _now(now):
    return int(now if now is not None else time.time())


def open_assignment(session, meter_id):
    return session.exec(select(MeterAssignment).where(MeterAssignment.meter_id == meter_id,
                                                      MeterAssignment.end.is_(None))
                        .order_by(MeterAssignment.id.desc())).first()


def bill_to(session, actor, meter, account_id, reason, now=None):
    """From the meter's last billed reading on, its consumption is charged
    to `account_id`. -> the new MeterAssignment (None when nothing changes)."""
    now = _now(now)
    cur = open_assignment(session, meter.id)
    if cur is not None and cur.account_id == account_id and meter.account_id == account_id:
        return None
    if cur is not None:
        cur.end, cur.end_energy_wh = now, meter.billed_energy_wh
        session.add(cur)
    new = MeterAssignment(meter_id=meter.id, account_id=account_id, reason=reason, start=now,
                          start_energy_wh=meter.billed_energy_wh, start_seq=meter.billed_seq, user_id=actor.user_id)
    session.add(new)
    meter.account_id = account_id
    session.add(meter)
    return new


def lock_boards(session, meters):
    """Row-lock the meters' concentrators (the lock the ingest takes first)."""
    ids = sorted({m.concentrator_id for m in meters})
    if ids:
        session.exec(select(Concentrator.id).where(Concentrator.id.in_(ids)).with_for_update()).all()


def meters_of_unit(session, unit_id):
    return session.exec(select(Meter).where(Meter.unit_id == unit_id).order_by(Meter.id)).all()


def _relay(session, actor, meters, state, now, why):
    until = now + VACANT_HOLD_S if state != "auto" else 0
    for m in meters:
        commands.queue_relay(session, actor, session.get(Concentrator, m.concentrator_id), m, state, until, now,
                             why=why)


def apply_vacant_rule(session, actor, property_id, meters, now=None):
    """The relays of meters in vacant units follow the property's rule."""
    rule = property_settings.of(session, property_id).vacant_relay
    _relay(session, actor, meters, RELAY_OF_RULE[rule], _now(now), "vacant unit")
    return rule


def vacant_meters(session, property_id):
    va = vacancy_account(session, property_id)
    return session.exec(select(Meter).where(Meter.account_id == va.id).order_by(Meter.id)).all()


def _reading(m):
    return {"meter_id": m.meter_id, "energy_wh": m.billed_energy_wh, "ts": m.billed_ts}


def move_in(session, actor, account_id, unit_id, opening_credit_mu=0, method="cash", reference="",
            idempotency_key=None, now=None, tariff_id=None):
    """Account `account_id` moves into unit `unit_id`: the unit's meters are
    billed to it from their current reading (the opening reading) on, at the
    account's tariff (`tariff_id`: set it first), their relays return to the
    credit rule, and an opening credit is sold.
    -> {"occupancy", "opening": [{meter_id, energy_wh, ts}], "sale"}"""
    from .sales import sell
    now = _now(now)
    a = get_account(session, actor, account_id)
    actor.check(P.ACCOUNTS_WRITE, a.property_id)
    if a.kind != KIND_TENANT or a.status != "open":
        raise Invalid("account %s is not an open tenant's account" % a.id)
    if tariff_id is not None and tariff_id != a.tariff_id:
        from .accounts import set_tariff
        set_tariff(session, actor, a.id, tariff_id)
    u = session.exec(select(Unit).where(Unit.id == unit_id).with_for_update()).first()
    if u is None or u.property_id != a.property_id:
        raise Invalid("no unit %s in this property" % unit_id)
    cur = session.exec(select(Occupancy).where(Occupancy.unit_id == u.id, Occupancy.end.is_(None))).first()
    if cur is not None:
        raise Conflict("unit %s is occupied by account %s: move that tenant out first" % (u.name, cur.account_id))
    occ = Occupancy(account_id=a.id, unit_id=u.id, start=now)
    session.add(occ)
    meters = meters_of_unit(session, u.id)
    lock_boards(session, meters)
    was_vacant = [m for m in meters if m.account_id != a.id]
    for m in meters:
        bill_to(session, actor, m, a.id, MOVE_IN, now)
    if was_vacant:
        _relay(session, actor, was_vacant, "auto", now, "moved in")
    session.flush()
    audit.record(session, actor, "account.move_in", "account", a.id, property_id=a.property_id,
                 after={"unit_id": u.id, "unit": u.name, "start": now, "opening": [_reading(m) for m in meters]})
    sale = None
    if opening_credit_mu:
        sale = sell(session, actor, a.id, opening_credit_mu, note="opening credit", push=False, method=method,
                    reference=reference, idempotency_key=idempotency_key, now=now)
    pushes.queue_credit_for_meters(session, meters)
    return {"occupancy": occ, "unit": u, "opening": [_reading(m) for m in meters], "sale": sale}


def move_out(session, actor, account_id, unit_id=None, settlement=CARRY_OVER, method="cash", reference="",
             reason="", idempotency_key=None, now=None):
    """The account leaves unit `unit_id` (None: every unit it occupies). The
    meters' final readings are their last billed readings; from there they
    are billed to the vacancy account and follow the vacant-unit rule.
    settlement: `refund` pays the remaining credit back (whole fen; a
    sub-fen remainder is written off) and closes the account; `carry_over`
    keeps the account open with its balance (for another unit later).
    -> {"units", "final": [...], "refund", "writeoff", "closed"}"""
    now = _now(now)
    a = get_account(session, actor, account_id)
    actor.check(P.ACCOUNTS_WRITE, a.property_id)
    if settlement not in SETTLEMENTS:
        raise Invalid("settlement is refund or carry_over")
    q = select(Occupancy).where(Occupancy.account_id == a.id, Occupancy.end.is_(None))
    if unit_id is not None:
        q = q.where(Occupancy.unit_id == unit_id)
    occs = session.exec(q).all()
    if not occs:
        raise Invalid("account %s occupies %s" % (a.id, "no unit" if unit_id is None else "not unit %s" % unit_id))
    remaining = session.exec(select(func.count()).select_from(Occupancy).where(
        Occupancy.account_id == a.id, Occupancy.end.is_(None))).one() - len(occs)
    if settlement == REFUND:
        actor.check(P.MONEY_ADJUST, a.property_id)
        if remaining:
            raise Invalid("the account keeps other units: refund when it leaves the last one")
    meters = []
    for occ in occs:
        meters += meters_of_unit(session, occ.unit_id)
    lock_boards(session, meters)
    final = [_reading(m) for m in meters]
    units = [session.get(Unit, o.unit_id).name for o in occs]
    refund = writeoff = None
    if settlement == REFUND:      # while the slip can still name the units and meters
        balance = ledger.balance(session, a.id)
        if balance < 0:
            raise Conflict("the account owes %s: take a payment first, or carry the balance over"
                           % format_exact(-balance))
        if balance >= MU_PER_CENT:
            refund = corrections.refund(session, actor, a.id, None, method=method, reference=reference,
                                        reason=reason or "move-out settlement", idempotency_key=idempotency_key,
                                        now=now, push=False)
        rest = ledger.balance(session, a.id)
        if rest:
            writeoff = corrections.adjust(session, actor, a.id, -rest, "sub-fen remainder at move-out",
                                          now=now, push=False, allow_sub_fen=True)
        a.status, a.closed = "closed", now
        session.add(a)
    vacancy = vacancy_account(session, a.property_id)
    for occ in occs:
        occ.end = now
        session.add(occ)
    for m in meters:
        bill_to(session, actor, m, vacancy.id, MOVE_OUT, now)
    rule = apply_vacant_rule(session, actor, a.property_id, meters, now) if meters else None
    session.flush()
    audit.record(session, actor, "account.move_out", "account", a.id, property_id=a.property_id,
                 after={"units": units, "end": now, "final": final, "settlement": settlement,
                        "vacant_relay": rule, "closed": a.status == "closed"})
    pushes.queue_credit_for_meters(session, meters)
    return {"units": units, "final": final, "refund": refund, "writeoff": writeoff,
            "closed": a.status == "closed", "vacant_relay": rule}


def assign(session, actor, meter, conc, account_id, now=None):
    """A manager puts a meter on another account (None: the vacancy account;
    a meter is never billed to nobody)."""
    now = _now(now)
    if account_id is None:
        account_id = vacancy_account(session, conc.property_id).id
    else:
        a = session.get(Account, account_id)
        if a is None or a.property_id != conc.property_id:
            raise Invalid("no account %s in this property" % account_id)
    lock_boards(session, [meter])
    vacancy = vacancy_account(session, conc.property_id)
    bill_to(session, actor, meter, account_id, ASSIGN, now)
    if account_id == vacancy.id:
        apply_vacant_rule(session, actor, conc.property_id, [meter], now)
    return meter


def commission(session, actor, meter, conc, now=None):
    """A new meter: billed to its unit's occupant, else to the vacancy account
    (and, in a vacant unit, its relay follows the vacant-unit rule)."""
    from .accounts import occupant
    account_id = meter.account_id
    if account_id is None and meter.unit_id is not None:
        occ = occupant(session, meter.unit_id, at=now)
        account_id = occ.account_id if occ is not None else None
    vacant = account_id is None
    if vacant:
        account_id = vacancy_account(session, conc.property_id).id
    bill_to(session, actor, meter, account_id, COMMISSION, now)
    if vacant and meter.unit_id is not None:
        apply_vacant_rule(session, actor, conc.property_id, [meter], now)


# ------------------------------------------------------------------ meter swap
def swap_meter(session, actor, meter_pk, new_meter_id, new_model=None, final_energy_wh=None,
               opening_energy_wh=0, now=None):
    """Replace the meter at a board position. The old meter's final reading
    (default: its last billed reading) and the new meter's opening reading
    are recorded; the account, the tariff accumulator (tier counter, the
    month's billing) and the board position continue. Readings the board
    took before the swap are covered by the final reading.

    With the same meter id the board keeps counting across the swap (its
    per-band registers continue), so nothing more is charged. With a new id
    the board starts a new count: the energy between the last billed reading
    and the final reading is charged now, and the register baseline restarts."""
    from .devices import get_meter
    now = _now(now)
    m, conc = get_meter(session, actor, meter_pk)
    actor.check(P.DEVICES_WRITE, conc.property_id)
    lock_boards(session, [m])
    new_meter_id = (new_meter_id or "").strip()
    if not 1 <= len(new_meter_id) <= 64:
        raise Invalid("a meter id is 1-64 characters")
    if new_meter_id != m.meter_id and session.exec(select(Meter).where(Meter.meter_id == new_meter_id)).first():
        raise Conflict("meter %r exists" % new_meter_id)
    last = m.billed_energy_wh if m.billed_energy_wh is not None else (m.last_energy_wh or 0)
    final = last if final_energy_wh is None else final_energy_wh
    if final < last:
        raise Invalid("the final reading %d Wh is below the last billed reading %d Wh" % (final, last))
    new_id = new_meter_id != m.meter_id
    banded = bool(m.tariff_state and m.tariff_state.get("reg") is not None)
    entry, residual_mu = None, 0
    if final > last and (new_id or not banded):
        entry, residual_mu = _charge_residual(session, actor, m, conc, final - last, now)
    swap = MeterSwap(meter_id=m.id, old_meter_id=m.meter_id, old_model=m.model, final_energy_wh=final,
                     new_meter_id=new_meter_id, new_model=new_model if new_model is not None else m.model,
                     opening_energy_wh=opening_energy_wh, ledger_entry_id=entry.id if entry else None, ts=now,
                     user_id=actor.user_id)
    session.add(swap)
    m.meter_id, m.model = swap.new_meter_id, swap.new_model
    m.billed_energy_wh, m.last_energy_wh, m.last_ts = opening_energy_wh, opening_energy_wh, now
    if new_id:
        st = copy.deepcopy(m.tariff_state) if m.tariff_state else T.new_state()
        st["reg"] = None
        m.tariff_state = st
        m.board_tariff_state = T.new_state()        # the board counts the new meter from zero
        m.board_charged_mu = None
    session.add(m)
    session.flush()
    audit.record(session, actor, "meter.swap", "meter", m.id, property_id=conc.property_id,
                 before={"meter_id": swap.old_meter_id, "model": swap.old_model, "final_energy_wh": final},
                 after={"meter_id": swap.new_meter_id, "model": swap.new_model, "opening_energy_wh": opening_energy_wh,
                        "residual_mu": residual_mu})
    pushes.queue_credit_for_meters(session, [m])
    return swap, residual_mu


def _charge_residual(session, actor, m, conc, wh, now):
    from .billing import prepare
    account = session.get(Account, m.account_id) if m.account_id else vacancy_account(session, conc.property_id)
    name, versions = tariffs.tariff_of_account(session, account)
    if not versions:
        return None, 0
    t = now - 1
    state, mirror, key = prepare(m, account.id, name, tariffs.property_tariff_name(session, conc.property_id),
                                 versions, t)
    if mirror is None:
        mirror = copy.deepcopy(state)      # the board never sees this energy: from here they differ
    mu = T.charge(versions, state, T.band_at(versions, t), wh, t)
    m.tariff_state, m.board_tariff_state, m.tariff_key = state, mirror, key
    if not mu:
        return None, 0
    entry = ledger.post(session, account.id, CONSUMPTION, -mu, user_id=actor.user_id, source=actor.source,
                        reference="swap:%s final reading" % m.meter_id, note="%d Wh after the last reading" % wh,
                        created=now)
    session.flush()
    return entry, mu


def history(session, actor, meter_pk):
    """A meter's assignments and swaps, oldest first."""
    from .devices import get_meter
    m, _conc = get_meter(session, actor, meter_pk)
    if m is None:
        raise NotFound("no meter %s" % meter_pk)
    return (session.exec(select(MeterAssignment).where(MeterAssignment.meter_id == m.id)
                         .order_by(MeterAssignment.id)).all(),
            session.exec(select(MeterSwap).where(MeterSwap.meter_id == m.id).order_by(MeterSwap.id)).all())


def unit_rows(session, actor, property_id):
    """The units of a property with their occupant (None: vacant) and meters."""
    from .properties import list_units
    units = list_units(session, actor, property_id)
    if not units:
        return []
    ids = [u.id for u in units]
    occ = {o.unit_id: o for o in session.exec(select(Occupancy).where(Occupancy.unit_id.in_(ids),
                                                                       Occupancy.end.is_(None))).all()}
    accs = {a.id: a for a in session.exec(select(Account).where(
        Account.id.in_(sorted({o.account_id for o in occ.values()}) or [0]))).all()}
    meters = {}
    for m in session.exec(select(Meter).where(Meter.unit_id.in_(ids)).order_by(Meter.meter_id)).all():
        meters.setdefault(m.unit_id, []).append(m)
    return [{"unit": u, "account": accs.get(occ[u.id].account_id) if u.id in occ else None,
             "since": occ[u.id].start if u.id in occ else None, "meters": meters.get(u.id, [])} for u in units]
