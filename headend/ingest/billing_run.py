"""Charging new readings: through concentrator.tariff (services.billing),
the very arithmetic the board runs, as `consumption` ledger entries that
name the board.

Set-based: the batch's meters and accounts are loaded once (ingest/store.py)
into plain objects (store.MeterState, store.AccountState); bill() prices one
reading in memory and says what to write; nothing here runs SQL except the
tariff look-ups, which are cached per message.

Whose reading it is: the meter's account, or the property's vacancy account
for a meter nobody occupies, so that no reading is charged to nobody. At
which price: the account's own tariff, else the property's. The meter's
accumulator belongs to one account and tariff (Meter.tariff_key); when the
meter changes account or the account changes tariff, billing starts a new
accumulator at that reading (services.billing.switch_state) instead of
pricing the old one's energy again at the new prices.

The board bills every meter with the property's tariff since commissioning;
once a meter's billing differs from that, the head-end keeps a copy of the
board's accumulator (Meter.board_tariff_state) and compares the board's
charged_mu with it, so a difference means a real disagreement: once per
meter and transaction (board_check), reading by reading only when the run's
total disagrees."""
import logging

from concentrator import protocol

from sqlalchemy import func, select

from ..core.events import EV_NOT_BILLED
from ..models import Property, Tariff
from ..services import billing, tariffs
from ..services.pushes import refresh_due
from . import board_check

log = logging.getLogger("headend.ingest")


