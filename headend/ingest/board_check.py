"""The board's charges checked against the head-end's copy of the board's
accumulator (Meter.board_tariff_state, the "mirror": kept while a meter's
billing differs from the board's, services/billing.prepare), once per
meter and transaction instead of once per reading.

Within one tariff segment (one version, one billing cycle) what
concentrator.tariff charges for a reading is the floor of the segment's new
cost minus the floor of its cost before: the charges of a run of readings
add up to one charge of the run's last registers. So the copy is priced
once, with the last reading's registers, and compared with what the board
charged over the run (its charged_mu after the last reading minus before
the first). Only when they differ, or when the run is not one segment of
rising registers, is the copy priced reading by reading, as the board did,
and every reading that disagrees gets its event (the same event, naming the
reading's seq, as a reading priced on its own).

billing_run.Biller defers a reading here (defer) when the meter has a copy
with a baseline, the reading is banded, dated and not a reset, and the
meter's account and tariff are those of its accumulator; Work.flush settles
every meter's run (settle) before it writes the meters, and the Biller
settles a meter's run itself before it prices one of the meter's readings
the other way."""
from concentrator import tariff as T

from ..core.events import EV_BILLING_MISMATCH
from ..models import Event
from ..services import billing


class Run:
    """A meter's readings waiting for the check: (seq, charged_mu, the
    board's charged_mu before it, band registers, t, receive time) each."""
    __slots__ = ("conc_id", "versions", "readings")

    def __init__(self, conc_id, versions):
        self.conc_id, self.versions, self.readings = conc_id, versions, []


def defer(m, conc_id, versions, seq, charged_mu, before_mu, regs, t, now):
    """Put a reading of meter m (store.MeterState) in its run (a run is
    priced with one tariff: the caller settles it first when the board's
    versions are others, deferrable())."""
    run = m.board_run
    if run is None:
        run = m.board_run = Run(conc_id, versions)
    run.readings.append((seq, charged_mu, before_mu, regs, t, now))


def deferrable(m, versions):
    """Whether meter m's run can take a reading priced with `versions`."""
    return m.board_run is None or m.board_run.versions is versions


def settle(s, m):
    """Price meter m's run on the copy, compare it with the board's
    charges, store the copy (billing.apart: dropped once it agrees with the
    head-end's accumulator); mismatch events added to session s."""
    run, m.board_run = m.board_run, None
    if run is None:
        return
    mirror = billing.copy_state(m.board_tariff_state)
    todo = run.readings
    first, last = todo[0], todo[-1]
    if len(todo) > 1 and _one_segment(run.versions, mirror, todo):
        trial = billing.copy_state(mirror)
        try:
            got = T.charge_registers(run.versions, trial, last[3], last[4] - 1)
        except ValueError:
            got = None
        if got == last[1] - first[2]:
            m.board_tariff_state = billing.apart(m.tariff_state, trial)
            return
    for seq, charged, before, regs, t, now in todo:
        try:
            mu = T.charge_registers(run.versions, mirror, regs, t - 1)
        except ValueError as e:
            s.add(Event(concentrator_id=run.conc_id, meter_index=m.index, meter_id=m.id, code=EV_BILLING_MISMATCH,
                        detail=seq, ts=now, values=[None, charged - before, charged],
                        message=("the board's tariff cannot price reading seq %d of %s: %s"
                                 % (seq, m.meter_id, e))[:500]))
            continue
        if charged - before != mu:
            s.add(mismatch(run.conc_id, m, seq, now, mu, charged, before))
    m.board_tariff_state = billing.apart(m.tariff_state, mirror)


def mismatch(conc_id, m, seq, now, head_end_mu, charged_mu, before_mu):
    """The event of a reading whose board charge (charged_mu - before_mu)
    is not what the board's accumulator charges (head_end_mu)."""
    board = charged_mu - before_mu
    return Event(concentrator_id=conc_id, meter_index=m.index, meter_id=m.id, code=EV_BILLING_MISMATCH, detail=seq,
                 ts=now, values=[head_end_mu, board, charged_mu],
                 message=("board and head-end disagree by %d mu on %s, reading seq %d: "
                          "head-end charged %d mu, board %d mu (board charged_mu %d -> %d)"
                          % (board - head_end_mu, m.meter_id, seq, head_end_mu, board, before_mu, charged_mu))[:500])


def _one_segment(versions, mirror, todo):
    """Whether one charge of the last registers is the run's charges: every
    reading in one tariff segment, not before the copy's open segment
    (concentrator.tariff._segment would bill it late), and no band register
    going down (each reading's would restart that band's baseline)."""
    ts = [r[4] - 1 for r in todo]
    lo, hi = min(ts), max(ts)
    spec = T.spec_at(versions, lo)
    if T.spec_at(versions, hi) is not spec:
        return False
    cyc = T.cycle_start_day(spec, lo)
    if T.cycle_start_day(spec, hi) != cyc:
        return False
    if mirror["ver"] is not None:
        here, there = (spec["effective"], spec["version"]), (mirror["eff"], mirror["ver"])
        if here < there or (here == there and cyc < mirror["cyc"]):
            return False
    last = mirror["reg"]
    for r in todo:
        regs = r[3]
        for b in last:
            if regs.get(b, -1) < last[b]:
                return False
        if len(regs) != len(last):
            return False
        last = regs
    return True