class Biller:
    def __init__(self, stats):
        self.stats = stats
        # tariffs across messages: {property id: (stamp, {key: (name, versions)})}.
        # Tariff rows are never changed, only added, so the stamp (the
        # property's tariff name and time zone, its highest tariff row id)
        # read once per message says whether what is cached still holds.
        self._tariffs = {}

    def tariff_cache(self, s, property_id):
        """The per-message tariff cache of a property (one query)."""
        p, t = Property.__table__.c, Tariff.__table__.c
        stamp = tuple(s.execute(select(p.tariff_name, p.tz_offset_s,
                                       select(func.max(t.id)).where(t.property_id == p.id).scalar_subquery())
                                .where(p.id == property_id)).first() or ())
        got = self._tariffs.get(property_id)
        if got is not None and got[0] == stamp:
            return got[1]
        cache = {}
        self._tariffs[property_id] = (stamp, cache)
        return cache

    def tz_of(self, s, property_id):
        """The property's UTC offset, from the stamp tariff_cache reads."""
        if property_id not in self._tariffs:
            self.tariff_cache(s, property_id)
        return int(self._tariffs[property_id][0][1])

    def _cached(self, cache, key, load):
        if key not in cache:
            try:
                cache[key] = load()
            except ValueError as e:
                log.error("invalid tariff %r: %s", key, e)
                cache[key] = (None, [])
        return cache[key]

    def property_tariff(self, s, property_id, cache):
        """(name, versions) of the property's tariff: what its boards bill with."""
        return self._cached(cache, ("property", property_id), lambda: (
            tariffs.property_tariff_name(s, property_id), tariffs.property_versions(s, property_id)))

    def tariff_of(self, s, property_id, account, cache):
        """(name, versions) a meter of `account` (store.AccountState) is billed with."""
        if account.tariff_id is None:
            return self.property_tariff(s, property_id, cache)
        return self._cached(cache, ("tariff", account.tariff_id), lambda: tariffs.tariff_of_account(s, account))

    def prices(self, b, account):
        """(name, versions, board's name, board's versions) a meter of
        `account` is billed with in batch `b`: looked up once per message
        and account tariff, not per reading."""
        got = b.prices.get(account.tariff_id)
        if got is None:
            got = b.prices[account.tariff_id] = (self.tariff_of(b.s, b.property_id, account, b.cache)
                                                 + self.property_tariff(b.s, b.property_id, b.cache))
        return got

    def __call__(self, b, m, rd):
        """Bill one new reading `rd` (store.ReadingRow) of meter `m`
        (store.MeterState) in batch `b` (records.Batch): updates m and rd in
        memory, adds events to b, returns the mu to charge to m's account
        (0 for nothing, None when not billed at all; b.billed counts those
        billed)."""
        if m.billed_seq is not None and rd.seq <= m.billed_seq:
            return None          # older than what was billed: already covered (cumulative)
        if rd.flags & protocol.FLAG_MISSING:
            return None          # a gap, not zero: the next real reading covers it
        if rd.flags & protocol.FLAG_IMPLAUSIBLE:
            self._not_billed(b, m, rd, protocol.EV_IMPLAUSIBLE,
                             "reading seq %d (%d Wh) flagged implausible by the board: not billed"
                             % (rd.seq, rd.energy_wh))
            return None
        if m.swapped_ts is not None and rd.ts and rd.ts < m.swapped_ts:
            self.stats.inc("readings_not_billed")
            return None          # the old meter's: its final reading at the swap covers it
        account = b.account(m)
        name, versions, board_name, board_versions = self.prices(b, account)
        if not versions:
            self.stats.inc("readings_not_billed")
            return None          # no price yet: keep the pointer, bill later
        banded = len(rd.bands) >= 5 and rd.charged_mu is not None
        regs = dict(zip(billing.BANDS, rd.bands)) if banded else None    # values[4:9], by band
        # ts = 0: the board did not know the time; rate at the head-end's receive time
        t = rd.ts if rd.ts else rd.received
        prev = m.billed_energy_wh
        key = billing.tariff_key(account.id, name)
        # the board's charge checked on the copy of its accumulator once per meter and
        # transaction (board_check): a dated, banded reading, not a reset, of a meter
        # whose account and tariff are its accumulator's and whose copy has a baseline
        deferred = (banded and rd.ts and board_versions and m.board_tariff_state is not None
                    and m.board_charged_mu is not None and prev is not None and rd.energy_wh >= prev
                    and m.tariff_key == key and m.tariff_state is not None
                    and m.tariff_state.get("reg") is not None and m.board_tariff_state.get("reg") is not None
                    and board_check.deferrable(m, board_versions))
        if deferred:
            state, mirror = billing.copy_state(m.tariff_state), None
        else:
            if m.board_run is not None:
                board_check.settle(b.s, m)     # the copy as it is after the run, before this reading
            state, mirror, key = billing.prepare(m, account.id, name, board_name, versions, t - 1)
        prev_c, prev_t = m.board_charged_mu, m.billed_ts
        amount = board_amount = 0
        reset = prev is not None and rd.energy_wh < prev
        if reset:
            # meter replaced or reset: restart the baseline here, charge nothing
            self._not_billed(b, m, rd, EV_NOT_BILLED,
                             "register went backwards on %s: %d Wh after %d Wh (seq %d): not billed, "
                             "billing restarts from this reading" % (m.meter_id, rd.energy_wh, prev, rd.seq))
            if regs is not None:
                for st in (state, mirror):
                    if st is not None:
                        st["reg"] = dict(regs)
        else:
            if mirror is None and banded and prev is not None and rd.energy_wh > prev and state.get("reg") is None:
                # the head-end bills what the meter used between commissioning and its first
                # record; the board takes that record as its baseline only: from here their
                # accumulators differ (the tiers and the rounding see other cycle energies)
                mirror = billing.copy_state(state)
            try:
                amount = billing.bill_reading(versions, state, rd.energy_wh, regs, prev, t, rerate=not rd.ts)
                board_amount = amount
                if mirror is not None and board_versions:
                    # the board's first record of a meter is only its baseline
                    board_amount = billing.bill_reading(board_versions, mirror, rd.energy_wh, regs,
                                                        prev if mirror.get("reg") is not None else None, t,
                                                        rerate=not rd.ts)
            except ValueError as e:
                self._not_billed(b, m, rd, EV_NOT_BILLED,
                                 "reading seq %d of %s cannot be billed: %s" % (rd.seq, m.meter_id, e))
                return None      # pointer and state unchanged: billed with a later reading
            b.billed += 1
        new_ref = prev is None or (banded and m.board_charged_mu is None)
        if banded:
            first = m.tariff_state is None or m.tariff_state.get("reg") is None
            comparable = mirror is None or bool(board_versions)
            if deferred:
                board_check.defer(m, b.conc_id, board_versions, rd.seq, rd.charged_mu, prev_c, regs, t, b.now)
            elif (not first and comparable and rd.ts and m.board_charged_mu is not None
                    and rd.charged_mu - m.board_charged_mu != board_amount):
                b.s.add(board_check.mismatch(b.conc_id, m, rd.seq, b.now, board_amount, rd.charged_mu,
                                             m.board_charged_mu))
            m.board_charged_mu = rd.charged_mu
        m.tariff_state, m.tariff_key = state, key
        if not deferred:
            m.board_tariff_state = billing.apart(state, mirror)
        m.billed_seq, m.billed_energy_wh, m.billed_ts = rd.seq, rd.energy_wh, t
        m.dirty = True
        rd.billed = True
        rd.billed_mu = amount
        # the board's own charge moved otherwise than the balance: its local credit is off
        differs = banded and prev_c is not None and rd.charged_mu - prev_c != amount
        if amount == 0 and (new_ref or differs):
            b.changed.add(account.id)     # a first reference (e, c), or a charge the board made alone
        if (new_ref or reset or differs or not banded or not rd.ts or prev_c is None
                or refresh_due(b.conc_id, prev_t, t)):
            # the board's own charge does not tell it the new balance (or an hour passed): a credit
            b.tell.add(m.index)
        return amount

    def _not_billed(self, b, m, rd, code, text):
        self.stats.inc("readings_not_billed")
        b.event(meter_index=rd.meter_index, meter_id=m.id, code=code, detail=rd.seq, ts=rd.ts or rd.received,
                message=text[:500])
